package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leveling/workshop/hub/hubtest"
)

// The fault scenario kills a server process, so its test runs the real
// binary, built once per test run into a directory TestMain removes.
var serverBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Limits of the instances the fault test runs, each in its unit.
const (
	instanceStopTimeout = time.Minute            // its exit after SIGTERM; the server allows itself 15 s of grace
	readyPoll           = 20 * time.Millisecond  // between two /readyz probes
	readyProbeTimeout   = 500 * time.Millisecond // one probe
)

// serverBinary answers the workshop server, built on the first call. The
// build is bounded by the asking test's context (go test -timeout), not
// a timer of its own: a cold build cache on a busy machine is slow.
// Without a go command the test skips, or fails under CI=true.
func serverBinary(t *testing.T) string {
	t.Helper()
	b := &serverBuild
	b.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		if b.dir, err = os.MkdirTemp("", "workshop-bench-test-"); err != nil {
			b.err = err
			return
		}
		bin := filepath.Join(b.dir, "workshop")
		cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "github.com/leveling/workshop/cmd/workshop")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/workshop: %v\n%s", err, out)
			return
		}
		b.bin = bin
	})
	if b.err != nil {
		if os.Getenv("CI") == "true" || !strings.Contains(b.err.Error(), "not on PATH") {
			t.Fatal(b.err)
		}
		t.Skip(b.err)
	}
	return b.bin
}

// instance is one workshop server process of a test.
type instance struct {
	cmd    *exec.Cmd
	base   string
	log    *hubtest.LockedBuffer
	exited chan struct{}
	err    error // its exit, set before exited is closed
}

// startInstance runs the server on a free loopback port against Redis and
// waits until /readyz answers 200. When the test ends it is stopped with
// SIGTERM, or only waited for if something killed it.
func startInstance(t *testing.T, ctx context.Context, bin, redisURL, name string) *instance {
	t.Helper()
	var lastErr error
	for range 3 { // another process may take the free port first
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := &instance{base: "http://" + addr, log: &hubtest.LockedBuffer{}, exited: make(chan struct{})}
		p.cmd = exec.Command(bin, "-redis-url", redisURL, "-addr", addr, "-instance", name, "-log-level", "warn")
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		p.cmd.SysProcAttr = procAttr()
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.exited)
		}()
		if lastErr = p.waitReady(ctx); lastErr == nil {
			t.Cleanup(func() { p.stop(t, name) })
			return p
		}
		_ = p.cmd.Process.Kill()
		<-p.exited
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("instance %s did not start: %v", name, lastErr)
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits or ctx
// ends.
func (p *instance) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: readyProbeTimeout}
	for {
		if resp, err := client.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v\n%s", p.err, p.log.String())
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w\n%s", ctx.Err(), p.log.String())
		case <-time.After(readyPoll):
		}
	}
}

// stop ends a running instance with SIGTERM and waits for it; one that
// was killed (by the scenario) is only waited for.
func (p *instance) stop(t *testing.T, name string) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if p.err != nil && !errors.As(p.err, &exit) {
			t.Errorf("instance %s: %v", name, p.err)
		}
	case <-time.After(instanceStopTimeout):
		t.Errorf("instance %s did not stop within %s of SIGTERM\n%s", name, instanceStopTimeout, p.log.String())
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// TestFault runs the fault scenario with a few attendees over two real
// instances on one real redis-server: the bench kills the second with
// SIGKILL during the votes, and every attendee it served must connect
// again to the first and resume, with every acknowledged vote counted
// once (counts, never timings).
func TestFault(t *testing.T) {
	const clients = 20
	redis := hubtest.StartRedis(t) // first: without redis-server the test skips (fails under CI=true) before building
	bin := serverBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a := startInstance(t, ctx, bin, redis.URL(), "a")
	b := startInstance(t, ctx, bin, redis.URL(), "b")
	rep := runBench(t, "-url", a.base+","+b.base, "-server-pids", fmt.Sprintf("%d,%d", a.cmd.Process.Pid, b.cmd.Process.Pid),
		"-scenario", "fault", "-clients", strconv.Itoa(clients), "-per-worker", "8", "-vote-window", "1s",
		"-delivery-timeout", "30s")

	select {
	case <-b.exited:
	default:
		t.Errorf("instance b still runs after the scenario killed it")
	}
	x := rep.Fault
	if x == nil {
		t.Fatalf("fault: no result; errors %v", rep.Errors)
	}
	// Attendees are spread round-robin: the odd ones were on b.
	if x.Killed != b.base || x.OnKilled != clients/2 || x.Reconnected != x.OnKilled || x.Back.N != x.OnKilled ||
		x.OtherDrops != 0 || x.Gaps != 0 {
		t.Errorf("fault: got %+v, want the %d attendees of %s back, no other drops, no gaps", x, clients/2, b.base)
	}
	if v := x.Votes; v.Acked != clients || v.Counted != clients || !x.NothingLost || !x.CountedOnce || v.NotConverged != 0 {
		t.Errorf("fault votes: got %+v, want %d acked, counted once and shown everywhere", v, clients)
	}
}
