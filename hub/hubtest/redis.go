package hubtest

// A real redis-server per test: no mocks, the Redis store and bus are tested
// against the server they run on in production.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Limits of StartRedis, each in its unit.
const (
	readyTimeout  = 10 * time.Second       // from exec to the first PONG (AOF reload included)
	readyPoll     = 10 * time.Millisecond  // between two readiness pings
	pingTimeout   = 500 * time.Millisecond // one readiness ping
	startAttempts = 3                      // free-port races retried before failing
)

// MissingRedis is the message of a test skipped (or failed, with CI=true)
// because redis-server is not installed.
const MissingRedis = "install redis-server (apt-get install redis-server)"

// Option changes how StartRedis runs the server.
type Option func(*options)

type options struct {
	bin         string
	appendOnly  bool
	appendFsync string
	args        []string
}

// WithAppendFsync sets --appendfsync: "always" (the default, and what the
// shipped configuration uses), "everysec" or "no".
func WithAppendFsync(policy string) Option {
	return func(o *options) { o.appendFsync = policy }
}

// WithoutAppendOnly runs the server with --appendonly no: nothing survives
// Kill.
func WithoutAppendOnly() Option {
	return func(o *options) { o.appendOnly = false }
}

// WithArgs appends raw server arguments, such as "--maxmemory", "10mb".
func WithArgs(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// WithBinary runs this redis-server binary instead of the one on PATH.
func WithBinary(path string) Option {
	return func(o *options) { o.bin = path }
}

// Redis is a redis-server process owned by one test. Its methods may be
// called from the test goroutine and from goroutines the test waits for.
type Redis struct {
	t    testing.TB
	opts options
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu; nil while killed
	exit chan struct{} // closed when cmd has been waited for
}

// StartRedis runs redis-server on a free loopback port with its files in
// t.TempDir(), waits until it answers PING and stops it when the test ends.
// By default it runs with --save "" --appendonly yes --appendfsync always, so
// what a write acknowledged survives Kill and Restart. Without a
// redis-server binary the test is skipped, or fails when CI=true.
func StartRedis(t testing.TB, opts ...Option) *Redis {
	t.Helper()
	o := options{appendOnly: true, appendFsync: "always"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bin == "" {
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("hubtest: redis-server not found: %s", MissingRedis)
			}
			t.Skip("hubtest: redis-server not found: " + MissingRedis)
		}
		o.bin = bin
	}
	r := &Redis{t: t, opts: o, dir: t.TempDir()}
	var err error
	for range startAttempts {
		if r.port, err = freePort(); err != nil {
			t.Fatalf("hubtest: %v", err)
		}
		if err = r.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("hubtest: start redis-server: %v", err)
	}
	t.Cleanup(r.stop)
	return r
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the server's redis:// URL (database 0).
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Dir is the server's working directory (its AOF lives under it).
func (r *Redis) Dir() string { return r.dir }

// Kill ends the server with SIGKILL, as a crash would: nothing is flushed
// that the fsync policy has not flushed already. It waits for the process to
// be gone. Killing a killed server does nothing.
func (r *Redis) Kill() {
	r.t.Helper()
	r.mu.Lock()
	cmd, exit := r.cmd, r.exit
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exit
}

// Restart starts the server again on the same port and directory, so it
// reloads its append-only file, and waits until it answers PING. A running
// server is killed first.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	var err error
	// The old process's port can take a moment to be free again.
	for range startAttempts {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("hubtest: restart redis-server: %v", err)
}

func (r *Redis) start() error {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", filepath.Join(r.dir, "redis.log"),
	}
	if r.opts.appendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", r.opts.appendFsync)
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, r.opts.args...)
	cmd := exec.Command(r.opts.bin, args...)
	cmd.Dir = r.dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	if err := waitReady(r.Addr(), exit); err != nil {
		_ = cmd.Process.Kill()
		<-exit
		return fmt.Errorf("%w; log:\n%s", err, r.logTail())
	}
	r.mu.Lock()
	r.cmd, r.exit = cmd, exit
	r.mu.Unlock()
	return nil
}

func (r *Redis) stop() {
	r.Kill()
}

// logTail is the end of the server's log, for failure messages.
func (r *Redis) logTail() string {
	b, err := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitReady pings addr until it answers +PONG (a server loading its AOF
// answers -LOADING first), the process exits, or readyTimeout passes.
func waitReady(addr string, exit <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			return fmt.Errorf("redis-server exited before it was ready (last ping: %v)", last)
		default:
		}
		if last = ping(addr); last == nil {
			return nil
		}
		time.Sleep(readyPoll)
	}
	return fmt.Errorf("redis-server not ready after %s: %v", readyTimeout, last)
}

// ping sends one PING in the Redis protocol and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, pingTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(pingTimeout))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("+PONG")) {
		return fmt.Errorf("ping answered %q", strings.TrimSpace(string(line)))
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis-server binds it; StartRedis retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// procAttr kills the server with the test binary (Linux only), so a crashed
// test leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return pdeathsig()
}
