package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// Every test here runs its own redis-server (hubtest.StartRedis) and, as
// if it shared one, a unique key prefix.

var redisT0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

// testPrefix is a key prefix no other test uses.
func testPrefix(t testing.TB) string {
	return "test:" + strings.ReplaceAll(t.Name(), "/", ".") + ":" + randomHex(4) + ":"
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testRedisClient(t testing.TB, r *hubtest.Redis) goredis.UniversalClient {
	t.Helper()
	return testClientOf(t, r.URL())
}

func testClientOf(t testing.TB, url string) goredis.UniversalClient {
	t.Helper()
	c, err := NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var quietLogger = slog.New(slog.DiscardHandler)

func testBus(t testing.TB, r *hubtest.Redis, prefix string, cfg BusConfig) *Bus {
	t.Helper()
	cfg.KeyPrefix = prefix
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	b := NewBus(testRedisClient(t, r), cfg)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// testRoom is a room's state kept by a test, to decide real commands.
type testRoom struct {
	t    testing.TB
	id   string
	code string
	st   *room.State
	now  time.Time
	n    int
}

// newTestRoom decides a new PEMM room with two teams and answers its
// room_created events.
func newTestRoom(t testing.TB) (*testRoom, []room.Event) {
	t.Helper()
	id := "r" + randomHex(6)
	code := strings.ToUpper(randomHex(4))
	events, err := room.Create(room.CreateParams{
		ID: id, Code: code, Title: "Platform review", Model: room.PEMM(),
		TeamNames: []string{"Payments", "Search"},
		Secrets:   room.Secrets{FacilitatorKeyHash: "fac", ParticipantSecret: "ps", TeamKeyHashes: map[string]string{}},
		Now:       redisT0,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := room.Replay(events)
	if err != nil {
		t.Fatal(err)
	}
	return &testRoom{t: t, id: id, code: code, st: st, now: redisT0}, events
}

// decide decides cmd against the room's state and applies the events.
func (tr *testRoom) decide(actor room.Actor, cmd room.Command) []room.Event {
	tr.t.Helper()
	tr.n++
	tr.now = tr.now.Add(time.Second)
	cmd.Key = fmt.Sprintf("%s/%d", actor.Participant, tr.n)
	events, err := room.Decide(tr.st, actor, cmd, tr.now)
	if err != nil {
		tr.t.Fatalf("decide %s: %v", cmd.Type, err)
	}
	if err := room.Apply(tr.st, events); err != nil {
		tr.t.Fatal(err)
	}
	return events
}

func attendee(i int) room.Actor {
	return room.Actor{Role: room.RoleAttendee, Participant: fmt.Sprintf("p%03d", i), Name: fmt.Sprintf("A%d", i)}
}

// appendTo appends events the test decided, failing the test on error.
func appendTo(ctx context.Context, t testing.TB, s hub.Store, tr *testRoom, events []room.Event, snap *room.State) {
	t.Helper()
	if err := s.Append(ctx, tr.id, events[0].Seq-1, events, snap); err != nil {
		t.Fatalf("append %d..%d: %v", events[0].Seq, events[len(events)-1].Seq, err)
	}
}

func stateJSON(t testing.TB, st *room.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func seqsOf(events []room.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

// recorder is a Subscriber that records what it gets. It decodes in
// Handle, on the receive goroutine, which a room actor does not; an
// undecodable message counts as a resync, as the actor takes it.
type recorder struct {
	mu      sync.Mutex
	msgs    []hub.Message
	resyncs int
}

func (r *recorder) Handle(d hub.Delivery) {
	m, err := d.Decode()
	r.mu.Lock()
	if err != nil {
		r.resyncs++
	} else {
		r.msgs = append(r.msgs, m)
	}
	r.mu.Unlock()
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]hub.Message, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs), r.resyncs
}

// eventSeqs lists the sequences of the events received, in order.
func (r *recorder) eventSeqs() []uint64 {
	msgs, _ := r.snapshot()
	var out []uint64
	for _, m := range msgs {
		out = append(out, seqsOf(m.Events)...)
	}
	return out
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// createTestRoom creates a test room in s.
func createTestRoom(ctx context.Context, t *testing.T, s *Store) *testRoom {
	t.Helper()
	tr, created := newTestRoom(t)
	if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	return tr
}

// subscribeRecorder subscribes a recorder to roomID on bus until the test
// ends.
func subscribeRecorder(ctx context.Context, t *testing.T, bus *Bus, roomID string) *recorder {
	t.Helper()
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, roomID, rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return rec
}
