package hub

// Resumes and pings are bounded: per connection and per address, at most
// one resume in flight per client, and an attendee's own snapshot view
// encoded once per head. Real server, real WebSocket clients; the counts
// come from workshop_client_messages_total.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// limitServer is a real hub on the embedded store behind a real HTTP
// server, with tweaked limits and its metrics on a registry of its own.
type limitServer struct {
	h   *Hub
	reg *prometheus.Registry
	url string // the room's WebSocket URL
	rm  *CreatedRoom
	fac *hubtest.Client // the facilitator, the room started
}

func startLimitServer(t *testing.T, ctx context.Context, lim func(*Limits)) *limitServer {
	t.Helper()
	bus := NewLocalBus()
	store, err := OpenBoltStore(t.TempDir(), bus)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Store: store, Bus: bus, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(reg)}
	if lim != nil {
		lim(&cfg.Limits)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(h, HTTPConfig{}))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(sctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
		_ = bus.Close()
		_ = store.Close()
	})
	rm, err := h.CreateRoom(ctx, CreateRequest{Title: "Limits", Teams: []string{"A"}}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := &limitServer{h: h, reg: reg, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/rooms/" + rm.ID + "/ws", rm: rm}
	s.fac, err = hubtest.Dial(ctx, s.url, map[string]any{"key": rm.FacilitatorKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.fac.Close)
	if _, err := s.fac.MustDo(ctx, map[string]any{"type": "start"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// count is workshop_client_messages_total{type,result}.
func (s *limitServer) count(t *testing.T, typ, result string) int {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "workshop_client_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == typ && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// rawClient is a WebSocket client that hands the test every server message
// in order, so the test reads answers as they come instead of polling.
type rawClient struct {
	conn  *websocket.Conn
	lines chan serverLine
	done  chan struct{}
	err   error // why the read loop ended; set before done is closed
	epoch string
	pid   string
}

type serverLine struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retryAfter"`
	Epoch      string `json:"epoch"`
	Seq        uint64 `json:"seq"`
	// welcome
	Participant string `json:"participant"`
	Events      []struct {
		Type string `json:"type"`
	} `json:"events"`
	raw string
}

// dialRaw connects an attendee and reads up to its snapshot.
func dialRaw(t *testing.T, ctx context.Context, url, name string) *rawClient {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(4 << 20)
	c := &rawClient{conn: conn, lines: make(chan serverLine, 1024), done: make(chan struct{})}
	t.Cleanup(func() {
		go conn.Close(websocket.StatusNormalClosure, "")
		for {
			select {
			case <-c.lines: // unread messages must not hold up the read loop
			case <-c.done:
				return
			}
		}
	})
	go c.readLoop()
	c.send(t, ctx, map[string]any{"type": "hello", "name": name})
	w := c.until(t, ctx, "welcome", func(l serverLine) bool { return l.Type == msgWelcome })
	c.epoch, c.pid = w.Epoch, w.Participant
	c.until(t, ctx, "snapshot", func(l serverLine) bool { return l.Type == msgSnapshot })
	return c
}

func (c *rawClient) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		for _, b := range bytes.Split(data, []byte("\n")) {
			var l serverLine
			if err := json.Unmarshal(b, &l); err != nil {
				c.err = fmt.Errorf("undecodable server message %q: %w", b, err)
				return
			}
			l.raw = string(b)
			c.lines <- l
		}
	}
}

func (c *rawClient) send(t *testing.T, ctx context.Context, msg map[string]any) {
	t.Helper()
	b, _ := json.Marshal(msg)
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// until reads messages, handing each to f, until f returns true.
func (c *rawClient) until(t *testing.T, ctx context.Context, what string, f func(serverLine) bool) serverLine {
	t.Helper()
	for {
		select {
		case l := <-c.lines:
			if f(l) {
				return l
			}
		case <-c.done:
			for len(c.lines) > 0 {
				if l := <-c.lines; f(l) {
					return l
				}
			}
			t.Fatalf("waiting for %s: connection ended: %v", what, c.err)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// answer waits for the pong, error or ack with id.
func (c *rawClient) answer(t *testing.T, ctx context.Context, id string) serverLine {
	t.Helper()
	return c.until(t, ctx, "the answer to "+id, func(l serverLine) bool {
		return l.ID == id && (l.Type == msgPong || l.Type == msgError || l.Type == msgAck)
	})
}

// vote gives c a vote of its own on a question the facilitator asks, so
// that its snapshot is a personal view.
func (s *limitServer) vote(t *testing.T, ctx context.Context, c *rawClient) {
	t.Helper()
	r, err := s.fac.MustDo(ctx, map[string]any{"type": "ask", "text": "Who owns the platform roadmap?"})
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, ctx, map[string]any{"id": "v1", "type": "upvote", "question": r.Result["question"]})
	if a := c.answer(t, ctx, "v1"); a.Type != msgAck {
		t.Fatalf("upvote: %s", a.raw)
	}
}

func checkRateLimited(t *testing.T, l serverLine, id, what string) {
	t.Helper()
	if l.Type != msgError || l.Code != room.ERATELIMITED || l.ID != id || l.RetryAfter <= 0 || !strings.Contains(l.Message, what) {
		t.Fatalf("got %s, want a rate_limited error with id %q, a positive retryAfter and %q", l.raw, id, what)
	}
}

// TestResumeFlood: an attendee who sends 200 resumes as fast as it can is
// refused past the burst, with a positive retryAfter and the resume's id,
// stays connected and still gets the live events of a reveal; the resumes
// that passed cost at most one actor call each, and fewer when they
// coalesced.
func TestResumeFlood(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	const n, allowed = 200, 10
	s := startLimitServer(t, ctx, func(l *Limits) {
		l.Resumes = Rate{Per: time.Hour, Burst: allowed}
		l.RefusalPause = time.Millisecond
	})
	att := dialRaw(t, ctx, s.url, "Flood")
	s.vote(t, ctx, att)
	for i := range n {
		att.send(t, ctx, map[string]any{"type": "resume", "id": "r" + strconv.Itoa(i), "epoch": att.epoch, "seq": 0})
	}
	refused := 0
	att.until(t, ctx, "the refusals", func(l serverLine) bool {
		if l.Type == msgError {
			checkRateLimited(t, l, "r"+strconv.Itoa(allowed+refused), "too many resumes")
			refused++
		}
		return refused == n-allowed
	})
	if _, err := s.fac.MustDo(ctx, map[string]any{"type": "reveal"}); err != nil {
		t.Fatal(err)
	}
	att.until(t, ctx, "the reveal", func(l serverLine) bool {
		return l.Type == msgEvents && len(l.Events) > 0 && l.Events[len(l.Events)-1].Type == room.EvRevealed
	})
	served, coalesced := s.count(t, msgResume, resumeServed), s.count(t, msgResume, resumeCoalesced)
	if got := s.count(t, msgResume, room.ERATELIMITED); got != n-allowed {
		t.Errorf("rate_limited resumes: got %d, want %d", got, n-allowed)
	}
	if served < 1 || served+coalesced != allowed {
		t.Errorf("resumes served %d, coalesced %d: want at least one served and %d in all", served, coalesced, allowed)
	}
}

// TestResumeOneInFlight: while the room actor is busy, a client's resumes
// wait as one request, the newest, and are served by one actor call.
func TestResumeOneInFlight(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	s := startLimitServer(t, ctx, nil)
	att := dialRaw(t, ctx, s.url, "Eager")
	s.vote(t, ctx, att)
	s.h.mu.Lock()
	ra := s.h.rooms[s.rm.ID]
	s.h.mu.Unlock()
	busy, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // the actor must not stay blocked if the test fails
	go func() { _ = ra.call(ctx, func() { close(busy); <-release }) }()
	select {
	case <-busy:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	const n = 5
	for i := range n {
		// The last asks for a snapshot (an unknown epoch); the others
		// would each be answered with events.
		epoch := att.epoch
		if i == n-1 {
			epoch = "an-older-epoch"
		}
		att.send(t, ctx, map[string]any{"type": "resume", "epoch": epoch, "seq": 1})
	}
	// A ping is answered without the actor, after the read loop has
	// handled every resume before it.
	att.send(t, ctx, map[string]any{"type": "ping", "id": "sync", "t": 1})
	att.answer(t, ctx, "sync")
	if served, coalesced := s.count(t, msgResume, resumeServed), s.count(t, msgResume, resumeCoalesced); served != 0 || coalesced != n-1 {
		t.Fatalf("while the actor is busy: %d served, %d coalesced; want 0 and %d", served, coalesced, n-1)
	}
	unblock()
	got := att.until(t, ctx, "the resume's answer", func(l serverLine) bool { return l.Type == msgSnapshot || l.Type == msgEvents })
	if got.Type != msgSnapshot {
		t.Fatalf("answer: got %s, want the snapshot the newest resume asked for", got.raw)
	}
	if served := s.count(t, msgResume, resumeServed); served != 1 {
		t.Fatalf("actor calls for %d resumes: got %d, want 1", n, served)
	}
}

// TestPersonalSnapshotCached: repeated snapshots of an attendee with a vote
// of its own, at the same head, are one encoding.
func TestPersonalSnapshotCached(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	s := startLimitServer(t, ctx, nil)
	att := dialRaw(t, ctx, s.url, "Voter")
	s.vote(t, ctx, att)
	s.h.mu.Lock()
	ra := s.h.rooms[s.rm.ID]
	s.h.mu.Unlock()
	var views [][]byte
	err := ra.call(ctx, func() {
		for c := range ra.clients {
			if c.actor.Participant != att.pid {
				continue
			}
			for range 3 {
				ra.snapshotFor(c)
				views = append(views, ra.personal[att.pid])
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 || views[0] == nil || &views[0][0] != &views[1][0] || &views[1][0] != &views[2][0] {
		t.Fatalf("personal views at one head: want one cached encoding, got %d views", len(views))
	}
	if !bytes.Contains(views[0], []byte(`"voters":{"`+att.pid+`":true}`)) {
		t.Fatalf("the cached view is not the voter's own: %s", views[0])
	}
}

// TestPingLimit: pings past the burst are refused with the ping's id and
// a positive retryAfter, each refusal holds the connection's next message
// back for RefusalPause, and the connection stays and answers.
func TestPingLimit(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	const pause = 50 * time.Millisecond
	s := startLimitServer(t, ctx, func(l *Limits) {
		l.Pings = Rate{Per: time.Hour, Burst: 3}
		l.RefusalPause = pause
	})
	att := dialRaw(t, ctx, s.url, "Pinger")
	start := time.Now()
	for i := range 5 {
		att.send(t, ctx, map[string]any{"type": "ping", "id": "p" + strconv.Itoa(i), "t": 1})
	}
	for i := range 5 {
		id := "p" + strconv.Itoa(i)
		l := att.answer(t, ctx, id)
		if i < 3 {
			if l.Type != msgPong {
				t.Fatalf("ping %d: got %s, want a pong", i, l.raw)
			}
			continue
		}
		checkRateLimited(t, l, id, "too many pings")
	}
	att.send(t, ctx, map[string]any{"id": "h1", "type": "raise_hand"})
	if a := att.answer(t, ctx, "h1"); a.Type != msgAck {
		t.Fatalf("a command after refused pings: %s", a.raw)
	}
	// Each refusal held the connection's next message back.
	if d := time.Since(start); d < 2*pause {
		t.Errorf("two refusals and a command took %s, want at least %s", d, 2*pause)
	}
	if ok, limited := s.count(t, msgPing, "ok"), s.count(t, msgPing, room.ERATELIMITED); ok != 3 || limited != 2 {
		t.Fatalf("pings ok %d, rate_limited %d; want 3 and 2", ok, limited)
	}
}

// TestPingResumePerAddress: two connections from one address share its
// ping and resume buckets.
func TestPingResumePerAddress(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	s := startLimitServer(t, ctx, func(l *Limits) {
		l.AddrPings = Rate{Per: time.Hour, Burst: 3}
		l.AddrResumes = Rate{Per: time.Hour, Burst: 2}
	})
	a := dialRaw(t, ctx, s.url, "A")
	b := dialRaw(t, ctx, s.url, "B")
	for i, c := range []*rawClient{a, b, a, b} {
		id := "p" + strconv.Itoa(i)
		c.send(t, ctx, map[string]any{"type": "ping", "id": id, "t": 1})
		l := c.answer(t, ctx, id)
		if i < 3 {
			if l.Type != msgPong {
				t.Fatalf("ping %d: got %s, want a pong", i, l.raw)
			}
			continue
		}
		checkRateLimited(t, l, id, "pings from your address")
	}
	for i, c := range []*rawClient{a, b, a} {
		id := "r" + strconv.Itoa(i)
		c.send(t, ctx, map[string]any{"type": "resume", "id": id, "epoch": c.epoch, "seq": 0})
		if i < 2 {
			c.until(t, ctx, "snapshot", func(l serverLine) bool {
				if l.Type == msgError {
					t.Fatalf("resume %d refused: %s", i, l.raw)
				}
				return l.Type == msgSnapshot
			})
			continue
		}
		checkRateLimited(t, c.answer(t, ctx, id), id, "resumes from your address")
	}
}

// TestBucket: a one-word bucket lets Burst through at once, then one per
// Per, and says how long to wait.
func TestBucket(t *testing.T) {
	r := Rate{Per: time.Second, Burst: 3}
	var b bucket
	t0 := time.Now()
	for i := range 3 {
		if ok, _ := b.allow(r, t0); !ok {
			t.Fatalf("token %d refused", i)
		}
	}
	if ok, d := b.allow(r, t0); ok || d != time.Second {
		t.Fatalf("fourth at once: got %v %v, want refused for 1s", ok, d)
	}
	if ok, d := b.allow(r, t0.Add(400*time.Millisecond)); ok || d != 600*time.Millisecond {
		t.Fatalf("after 400ms: got %v %v, want refused for 600ms", ok, d)
	}
	if ok, _ := b.allow(r, t0.Add(time.Second)); !ok {
		t.Fatal("after one period: refused")
	}
	if ok, _ := b.allow(r, t0.Add(time.Second)); ok {
		t.Fatal("second after one period: allowed")
	}
	if ok, _ := b.allow(r, t0.Add(10*time.Second)); !ok {
		t.Fatal("after a long pause: refused")
	}
}

// TestRetryAfterPositive: a refusal never says to retry in 0 ms, however
// short the wait.
func TestRetryAfterPositive(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, 300 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond} {
		err := rateLimitedError("pings", d)
		ms := retryAfter(err).Milliseconds()
		if ms < 1 || time.Duration(ms)*time.Millisecond < d {
			t.Errorf("%s: retryAfter %d ms", d, ms)
		}
		var re *room.Error
		if !errors.As(err, &re) || re.Code != room.ERATELIMITED || strings.Contains(re.Message, " 0s") {
			t.Errorf("%s: %v", d, err)
		}
	}
}
