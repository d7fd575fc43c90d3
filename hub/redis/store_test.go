package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

func TestRedisStoreRoundTrip(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: testPrefix(t)})
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
	if _, err := s.Since(ctx, tr.id, 0); !errors.Is(err, hub.ErrTruncated) {
		t.Errorf("since 0 without the log's start: got %v, want hub.ErrTruncated", err)
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
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: testPrefix(t)})
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
		{"lookup unknown code", func() error { _, err := s.Lookup(ctx, "NOSUCHCODE"); return err }(), hub.ErrRoomNotFound},
		{"lookup empty code", func() error { _, err := s.Lookup(ctx, ""); return err }(), hub.ErrRoomNotFound},
		{"load unknown room", func() error { _, _, err := s.Load(ctx, "nosuchroom"); return err }(), hub.ErrRoomNotFound},
		{"since unknown room", func() error { _, err := s.Since(ctx, "nosuchroom", 0); return err }(), hub.ErrRoomNotFound},
		{"append unknown room", s.Append(ctx, "nosuchroom", 1, start, nil), hub.ErrRoomNotFound},
		{"create taken id", func() error { _, err := s.Create(ctx, tr.id, other.code, created); return err }(), hub.ErrRoomExists},
		{"create taken code", func() error { _, err := s.Create(ctx, other.id, tr.code, otherCreated); return err }(), hub.ErrRoomExists},
		{"append behind", s.Append(ctx, tr.id, 0, []room.Event{{Seq: 1, Type: room.EvStarted}}, nil), hub.ErrSeqConflict},
		{"append ahead", s.Append(ctx, tr.id, 5, []room.Event{{Seq: 6, Type: room.EvStarted}}, nil), hub.ErrSeqConflict},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
		if errors.Is(tc.err, hub.ErrUnavailable) {
			t.Errorf("%s: %v wraps hub.ErrUnavailable", tc.name, tc.err)
		}
	}
	// The refused create wrote nothing.
	if _, _, err := s.Load(ctx, other.id); !errors.Is(err, hub.ErrRoomNotFound) {
		t.Errorf("load after a refused create: got %v, want hub.ErrRoomNotFound", err)
	}
	// Malformed calls are refused before Redis, and are not conflicts.
	for name, err := range map[string]error{
		"no events":        s.Append(ctx, tr.id, 1, nil, nil),
		"hole":             s.Append(ctx, tr.id, 1, []room.Event{{Seq: 3, Type: room.EvStarted}}, nil),
		"snapshot too old": s.Append(ctx, tr.id, 1, start, &room.State{Seq: 1}),
		"empty room id":    s.Append(ctx, "", 1, start, nil),
	} {
		if err == nil || errors.Is(err, hub.ErrSeqConflict) {
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
	s1 := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix})
	s2 := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix})
	tr := createTestRoom(ctx, t, s1)
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
		case errs[0] == nil && errors.Is(errs[1], hub.ErrSeqConflict):
		case errs[1] == nil && errors.Is(errs[0], hub.ErrSeqConflict):
			winner = eb
		default:
			t.Fatalf("round %d: got %v and %v, want exactly one winner and one hub.ErrSeqConflict", round, errs[0], errs[1])
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
	stores := []*Store{
		NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix}),
		NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix}),
	}
	bus := testBus(t, r, prefix, BusConfig{})
	tr := createTestRoom(ctx, t, stores[0])
	rec := subscribeRecorder(ctx, t, bus, tr.id)
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
				if !errors.Is(err, hub.ErrSeqConflict) {
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

func TestRedisStoreClosedRoomTTL(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	client := testRedisClient(t, r)
	s := NewStore(client, StoreConfig{KeyPrefix: prefix, ClosedRoomTTL: time.Hour})
	keys := layout{prefix}
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
		tr := createTestRoom(ctx, t, s)
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
	short := NewStore(client, StoreConfig{KeyPrefix: prefix, ClosedRoomTTL: 50 * time.Millisecond})
	gone := setup()
	appendTo(ctx, t, short, gone, gone.decide(fac, room.Command{Type: room.CmdClose}), nil)
	waitFor(t, 5*time.Second, "the closed room to expire", func() bool {
		_, err := s.Lookup(ctx, gone.code)
		return errors.Is(err, hub.ErrRoomNotFound)
	})
	if _, _, err := s.Load(ctx, gone.id); !errors.Is(err, hub.ErrRoomNotFound) {
		t.Errorf("load of an expired room: got %v, want hub.ErrRoomNotFound", err)
	}
}

// BenchmarkRedisStoreAppend commits one vote per operation to a real Redis
// with the shipped durability (appendfsync always) and with everysec.
func BenchmarkRedisStoreAppend(b *testing.B) {
	for _, fsync := range []string{"always", "everysec"} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			r := hubtest.StartRedis(b, hubtest.WithAppendFsync(fsync))
			ctx := context.Background()
			s := NewStore(testRedisClient(b, r), StoreConfig{KeyPrefix: testPrefix(b)})
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
