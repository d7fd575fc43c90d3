package redis

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestRedisCluster runs the store and the bus on a three-node Cluster: a
// room's keys share a slot, the append script SPUBLISHes, the bus
// SSUBSCRIBEs on the node of the room's slot (one connection per room), and
// the code key, in another slot, is claimed and expired apart.
func TestRedisCluster(t *testing.T) {
	cl := hubtest.StartRedisCluster(t)
	ctx := testContext(t, 30*time.Second)
	prefix := testPrefix(t)
	client := testClientOf(t, cl.URL())
	cc, ok := client.(*goredis.ClusterClient)
	if !ok {
		t.Fatalf("client for %s is %T, want *goredis.ClusterClient", cl.URL(), client)
	}
	busA := NewBus(testClientOf(t, cl.URL()), BusConfig{KeyPrefix: prefix, Logger: quietLogger, Instance: "a"})
	defer busA.Close()
	// The store is a's: its commits (SPUBLISHed) come back to a and are
	// skipped by origin there.
	s := NewStore(client, StoreConfig{KeyPrefix: prefix, ClosedRoomTTL: time.Hour, Bus: busA})
	busB := NewBus(testClientOf(t, cl.URL()), BusConfig{KeyPrefix: prefix, Logger: quietLogger, Instance: "b"})
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
		if err := s.Append(ctx, tr.id, 2, []room.Event{{Seq: 3, Type: room.EvStarted}}, nil); !errors.Is(err, hub.ErrSeqConflict) {
			t.Errorf("stale append: got %v, want hub.ErrSeqConflict", err)
		}
		st, epoch, err := s.Load(ctx, tr.id)
		if err != nil {
			t.Fatal(err)
		}
		if epoch != run.epoch || stateJSON(t, st) != stateJSON(t, tr.st) {
			t.Errorf("room %s: load differs from the decided state", tr.id)
		}
		if err := busA.Publish(ctx, hub.Message{Room: tr.id, Head: tr.st.Seq, Instance: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, run := range runs {
		rec := run.onB
		waitFor(t, 5*time.Second, "the commits and heartbeat on bus b", func() bool {
			msgs, _ := rec.snapshot()
			return len(msgs) == 7
		})
		if got, want := rec.eventSeqs(), seqRange(2, run.tr.st.Seq); !slices.Equal(got, want) {
			t.Errorf("room %s on bus b: got %v, want %v", run.tr.id, got, want)
		}
		if msgs, _ := rec.snapshot(); msgs[0].Epoch != run.epoch || msgs[6].Head != run.tr.st.Seq {
			t.Errorf("room %s on bus b: epoch %q / head %d, want %q / %d", run.tr.id, msgs[0].Epoch, msgs[6].Head, run.epoch, run.tr.st.Seq)
		}
	}
	// a's own commits and heartbeats came back to it on every node.
	waitFor(t, 5*time.Second, "a's own messages back on bus a", func() bool { return busA.Stats().Own == int64(7*len(runs)) })
	for _, run := range runs {
		if msgs, _ := run.onA.snapshot(); len(msgs) != 0 {
			t.Errorf("room %s on bus a: %d of its own messages handed on, want 0", run.tr.id, len(msgs))
		}
	}
	if got := busA.Stats().Decoded; got != 0 {
		t.Errorf("bus a decoded %d messages, want 0", got)
	}

	// A taken code is refused and left to its room.
	other, otherCreated := newTestRoom(t)
	if _, err := s.Create(ctx, other.id, runs[0].tr.code, otherCreated); !errors.Is(err, hub.ErrRoomExists) {
		t.Errorf("create with a taken code: got %v, want hub.ErrRoomExists", err)
	}
	// A taken id is refused, and the code claimed for it is released.
	if _, err := s.Create(ctx, runs[1].tr.id, other.code, otherCreated); !errors.Is(err, hub.ErrRoomExists) {
		t.Errorf("create with a taken id: got %v, want hub.ErrRoomExists", err)
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
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
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
