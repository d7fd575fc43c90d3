package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// testServer is a real hub behind a real HTTP server on a loopback port,
// on the embedded store.
type testServer struct {
	t     *testing.T
	URL   string
	addr  string
	dir   string
	hub   *hub.Hub
	srv   *httptest.Server
	store *hub.BoltStore
	bus   *hub.LocalBus
	stop  sync.Once
}

func testLogger() *slog.Logger {
	if os.Getenv("WORKSHOP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a server on dir; addr "" picks a free port.
func startServer(t *testing.T, dir, addr string, tweak ...func(*hub.Config)) *testServer {
	t.Helper()
	return startServerHTTP(t, dir, addr, nil, tweak...)
}

// startServerHTTP is startServer with a tweak of the HTTP configuration.
func startServerHTTP(t *testing.T, dir, addr string, httpTweak func(*hub.HTTPConfig), tweak ...func(*hub.Config)) *testServer {
	t.Helper()
	bus := hub.NewLocalBus()
	store, err := hub.OpenBoltStore(dir, bus)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.Config{Store: store, Bus: bus, Logger: testLogger()}
	for _, f := range tweak {
		f(&cfg)
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	hcfg := hub.HTTPConfig{Logger: testLogger()}
	if httpTweak != nil {
		httpTweak(&hcfg)
	}
	srv := httptest.NewUnstartedServer(hub.NewServer(h, hcfg))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s := &testServer{t: t, URL: srv.URL, addr: ln.Addr().String(), dir: dir, hub: h, srv: srv, store: store, bus: bus}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down in the production order. Idempotent.
func (s *testServer) Stop() { s.stop.Do(s.shutdown) }

func (s *testServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.hub.StartDrain()
	s.srv.Config.SetKeepAlivesEnabled(false)
	if err := s.hub.Shutdown(ctx); err != nil {
		s.t.Errorf("hub shutdown: %v", err)
	}
	s.srv.Close()
	s.bus.Close()
	s.store.Close()
}

func (s *testServer) wsURL(id string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/api/rooms/" + id + "/ws"
}

func createRoom(t *testing.T, base string, body map[string]any) hub.CreatedRoom {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/api/rooms", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("create room: %d %s", resp.StatusCode, msg)
	}
	var out hub.CreatedRoom
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, ctx context.Context, url string, hello map[string]any) *hubtest.Client {
	t.Helper()
	c, err := hubtest.Dial(ctx, url, hello)
	if err != nil {
		t.Fatalf("dial %v: %v", hello, err)
	}
	t.Cleanup(c.Close)
	return c
}

// do sends a command and fails the test unless it is acknowledged.
func do(t *testing.T, ctx context.Context, c *hubtest.Client, cmd map[string]any) hubtest.Reply {
	t.Helper()
	r, err := c.Do(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("command failed: %s: %s", r.Code, r.Message)
	}
	return r
}

// leakWait is how long checkNoLeaks gives a test's goroutines to end. They
// end within milliseconds on an idle machine and may take seconds on a
// busy one; only a real leak waits the whole minute out.
const leakWait = time.Minute

// checkNoLeaks fails if goroutines started by the test outlive it.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

// projection is the part of a room's state every audience shares; clients
// converge when their projections are equal.
func projection(s *room.State) string {
	type q struct {
		ID       string
		Text     string
		Votes    int
		Answered bool
	}
	var qs []q
	for _, x := range s.Questions {
		if !x.Hidden && !x.Pending {
			qs = append(qs, q{x.ID, x.Text, x.Votes, x.Answered})
		}
	}
	type cell struct {
		Level     int
		Submitted bool
	}
	revealed := map[string]cell{}
	for team, by := range s.Scores {
		for aspect, a := range by {
			if a.Revealed {
				revealed[team+"/"+aspect] = cell{a.Level, a.Submitted}
			}
		}
	}
	b, _ := json.Marshal(map[string]any{
		"seq": s.Seq, "phase": s.Phase, "aspect": s.Aspect, "turn": s.Turn, "questions": qs,
		"highlighted": s.Highlighted, "revealed": revealed, "hands": len(s.Hands),
	})
	return string(b)
}

func fmtFrames(frames [][]byte) string {
	var b strings.Builder
	for _, f := range frames {
		fmt.Fprintf(&b, "%s\n", f)
	}
	return b.String()
}
