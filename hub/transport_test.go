package hub

// An in-memory transport under Client (memConn), so that fan-out order,
// slow-client eviction, failed writes and shutdown are tested through the
// real hub (room actor, commit path, embedded store, local bus) without
// kernel socket buffers: a slow client is one whose writes are held, not
// one whose socket a busy machine takes minutes to fill. Clients join the
// way serveWS joins them after the upgrade: enter, then serveConn.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// memConn is one in-memory connection. The server's end is the transport
// methods, with the library's semantics (the first Close or CloseNow ends
// the connection and unblocks reads and writes; a later one does nothing;
// a message over the read limit closes with 1009). The test's end is
// send, a memReader and the close record. Every change wakes the waiters,
// so a test waits on a condition, never on a sleep.
type memConn struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change

	in     [][]byte // client messages the server has not read yet
	lines  [][]byte // what the server wrote, one JSON message each (batches split)
	writes int      // WebSocket messages the server wrote
	limit  int64    // the read limit in bytes; -1: none

	// hold makes Write wait (held counts the waiting writes) until hold
	// is cleared or the connection closes: a client that stopped reading.
	hold bool
	held int
	// writeErr makes every Write fail: a broken connection.
	writeErr error

	closed bool // Close or CloseNow ran
	frame  bool // it was Close, with a close frame: code and reason
	code   websocket.StatusCode
	reason string

	reading, writing int // Read and Write calls in progress
}

var _ transport = (*memConn)(nil)

func newMemConn() *memConn { return &memConn{changed: make(chan struct{}), limit: -1} }

// changedLocked wakes every waiter. mu is held.
func (m *memConn) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// waitLocked waits until cond holds or ctx ends. mu is held, and released
// while it waits.
func (m *memConn) waitLocked(ctx context.Context, cond func() bool) error {
	for !cond() {
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		m.mu.Lock()
		if ctx.Err() != nil && !cond() {
			return ctx.Err()
		}
	}
	return nil
}

func (m *memConn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reading++
	m.changedLocked()
	defer func() { m.reading--; m.changedLocked() }()
	if err := m.waitLocked(ctx, func() bool { return m.closed || len(m.in) > 0 }); err != nil {
		return 0, nil, err
	}
	if m.closed {
		return 0, nil, net.ErrClosed
	}
	msg := m.in[0]
	m.in = m.in[1:]
	if m.limit >= 0 && int64(len(msg)) > m.limit {
		// What coder/websocket says and does (SetReadLimit).
		reason := fmt.Sprintf("read limited at %d bytes", m.limit+1)
		m.closeLocked(websocket.StatusMessageTooBig, reason, true)
		return 0, nil, fmt.Errorf("%w: %s", websocket.ErrMessageTooBig, reason)
	}
	return websocket.MessageText, msg, nil
}

func (m *memConn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writing++
	m.changedLocked()
	defer func() { m.writing--; m.changedLocked() }()
	if m.hold && !m.closed {
		m.held++
		m.changedLocked()
		err := m.waitLocked(ctx, func() bool { return !m.hold || m.closed })
		m.held--
		if err != nil {
			return err
		}
	}
	switch {
	case m.closed:
		return net.ErrClosed
	case m.writeErr != nil:
		return m.writeErr
	case typ != websocket.MessageText:
		return fmt.Errorf("memConn: the server wrote a %v message", typ)
	}
	m.writes++
	for line := range bytes.SplitSeq(p, []byte("\n")) {
		m.lines = append(m.lines, bytes.Clone(line)) // p is a pooled batch buffer
	}
	return nil
}

func (m *memConn) Close(code websocket.StatusCode, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return net.ErrClosed
	}
	m.closeLocked(code, reason, true)
	return nil
}

func (m *memConn) CloseNow() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return net.ErrClosed
	}
	m.closeLocked(0, "", false)
	return nil
}

func (m *memConn) closeLocked(code websocket.StatusCode, reason string, frame bool) {
	m.closed, m.frame, m.code, m.reason = true, frame, code, reason
	m.changedLocked()
}

func (m *memConn) SetReadLimit(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limit = n
}

// send queues a client message for the server to read.
func (m *memConn) send(msg map[string]any) {
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.in = append(m.in, b)
	m.changedLocked()
}

// setHold holds (true) or lets go (false) the server's writes.
func (m *memConn) setHold(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hold = on
	m.changedLocked()
}

func (m *memConn) failWrites(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeErr = err
	m.changedLocked()
}

// waitFor waits until cond, called with mu held, holds.
func (m *memConn) waitFor(ctx context.Context, what string, cond func() bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.waitLocked(ctx, cond); err != nil {
		return fmt.Errorf("waiting for %s: %w (closed %v, code %d %q)", what, err, m.closed, m.code, m.reason)
	}
	return nil
}

// waitClosed waits for the connection to close and answers how: the
// close frame's code and reason, or frame false for a dropped connection.
func (m *memConn) waitClosed(ctx context.Context) (code websocket.StatusCode, reason string, frame bool, err error) {
	err = m.waitFor(ctx, "the close", func() bool { return m.closed })
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.code, m.reason, m.frame, err
}

// memLine is the test's view of one server message.
type memLine struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Seq     uint64 `json:"seq"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Events  []struct {
		Seq  uint64 `json:"seq"`
		Type string `json:"type"`
	} `json:"events"`
}

// memReader reads one memConn's server messages in order and checks, as
// it goes, that the events follow the snapshot with contiguous sequence
// numbers: no gap, no repeat, no reordering.
type memReader struct {
	m      *memConn
	next   int               // index of the next line in m.lines
	snap   bool              // the snapshot came
	seq    uint64            // the last sequence seen (snapshot or event)
	events int               // events seen
	acks   map[string]uint64 // command id -> the ack's seq
}

// until reads server messages until cond holds, and fails if the
// connection closes first (with what is still unread read).
func (r *memReader) until(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		var b []byte
		m := r.m
		err := m.waitFor(ctx, what, func() bool { return r.next < len(m.lines) || m.closed })
		m.mu.Lock()
		if r.next < len(m.lines) {
			b = m.lines[r.next]
			r.next++
		}
		closed, code, reason := m.closed, m.code, m.reason
		m.mu.Unlock()
		switch {
		case err != nil:
			return err
		case b == nil && closed:
			return fmt.Errorf("waiting for %s: the connection closed (%d %q) at seq %d", what, code, reason, r.seq)
		}
		if err := r.take(b); err != nil {
			return err
		}
	}
	return nil
}

func (r *memReader) take(b []byte) error {
	var l memLine
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("server message %q: %v", b, err)
	}
	switch l.Type {
	case msgSnapshot:
		r.snap, r.seq = true, l.Seq
	case msgEvents:
		if !r.snap {
			return fmt.Errorf("events before the snapshot: %s", b)
		}
		for _, e := range l.Events {
			if e.Seq != r.seq+1 {
				return fmt.Errorf("event %d (%s) after seq %d: want %d", e.Seq, e.Type, r.seq, r.seq+1)
			}
			r.seq = e.Seq
			r.events++
		}
	case msgAck:
		r.acks[l.ID] = l.Seq
	case msgError:
		return fmt.Errorf("server error for %q: %s %s", l.ID, l.Code, l.Message)
	}
	return nil
}

func (r *memReader) waitSeq(ctx context.Context, seq uint64) error {
	return r.until(ctx, "seq "+strconv.FormatUint(seq, 10), func() bool { return r.seq >= seq })
}

// memHub is a hub on the embedded store and the local bus, with one room.
type memHub struct {
	h   *Hub
	rm  *CreatedRoom
	reg *prometheus.Registry
}

// startMemHub starts a hub with commands unlimited per connection (the
// tests commit in bulk from the facilitator), adjusted by tweak.
func startMemHub(t *testing.T, ctx context.Context, tweak func(*Config)) *memHub {
	t.Helper()
	bus := NewLocalBus()
	store, err := OpenBoltStore(t.TempDir(), bus)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Store: store, Bus: bus, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(reg)}
	cfg.Limits.Commands = Rate{Per: time.Microsecond, Burst: 10000}
	if tweak != nil {
		tweak(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Shutdown(sctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		_ = bus.Close()
		_ = store.Close()
	})
	rm, err := h.CreateRoom(ctx, CreateRequest{Title: "In memory", Teams: []string{"A"}}, "http://workshop.test")
	if err != nil {
		t.Fatal(err)
	}
	return &memHub{h: h, rm: rm, reg: reg}
}

// connect opens an in-memory connection that sends hello, as serveWS
// runs one after the upgrade, and waits for its snapshot.
func (s *memHub) connect(t *testing.T, ctx context.Context, hello map[string]any) (*memConn, *memReader) {
	t.Helper()
	m, r := s.open(t, hello)
	if err := r.until(ctx, "the snapshot", func() bool { return r.snap }); err != nil {
		t.Fatal(err)
	}
	return m, r
}

// open opens an in-memory connection whose first message is hello (none
// if nil) and returns at once.
func (s *memHub) open(t *testing.T, hello map[string]any) (*memConn, *memReader) {
	t.Helper()
	return s.serve(t, newMemConn(), hello)
}

// serve runs m as a connection whose first message is hello (none if nil).
func (s *memHub) serve(t *testing.T, m *memConn, hello map[string]any) (*memConn, *memReader) {
	t.Helper()
	if hello != nil {
		hello["type"] = msgHello
		m.send(hello)
	}
	if !s.h.enter() {
		t.Fatal("the hub is draining")
	}
	go func() {
		defer s.h.conns.Done()
		s.h.serveConn(m, s.rm.ID, "192.0.2.1")
	}()
	return m, &memReader{m: m, acks: map[string]uint64{}}
}

// sendNote sends a set_note command with id "note-i"; each one commits one
// event.
func sendNote(m *memConn, i int) {
	m.send(map[string]any{"type": "set_note", "id": "note-" + strconv.Itoa(i), "aspect": "investment", "text": "note " + strconv.Itoa(i)})
}

// client finds the hub's Client on m, asking the room actor.
func (s *memHub) client(t *testing.T, ctx context.Context, m *memConn) *Client {
	t.Helper()
	ra := s.actor(t)
	var found *Client
	if err := ra.call(ctx, func() {
		for c := range ra.clients {
			if c.conn == m {
				found = c
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func (s *memHub) actor(t *testing.T) *roomActor {
	t.Helper()
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	ra := s.h.rooms[s.rm.ID]
	if ra == nil {
		t.Fatal("the room has no actor")
	}
	return ra
}

// TestMemFanoutOrder: N clients of every class, M commits sent at once by
// the facilitator (the actor commits them in batches as they come): every
// client sees every event once, in order, with contiguous sequence
// numbers after its snapshot, and every command is acknowledged.
func TestMemFanoutOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, nil)
	const n, commits = 20, 200
	fac, facR := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	_, teamR := s.connect(t, ctx, map[string]any{"key": s.rm.Teams[0].Key})
	_, presR := s.connect(t, ctx, map[string]any{"key": s.rm.PresenterKey})
	readers := []*memReader{facR, teamR, presR}
	for i := range n {
		_, r := s.connect(t, ctx, map[string]any{"name": "Attendee " + strconv.Itoa(i)})
		readers = append(readers, r)
	}
	start := facR.seq
	for i, r := range readers {
		if r.seq != start {
			t.Fatalf("client %d: snapshot at seq %d, want %d", i, r.seq, start)
		}
	}
	for i := range commits {
		sendNote(fac, i)
	}
	if err := facR.until(ctx, "every ack", func() bool { return len(facR.acks) == commits }); err != nil {
		t.Fatal(err)
	}
	head := start + commits
	for i := range commits {
		if seq := facR.acks["note-"+strconv.Itoa(i)]; seq != start+uint64(i)+1 {
			t.Fatalf("note-%d acknowledged at seq %d, want %d (commands commit in the order they were read)", i, seq, start+uint64(i)+1)
		}
	}
	for i, r := range readers {
		if err := r.waitSeq(ctx, head); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if r.seq != head || r.events != commits {
			t.Fatalf("client %d: %d events up to seq %d, want %d up to %d", i, r.events, r.seq, commits, head)
		}
	}
}

// TestMemSlowClientEvicted: a client whose writes are held (it stopped
// reading) fills its send queue while the facilitator commits; it is
// closed with 4008 "too slow" and gets nothing more, the others receive
// every event while its write is still held (fan-out never waits on it),
// and once its write returns it reads the close frame with the reason.
func TestMemSlowClientEvicted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const queue = 16
	s := startMemHub(t, ctx, func(c *Config) {
		c.SendQueue = queue
		c.WriteTimeout = time.Hour // only the queue closes the slow client here
	})
	fac, facR := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	_, fastR := s.connect(t, ctx, map[string]any{"name": "Fast"})
	slow, slowR := s.connect(t, ctx, map[string]any{"name": "Slow"})
	slowClient := s.client(t, ctx, slow)
	if slowClient == nil {
		t.Fatal("the slow client is not in its room")
	}
	slow.setHold(true)
	writesBefore := slow.field(func() int { return slow.writes })

	// One commit at a time, each acknowledged, until the slow client's
	// queue is full: its next write is held, the queue fills behind it,
	// and the frame after that closes the client.
	i := 0
	for ; !slowClient.closed(); i++ {
		if i > 10*queue {
			t.Fatalf("%d commits and the slow client (queue %d) is still open", i, queue)
		}
		sendNote(fac, i)
		if err := facR.until(ctx, "the ack of note-"+strconv.Itoa(i), facR.acked(i)); err != nil {
			t.Fatal(err)
		}
	}
	if slowClient.closeCode != statusTooSlow || slowClient.closeReason != "too slow" {
		t.Fatalf("slow client closed with %d %q, want 4008 \"too slow\"", slowClient.closeCode, slowClient.closeReason)
	}
	if got := s.counter(t, "workshop_slow_client_closes_total"); got != 1 {
		t.Fatalf("slow closes counted: %v, want 1", got)
	}

	// The others keep receiving after the eviction, and all of it reached
	// them while the slow client's write was still held.
	last := i + queue - 1
	for j := i; j <= last; j++ {
		sendNote(fac, j)
	}
	if err := facR.until(ctx, "the ack of note-"+strconv.Itoa(last), facR.acked(last)); err != nil {
		t.Fatal(err)
	}
	head := facR.acks["note-"+strconv.Itoa(last)]
	for name, r := range map[string]*memReader{"facilitator": facR, "fast": fastR} {
		if err := r.waitSeq(ctx, head); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if held := slow.field(func() int { return slow.held }); held != 1 {
		t.Fatalf("slow connection: %d writes held, want its one write still held", held)
	}

	// The slow client catches up: its held write goes through, then the
	// close frame; nothing that was queued behind the held write.
	slow.setHold(false)
	code, reason, frame, err := slow.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !frame || code != statusTooSlow || reason != "too slow" {
		t.Fatalf("slow connection closed with %d %q (close frame %v), want 4008 \"too slow\"", code, reason, frame)
	}
	if n := slow.field(func() int { return slow.writes }) - writesBefore; n != 1 {
		t.Fatalf("the slow client got %d messages after its writes were held, want the one held", n)
	}
	if err := slowR.until(ctx, "the slow client's last line", slowR.readAll); err != nil {
		t.Fatal(err)
	}
	if slowR.seq >= head {
		t.Fatalf("the slow client read up to seq %d, the head %d: it was not behind", slowR.seq, head)
	}
	s.waitGone(t, ctx, slow)
}

// TestMemWriteFails: a write that fails closes that client with 1011
// "write failed", and its handler ends; the others go on.
func TestMemWriteFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, nil)
	fac, facR := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	_, otherR := s.connect(t, ctx, map[string]any{"name": "Other"})
	broken, _ := s.connect(t, ctx, map[string]any{"name": "Broken"})
	broken.failWrites(errors.New("connection reset by peer"))
	sendNote(fac, 0)
	if err := facR.until(ctx, "the ack", facR.acked(0)); err != nil {
		t.Fatal(err)
	}
	code, reason, frame, err := broken.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !frame || code != statusInternal || reason != "write failed" {
		t.Fatalf("closed with %d %q (close frame %v), want 1011 \"write failed\"", code, reason, frame)
	}
	s.waitGone(t, ctx, broken)
	sendNote(fac, 1)
	if err := facR.until(ctx, "the ack", facR.acked(1)); err != nil {
		t.Fatal(err)
	}
	if err := otherR.waitSeq(ctx, facR.acks["note-1"]); err != nil {
		t.Fatal(err)
	}
}

// TestMemWriteDeadline: a write that never returns (the client stopped
// reading and its socket is full) is ended by the write deadline, which
// drops the connection; the handler ends and leaves the room.
func TestMemWriteDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, func(c *Config) { c.WriteTimeout = 50 * time.Millisecond })
	stuck := newMemConn()
	stuck.setHold(true) // from its welcome on; the only client, so no other write can outlast the deadline
	s.serve(t, stuck, map[string]any{"name": "Stuck"})
	_, _, frame, err := stuck.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frame {
		t.Fatal("a connection whose write outlasted the deadline got a close frame; want it dropped")
	}
	if err := stuck.waitFor(ctx, "the loops to let go", func() bool { return stuck.reading == 0 && stuck.writing == 0 }); err != nil {
		t.Fatal(err)
	}
	s.waitGone(t, ctx, stuck)
}

// TestMemShutdown: Hub.Shutdown closes every client with 1001 "server
// going away", after what was queued for it, and returns only when every
// handler has ended: one client's write is held until all the others are
// closed, and when Shutdown returns that one too has its close frame and
// no read or write of any connection is in progress.
func TestMemShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, nil)
	fac, facR := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	team, _ := s.connect(t, ctx, map[string]any{"key": s.rm.Teams[0].Key})
	conns := []*memConn{fac, team}
	for i := range 5 {
		m, _ := s.connect(t, ctx, map[string]any{"name": "Attendee " + strconv.Itoa(i)})
		conns = append(conns, m)
	}
	late, lateR := s.connect(t, ctx, map[string]any{"name": "Late"})
	late.setHold(true)
	sendNote(fac, 0)
	if err := facR.until(ctx, "the ack", facR.acked(0)); err != nil {
		t.Fatal(err)
	}
	// The facilitator's event comes from the same fan-out as the held
	// client's: once it is here, the held client's is queued.
	if err := facR.waitSeq(ctx, facR.acks["note-0"]); err != nil {
		t.Fatal(err)
	}
	if err := late.waitFor(ctx, "a held write", func() bool { return late.held == 1 }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, m := range conns {
			if _, _, _, err := m.waitClosed(ctx); err != nil {
				return
			}
		}
		late.setHold(false)
	}()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, m := range append(conns, late) {
		m.mu.Lock()
		closed, frame, code, reason, busy := m.closed, m.frame, m.code, m.reason, m.reading+m.writing
		m.mu.Unlock()
		if !closed || !frame || code != statusGoingAway || reason != "server going away" || busy != 0 {
			t.Fatalf("connection %d after Shutdown: closed %v, close frame %v %d %q, %d reads and writes in progress; want 1001 \"server going away\" and none",
				i, closed, frame, code, reason, busy)
		}
	}
	if err := lateR.until(ctx, "the held event", lateR.readAll); err != nil {
		t.Fatal(err)
	}
	if lateR.seq != facR.acks["note-0"] {
		t.Fatalf("the held client read up to seq %d before going away, want %d", lateR.seq, facR.acks["note-0"])
	}
	s.h.mu.Lock()
	rooms := len(s.h.rooms)
	s.h.mu.Unlock()
	if rooms != 0 {
		t.Fatalf("%d room actors left after Shutdown", rooms)
	}
}

// TestMemShutdownBeforeHello: a connection still waiting for its hello
// when the hub shuts down is closed with 1001 too, at once, not after the
// hello timeout.
func TestMemShutdownBeforeHello(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, func(c *Config) { c.HelloTimeout = time.Hour })
	quiet, _ := s.open(t, nil)
	if err := quiet.waitFor(ctx, "the hello read", func() bool { return quiet.reading == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	code, reason, frame, err := quiet.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !frame || code != statusGoingAway || reason != "server going away" {
		t.Fatalf("closed with %d %q (close frame %v), want 1001 \"server going away\"", code, reason, frame)
	}
}

// TestMemHelloDuringDrain: a connection upgraded before the drain began
// whose hello comes during it is told to go elsewhere with 1001, as
// PROTOCOL.md says, not 1013.
func TestMemHelloDuringDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, nil)
	late, _ := s.open(t, nil)
	if err := late.waitFor(ctx, "the hello read", func() bool { return late.reading == 1 }); err != nil {
		t.Fatal(err)
	}
	s.h.StartDrain()
	late.send(map[string]any{"type": msgHello, "name": "Late"})
	code, reason, frame, err := late.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !frame || code != statusGoingAway || reason != "server going away" {
		t.Fatalf("closed with %d %q (close frame %v), want 1001 \"server going away\"", code, reason, frame)
	}
}

// field reads a field of m under its lock.
func (m *memConn) field(f func() int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f()
}

// acked is a condition for until: command note-i was acknowledged.
func (r *memReader) acked(i int) func() bool {
	return func() bool { _, ok := r.acks["note-"+strconv.Itoa(i)]; return ok }
}

// readAll is a condition for until: every line written so far is read.
func (r *memReader) readAll() bool {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.next == len(r.m.lines)
}

// waitGone waits until the room actor no longer holds a client on m: its
// handler has left the room. Leaving is a call to the actor after the
// connection ended, with nothing to wait on from here but the actor's
// client set, which is polled.
func (s *memHub) waitGone(t *testing.T, ctx context.Context, m *memConn) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.h.mu.Lock()
		ra := s.h.rooms[s.rm.ID]
		s.h.mu.Unlock()
		if ra == nil {
			return // the last client left and the actor stopped
		}
		gone := true
		if err := ra.call(ctx, func() {
			for c := range ra.clients {
				if c.conn == m {
					gone = false
				}
			}
		}); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
		if gone {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the client's handler never left its room")
		}
	}
}

// counter is the value of a counter without labels.
func (s *memHub) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// TestMemClientMessageLimit: the configured Limits.MaxClientMessageBytes
// is the connection's read limit: with 1 KiB, a 900-byte command is read
// and acknowledged, and a 2 KiB one closes the connection with 1009.
func TestMemClientMessageLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startMemHub(t, ctx, func(c *Config) { c.Limits.MaxClientMessageBytes = 1 << 10 })
	fac, facR := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	if got := fac.field(func() int { return int(fac.limit) }); got != 1<<10 {
		t.Fatalf("read limit %d, want the configured 1024", got)
	}
	for _, size := range []int{900, 2 << 10} {
		msg := map[string]any{"type": "set_note", "id": "note-" + strconv.Itoa(size), "aspect": "investment", "text": ""}
		msg["text"] = strings.Repeat("x", size-len(mustJSON(msg)))
		if n := len(mustJSON(msg)); n != size {
			t.Fatalf("a %d-byte message came out %d bytes", size, n)
		}
		fac.send(msg)
		if size == 900 {
			if err := facR.until(ctx, "the 900-byte note's ack", facR.acked(900)); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, reason, frame, err := fac.waitClosed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !frame || code != statusTooBig || reason != "read limited at 1025 bytes" {
		t.Fatalf("after a 2 KiB message: closed with %d %q (close frame %v), want 1009 \"read limited at 1025 bytes\"", code, reason, frame)
	}
}
