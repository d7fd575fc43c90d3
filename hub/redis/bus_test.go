package redis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

func TestRedisBusDelivery(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	busA := testBus(t, r, prefix, BusConfig{Instance: "a"})
	busB := testBus(t, r, prefix, BusConfig{Instance: "b"})
	// A store without a bus publishes its commits without an origin: every
	// bus decodes them.
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix})
	tr, created := newTestRoom(t)
	epoch, err := s.Create(ctx, tr.id, tr.code, created)
	if err != nil {
		t.Fatal(err)
	}
	onA, onB := &recorder{}, &recorder{}
	for _, sub := range []struct {
		bus *Bus
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

	// A heartbeat published on one bus reaches every other instance; its
	// own bus skips it by origin.
	if err := busA.Publish(ctx, hub.Message{Room: tr.id, Head: tr.st.Seq, Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the heartbeat on bus b", func() bool {
		msgs, _ := onB.snapshot()
		last := msgs[len(msgs)-1]
		return last.Head == tr.st.Seq && last.Instance == "a" && last.Events == nil
	})
	waitFor(t, 5*time.Second, "the heartbeat back on bus a", func() bool { return busA.Stats().Own == 1 })
	if msgs, _ := onA.snapshot(); len(msgs) != len(want) {
		t.Errorf("bus a: %d messages, want its %d commits and not its own heartbeat", len(msgs), len(want))
	}
	if got := busB.Stats().Messages; got != 12 {
		t.Errorf("bus b stats: %d messages, want 12", got)
	}
}

// TestRedisBusOriginSkip: the commits a store paired with bus a publishes,
// and a's heartbeats, come back to a and are dropped by origin before any
// decoding; bus b decodes each once.
func TestRedisBusOriginSkip(t *testing.T) {
	const commits = 20
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	busA := testBus(t, r, prefix, BusConfig{Instance: "a"})
	busB := testBus(t, r, prefix, BusConfig{Instance: "b"})
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix, Bus: busA})
	tr := createTestRoom(ctx, t, s)
	onA, onB := &recorder{}, &recorder{}
	for bus, rec := range map[*Bus]*recorder{busA: onA, busB: onB} {
		unsub, err := bus.Subscribe(ctx, tr.id, rec)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	appendTo(ctx, t, s, tr, tr.decide(room.FacilitatorActor(), room.Command{Type: room.CmdStart}), nil)
	for i := 1; i < commits; i++ {
		appendTo(ctx, t, s, tr, tr.decide(attendee(i), room.Command{Type: room.CmdRaiseHand}), nil)
	}
	if err := busA.Publish(ctx, hub.Message{Room: tr.id, Head: tr.st.Seq, Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every commit and the heartbeat on bus b", func() bool { m, _ := onB.snapshot(); return len(m) == commits+1 })
	waitFor(t, 5*time.Second, "every commit and the heartbeat back on bus a", func() bool { return busA.Stats().Own == commits+1 })

	if got, want := onB.eventSeqs(), seqRange(2, tr.st.Seq); !slices.Equal(got, want) {
		t.Errorf("bus b: got %v, want %v", got, want)
	}
	if m, n := onA.snapshot(); len(m) != 0 || n != 0 {
		t.Errorf("bus a handed its own %d messages and %d resyncs to its subscriber, want none", len(m), n)
	}
	if st := busA.Stats(); st.Decoded != 0 || st.Messages != 0 {
		t.Errorf("bus a: %d decoded, %d handed on, want 0 and 0", st.Decoded, st.Messages)
	}
	if st := busB.Stats(); st.Decoded != commits+1 || st.Own != 0 || st.DecodeErrors != 0 {
		t.Errorf("bus b: %d decoded, %d own, %d decode errors, want %d, 0, 0", st.Decoded, st.Own, st.DecodeErrors, commits+1)
	}
}

// held is a subscriber whose goroutine is busy: it queues what it is
// handed, as a room actor does, and decodes nothing until the test asks.
type held struct {
	mu sync.Mutex
	ds []hub.Delivery
}

func (h *held) Handle(d hub.Delivery) { h.mu.Lock(); h.ds = append(h.ds, d); h.mu.Unlock() }
func (h *held) Resync()               {}

func (h *held) queued() []hub.Delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ds)
}

// TestRedisBusDecodesOnSubscriber: the receive loop hands messages on
// undecoded, so a room whose actor is busy holds up no other room and
// costs the loop no decoding; a message is decoded once, on the goroutine
// of the subscriber that asks first, however many subscribers share it.
func TestRedisBusDecodesOnSubscriber(t *testing.T) {
	const backlog = 200
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	bus := testBus(t, r, prefix, BusConfig{Instance: "b"})
	peer := testBus(t, r, prefix, BusConfig{Instance: "a"})
	busy, y1, y2 := &held{}, &recorder{}, &recorder{}
	for id, sub := range map[string]hub.Subscriber{"x": busy, "y": y1} {
		unsub, err := bus.Subscribe(ctx, id, sub)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	unsub, err := bus.Subscribe(ctx, "y", y2)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	// A backlog for x, with presence to decode, then one message for y:
	// one connection delivers in order, so y's comes after all of x's.
	names := make([]room.PresentName, 100)
	for i := range names {
		names[i] = room.PresentName{Participant: fmt.Sprintf("p%03d", i), Name: fmt.Sprintf("Attendee %d", i)}
	}
	for i := range backlog {
		p := &room.Presence{Attendees: i + 1, Names: names}
		if err := peer.Publish(ctx, hub.Message{Room: "x", Instance: "a", Presence: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := peer.Publish(ctx, hub.Message{Room: "y", Head: 1, Instance: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*recorder{y1, y2} {
		waitFor(t, 5*time.Second, "y's message", func() bool { m, _ := rec.snapshot(); return len(m) == 1 })
	}
	if got := len(busy.queued()); got != backlog {
		t.Errorf("x's subscriber holds %d messages when y's arrived, want all %d", got, backlog)
	}
	if got := bus.Stats().Decoded; got != 1 {
		t.Errorf("%d messages decoded, want 1 (y's, once for its two subscribers): x's wait for x's goroutine", got)
	}

	// x's goroutine is free again: it decodes its backlog itself.
	for i, d := range busy.queued() {
		m, err := d.Decode()
		if err != nil || m.Room != "x" || m.Presence == nil || m.Presence.Attendees != i+1 || len(m.Presence.Names) != len(names) {
			t.Fatalf("x's message %d: got %+v, %v; want x's presence %d with %d names", i, m, err, i+1, len(names))
		}
	}
	if st := bus.Stats(); st.Decoded != backlog+1 || st.DecodeErrors != 0 {
		t.Errorf("%d decoded, %d decode errors; want %d and 0", st.Decoded, st.DecodeErrors, backlog+1)
	}
}

// numsub is how many connections subscribe the channel, per Redis.
func numsub(ctx context.Context, t testing.TB, c goredis.UniversalClient, ch string) int64 {
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
	bus := testBus(t, r, prefix, BusConfig{})
	peer := testBus(t, r, prefix, BusConfig{Instance: "peer"}) // another instance: a bus skips its own messages
	admin := testRedisClient(t, r)
	keys := layout{prefix}
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
	if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both subscribers of x", func() bool {
		a, _ := x1.snapshot()
		b, _ := x2.snapshot()
		return len(a) == 1 && len(b) == 1
	})

	unsubX1()
	// A fence instead of a pause: a message published after the
	// unsubscribe reaches the other local subscriber, so the subscription
	// is still there, and not the one that left.
	if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 8}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "x's remaining subscriber", func() bool {
		b, _ := x2.snapshot()
		return len(b) == 2
	})
	if a, _ := x1.snapshot(); len(a) != 1 {
		t.Errorf("the subscriber that left: got %d messages, want 1", len(a))
	}
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
	if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 8}); err != nil {
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
	bus := testBus(t, r, prefix, BusConfig{})
	peer := testBus(t, r, prefix, BusConfig{Instance: "peer"}) // another instance: a bus skips its own messages
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
					_ = bus.Publish(ctx, hub.Message{Room: id, Head: uint64(i)})
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
	keys := layout{prefix}
	waitFor(t, 5*time.Second, "subscriptions to settle", func() bool {
		return numsub(ctx, t, admin, keys.channel("a")) == 0 &&
			numsub(ctx, t, admin, keys.channel("b")) == 1 &&
			numsub(ctx, t, admin, keys.channel("c")) == 0
	})
	if err := peer.Publish(ctx, hub.Message{Room: "b", Head: 99}); err != nil {
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
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix})
	bus := testBus(t, r, prefix, BusConfig{ProbeInterval: 100 * time.Millisecond})
	tr := createTestRoom(ctx, t, s)
	rec := subscribeRecorder(ctx, t, bus, tr.id)
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
		"publish": func() error { return bus.Publish(ctx, hub.Message{Room: tr.id, Head: acked}) },
	} {
		wg.Go(func() {
			start := time.Now()
			err := call()
			if !errors.Is(err, hub.ErrUnavailable) {
				t.Errorf("%s with Redis down: got %v, want hub.ErrUnavailable", name, err)
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
	bus := testBus(t, r, prefix, BusConfig{})
	peer := testBus(t, r, prefix, BusConfig{Instance: "peer"}) // another instance: a bus skips its own messages
	admin := testRedisClient(t, r)
	rec := subscribeRecorder(ctx, t, bus, "x")
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a resync after the kill", func() bool { _, n := rec.snapshot(); return n == 1 })
	waitFor(t, 5*time.Second, "delivery after the kill", func() bool {
		if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
	if got := numsub(ctx, t, admin, layout{prefix}.channel("x")); got != 1 {
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
	bus := testBus(t, r, prefix, BusConfig{ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond})
	peer := testBus(t, r, prefix, BusConfig{Instance: "peer"}) // another instance: a bus skips its own messages
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
	rec := subscribeRecorder(ctx, t, bus, "x")
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
		if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
	waitProbeBack(ctx, t, bus, "on the new connection")
	// The old connection is gone once Redis has seen it close.
	until("one subscription of x after the replacement", func() bool {
		return numsub(ctx, t, admin, layout{prefix}.channel("x")) == 1
	})
}

// waitProbeBack waits until a probe published after the call comes back on
// the bus's subscription (off Cluster: its one connection). Opening a
// connection moves lastProbe too, but a replacement counts its probe
// failure first, so a move seen with no new failure is a probe's.
func waitProbeBack(ctx context.Context, t *testing.T, bus *Bus, what string) {
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
	drop := func(m hub.Message) bool { return len(m.Events) > 0 && m.Events[0].Seq == 3 }
	bus := testBus(t, r, prefix, BusConfig{DropHook: drop})
	s := NewStore(testRedisClient(t, r), StoreConfig{KeyPrefix: prefix})
	tr := createTestRoom(ctx, t, s)
	rec := subscribeRecorder(ctx, t, bus, tr.id)
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

func TestRedisBusClose(t *testing.T) {
	r := hubtest.StartRedis(t)
	ctx := testContext(t, 20*time.Second)
	prefix := testPrefix(t)
	client := testRedisClient(t, r)
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	bus := NewBus(client, BusConfig{KeyPrefix: prefix, Logger: quietLogger, ProbeInterval: 20 * time.Millisecond})
	for _, id := range []string{"a", "b", "c"} {
		unsub, err := bus.Subscribe(ctx, id, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		if id == "b" {
			unsub()
		}
	}
	if err := bus.Publish(ctx, hub.Message{Room: "a", Head: 1}); err != nil {
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
	if err := bus.Publish(ctx, hub.Message{Room: "a"}); err == nil {
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
	bus := testBus(t, r, prefix, BusConfig{ProbeInterval: 100 * time.Millisecond})
	peer := testBus(t, r, prefix, BusConfig{Instance: "peer"}) // another instance: a bus skips its own messages
	r.Kill()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := bus.Subscribe(short, "x", &recorder{})
	cancel()
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("subscribe with Redis down: got %v, want hub.ErrUnavailable", err)
	}
	r.Restart()
	rec := subscribeRecorder(ctx, t, bus, "x")
	waitFor(t, 5*time.Second, "delivery after the restart", func() bool {
		if err := peer.Publish(ctx, hub.Message{Room: "x", Head: 1}); err != nil {
			t.Fatal(err)
		}
		m, _ := rec.snapshot()
		return len(m) > 0
	})
}
