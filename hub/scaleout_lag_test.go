package hub_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/hub/redis"
)

// TestScaleOutUnknownReference: a client on instance b upvotes a question
// that b has not heard of yet (its commit message was lost and no
// heartbeat has come): b reads the store instead of answering not_found.
func TestScaleOutUnknownReference(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	r := hubtest.StartRedis(t)
	var armed atomic.Bool
	prefix := scalePrefix(t)
	quiet := func(c *hub.Config) { c.Heartbeat = time.Hour }
	a := startNode(t, r, prefix, "a", nodeOptions{hub: quiet})
	b := startNode(t, r, prefix, "b", nodeOptions{hub: quiet, bus: func(c *redis.BusConfig) {
		c.DropHook = func(m hub.Message) bool { return len(m.Events) > 0 && armed.CompareAndSwap(true, false) }
	}})
	rm := createRoom(t, a.URL, map[string]any{"title": "Lag", "teams": []string{"A"}})
	fac := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})
	onB := dial(t, ctx, b.wsURL(rm.ID), map[string]any{"name": "OnB"})
	if err := onB.WaitSeq(ctx, fac.Seq()); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	ask := do(t, ctx, fac, map[string]any{"type": "ask", "text": "seen on a only"})
	qid, _ := ask.Result["question"].(string)
	eventually(t, ctx, "the drop", func() bool { return !armed.Load() })
	// The client learned of the question some other way (a link, a
	// neighbour's screen) and votes for it through b.
	r2 := do(t, ctx, onB, map[string]any{"type": "upvote", "question": qid})
	if err := fac.WaitSeq(ctx, r2.Seq); err != nil {
		t.Fatal(err)
	}
	if q, _ := fac.State().Question(qid); q == nil || q.Votes != 1 {
		t.Fatalf("vote through the lagging instance: %+v", q)
	}
	if err := onB.WaitSeq(ctx, r2.Seq); err != nil {
		t.Fatal(err)
	}
	if onB.Gaps() != 0 {
		t.Fatalf("client on b saw %d gaps", onB.Gaps())
	}
}
