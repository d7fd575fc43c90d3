package hub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// dialMany connects hellos[i] to urls[i] concurrently, closing them when
// the test ends.
func dialMany(t *testing.T, ctx context.Context, urls []string, hellos []map[string]any) []*hubtest.Client {
	t.Helper()
	clients := make([]*hubtest.Client, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range urls {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			clients[i], errs[i] = hubtest.Dial(ctx, urls[i], hellos[i])
		})
	}
	wg.Wait()
	t.Cleanup(func() { closeAll(clients) })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return clients
}

// closeAll closes clients concurrently.
func closeAll(clients []*hubtest.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(c.Close)
		}
	}
	wg.Wait()
}

// doRetry sends a command and retries it with the same id while the answer
// says to retry (unavailable, rate_limited), as a real client does. It
// answers the final reply.
func doRetry(ctx context.Context, c *hubtest.Client, id string, cmd map[string]any) (hubtest.Reply, error) {
	for attempt := 1; ; attempt++ {
		r, err := c.DoID(ctx, id, cmd)
		if err != nil {
			return r, err
		}
		if r.OK() || attempt == 20 || r.Code != room.EUNAVAILABLE && r.Code != room.ERATELIMITED {
			return r, nil
		}
		select {
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// TestScaleOutVoteRace: 100 attendees spread over two instances send 500
// upvotes and 200 questions at once. Every command is acknowledged and
// counted exactly once, the store's log is contiguous, nothing is lost to
// the instances' compare-and-set races, and every client converges.
func TestScaleOutVoteRace(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 90*time.Second)
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{})
	rm := createRoom(t, nodes[0].URL, map[string]any{"title": "Votes", "teams": []string{"A", "B"}})
	fac := dial(t, ctx, nodes[1].wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})

	const seeds, voters, asksEach = 5, 100, 2
	var urls []string
	var hellos []map[string]any
	for i := range seeds + voters {
		urls = append(urls, nodes[i%2].wsURL(rm.ID))
		hellos = append(hellos, map[string]any{"name": fmt.Sprintf("A%03d", i)})
	}
	clients := dialMany(t, ctx, urls, hellos)
	var qids []string
	for _, c := range clients[:seeds] {
		r := do(t, ctx, c, map[string]any{"type": "ask", "text": "seed from " + c.Welcome().Name})
		qids = append(qids, r.Result["question"].(string))
		waitAll(t, ctx, r.Seq, clients...) // a voter upvotes what it has seen
	}
	voting := clients[seeds:]

	// Fire everything at once: each voter upvotes every seed question and
	// asks asksEach questions, through its own instance.
	var (
		mu        sync.Mutex
		upAcked   = map[string]int{}    // question -> acked upvotes
		asked     = map[string]string{} // question id -> author
		failures  []string
		start     = make(chan struct{})
		wg        sync.WaitGroup
		duplicate bool
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for i, c := range voting {
		for j, q := range qids {
			wg.Go(func() {
				<-start
				r, err := doRetry(ctx, c, fmt.Sprintf("up-%d-%d", i, j), map[string]any{"type": "upvote", "question": q})
				if err != nil || !r.OK() {
					fail("voter %d upvote %s: %v %s %s", i, q, err, r.Code, r.Message)
					return
				}
				mu.Lock()
				upAcked[q]++
				mu.Unlock()
			})
		}
		for j := range asksEach {
			wg.Go(func() {
				<-start
				r, err := doRetry(ctx, c, fmt.Sprintf("ask-%d-%d", i, j), map[string]any{"type": "ask", "text": fmt.Sprintf("question %d of voter %d", j, i)})
				if err != nil || !r.OK() {
					fail("voter %d ask %d: %v %s %s", i, j, err, r.Code, r.Message)
					return
				}
				id, _ := r.Result["question"].(string)
				mu.Lock()
				if _, dup := asked[id]; dup || id == "" {
					duplicate = true
				}
				asked[id] = c.Welcome().Participant
				mu.Unlock()
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d upvotes and %d questions acknowledged in %v; append conflicts: %v on a, %v on b",
		voters*len(qids), voters*asksEach, time.Since(began).Round(time.Millisecond),
		nodes[0].counter("workshop_append_conflicts_total"), nodes[1].counter("workshop_append_conflicts_total"))
	for _, f := range failures {
		t.Error(f)
	}
	if duplicate {
		t.Errorf("two asks were answered the same question id (or none): %v", asked)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Counted exactly once: the store's state and its log.
	st, err := nodes[0].hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(st.Questions), seeds+len(asked); got != want {
		t.Errorf("questions: got %d, want %d", got, want)
	}
	for _, q := range qids {
		got, _ := st.Question(q)
		if got.Votes != upAcked[q] || len(got.Voters) != upAcked[q] || upAcked[q] != voters {
			t.Errorf("question %s: %d votes, %d voters; %d upvotes acked of %d", q, got.Votes, len(got.Voters), upAcked[q], voters)
		}
	}
	for id, author := range asked {
		if q, ok := st.Question(id); !ok || q.Author != author {
			t.Errorf("acked question %s: got %+v, want by %s", id, q, author)
		}
	}
	log, err := nodes[1].store.Since(ctx, rm.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	upvotes, posted, cmds := 0, 0, map[string]uint64{}
	pairs := map[string]bool{}
	for i, e := range log {
		if e.Seq != uint64(i)+1 {
			t.Fatalf("log entry %d has seq %d: not contiguous", i, e.Seq)
		}
		switch e.Type {
		case room.EvUpvoted:
			upvotes++
			pair := e.QuestionID + "/" + e.Participant
			if pairs[pair] {
				t.Errorf("upvote %s applied twice", pair)
			}
			pairs[pair] = true
		case room.EvQuestionPosted:
			posted++
		}
		if e.Cmd != "" {
			if prev, ok := cmds[e.Cmd]; ok && prev != e.Seq-1 {
				t.Errorf("command %s has events at %d and %d: applied twice", e.Cmd, prev, e.Seq)
			}
			cmds[e.Cmd] = e.Seq
		}
	}
	if uint64(len(log)) != st.Seq {
		t.Fatalf("log has %d events, head is %d", len(log), st.Seq)
	}
	if upvotes != voters*len(qids) || posted != seeds+voters*asksEach {
		t.Errorf("log: %d upvoted and %d question_posted, want %d and %d", upvotes, posted, voters*len(qids), seeds+voters*asksEach)
	}

	// Every client, on both instances, converges on the store.
	all := append([]*hubtest.Client{fac}, clients...)
	checkConverged(t, ctx, nodes[0], rm.ID, all...)
	for i, c := range clients {
		own := c.State()
		for _, q := range qids {
			if x, _ := own.Question(q); !x.Voters[c.Welcome().Participant] && i >= seeds {
				t.Fatalf("client %d does not see its own vote on %s", i, q)
			}
		}
	}
}

// TestScaleOutJoinRace changes a room on instance A at the instant a client
// joins it through instance B, 100 times. The heartbeat is off, so nothing
// but the join itself (subscribe, then load, then the live stream) can
// bring the change: the client must always end at A's ack with the change
// in its state and no gap. The first half joins a room B has no actor for
// (each join starts one); the second half joins B's running actor.
func TestScaleOutJoinRace(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	r := hubtest.StartRedis(t)
	// One facilitator connection sends every change: lift its rate limit.
	noHeartbeat := nodeOptions{hub: func(c *hub.Config) {
		c.Heartbeat = time.Hour
		c.Limits.Commands = hub.Rate{Per: time.Millisecond, Burst: 1000}
	}}
	nodes := startNodes(t, r, 2, noHeartbeat)
	a, b := nodes[0], nodes[1]
	rm := createRoom(t, a.URL, map[string]any{"title": "Join race", "teams": []string{"A"}})
	fac := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})

	const iterations = 100
	for i := range iterations {
		if i == iterations/2 {
			dial(t, ctx, b.wsURL(rm.ID), map[string]any{"name": "Anchor"})
		}
		text := fmt.Sprintf("join race %03d", i)
		aspect := []string{"investment", "adoption", "interfaces", "operations", "measurement"}[i%5] // 50 actions per aspect at most
		acked := make(chan hubtest.Reply, 1)
		go func() {
			// Spread the change over the join's steps.
			time.Sleep(time.Duration(i%7) * 300 * time.Microsecond)
			r, err := fac.Do(ctx, map[string]any{"type": "add_action", "aspect": aspect, "text": text})
			if err != nil || !r.OK() {
				r = hubtest.Reply{Code: fmt.Sprintf("%v %s %s", err, r.Code, r.Message)}
			}
			acked <- r
		}()
		c, err := hubtest.Dial(ctx, b.wsURL(rm.ID), map[string]any{"name": fmt.Sprintf("J%03d", i)})
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		ack := <-acked
		if !ack.OK() {
			c.Close()
			t.Fatalf("iteration %d: add_action: %s", i, ack.Code)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.WaitSeq(wctx, ack.Seq)
		cancel()
		st, gaps := c.State(), c.Gaps()
		c.Close()
		if err != nil {
			t.Fatalf("iteration %d: the joining client missed the change at %d: %v", i, ack.Seq, err)
		}
		if st.Seq != ack.Seq || !hasAction(st, aspect, text) || gaps != 0 {
			t.Fatalf("iteration %d: client at %d (ack %d), action present %v, %d gaps", i, st.Seq, ack.Seq, hasAction(st, aspect, text), gaps)
		}
	}
}
