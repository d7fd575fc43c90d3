package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The drain and failover tests run the real binary as processes. It is
// built once per `go test` run of this package, into a directory TestMain
// removes, whichever test asks first.
var workshopBuild struct {
	once sync.Once
	dir  string // made by the first build; removed by TestMain
	bin  string
	took time.Duration
	err  error
}

// buildReportGrace is what a build leaves of the test binary's deadline
// (go test -timeout), so that a build stopped at it fails its test with a
// message saying so, rather than the whole run panicking with a dump of
// every goroutine.
const buildReportGrace = 30 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if dir := workshopBuild.dir; dir != "" {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// workshopBinary answers the path of the workshop binary, built as the
// Dockerfile builds it (static, trimmed), building it on the first call.
//
// The build is bounded by the asking test's context and the run's own
// deadline, not by a timer of its own: with a warm build cache it takes a
// second or two, but a cold one on a busy 2-core machine has taken minutes
// (the tests compiled the dependencies with -race, which this build cannot
// reuse), and a fixed limit that a slow machine can exceed fails a run
// that had the time. Nor is it charged to a scenario's timeout: callers
// start their scenario's clock after it.
func workshopBinary(t *testing.T) string {
	t.Helper()
	b := &workshopBuild
	b.once.Do(func() {
		ctx := t.Context()
		if dl, ok := t.Deadline(); ok {
			var cancel func()
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-buildReportGrace))
			defer cancel()
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		if b.dir, err = os.MkdirTemp("", "workshop-test-bin-"); err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(b.dir, "workshop")
		args := []string{"build", "-trimpath", "-o", b.bin, "."}
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		b.took = time.Since(start).Round(time.Millisecond)
		if err == nil {
			return
		}
		what := fmt.Sprintf("CGO_ENABLED=0 go %s (the workshop server, package ./cmd/workshop, which the drain and failover tests run)",
			strings.Join(args, " "))
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			b.err = fmt.Errorf("%s: stopped after %s, %s before the test binary's deadline (go test -timeout); "+
				"a cold build cache on a busy machine is slow: give the run more time, or warm the cache with `go build ./cmd/workshop`: %v\n%s",
				what, b.took, buildReportGrace, err, out)
		case ctx.Err() != nil:
			b.err = fmt.Errorf("%s: stopped after %s with its test: %v\n%s", what, b.took, err, out)
		default:
			b.err = fmt.Errorf("%s: failed after %s: %v\n%s", what, b.took, err, out)
		}
		b.bin = ""
	})
	if b.err != nil {
		t.Fatalf("build: %v", b.err)
	}
	t.Logf("workshop binary: %s (built once for this run in %s)", b.bin, b.took)
	return b.bin
}
