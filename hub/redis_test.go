package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

func testRedisClient(t testing.TB, r *hubtest.Redis) redis.UniversalClient {
	t.Helper()
	return testClientOf(t, r.URL())
}

func testClientOf(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	c, err := NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var quietLogger = slog.New(slog.DiscardHandler)

func testBus(t testing.TB, r *hubtest.Redis, prefix string, cfg RedisBusConfig) *RedisBus {
	t.Helper()
	cfg.KeyPrefix = prefix
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	b := NewRedisBus(testRedisClient(t, r), cfg)
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
func appendTo(ctx context.Context, t testing.TB, s Store, tr *testRoom, events []room.Event, snap *room.State) {
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

// recorder is a Subscriber that records what it gets.
type recorder struct {
	mu      sync.Mutex
	msgs    []Message
	resyncs int
}

func (r *recorder) Handle(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]Message, int) {
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

func TestRedisStoreRoundTrip(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	s := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: testPrefix(t)})
	defer s.Close()

	tr, created := newTestRoom(t)
	epoch, err := s.Create(ctx, tr.id, tr.code, created)
	if err != nil {
		t.Fatal(err)
	}
	if len(epoch) != 16 {
		t.Errorf("epoch %q, want 16 hex digits", epoch)
	}
	if id, err := s.Lookup(ctx, tr.code); err != nil || id != tr.id {
		t.Errorf("lookup: got %q, %v, want %q", id, err, tr.id)
	}
	st, gotEpoch, err := s.Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	if gotEpoch != epoch || st.Seq != 1 || st.Title != "Platform review" {
		t.Errorf("load after create: seq %d, title %q, epoch %q; want 1, Platform review, %q", st.Seq, st.Title, gotEpoch, epoch)
	}

	fac := room.FacilitatorActor()
	appendTo(ctx, t, s, tr, tr.decide(fac, room.Command{Type: room.CmdStart}), nil)
	appendTo(ctx, t, s, tr, tr.decide(attendee(1), room.Command{Type: room.CmdAsk, Text: "Who owns the golden path?"}), nil)
	// A group of votes committed in one Append.
	var votes []room.Event
	for i := 2; i <= 4; i++ {
		votes = append(votes, tr.decide(attendee(i), room.Command{Type: room.CmdUpvote, Question: "q1"})...)
	}
	appendTo(ctx, t, s, tr, votes, nil)

	all, err := s.Since(ctx, tr.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqsOf(all), seqRange(1, tr.st.Seq); !slices.Equal(got, want) {
		t.Fatalf("since 0: got %v, want %v", got, want)
	}
	if all[2].Type != room.EvQuestionPosted || all[2].Question.Text != "Who owns the golden path?" {
		t.Errorf("event 3: got %s %+v, want the posted question", all[2].Type, all[2].Question)
	}
	for _, tc := range []struct {
		from uint64
		want []uint64
	}{{3, seqRange(4, 6)}, {5, []uint64{6}}, {6, nil}, {100, nil}} {
		got, err := s.Since(ctx, tr.id, tc.from)
		if err != nil || !slices.Equal(seqsOf(got), tc.want) {
			t.Errorf("since %d: got %v, %v, want %v", tc.from, seqsOf(got), err, tc.want)
		}
	}
	st, _, err = s.Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stateJSON(t, st), stateJSON(t, tr.st); got != want {
		t.Errorf("load (replay) differs from the decided state:\ngot  %s\nwant %s", got, want)
	}

	// With a snapshot, Load starts from it and reads only the log after it:
	// delete the log up to the snapshot to see that.
	ev := tr.decide(attendee(5), room.Command{Type: room.CmdUpvote, Question: "q1"})
	appendTo(ctx, t, s, tr, ev, tr.st.Clone())
	ev = tr.decide(attendee(6), room.Command{Type: room.CmdUpvote, Question: "q1"})
	appendTo(ctx, t, s, tr, ev, nil)
	var ids []string
	for _, seq := range seqRange(1, 7) {
		ids = append(ids, fmt.Sprintf("%d-0", seq))
	}
	if err := s.client.XDel(ctx, s.keys.room(tr.id)[0], ids...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Since(ctx, tr.id, 0); !errors.Is(err, ErrTruncated) {
		t.Errorf("since 0 without the log's start: got %v, want ErrTruncated", err)
	}
	if got, err := s.Since(ctx, tr.id, 7); err != nil || !slices.Equal(seqsOf(got), []uint64{8}) {
		t.Errorf("since 7: got %v, %v, want [8]", seqsOf(got), err)
	}
	st, _, err = s.Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stateJSON(t, st), stateJSON(t, tr.st); got != want {
		t.Errorf("load (snapshot + tail) differs from the decided state:\ngot  %s\nwant %s", got, want)
	}
	if st.Questions[0].Votes != 5 {
		t.Errorf("votes: got %d, want 5", st.Questions[0].Votes)
	}
	snapSeq, err := s.client.HGet(ctx, s.keys.room(tr.id)[4], "snapseq").Result()
	if err != nil || snapSeq != "7" {
		t.Errorf("meta snapseq: got %q, %v, want 7", snapSeq, err)
	}
}

func TestRedisStoreErrors(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	s := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: testPrefix(t)})
	tr, created := newTestRoom(t)
	if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	other, otherCreated := newTestRoom(t)
	start := tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart})

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"lookup unknown code", func() error { _, err := s.Lookup(ctx, "NOSUCHCODE"); return err }(), ErrRoomNotFound},
		{"lookup empty code", func() error { _, err := s.Lookup(ctx, ""); return err }(), ErrRoomNotFound},
		{"load unknown room", func() error { _, _, err := s.Load(ctx, "nosuchroom"); return err }(), ErrRoomNotFound},
		{"since unknown room", func() error { _, err := s.Since(ctx, "nosuchroom", 0); return err }(), ErrRoomNotFound},
		{"append unknown room", s.Append(ctx, "nosuchroom", 1, start, nil), ErrRoomNotFound},
		{"create taken id", func() error { _, err := s.Create(ctx, tr.id, other.code, created); return err }(), ErrRoomExists},
		{"create taken code", func() error { _, err := s.Create(ctx, other.id, tr.code, otherCreated); return err }(), ErrRoomExists},
		{"append behind", s.Append(ctx, tr.id, 0, []room.Event{{Seq: 1, Type: room.EvStarted}}, nil), ErrSeqConflict},
		{"append ahead", s.Append(ctx, tr.id, 5, []room.Event{{Seq: 6, Type: room.EvStarted}}, nil), ErrSeqConflict},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
		if errors.Is(tc.err, ErrUnavailable) {
			t.Errorf("%s: %v wraps ErrUnavailable", tc.name, tc.err)
		}
	}
	// The refused create wrote nothing.
	if _, _, err := s.Load(ctx, other.id); !errors.Is(err, ErrRoomNotFound) {
		t.Errorf("load after a refused create: got %v, want ErrRoomNotFound", err)
	}
	// Malformed calls are refused before Redis, and are not conflicts.
	for name, err := range map[string]error{
		"no events":        s.Append(ctx, tr.id, 1, nil, nil),
		"hole":             s.Append(ctx, tr.id, 1, []room.Event{{Seq: 3, Type: room.EvStarted}}, nil),
		"snapshot too old": s.Append(ctx, tr.id, 1, start, &room.State{Seq: 1}),
		"empty room id":    s.Append(ctx, "", 1, start, nil),
	} {
		if err == nil || errors.Is(err, ErrSeqConflict) {
			t.Errorf("%s: got %v, want a plain error", name, err)
		}
	}
	if got, _ := s.Since(ctx, tr.id, 0); len(got) != 1 {
		t.Errorf("after refused appends the log has %d events, want 1", len(got))
	}
	_ = s.Close()
	_ = s.Close()
	if err := s.Ping(ctx); err == nil {
		t.Error("ping after close: got nil, want an error")
	}
}

func TestRedisStoreConflict(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	s1 := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix})
	s2 := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix})
	tr, created := newTestRoom(t)
	if _, err := s1.Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	appendTo(ctx, t, s1, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	appendTo(ctx, t, s1, tr, tr.decide(attendee(0), room.Command{Type: room.CmdAsk, Text: "Why?"}), nil)
	for round := range 20 {
		// Two appenders decide against the same state and race.
		a := room.Actor{Role: room.RoleAttendee, Participant: fmt.Sprintf("a%d", round)}
		b := room.Actor{Role: room.RoleAttendee, Participant: fmt.Sprintf("b%d", round)}
		ea, err := room.Decide(tr.st, a, room.Command{Type: room.CmdUpvote, Question: "q1"}, tr.now)
		if err != nil {
			t.Fatal(err)
		}
		eb, err := room.Decide(tr.st, b, room.Command{Type: room.CmdUpvote, Question: "q1"}, tr.now)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { errs[0] = s1.Append(ctx, tr.id, tr.st.Seq, ea, nil) })
		wg.Go(func() { errs[1] = s2.Append(ctx, tr.id, tr.st.Seq, eb, nil) })
		wg.Wait()
		winner := ea
		switch {
		case errs[0] == nil && errors.Is(errs[1], ErrSeqConflict):
		case errs[1] == nil && errors.Is(errs[0], ErrSeqConflict):
			winner = eb
		default:
			t.Fatalf("round %d: got %v and %v, want exactly one winner and one ErrSeqConflict", round, errs[0], errs[1])
		}
		if err := room.Apply(tr.st, winner); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := s2.Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stateJSON(t, st), stateJSON(t, tr.st); got != want {
		t.Errorf("after the races the stored state differs from the winners'")
	}
}

// TestRedisStoreConcurrentAppends: 200 voters on 2 store instances race to
// append; losers reload and retry. Every vote must be in the log exactly
// once, the log contiguous, and a bus must deliver it all in order.
func TestRedisStoreConcurrentAppends(t *testing.T) {
	const voters = 200
	const snapEvery = 25
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 40*time.Second)
	prefix := testPrefix(t)
	stores := []*RedisStore{
		NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix}),
		NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix}),
	}
	bus := testBus(t, r, prefix, RedisBusConfig{})
	tr, created := newTestRoom(t)
	if _, err := stores[0].Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, tr.id, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	appendTo(ctx, t, stores[0], tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	appendTo(ctx, t, stores[0], tr, tr.decide(attendee(0), room.Command{Type: room.CmdAsk, Text: "Why?"}), nil)
	base := tr.st.Seq

	var wg sync.WaitGroup
	var attemptsTotal atomic.Int64
	errs := make(chan error, voters)
	for i := 1; i <= voters; i++ {
		s := stores[i%2]
		wg.Go(func() {
			actor := attendee(i)
			st, _, err := s.Load(ctx, tr.id)
			if err != nil {
				errs <- err
				return
			}
			for attempt := 0; ; attempt++ {
				events, err := room.Decide(st, actor, room.Command{Type: room.CmdUpvote, Question: "q1", Key: actor.Participant}, redisT0)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", actor.Participant, err)
					return
				}
				var snap *room.State
				if head := st.Seq + uint64(len(events)); head/snapEvery != st.Seq/snapEvery {
					snap = st.Clone()
					if err := room.Apply(snap, events); err != nil {
						errs <- err
						return
					}
				}
				err = s.Append(ctx, tr.id, st.Seq, events, snap)
				if err == nil {
					attemptsTotal.Add(int64(attempt + 1))
					return
				}
				if !errors.Is(err, ErrSeqConflict) {
					errs <- fmt.Errorf("%s: %w", actor.Participant, err)
					return
				}
				// Back off a little (jittered, growing) and reload what the
				// winners committed, as a room actor does.
				time.Sleep(rand.N(min(time.Duration(attempt+1)*time.Millisecond, 20*time.Millisecond)))
				missed, err := s.Since(ctx, tr.id, st.Seq)
				if err != nil {
					errs <- err
					return
				}
				if err := room.Apply(st, missed); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("attempts: %d", attemptsTotal.Load())
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	log, err := stores[1].Since(ctx, tr.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	head := base + voters
	if got, want := seqsOf(log), seqRange(1, head); !slices.Equal(got, want) {
		t.Fatalf("log sequences: got %v, want 1..%d", got, head)
	}
	seen := map[string]int{}
	for _, e := range log[base:] {
		if e.Type != room.EvUpvoted {
			t.Fatalf("event %d is %s, want upvoted", e.Seq, e.Type)
		}
		seen[e.Participant]++
	}
	for i := 1; i <= voters; i++ {
		if n := seen[attendee(i).Participant]; n != 1 {
			t.Errorf("%s voted %d times in the log, want 1", attendee(i).Participant, n)
		}
	}
	st, _, err := stores[0].Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := room.Replay(log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Questions[0].Votes != voters || stateJSON(t, st) != stateJSON(t, replayed) {
		t.Errorf("load: %d votes, want %d, and the state of a full replay", st.Questions[0].Votes, voters)
	}
	// Every commit was published, in commit order.
	waitFor(t, 5*time.Second, "every commit on the bus", func() bool { return len(rec.eventSeqs()) == int(head-1) })
	if got, want := rec.eventSeqs(), seqRange(2, head); !slices.Equal(got, want) {
		t.Errorf("bus delivered %v, want 2..%d in order", got, head)
	}
}

func TestRedisBusDelivery(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	busA := testBus(t, r, prefix, RedisBusConfig{Instance: "a"})
	busB := testBus(t, r, prefix, RedisBusConfig{Instance: "b"})
	s := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix})
	tr, created := newTestRoom(t)
	epoch, err := s.Create(ctx, tr.id, tr.code, created)
	if err != nil {
		t.Fatal(err)
	}
	onA, onB := &recorder{}, &recorder{}
	for _, sub := range []struct {
		bus *RedisBus
		rec *recorder
	}{{busA, onA}, {busB, onB}} {
		unsub, err := sub.bus.Subscribe(ctx, tr.id, sub.rec)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	appendTo(ctx, t, s, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	for i := 1; i <= 10; i++ {
		appendTo(ctx, t, s, tr, tr.decide(attendee(i), room.Command{Type: room.CmdRaiseHand}), nil)
	}
	want := seqRange(2, tr.st.Seq)
	for name, rec := range map[string]*recorder{"a": onA, "b": onB} {
		waitFor(t, 5*time.Second, "commits on bus "+name, func() bool { return len(rec.eventSeqs()) == len(want) })
		if got := rec.eventSeqs(); !slices.Equal(got, want) {
			t.Errorf("bus %s: got %v, want %v", name, got, want)
		}
		msgs, resyncs := rec.snapshot()
		if m := msgs[0]; m.Room != tr.id || m.Epoch != epoch || m.Events[0].Type != room.EvStarted {
			t.Errorf("bus %s: first message %+v, want room %s, epoch %s, started", name, m, tr.id, epoch)
		}
		if resyncs != 0 {
			t.Errorf("bus %s: %d resyncs, want 0", name, resyncs)
		}
	}

	// A heartbeat published on one bus reaches every instance, its own too.
	if err := busA.Publish(ctx, Message{Room: tr.id, Head: tr.st.Seq, Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]*recorder{"a": onA, "b": onB} {
		waitFor(t, 5*time.Second, "the heartbeat on bus "+name, func() bool {
			msgs, _ := rec.snapshot()
			last := msgs[len(msgs)-1]
			return last.Head == tr.st.Seq && last.Instance == "a" && last.Events == nil
		})
	}
	if got := busB.Stats().Messages; got != 12 {
		t.Errorf("bus b stats: %d messages, want 12", got)
	}
}

// numsub is how many connections subscribe the channel, per Redis.
func numsub(ctx context.Context, t testing.TB, c redis.UniversalClient, ch string) int64 {
	t.Helper()
	n, err := c.PubSubNumSub(ctx, ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[ch]
}

func TestRedisBusSubscriptionPerRoom(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, RedisBusConfig{})
	admin := testRedisClient(t, r)
	keys := redisKeys{prefix}
	chX, chY := keys.channel("x"), keys.channel("y")

	x1, x2, y1 := &recorder{}, &recorder{}, &recorder{}
	unsubX1, err := bus.Subscribe(ctx, "x", x1)
	if err != nil {
		t.Fatal(err)
	}
	unsubX2, err := bus.Subscribe(ctx, "x", x2)
	if err != nil {
		t.Fatal(err)
	}
	unsubY1, err := bus.Subscribe(ctx, "y", y1)
	if err != nil {
		t.Fatal(err)
	}
	if got := numsub(ctx, t, admin, chX); got != 1 {
		t.Errorf("two local subscribers of x: %d subscriptions, want 1", got)
	}
	channels, err := admin.PubSubChannels(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(channels)
	if want := []string{keys.probe(bus.cfg.Instance), chX, chY}; !slices.Equal(channels, want) {
		t.Errorf("channels: got %v, want %v", channels, want)
	}
	if err := bus.Publish(ctx, Message{Room: "x", Head: 7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both subscribers of x", func() bool {
		a, _ := x1.snapshot()
		b, _ := x2.snapshot()
		return len(a) == 1 && len(b) == 1
	})

	unsubX1()
	time.Sleep(50 * time.Millisecond)
	if got := numsub(ctx, t, admin, chX); got != 1 {
		t.Errorf("one local subscriber of x left: %d subscriptions, want 1", got)
	}
	unsubX2()
	unsubX2() // idempotent
	waitFor(t, 5*time.Second, "x unsubscribed", func() bool { return numsub(ctx, t, admin, chX) == 0 })
	if got := numsub(ctx, t, admin, chY); got != 1 {
		t.Errorf("y: %d subscriptions, want 1", got)
	}
	unsubY1()
	waitFor(t, 5*time.Second, "y unsubscribed", func() bool { return numsub(ctx, t, admin, chY) == 0 })

	// Leave and come back at once, many times: the subscription must end
	// up present and delivering.
	for range 20 {
		u, err := bus.Subscribe(ctx, "x", x1)
		if err != nil {
			t.Fatal(err)
		}
		u()
	}
	last := &recorder{}
	u, err := bus.Subscribe(ctx, "x", last)
	if err != nil {
		t.Fatal(err)
	}
	defer u()
	if got := numsub(ctx, t, admin, chX); got != 1 {
		t.Errorf("after churn: %d subscriptions of x, want 1", got)
	}
	if err := bus.Publish(ctx, Message{Room: "x", Head: 8}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery after churn", func() bool { m, _ := last.snapshot(); return len(m) == 1 })
}

// TestRedisBusChurn: subscribers of a few rooms come and go concurrently,
// some giving up before Redis confirms; in the end Redis holds a
// subscription exactly for the rooms with a local subscriber.
func TestRedisBusChurn(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 30*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, RedisBusConfig{})
	admin := testRedisClient(t, r)
	rooms := []string{"a", "b", "c"}

	var wg sync.WaitGroup
	for g := range 30 {
		wg.Go(func() {
			for i := range 20 {
				id := rooms[(g+i)%len(rooms)]
				if i%4 == 0 {
					// Give up at once: usually before the confirmation.
					gone, cancel := context.WithCancel(ctx)
					cancel()
					if u, err := bus.Subscribe(gone, id, &recorder{}); err == nil {
						u()
					}
					continue
				}
				u, err := bus.Subscribe(ctx, id, &recorder{})
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					_ = bus.Publish(ctx, Message{Room: id, Head: uint64(i)})
				}
				u()
			}
		})
	}
	wg.Wait()
	keep := &recorder{}
	u, err := bus.Subscribe(ctx, "b", keep)
	if err != nil {
		t.Fatal(err)
	}
	defer u()
	keys := redisKeys{prefix}
	waitFor(t, 5*time.Second, "subscriptions to settle", func() bool {
		return numsub(ctx, t, admin, keys.channel("a")) == 0 &&
			numsub(ctx, t, admin, keys.channel("b")) == 1 &&
			numsub(ctx, t, admin, keys.channel("c")) == 0
	})
	if err := bus.Publish(ctx, Message{Room: "b", Head: 99}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery after churn", func() bool {
		m, _ := keep.snapshot()
		return len(m) > 0 && m[len(m)-1].Head == 99
	})
	bus.mu.Lock()
	n := len(bus.conns[""].rooms)
	bus.mu.Unlock()
	if n != 1 {
		t.Errorf("bus keeps %d rooms, want 1", n)
	}
}

// TestRedisKillRestart: what Append acknowledged survives a SIGKILL of Redis
// (appendfsync always); while Redis is down every call fails fast with
// ErrUnavailable; when it is back the bus resubscribes, resyncs and
// delivers again by itself.
func TestRedisKillRestart(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 40*time.Second)
	prefix := testPrefix(t)
	s := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix})
	bus := testBus(t, r, prefix, RedisBusConfig{ProbeInterval: 100 * time.Millisecond})
	tr, created := newTestRoom(t)
	if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, tr.id, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	appendTo(ctx, t, s, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	for i := 1; i <= 20; i++ {
		appendTo(ctx, t, s, tr, tr.decide(attendee(i), room.Command{Type: room.CmdAsk, Text: fmt.Sprintf("question %d", i)}), nil)
	}
	acked := tr.st.Seq

	r.Kill()
	next := tr.decide(attendee(1), room.Command{Type: room.CmdUpvote, Question: "q2"})
	var wg sync.WaitGroup
	for name, call := range map[string]func() error{
		"append": func() error { return s.Append(ctx, tr.id, acked, next, nil) },
		"load":   func() error { _, _, err := s.Load(ctx, tr.id); return err },
		"since":  func() error { _, err := s.Since(ctx, tr.id, 0); return err },
		"lookup": func() error { _, err := s.Lookup(ctx, tr.code); return err },
		"ping":   func() error { return s.Ping(ctx) },
		"create": func() error {
			other, ev := newTestRoom(t)
			_, err := s.Create(ctx, other.id, other.code, ev)
			return err
		},
		"publish": func() error { return bus.Publish(ctx, Message{Room: tr.id, Head: acked}) },
	} {
		wg.Go(func() {
			start := time.Now()
			err := call()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s with Redis down: got %v, want ErrUnavailable", name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s with Redis down took %s, want < 2s", name, d)
			}
		})
	}
	wg.Wait()

	r.Restart()
	st, _, err := s.Load(ctx, tr.id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != acked || len(st.Questions) != 20 {
		t.Fatalf("after restart: seq %d with %d questions, want %d with 20", st.Seq, len(st.Questions), acked)
	}
	waitFor(t, 10*time.Second, "a resync after the restart", func() bool { _, n := rec.snapshot(); return n > 0 })
	appendTo(ctx, t, s, tr, next, nil)
	waitFor(t, 5*time.Second, "delivery after the restart", func() bool {
		seqs := rec.eventSeqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == next[0].Seq
	})
	if got := bus.Stats().Resubscribes; got < 1 {
		t.Errorf("stats: %d resubscribes, want at least 1", got)
	}
}

// TestRedisBusReconnectResync: when Redis drops the subscription's
// connection, go-redis reconnects and resubscribes; the bus must resync the
// room (a message may have been lost meanwhile) and deliver again.
func TestRedisBusReconnectResync(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, RedisBusConfig{})
	admin := testRedisClient(t, r)
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, "x", rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a resync after the kill", func() bool { _, n := rec.snapshot(); return n == 1 })
	waitFor(t, 5*time.Second, "delivery after the kill", func() bool {
		if err := bus.Publish(ctx, Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
	if got := numsub(ctx, t, admin, redisKeys{prefix}.channel("x")); got != 1 {
		t.Errorf("after reconnect: %d subscriptions, want 1", got)
	}
}

// TestRedisBusProbe: a subscription that silently stops delivering (Redis
// paused) is noticed by the probe; the bus replaces the connection and
// resyncs its rooms once the new subscription is confirmed.
//
// It checks what must hold, not what a quiet machine happens to do: probes
// come back while Redis is well, a pause is detected, and probes come back
// again on the new connection. It does not count failures while Redis is
// well: under -race on a loaded machine a probe may be late, which costs a
// reconnect and a resync and nothing else.
func TestRedisBusProbe(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 60*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, RedisBusConfig{ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond})
	admin := testRedisClient(t, r)
	until := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, "x", rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	waitProbeBack(ctx, t, bus, "while Redis is well")

	// Pause Redis for longer than ProbeTimeout until the bus has counted a
	// failure: a PING waits out each pause, and a machine too busy to run
	// the probe's ticker within one pause gets another.
	failures := bus.Stats().ProbeFailures
	for pauses := 1; bus.Stats().ProbeFailures == failures; pauses++ {
		if ctx.Err() != nil {
			t.Fatalf("no probe failure after %d pauses of Redis: %v", pauses-1, ctx.Err())
		}
		if err := admin.Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		_ = admin.Ping(ctx).Err() // answered when the pause ends
	}
	until("a resync after the pause", func() bool { _, n := rec.snapshot(); return n > 0 })
	until("delivery after the pause", func() bool {
		if err := bus.Publish(ctx, Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
	waitProbeBack(ctx, t, bus, "on the new connection")
	// The old connection is gone once Redis has seen it close.
	until("one subscription of x after the replacement", func() bool {
		return numsub(ctx, t, admin, redisKeys{prefix}.channel("x")) == 1
	})
}

// waitProbeBack waits until a probe published after the call comes back on
// the bus's subscription (off Cluster: its one connection). Opening a
// connection moves lastProbe too, but a replacement counts its probe
// failure first, so a move seen with no new failure is a probe's.
func waitProbeBack(ctx context.Context, t *testing.T, bus *RedisBus, what string) {
	t.Helper()
	lastProbe := func() int64 {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		if c := bus.conns[""]; c != nil {
			return c.lastProbe.Load()
		}
		return 0
	}
	failures, since := bus.Stats().ProbeFailures, time.Now().UnixNano()
	for {
		if lastProbe() > since {
			f := bus.Stats().ProbeFailures
			if f == failures {
				return
			}
			// Replaced meanwhile: wait for a probe on the new connection.
			failures, since = f, time.Now().UnixNano()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for a probe to come back %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestRedisBusDropHook(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	drop := func(m Message) bool { return len(m.Events) > 0 && m.Events[0].Seq == 3 }
	bus := testBus(t, r, prefix, RedisBusConfig{DropHook: drop})
	s := NewRedisStore(testRedisClient(t, r), RedisStoreConfig{KeyPrefix: prefix})
	tr, created := newTestRoom(t)
	if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, tr.id, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	appendTo(ctx, t, s, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	for i := 1; i <= 3; i++ {
		appendTo(ctx, t, s, tr, tr.decide(attendee(i), room.Command{Type: room.CmdRaiseHand}), nil)
	}
	waitFor(t, 5*time.Second, "the last commit", func() bool {
		seqs := rec.eventSeqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == 5
	})
	if got, want := rec.eventSeqs(), []uint64{2, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v (3 dropped)", got, want)
	}
	if _, n := rec.snapshot(); n != 0 {
		t.Errorf("%d resyncs after a drop, want 0: the hub must notice the gap itself", n)
	}
	if got := bus.Stats().Dropped; got != 1 {
		t.Errorf("stats: %d dropped, want 1", got)
	}
}

func TestRedisStoreClosedRoomTTL(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	client := testRedisClient(t, r)
	s := NewRedisStore(client, RedisStoreConfig{KeyPrefix: prefix, ClosedRoomTTL: time.Hour})
	keys := redisKeys{prefix}
	fac := room.FacilitatorActor()

	pttls := func(tr *testRoom) map[string]time.Duration {
		out := map[string]time.Duration{}
		for _, k := range append(keys.room(tr.id), keys.code(tr.code)) {
			d, err := client.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = d
		}
		return out
	}
	setup := func() *testRoom {
		tr, created := newTestRoom(t)
		if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
			t.Fatal(err)
		}
		ev := tr.decide(fac, room.Command{Type: room.CmdStart})
		appendTo(ctx, t, s, tr, ev, tr.st.Clone()) // a snapshot, so that :snap exists
		return tr
	}
	open := setup()
	closed := setup()
	appendTo(ctx, t, s, closed, closed.decide(fac, room.Command{Type: room.CmdClose}), nil)

	for k, d := range pttls(open) {
		if d != -1 {
			t.Errorf("open room: %s has TTL %s, want none", k, d)
		}
	}
	for k, d := range pttls(closed) {
		if d <= 59*time.Minute || d > time.Hour {
			t.Errorf("closed room: %s has TTL %s, want about 1h", k, d)
		}
	}
	// A closed room stays readable until it expires.
	if id, err := s.Lookup(ctx, closed.code); err != nil || id != closed.id {
		t.Errorf("lookup of the closed room: got %q, %v", id, err)
	}
	st, _, err := s.Load(ctx, closed.id)
	if err != nil || st.Phase != room.PhaseClosed {
		t.Fatalf("load of the closed room: %v, %v", st, err)
	}

	// Once expired, its code answers like one that never existed.
	short := NewRedisStore(client, RedisStoreConfig{KeyPrefix: prefix, ClosedRoomTTL: 50 * time.Millisecond})
	gone := setup()
	appendTo(ctx, t, short, gone, gone.decide(fac, room.Command{Type: room.CmdClose}), nil)
	waitFor(t, 5*time.Second, "the closed room to expire", func() bool {
		_, err := s.Lookup(ctx, gone.code)
		return errors.Is(err, ErrRoomNotFound)
	})
	if _, _, err := s.Load(ctx, gone.id); !errors.Is(err, ErrRoomNotFound) {
		t.Errorf("load of an expired room: got %v, want ErrRoomNotFound", err)
	}
}

func TestRedisBusClose(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	client := testRedisClient(t, r)
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	bus := NewRedisBus(client, RedisBusConfig{KeyPrefix: prefix, Logger: quietLogger, ProbeInterval: 20 * time.Millisecond})
	for _, id := range []string{"a", "b", "c"} {
		unsub, err := bus.Subscribe(ctx, id, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		if id == "b" {
			unsub()
		}
	}
	if err := bus.Publish(ctx, Message{Room: "a", Head: 1}); err != nil {
		t.Fatal(err)
	}
	waitProbeBack(ctx, t, bus, "before the close") // the probe loop runs
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for runtime.NumGoroutine() > before {
		select {
		case <-ctx.Done():
			t.Fatalf("the bus's goroutines did not end: %d running, %d before the bus: %v", runtime.NumGoroutine(), before, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := bus.Subscribe(ctx, "a", &recorder{}); err == nil {
		t.Error("subscribe after close: got nil, want an error")
	}
	if err := bus.Publish(ctx, Message{Room: "a"}); err == nil {
		t.Error("publish after close: got nil, want an error")
	}
	// The client is the caller's and still works.
	if err := client.Ping(ctx).Err(); err != nil {
		t.Errorf("client after bus close: %v", err)
	}
}

// TestRedisBusSubscribeTimeout: with Redis down, Subscribe gives up at its
// context's deadline and leaves nothing behind; when Redis is back a new
// Subscribe works.
func TestRedisBusSubscribeTimeout(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, RedisBusConfig{ProbeInterval: 100 * time.Millisecond})
	r.Kill()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := bus.Subscribe(short, "x", &recorder{})
	cancel()
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("subscribe with Redis down: got %v, want ErrUnavailable", err)
	}
	r.Restart()
	rec := &recorder{}
	unsub, err := bus.Subscribe(ctx, "x", rec)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	waitFor(t, 5*time.Second, "delivery after the restart", func() bool {
		if err := bus.Publish(ctx, Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
}

// TestRedisCluster runs the store and the bus on a three-node Cluster: a
// room's keys share a slot, the append script SPUBLISHes, the bus
// SSUBSCRIBEs on the node of the room's slot (one connection per room), and
// the code key, in another slot, is claimed and expired apart.
func TestRedisCluster(t *testing.T) {
	cl := hubtest.StartRedisCluster(t)
	ctx := testContext(t, 30*time.Second)
	prefix := testPrefix(t)
	client := testClientOf(t, cl.URL())
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client for %s is %T, want *redis.ClusterClient", cl.URL(), client)
	}
	s := NewRedisStore(client, RedisStoreConfig{KeyPrefix: prefix, ClosedRoomTTL: time.Hour})
	busA := NewRedisBus(testClientOf(t, cl.URL()), RedisBusConfig{KeyPrefix: prefix, Logger: quietLogger, Instance: "a"})
	defer busA.Close()
	busB := NewRedisBus(testClientOf(t, cl.URL()), RedisBusConfig{KeyPrefix: prefix, Logger: quietLogger, Instance: "b"})
	defer busB.Close()
	fac := room.FacilitatorActor()

	type roomRun struct {
		tr         *testRoom
		epoch      string
		onA, onB   *recorder
		unsubA, uB func()
	}
	var runs []*roomRun
	nodes := map[string]bool{}
	for range 6 {
		tr, created := newTestRoom(t)
		epoch, err := s.Create(ctx, tr.id, tr.code, created)
		if err != nil {
			t.Fatal(err)
		}
		node, err := cc.MasterForKey(ctx, s.keys.seq(tr.id))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
		run := &roomRun{tr: tr, epoch: epoch, onA: &recorder{}, onB: &recorder{}}
		if run.unsubA, err = busA.Subscribe(ctx, tr.id, run.onA); err != nil {
			t.Fatal(err)
		}
		if run.uB, err = busB.Subscribe(ctx, tr.id, run.onB); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	t.Logf("rooms on %d of 3 nodes", len(nodes))

	for _, run := range runs {
		tr := run.tr
		if id, err := s.Lookup(ctx, tr.code); err != nil || id != tr.id {
			t.Errorf("lookup %s: got %q, %v, want %s", tr.code, id, err, tr.id)
		}
		appendTo(ctx, t, s, tr, tr.decide(fac, room.Command{Type: room.CmdStart}), nil)
		appendTo(ctx, t, s, tr, tr.decide(attendee(1), room.Command{Type: room.CmdAsk, Text: "Why?"}), tr.st.Clone())
		for i := 2; i <= 5; i++ {
			appendTo(ctx, t, s, tr, tr.decide(attendee(i), room.Command{Type: room.CmdUpvote, Question: "q1"}), nil)
		}
		if err := s.Append(ctx, tr.id, 2, []room.Event{{Seq: 3, Type: room.EvStarted}}, nil); !errors.Is(err, ErrSeqConflict) {
			t.Errorf("stale append: got %v, want ErrSeqConflict", err)
		}
		st, epoch, err := s.Load(ctx, tr.id)
		if err != nil {
			t.Fatal(err)
		}
		if epoch != run.epoch || stateJSON(t, st) != stateJSON(t, tr.st) {
			t.Errorf("room %s: load differs from the decided state", tr.id)
		}
		if err := busA.Publish(ctx, Message{Room: tr.id, Head: tr.st.Seq, Instance: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, run := range runs {
		for name, rec := range map[string]*recorder{"a": run.onA, "b": run.onB} {
			waitFor(t, 5*time.Second, "the commits and heartbeat on bus "+name, func() bool {
				msgs, _ := rec.snapshot()
				return len(msgs) == 7
			})
			if got, want := rec.eventSeqs(), seqRange(2, run.tr.st.Seq); !slices.Equal(got, want) {
				t.Errorf("room %s on bus %s: got %v, want %v", run.tr.id, name, got, want)
			}
			if msgs, _ := rec.snapshot(); msgs[0].Epoch != run.epoch || msgs[6].Head != run.tr.st.Seq {
				t.Errorf("room %s on bus %s: epoch %q / head %d, want %q / %d", run.tr.id, name, msgs[0].Epoch, msgs[6].Head, run.epoch, run.tr.st.Seq)
			}
		}
	}

	// A taken code is refused and left to its room.
	other, otherCreated := newTestRoom(t)
	if _, err := s.Create(ctx, other.id, runs[0].tr.code, otherCreated); !errors.Is(err, ErrRoomExists) {
		t.Errorf("create with a taken code: got %v, want ErrRoomExists", err)
	}
	// A taken id is refused, and the code claimed for it is released.
	if _, err := s.Create(ctx, runs[1].tr.id, other.code, otherCreated); !errors.Is(err, ErrRoomExists) {
		t.Errorf("create with a taken id: got %v, want ErrRoomExists", err)
	}
	if id, err := s.Lookup(ctx, runs[0].tr.code); err != nil || id != runs[0].tr.id {
		t.Errorf("lookup of the taken code: got %q, %v, want %s", id, err, runs[0].tr.id)
	}
	if n, err := client.Exists(ctx, s.keys.code(other.code)).Result(); err != nil || n != 0 {
		t.Errorf("code of the refused create: exists %d, %v, want 0", n, err)
	}

	// Closing expires the room's keys and, apart, its code key.
	closed := runs[2].tr
	appendTo(ctx, t, s, closed, closed.decide(fac, room.Command{Type: room.CmdClose}), nil)
	for _, k := range append(s.keys.room(closed.id), s.keys.code(closed.code)) {
		if d, err := client.PTTL(ctx, k).Result(); err != nil || d <= 59*time.Minute {
			t.Errorf("closed room: %s has TTL %s, %v, want about 1h", k, d, err)
		}
	}
	if d, err := client.PTTL(ctx, s.keys.code(runs[3].tr.code)).Result(); err != nil || d != -1 {
		t.Errorf("open room's code: TTL %s, %v, want none", d, err)
	}

	// Every node drops its subscribers: each room is resynced, then
	// delivers again.
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		waitFor(t, 5*time.Second, "a resync of every room", func() bool { _, n := run.onB.snapshot(); return n > 0 })
	}
	tr := runs[0].tr
	appendTo(ctx, t, s, tr, tr.decide(attendee(9), room.Command{Type: room.CmdUpvote, Question: "q1"}), nil)
	waitFor(t, 5*time.Second, "delivery after the reconnect", func() bool {
		seqs := runs[0].onB.eventSeqs()
		return seqs[len(seqs)-1] == tr.st.Seq
	})

	// The last subscriber of a room retires its connection.
	for _, run := range runs {
		run.unsubA()
		run.uB()
	}
	waitFor(t, 5*time.Second, "every room connection retired", func() bool {
		busB.mu.Lock()
		defer busB.mu.Unlock()
		return len(busB.conns) == 0
	})
}

func TestNewRedisClient(t *testing.T) {
	for _, tc := range []struct {
		url     string
		kind    string // "client", "cluster", "failover" or "error"
		addrs   []string
		master  string
		db      int
		timeout time.Duration
	}{
		{url: "redis://localhost:6379/0", kind: "client", addrs: []string{"localhost:6379"}, timeout: 2 * time.Second},
		{url: "redis://:pw@10.0.0.1:7000/3?read_timeout=5s", kind: "client", addrs: []string{"10.0.0.1:7000"}, db: 3, timeout: 5 * time.Second},
		{url: "redis://a:7000,b:7001,c", kind: "cluster", addrs: []string{"a:7000", "b:7001", "c:6379"}, timeout: 2 * time.Second},
		{url: "redis://u:p@s1:26379,s2:26379/2?master_name=mymaster", kind: "failover", addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster", db: 2, timeout: 2 * time.Second},
		{url: "redis://a:1,b:2?read_timeout=750ms", kind: "cluster", addrs: []string{"a:1", "b:2"}, timeout: 750 * time.Millisecond},
		{url: "http://localhost", kind: "error"},
		{url: "redis://a:1,b:2?bogus=1", kind: "error"},
		{url: "redis://a:1,b:2/5", kind: "error"}, // a Cluster has only database 0
		{url: "memcached://a:1,b:2", kind: "error"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := NewRedisClient(tc.url)
			if tc.kind == "error" {
				if err == nil {
					_ = c.Close()
					t.Fatal("got a client, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch c := c.(type) {
			case *redis.ClusterClient:
				o := c.Options()
				if tc.kind != "cluster" || !slices.Equal(o.Addrs, tc.addrs) || o.ReadTimeout != tc.timeout {
					t.Errorf("got cluster %v read timeout %s, want %s %v %s", o.Addrs, o.ReadTimeout, tc.kind, tc.addrs, tc.timeout)
				}
			case *redis.Client:
				o := c.Options()
				if tc.kind == "client" && (o.Addr != tc.addrs[0] || o.DB != tc.db || o.ReadTimeout != tc.timeout || o.DialTimeout != 2*time.Second) {
					t.Errorf("got client %s db %d read timeout %s, want %v db %d %s", o.Addr, o.DB, o.ReadTimeout, tc.addrs, tc.db, tc.timeout)
				}
				if tc.kind == "failover" && o.DB != tc.db {
					t.Errorf("got failover client db %d, want %d", o.DB, tc.db)
				}
			default:
				t.Errorf("got %T, want %s", c, tc.kind)
			}
		})
	}
	opt, err := parseRedisList("redis://u:p@s1:26379,s2:26379/2?master_name=mymaster")
	if err != nil || opt.MasterName != "mymaster" || opt.Username != "u" || opt.Password != "p" || !slices.Equal(opt.Addrs, []string{"s1:26379", "s2:26379"}) {
		t.Errorf("sentinel list: got %+v, %v", opt, err)
	}
}

// BenchmarkRedisStoreAppend commits one vote per operation to a real Redis
// with the shipped durability (appendfsync always) and with everysec.
func BenchmarkRedisStoreAppend(b *testing.B) {
	for _, fsync := range []string{"always", "everysec"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			r := hubtest.StartRedis(b, hubtest.WithAppendFsync(fsync))
			ctx := context.Background()
			s := NewRedisStore(testRedisClient(b, r), RedisStoreConfig{KeyPrefix: testPrefix(b)})
			tr, created := newTestRoom(b)
			if _, err := s.Create(ctx, tr.id, tr.code, created); err != nil {
				b.Fatal(err)
			}
			appendTo(ctx, b, s, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
			appendTo(ctx, b, s, tr, tr.decide(attendee(0), room.Command{Type: room.CmdAsk, Text: "Why?"}), nil)
			seq := tr.st.Seq
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ev := []room.Event{{
					Seq: seq + 1, Type: room.EvUpvoted, At: redisT0, QuestionID: "q1",
					Participant: fmt.Sprintf("p%d", i), Count: i + 1, Cmd: fmt.Sprintf("p%d/1", i),
				}}
				if err := s.Append(ctx, tr.id, seq, ev, nil); err != nil {
					b.Fatal(err)
				}
				seq++
			}
		})
	}
}
