package hub_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestWorkshopEndToEnd runs one aspect of a workshop on a real server with
// real WebSocket clients: a facilitator, two team leads and three
// attendees.
func TestWorkshopEndToEnd(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Q3 leveling", "teams": []string{"Payments", "Search"}})
	url := srv.wsURL(rm.ID)

	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	lead1 := dial(t, ctx, url, map[string]any{"key": rm.Teams[0].Key})
	lead2 := dial(t, ctx, url, map[string]any{"key": rm.Teams[1].Key})
	var attendees []*hubtest.Client
	for _, name := range []string{"Ana", "Bo", "Cy"} {
		attendees = append(attendees, dial(t, ctx, url, map[string]any{"name": name}))
	}
	all := append([]*hubtest.Client{fac, lead1, lead2}, attendees...)
	if got := lead1.Welcome().Team; got != "t1" {
		t.Fatalf("lead1 team: got %q, want t1", got)
	}
	if w := attendees[0].Welcome(); w.Role != "attendee" || w.Token == "" || w.Participant == "" {
		t.Fatalf("attendee welcome: %+v", w)
	}

	const secret1, secret2 = "RATIONALE-PAYMENTS-7f3a", "RATIONALE-SEARCH-91bc"
	do(t, ctx, lead1, map[string]any{"type": "save_draft", "aspect": "investment", "level": 2, "rationale": "DRAFT-" + secret1})
	do(t, ctx, lead1, map[string]any{"type": "submit", "aspect": "investment", "level": 3, "rationale": secret1})
	do(t, ctx, lead2, map[string]any{"type": "submit", "aspect": "investment", "level": 1, "rationale": secret2})
	do(t, ctx, fac, map[string]any{"type": "start"})
	call := do(t, ctx, fac, map[string]any{"type": "call_turn"})
	for _, c := range all {
		if err := c.WaitSeq(ctx, call.Seq); err != nil {
			t.Fatal(err)
		}
	}
	// Before the reveal no attendee frame, and no frame to the other team
	// or the facilitator, carries a level or rationale of another team.
	for i, a := range attendees {
		for _, f := range a.Frames() {
			if bytes.Contains(f, []byte(secret1)) || bytes.Contains(f, []byte(secret2)) || bytes.Contains(f, []byte(`"level":`)) {
				t.Fatalf("attendee %d saw a score before the reveal: %s", i, f)
			}
		}
	}
	for _, f := range lead2.Frames() {
		if bytes.Contains(f, []byte(secret1)) {
			t.Fatalf("team 2 saw team 1's rationale: %s", f)
		}
	}
	for _, f := range fac.Frames() {
		if bytes.Contains(f, []byte(secret1)) || bytes.Contains(f, []byte("DRAFT-")) {
			t.Fatalf("facilitator saw an unrevealed rationale: %s", f)
		}
	}
	if st := attendees[0].State(); st.Turn == nil || st.Turn.Team != "t1" {
		t.Fatalf("turn: got %+v, want team t1", st.Turn)
	}

	reveal := do(t, ctx, fac, map[string]any{"type": "reveal", "team": "t1"})
	for _, c := range all {
		if err := c.WaitSeq(ctx, reveal.Seq); err != nil {
			t.Fatal(err)
		}
		sc := c.State().Score("t1", "investment")
		if sc == nil || !sc.Revealed || sc.Level != 3 || sc.Rationale != secret1 {
			t.Fatalf("after reveal: got %+v, want level 3 revealed", sc)
		}
		if other := c.State().Score("t2", "investment"); c != lead2 && other != nil && other.Level != 0 {
			t.Fatalf("team 2's unrevealed score leaked: %+v", other)
		}
	}

	ask := do(t, ctx, attendees[0], map[string]any{"type": "ask", "text": "How do you fund the platform team?"})
	qid, _ := ask.Result["question"].(string)
	if qid == "" {
		t.Fatalf("ask result: %v", ask.Result)
	}
	do(t, ctx, attendees[1], map[string]any{"type": "upvote", "question": qid})
	do(t, ctx, attendees[2], map[string]any{"type": "upvote", "question": qid})
	if r, _ := attendees[2].Do(ctx, map[string]any{"type": "upvote", "question": qid}); r.Code != room.ECONFLICT {
		t.Fatalf("second upvote: got %q, want conflict", r.Code)
	}
	do(t, ctx, fac, map[string]any{"type": "highlight", "question": qid})
	last := do(t, ctx, fac, map[string]any{"type": "answer", "question": qid, "on": true})

	var want string
	for i, c := range all {
		if err := c.WaitSeq(ctx, last.Seq); err != nil {
			t.Fatal(err)
		}
		st := c.State()
		q, ok := st.Question(qid)
		if !ok || q.Votes != 2 || !q.Answered || st.Highlighted != qid {
			t.Fatalf("client %d question: got %+v (highlighted %q)", i, q, st.Highlighted)
		}
		p := projection(st)
		if i == 0 {
			want = p
		} else if p != want {
			t.Fatalf("client %d diverged:\n got %s\nwant %s", i, p, want)
		}
		if c.Gaps() != 0 {
			t.Fatalf("client %d saw %d gaps", i, c.Gaps())
		}
	}
	// Who voted is not shown to other attendees (with names on raised
	// hands, a participant id would say who voted for what); the voter and
	// the facilitator see it.
	for _, voter := range attendees[1:] {
		pid := voter.Welcome().Participant
		for _, f := range attendees[0].Frames() {
			if bytes.Contains(f, []byte(pid)) {
				t.Fatalf("another attendee's participant id reached attendee 0: %s", f)
			}
		}
		if q, _ := voter.State().Question(qid); !q.Voters[pid] {
			t.Fatalf("the voter does not see its own vote: %+v", q)
		}
		if q, _ := fac.State().Question(qid); !q.Voters[pid] {
			t.Fatalf("the facilitator does not see who voted: %+v", q)
		}
	}
	// The server's state is what the clients converged on.
	st, err := srv.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := projection(room.View(st, room.Audience{Role: room.RoleAttendee})); got != want {
		t.Fatalf("server state:\n got %s\nwant %s", got, want)
	}
	// Presence reaches everyone: three attendees, both teams, the facilitator.
	if err := attendees[0].WaitPresence(ctx, func(p room.Presence) bool {
		return p.Attendees == 3 && p.Facilitator && p.Teams["t1"] == 1 && p.Teams["t2"] == 1
	}); err != nil {
		t.Fatalf("presence: got %+v: %v", attendees[0].Presence(), err)
	}
	if err := fac.WaitPresence(ctx, func(p room.Presence) bool { return len(p.Names) == 3 }); err != nil {
		t.Fatalf("facilitator presence names: got %+v", fac.Presence())
	}
	if len(attendees[0].Presence().Names) != 0 {
		t.Fatalf("attendee sees names: %+v", attendees[0].Presence())
	}
}
