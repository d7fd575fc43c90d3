package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/hub/redis"
	"github.com/leveling/workshop/room"
)

// waitStatus polls GET /readyz on n until it answers want.
func waitStatus(t *testing.T, ctx context.Context, n *redisNode, want int) {
	t.Helper()
	var got int
	eventually(t, ctx, fmt.Sprintf("instance %s: /readyz answers %d, want %d", n.name, got, want), func() bool {
		got = n.readyz(ctx)
		return got == want
	})
}

// eventually polls cond until it holds.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countActions counts the action items with text in aspect.
func countActions(st *room.State, aspect, text string) int {
	n := 0
	for _, a := range st.Actions[aspect] {
		if a.Text == text {
			n++
		}
	}
	return n
}

// countQuestions counts the questions with text.
func countQuestions(st *room.State, text string) int {
	n := 0
	for _, q := range st.Questions {
		if q.Text == text {
			n++
		}
	}
	return n
}

// TestScaleOutRedisRestart kills redis-server (SIGKILL) in the middle of a
// burst of commands on two instances and starts it again on its
// append-only file. While it is down /readyz answers 503 and commands
// answer `unavailable` without a trace in the store; the instances recover
// by themselves (reconnect, resubscribe, fill the gaps) and every client
// converges; what was acknowledged before the kill is still there, and
// every unanswered command retried with its id is applied exactly once.
func TestScaleOutRedisRestart(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	r := hubtest.StartRedis(t)
	// Retries of refused asks count against the per-connection question
	// rate: allow them.
	nodes := startNodes(t, r, 2, nodeOptions{hub: func(c *hub.Config) { c.Limits.Questions = hub.Rate{Per: time.Second, Burst: 20} }})
	a, b := nodes[0], nodes[1]
	rm := createRoom(t, a.URL, map[string]any{"title": "Redis restart", "teams": []string{"A", "B"}})
	fac := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	lead := dial(t, ctx, b.wsURL(rm.ID), map[string]any{"key": rm.Teams[0].Key})
	var atts []*hubtest.Client
	for i := range 4 {
		atts = append(atts, dial(t, ctx, nodes[i%2].wsURL(rm.ID), map[string]any{"name": fmt.Sprintf("Att%d", i)}))
	}
	all := append([]*hubtest.Client{fac, lead}, atts...)
	step := func(c *hubtest.Client, cmd map[string]any) hubtest.Reply {
		t.Helper()
		r := do(t, ctx, c, cmd)
		waitAll(t, ctx, r.Seq, all...)
		return r
	}
	step(fac, map[string]any{"type": "start"})
	step(lead, map[string]any{"type": "submit", "aspect": "investment", "level": 2, "rationale": "before the crash"})
	q := step(atts[1], map[string]any{"type": "ask", "text": "before the crash?"}).Result["question"].(string)
	step(atts[0], map[string]any{"type": "upvote", "question": q})

	// A burst through both instances races the kill. Each command is
	// acknowledged, refused as unavailable, or left unanswered.
	type sent struct {
		c    *hubtest.Client
		id   string
		cmd  map[string]any
		text string
	}
	var burst []sent
	for i := range 20 {
		text := fmt.Sprintf("action %02d", i)
		burst = append(burst, sent{fac, fmt.Sprintf("burst-%d", i), map[string]any{"type": "add_action", "aspect": "adoption", "text": text}, text})
	}
	for i, c := range atts {
		for j := range 2 {
			text := fmt.Sprintf("question %d.%d", i, j)
			burst = append(burst, sent{c, fmt.Sprintf("burst-q%d", j), map[string]any{"type": "ask", "text": text}, text})
		}
	}
	// The commands go out a few milliseconds apart; Redis is killed once
	// a quarter of them are acknowledged.
	var mu sync.Mutex
	acked := map[int]hubtest.Reply{}
	enough, killed := make(chan struct{}), make(chan struct{})
	var enoughOnce sync.Once
	go func() {
		defer close(killed)
		select {
		case <-enough:
		case <-ctx.Done():
		}
		r.Kill()
	}()
	var wg sync.WaitGroup
	for i, s := range burst {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			r, err := s.c.DoID(cctx, s.id, s.cmd)
			switch {
			case err == nil && r.OK():
				mu.Lock()
				acked[i] = r
				n := len(acked)
				mu.Unlock()
				if n >= len(burst)/4 {
					enoughOnce.Do(func() { close(enough) })
				}
			case err != nil:
				t.Errorf("burst %s: no answer on an open connection: %v", s.text, err)
			case r.Code != room.EUNAVAILABLE:
				t.Errorf("burst %s: %s %s, want an ack or unavailable", s.text, r.Code, r.Message)
			}
		})
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	enoughOnce.Do(func() { close(enough) })
	<-killed
	t.Logf("%d of %d burst commands acknowledged before the kill", len(acked), len(burst))

	// Redis is down: not ready, and commands answer unavailable.
	waitStatus(t, ctx, a, http.StatusServiceUnavailable)
	waitStatus(t, ctx, b, http.StatusServiceUnavailable)
	outage := []sent{
		{fac, "outage-1", map[string]any{"type": "add_action", "aspect": "operations", "text": "during the outage"}, "during the outage"},
		{atts[3], "outage-2", map[string]any{"type": "ask", "text": "asked during the outage"}, "asked during the outage"},
	}
	for _, s := range outage {
		r, err := s.c.DoID(ctx, s.id, s.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != room.EUNAVAILABLE || !strings.Contains(r.Message, "unavailable") {
			t.Fatalf("%s during the outage: got %+v, want unavailable", s.text, r)
		}
	}

	r.Restart()
	waitStatus(t, ctx, a, http.StatusOK)
	waitStatus(t, ctx, b, http.StatusOK)
	for i, c := range all {
		if err := c.CloseErr(); err != nil {
			t.Fatalf("client %d lost its connection: %v", i, err)
		}
	}
	// Nothing acknowledged was lost, nothing refused was applied.
	st, err := a.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range acked {
		s := burst[i]
		aspect, _ := s.cmd["aspect"].(string)
		if countActions(st, aspect, s.text)+countQuestions(st, s.text) != 1 {
			t.Errorf("acknowledged %q lost in the Redis restart", s.text)
		}
	}
	if countActions(st, "operations", outage[0].text) != 0 || countQuestions(st, outage[1].text) != 0 {
		t.Fatalf("a command refused during the outage was applied")
	}
	if sc := st.Score("t1", "investment"); sc == nil || !sc.Submitted || sc.Level != 2 {
		t.Fatalf("submission before the crash: got %+v", sc)
	}
	// The instances fill the gaps by themselves: no command needed.
	checkConverged(t, ctx, b, rm.ID, all...)
	for _, n := range nodes {
		eventually(t, ctx, "instance "+n.name+" resubscribes", func() bool { return n.bus.Stats().Resubscribes > 0 })
	}

	// Every unanswered or refused command, retried with its id, is
	// applied once; acknowledged ones answer the same.
	for i, s := range append(burst, outage...) {
		r, err := doRetry(ctx, s.c, s.id, s.cmd)
		if err != nil || !r.OK() {
			t.Fatalf("retry of %s: %+v %v", s.text, r, err)
		}
		if first, ok := acked[i]; ok && (r.Seq != first.Seq || fmt.Sprint(r.Result) != fmt.Sprint(first.Result)) {
			t.Errorf("retry of acknowledged %s answered %+v, first %+v", s.text, r, first)
		}
	}
	final := do(t, ctx, fac, map[string]any{"type": "add_action", "aspect": "measurement", "text": "after the restart"})
	st = checkConverged(t, ctx, a, rm.ID, all...)
	if st.Seq != final.Seq {
		t.Fatalf("store at %d, last ack %d", st.Seq, final.Seq)
	}
	for _, s := range append(burst, outage...) {
		aspect, _ := s.cmd["aspect"].(string)
		if n := countActions(st, aspect, s.text) + countQuestions(st, s.text); n != 1 {
			t.Errorf("%q is in the room %d times, want once", s.text, n)
		}
	}
}

// TestScaleOutDroppedMessage: instance b's bus loses one commit message
// (DropHook, which on purpose calls no Resync). A lost message in the
// middle is noticed from the next event's sequence; a lost last message,
// in a quiet room, only from a's heartbeat. Either way b's clients get
// every event, in order, without a snapshot.
func TestScaleOutDroppedMessage(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	r := hubtest.StartRedis(t)
	var armed, dropped atomic.Int32
	prefix := scalePrefix(t)
	a := startNode(t, r, prefix, "a", nodeOptions{})
	b := startNode(t, r, prefix, "b", nodeOptions{bus: func(c *redis.BusConfig) {
		c.DropHook = func(m hub.Message) bool {
			if len(m.Events) > 0 && armed.CompareAndSwap(1, 0) {
				dropped.Add(1)
				return true
			}
			return false
		}
	}})
	rm := createRoom(t, a.URL, map[string]any{"title": "Lossy", "teams": []string{"A"}})
	fac := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	onA := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"name": "OnA"})
	onB := []*hubtest.Client{
		dial(t, ctx, b.wsURL(rm.ID), map[string]any{"name": "OnB1"}),
		dial(t, ctx, b.wsURL(rm.ID), map[string]any{"key": rm.Teams[0].Key}),
	}
	all := append([]*hubtest.Client{fac, onA}, onB...)
	start := do(t, ctx, fac, map[string]any{"type": "start"})
	waitAll(t, ctx, start.Seq, all...)

	// A message lost in the middle: the next event shows the gap.
	armed.Store(1)
	lost := do(t, ctx, fac, map[string]any{"type": "add_action", "text": "lost on b"})
	next := do(t, ctx, fac, map[string]any{"type": "add_action", "text": "shows the gap"})
	waitAll(t, ctx, next.Seq, all...)
	if dropped.Load() != 1 { // b got the next message, so it had the lost one
		t.Fatalf("dropped %d messages, want 1", dropped.Load())
	}
	for i, c := range onB {
		if !hasAction(c.State(), c.State().Aspect, "lost on b") {
			t.Fatalf("client %d on b misses the event at %d", i, lost.Seq)
		}
	}

	// The last message of a quiet room: only the heartbeat shows it.
	armed.Store(1)
	last := do(t, ctx, fac, map[string]any{"type": "add_action", "text": "last, lost on b"})
	eventually(t, ctx, "b drops the last message", func() bool { return dropped.Load() == 2 })
	waitAll(t, ctx, last.Seq, onB...)
	st := checkConverged(t, ctx, b, rm.ID, all...)
	if st.Seq != last.Seq || !hasAction(st, st.Aspect, "last, lost on b") {
		t.Fatalf("store at %d, want %d with the last action", st.Seq, last.Seq)
	}
	for i, c := range all {
		if c.Snapshots() != 1 || c.Gaps() != 0 {
			t.Fatalf("client %d: %d snapshots and %d gaps, want 1 and 0", i, c.Snapshots(), c.Gaps())
		}
		if got, want := len(c.Events()), int(last.Seq-1); got != want {
			t.Fatalf("client %d applied %d events, want %d", i, got, want)
		}
	}
	if n := b.counter("workshop_bus_gaps_total"); n < 2 {
		t.Fatalf("b noticed %v gaps, want 2", n)
	}
}
