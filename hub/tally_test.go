package hub_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestVoteStormTallied: a storm of votes reaches the facilitator vote by
// vote and every other client as tallies, whose raw frames name no voter
// but the client itself; every vote is counted once, the sequence stays
// contiguous, and the attendees end where a fresh snapshot is. The tick is
// an hour, so what arrives when is decided by the protocol, not the clock:
// the first vote after a quiet interval goes out at once, the rest wait
// for the tick, and the facilitator's highlight sends them first.
func TestVoteStormTallied(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "", unlimited, func(c *hub.Config) { c.TallyInterval = time.Hour })
	testVoteStorm(t, ctx, srv.URL, srv.URL)
}

// TestVoteStormTalliedRedis: the same over two instances on one Redis,
// voters on both, and an observer on each.
func TestVoteStormTalliedRedis(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 90*time.Second)
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{hub: func(c *hub.Config) { unlimited(c); c.TallyInterval = time.Hour }})
	testVoteStorm(t, ctx, nodes[0].URL, nodes[1].URL)
}

func testVoteStorm(t *testing.T, ctx context.Context, base1, base2 string) {
	const voters = 40
	rm := createRoom(t, base1, map[string]any{"title": "Storm", "teams": []string{"Red", "Blue"}})
	url1, url2 := wsURLOf(base1, rm.ID), wsURLOf(base2, rm.ID)
	fac := dial(t, ctx, url1, map[string]any{"key": rm.FacilitatorKey})
	lead := dial(t, ctx, url2, map[string]any{"key": rm.Teams[0].Key})
	pres := dial(t, ctx, url1, map[string]any{"key": rm.PresenterKey})
	observers := []*hubtest.Client{dial(t, ctx, url1, map[string]any{"name": "Watcher one"}), dial(t, ctx, url2, map[string]any{"name": "Watcher two"})}
	do(t, ctx, fac, map[string]any{"type": "start"})
	author := dial(t, ctx, url1, map[string]any{"name": "Author"})
	q := do(t, ctx, author, map[string]any{"type": "ask", "text": "Anonymous question", "anonymous": true}).Result["question"].(string)

	var vs []*hubtest.Client
	for i := range voters {
		url := url1
		if i%2 == 1 {
			url = url2
		}
		vs = append(vs, dial(t, ctx, url, map[string]any{"name": fmt.Sprintf("Voter %d", i)}))
	}
	var wg sync.WaitGroup
	acks := make([]hubtest.Reply, voters)
	errs := make([]error, voters)
	for i, v := range vs {
		wg.Go(func() { acks[i], errs[i] = v.MustDo(ctx, map[string]any{"type": "upvote", "question": q}) })
	}
	wg.Wait()
	for i := range vs {
		if errs[i] != nil {
			t.Fatalf("voter %d: %v", i, errs[i])
		}
		if acks[i].Result["voted"] != true || acks[i].Result["question"] != q {
			t.Fatalf("voter %d's ack carries %v, want its own vote", i, acks[i].Result)
		}
	}
	// One voter takes its vote back: its own tally must say so.
	do(t, ctx, vs[0], map[string]any{"type": "unvote", "question": q})
	last := do(t, ctx, fac, map[string]any{"type": "highlight", "question": q})

	everyone := append([]*hubtest.Client{fac, lead, pres, author}, observers...)
	everyone = append(everyone, vs...)
	for i, c := range everyone {
		if err := c.WaitSeq(ctx, last.Seq); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		st := c.State()
		got, ok := st.Question(q)
		if !ok || got.Votes != voters-1 || st.Highlighted != q {
			t.Fatalf("client %d: question %+v, highlighted %q: want %d votes", i, got, st.Highlighted, voters-1)
		}
		if c.Gaps() != 0 {
			t.Errorf("client %d saw %d gaps", i, c.Gaps())
		}
	}
	// The facilitator saw every vote; the others saw none of them as an
	// event, and at most two tallies per instance's ordering (the first
	// vote at once, the rest before the highlight) plus the unvote's.
	var facVotes int
	for _, e := range fac.Events() {
		if e.Type == room.EvUpvoted || e.Type == room.EvUnvoted {
			facVotes++
		}
	}
	if facVotes != voters+1 {
		t.Errorf("the facilitator saw %d votes as events, want %d", facVotes, voters+1)
	}
	for i, c := range append([]*hubtest.Client{lead, pres, author}, observers...) {
		for _, e := range c.Events() {
			if room.Tallied(e) {
				t.Errorf("client %d got %s as an event", i, e.Type)
			}
		}
		if n := c.Tallies(); n == 0 || n > 3 {
			t.Errorf("client %d got %d tallies for %d votes, want 1 to 3", i, n, voters+1)
		}
	}
	// Raw frames: no client but the facilitator hears another's
	// participant id through a vote, and the anonymous author stays
	// anonymous.
	ids := map[*hubtest.Client]string{author: author.Welcome().Participant}
	for _, v := range vs {
		ids[v] = v.Welcome().Participant
	}
	for i, c := range append(append([]*hubtest.Client{lead, pres, author}, observers...), vs...) {
		for _, f := range c.Frames() {
			if !bytes.Contains(f, []byte(`"type":"tally"`)) {
				continue
			}
			for other, id := range ids {
				if other != c && bytes.Contains(f, []byte(id)) {
					t.Fatalf("client %d's tally names %s: %s", i, id, f)
				}
			}
		}
	}
	// The voter who took its vote back shows it, the others show theirs.
	if st := vs[0].State(); func() bool { x, _ := st.Question(q); return x.Voters[ids[vs[0]]] }() {
		t.Errorf("voter 0 still shows its vote after unvote")
	}
	for i, v := range vs[1:] {
		x, _ := v.State().Question(q)
		if !x.Voters[ids[v]] {
			t.Errorf("voter %d does not show its own vote", i+1)
		}
	}
	// Each ends where a fresh snapshot of the same audience is.
	for i, c := range append([]*hubtest.Client{observers[0], vs[1]}, lead) {
		hello := c.Hello
		if w := c.Welcome(); w.Token != "" {
			hello = map[string]any{"participant": w.Participant, "token": w.Token}
		}
		fresh := dial(t, ctx, url1, hello)
		if err := fresh.WaitSeq(ctx, last.Seq); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJSONText(t, c.State()), mustJSONText(t, fresh.State()); got != want {
			t.Errorf("client %d after tallies:\n got %s\nwant %s", i, got, want)
		}
	}
}

func mustJSONText(t *testing.T, st *room.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// raceStore is a real store that, once armed, lets another instance commit
// first: before the next append whose first event is of type lose (votes
// when empty) it runs win, which commits through the other instance, so
// the append loses the race for certain; times such appends lose (one
// when zero).
type raceStore struct {
	hub.Store
	mu    sync.Mutex
	win   func()
	lose  string
	times int
}

func (s *raceStore) Append(ctx context.Context, id string, expected uint64, events []room.Event, snap *room.State) error {
	s.mu.Lock()
	win := s.win
	lose := cmp.Or(s.lose, room.EvUpvoted)
	if win != nil && len(events) > 0 && events[0].Type == lose {
		if s.times--; s.times <= 0 {
			s.win = nil
		}
	} else {
		win = nil
	}
	s.mu.Unlock()
	if win != nil {
		win()
	}
	return s.Store.Append(ctx, id, expected, events, snap)
}

// startRace starts two instances on one Redis, a's store a raceStore (not
// armed), and a started room on a with its facilitator connected.
func startRace(t *testing.T, ctx context.Context) (a, b *redisNode, rs *raceStore, rm hub.CreatedRoom, fac *hubtest.Client) {
	t.Helper()
	r := hubtest.StartRedis(t)
	prefix := scalePrefix(t)
	a = startNode(t, r, prefix, "a", nodeOptions{hub: func(c *hub.Config) {
		rs = &raceStore{Store: c.Store}
		c.Store = rs
	}})
	b = startNode(t, r, prefix, "b", nodeOptions{})
	rm = createRoom(t, a.URL, map[string]any{"title": "Race", "teams": []string{"A"}})
	fac = dial(t, ctx, a.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})
	return a, b, rs, rm, fac
}

// TestLostVoteRaceRebases: an instance whose batch of votes loses the race
// to the other instance takes its votes back, catches up with the winner's
// events alone and commits on top of them: both votes counted once, no
// error, and no reload of the room.
func TestLostVoteRaceRebases(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	a, b, rs, rm, fac := startRace(t, ctx)
	onA := dial(t, ctx, a.wsURL(rm.ID), map[string]any{"name": "On A"})
	onB := dial(t, ctx, b.wsURL(rm.ID), map[string]any{"name": "On B"})
	q := do(t, ctx, onA, map[string]any{"type": "ask", "text": "Who wins?"})
	qid := q.Result["question"].(string)
	waitAll(t, ctx, q.Seq, fac, onA, onB)
	reloads := a.counter("workshop_room_reloads_total")

	var won hubtest.Reply
	rs.mu.Lock()
	rs.win = func() { won = do(t, ctx, onB, map[string]any{"type": "upvote", "question": qid}) }
	rs.mu.Unlock()
	lost := do(t, ctx, onA, map[string]any{"type": "upvote", "question": qid})
	if won.Seq == 0 || lost.Seq != won.Seq+1 {
		t.Fatalf("the winner's vote is at %d, the loser's at %d: want the loser right after", won.Seq, lost.Seq)
	}
	if lost.Result["votes"] != float64(2) {
		t.Errorf("the loser's ack says %v votes, want 2", lost.Result["votes"])
	}
	if got := a.counter("workshop_append_conflicts_total"); got < 1 {
		t.Errorf("no conflict counted: the race was not lost")
	}
	if got := a.counter("workshop_room_reloads_total"); got != reloads {
		t.Errorf("the lost race reloaded the room %v times, want none", got-reloads)
	}
	for i, c := range []*hubtest.Client{fac, onA, onB} {
		if err := c.WaitState(ctx, func(st *room.State) bool { x, _ := st.Question(qid); return x != nil && x.Votes == 2 }); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	st, err := b.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x, _ := st.Question(qid); x.Votes != 2 || len(x.Voters) != 2 {
		t.Errorf("the store counts %d votes from %d voters, want 2 and 2", x.Votes, len(x.Voters))
	}
}

// TestLostRacesOfARevealAreRetried: a facilitator's command that loses the
// race to a vote on the other instance again and again (more often than
// the hub's attempt count) is still committed, not answered unavailable:
// the store answers, so it is well.
func TestLostRacesOfARevealAreRetried(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	a, b, rs, rm, fac := startRace(t, ctx)
	onB := dial(t, ctx, b.wsURL(rm.ID), map[string]any{"name": "On B"})
	q := do(t, ctx, onB, map[string]any{"type": "ask", "text": "Who wins?"})
	qid := q.Result["question"].(string)
	waitAll(t, ctx, q.Seq, fac)

	const losses = 15 // more than the hub's 12 attempts
	var mu sync.Mutex
	var winErrs []string
	rounds := 0
	rs.mu.Lock()
	rs.lose, rs.times = room.EvNoteSet, losses
	rs.win = func() { // on the actor's goroutine: no t.Fatal here
		mu.Lock()
		rounds++
		vote := "upvote"
		if rounds%2 == 0 {
			vote = "unvote"
		}
		mu.Unlock()
		if r, err := onB.Do(ctx, map[string]any{"type": vote, "question": qid}); err != nil || !r.OK() {
			mu.Lock()
			winErrs = append(winErrs, fmt.Sprint(err, r.Code, r.Message))
			mu.Unlock()
		}
	}
	rs.mu.Unlock()
	conflicts := a.counter("workshop_append_conflicts_total")
	note := do(t, ctx, fac, map[string]any{"type": "set_note", "text": "after many lost races"})
	mu.Lock()
	if len(winErrs) > 0 || rounds != losses {
		t.Fatalf("the other instance committed %d times (errors %v), want %d", rounds, winErrs, losses)
	}
	mu.Unlock()
	if got := a.counter("workshop_append_conflicts_total") - conflicts; got < losses {
		t.Errorf("%v conflicts counted, want at least %d", got, losses)
	}
	st, err := b.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq < note.Seq || st.Notes[st.Aspect] != "after many lost races" {
		t.Errorf("the store is at %d with note %q, want the note at %d", st.Seq, st.Notes[st.Aspect], note.Seq)
	}
}
