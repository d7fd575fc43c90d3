package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The server the walk runs against: its per-address limits scaled down
// (WORKSHOP_LIMIT_SCALE, an operator setting) so that the floods that
// reach 429 and 4029 stay small, a closed room's code kept for a short
// while (WORKSHOP_CLOSED_ROOM_TTL) so the walk can see it go, and a drain
// delay (WORKSHOP_DRAIN_DELAY) so /readyz is seen failing on SIGTERM.
const (
	limitScale    = 0.01
	closedRoomTTL = 2 * time.Second
	drainDelay    = time.Second
	sourceAddrs   = 50 // loopback source addresses 127.0.0.1 to .50

	// Defaults of the per-address bursts, from README.md "Security and
	// limits" and PROTOCOL.md.
	defaultIdentityBurst = 5000
	defaultUpgradeBurst  = 5000
	defaultRoomBurst     = 20
	defaultLookupBurst   = 30

	buildTimeout = 5 * time.Minute  // go build with a cold cache on a loaded machine
	walkTimeout  = 5 * time.Minute  // the bound of a hung walk; it takes about 20 s idle, over 2 min with both cores busy
	exitTimeout  = 30 * time.Second // the server's exit after the walk's SIGTERM
)

// scaledBurst is a burst as the server sizes it: the default times the
// scale, and (hub.Limits.Scaled, then its defaults) one that comes to less
// than 1 falls back to the default. With 0.01 that keeps 20 rooms and 30
// lookups per address, not the 0.2 and 0.3 PROTOCOL.md's "times
// WORKSHOP_LIMIT_SCALE" would give.
func scaledBurst(def int) int {
	if b := int(float64(def) * limitScale); b > 0 {
		return b
	}
	return def
}

// The server binary is built once per test run, on first use, into a
// directory TestMain removes.
var (
	buildOnce sync.Once
	buildDir  string
	serverBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// server answers the built binary. Without a go command it skips, or
// fails under CI=true.
func server(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "workshop-hostile-"); err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		bin := filepath.Join(buildDir, "workshop")
		out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/leveling/workshop/cmd/workshop").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		serverBin = bin
	})
	if buildErr != nil {
		if os.Getenv("CI") == "true" || !strings.Contains(buildErr.Error(), "not on PATH") {
			t.Fatal(buildErr)
		}
		t.Skip(buildErr)
	}
	return serverBin
}

// lockedBuffer collects output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// process is the running server.
type process struct {
	cmd  *exec.Cmd
	base string
	log  *lockedBuffer
	done chan struct{} // closed once the process has been waited for
	err  error         // its exit, once done is closed
}

// startServer runs the binary on a free loopback port with an embedded
// store in a temporary directory and waits until /readyz answers 200.
func startServer(t *testing.T, ctx context.Context, bin string) *process {
	t.Helper()
	var lastErr error
	for range 3 { // another process may take the free port first
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := &process{base: "http://" + addr, log: &lockedBuffer{}, done: make(chan struct{})}
		p.cmd = exec.Command(bin)
		p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKSHOP_ADDR=" + addr, "WORKSHOP_DATA_DIR=" + t.TempDir(),
			"WORKSHOP_LOG_LEVEL=warn", fmt.Sprintf("WORKSHOP_LIMIT_SCALE=%g", limitScale),
			"WORKSHOP_CLOSED_ROOM_TTL=" + closedRoomTTL.String(), "WORKSHOP_DRAIN_DELAY=" + drainDelay.String()}
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		p.cmd.SysProcAttr = procAttr()
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.done)
		}()
		t.Cleanup(func() {
			select {
			case <-p.done:
			default:
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		})
		if lastErr = p.waitReady(ctx); lastErr == nil {
			return p
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("the server did not start: %v", lastErr)
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits or ctx
// ends.
func (p *process) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v\n%s", p.err, p.log.String())
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w\n%s", ctx.Err(), p.log.String())
		case <-tick.C:
		}
	}
}

// sourceAddrsUsable answers whether this machine lets a socket bind the
// walk's highest loopback source address (Linux routes all of 127/8 to lo).
func sourceAddrsUsable() error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", sourceAddrs))
	if err != nil {
		return err
	}
	return ln.Close()
}

// TestHostileWalk runs the whole walk against a real server process and
// fails with the walk's output when any check fails. The walk ends by
// stopping the server with SIGTERM (close 1001), so the server must then
// exit cleanly.
func TestHostileWalk(t *testing.T) {
	if err := sourceAddrsUsable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("loopback source addresses 127.0.0.1-%d: %v", sourceAddrs, err)
		}
		t.Skipf("loopback source addresses 127.0.0.1-%d are not usable here (%v): the per-address limits cannot be walked", sourceAddrs, err)
	}
	bin := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), walkTimeout+exitTimeout)
	defer cancel()
	p := startServer(t, ctx, bin)

	args := []string{"-url", p.base, "-timeout", walkTimeout.String(),
		"-source-addrs", fmt.Sprint(sourceAddrs),
		"-identity-burst", fmt.Sprint(scaledBurst(defaultIdentityBurst)),
		"-upgrade-burst", fmt.Sprint(scaledBurst(defaultUpgradeBurst)),
		"-room-burst", fmt.Sprint(scaledBurst(defaultRoomBurst)),
		"-lookup-burst", fmt.Sprint(scaledBurst(defaultLookupBurst)),
		"-closed-room-ttl", closedRoomTTL.String(),
		"-server-pid", fmt.Sprint(p.cmd.Process.Pid)}
	out := &lockedBuffer{}
	start := time.Now()
	rc := run(ctx, args, out, out)
	elapsed := time.Since(start)

	var exitErr error
	select {
	case <-p.done:
		exitErr = p.err
	case <-time.After(exitTimeout):
		exitErr = errors.New("still running after the walk's SIGTERM")
	}
	if rc != 0 {
		t.Errorf("the walk of PROTOCOL.md failed (exit %d, %s):\n%s", rc, elapsed.Round(time.Millisecond), out.String())
	} else {
		t.Logf("the walk of PROTOCOL.md passed in %s:\n%s", elapsed.Round(time.Millisecond), out.String())
	}
	if exitErr != nil {
		t.Errorf("the server after SIGTERM: %v", exitErr)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", p.log.String())
	}
}
