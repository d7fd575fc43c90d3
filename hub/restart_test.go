package hub_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestRestartResumes stops the server in the middle of a burst of
// commands, starts it again on the same data directory and checks that
// the room is back as it was, every acknowledged command is in it, and
// clients resume with the events they missed rather than a snapshot.
func TestRestartResumes(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Restart", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)

	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	att := dial(t, ctx, url, map[string]any{"name": "Ana"})
	do(t, ctx, fac, map[string]any{"type": "start"})
	do(t, ctx, att, map[string]any{"type": "ask", "text": "first?"})
	if err := att.WaitSeq(ctx, fac.Seq()); err != nil {
		t.Fatal(err)
	}
	// The attendee leaves at a known point; the room moves on without it.
	w := att.Welcome()
	attState, attEpoch := att.State(), att.Epoch()
	att.Close()
	do(t, ctx, fac, map[string]any{"type": "call_turn"})
	do(t, ctx, fac, map[string]any{"type": "add_action", "text": "before the restart"})

	// A burst of commands races the shutdown: each is acknowledged, or
	// refused, or lost with the connection; acknowledged ones must survive.
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("burst %02d", i)
			r, err := fac.Do(ctx, map[string]any{"type": "add_action", "aspect": "adoption", "text": text})
			if err == nil && r.OK() {
				mu.Lock()
				acked[text] = true
				mu.Unlock()
			}
		}()
		if i == 20 {
			go srv.Stop()
		}
	}
	wg.Wait()
	srv.Stop()
	t.Logf("%d of 40 burst commands acknowledged before the shutdown", len(acked))
	if err := fac.WaitClosed(ctx); fac.CloseStatus() != 1001 {
		t.Fatalf("facilitator close: got %v (%v), want 1001 going away", fac.CloseStatus(), err)
	}
	before := fac.State()

	srv2 := startServer(t, dir, srv.addr)
	st, err := srv2.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	for text := range acked {
		if !hasAction(st, "adoption", text) {
			t.Errorf("acknowledged action %q lost in the restart", text)
		}
	}
	if st.Seq < before.Seq {
		t.Fatalf("server seq after restart %d < client's %d", st.Seq, before.Seq)
	}

	// The facilitator resumes from where it was: it gets the events after
	// its seq (the burst's tail, if any) and no snapshot.
	fac2, err := hubtest.Resume(ctx, srv2.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey, "epoch": fac.Epoch(), "seq": before.Seq}, before)
	if err != nil {
		t.Fatal(err)
	}
	defer fac2.Close()
	if err := fac2.WaitSeq(ctx, st.Seq); err != nil {
		t.Fatal(err)
	}
	if fac2.Snapshots() != 0 {
		t.Fatalf("facilitator got a snapshot on resume, want only missed events")
	}
	// The attendee, away since before the turn, gets exactly what it missed.
	att2, err := hubtest.Resume(ctx, srv2.wsURL(rm.ID), map[string]any{
		"participant": w.Participant, "token": w.Token, "name": "Ana", "epoch": attEpoch, "seq": attState.Seq,
	}, attState)
	if err != nil {
		t.Fatal(err)
	}
	defer att2.Close()
	if err := att2.WaitSeq(ctx, st.Seq); err != nil {
		t.Fatal(err)
	}
	if att2.Snapshots() != 0 || att2.Gaps() != 0 {
		t.Fatalf("attendee resume: %d snapshots, %d gaps; want 0 and 0", att2.Snapshots(), att2.Gaps())
	}
	if got, want := len(att2.Events()), int(st.Seq-attState.Seq); got != want {
		t.Fatalf("attendee got %d missed events, want %d", got, want)
	}
	want := projection(room.View(st, room.Audience{Role: room.RoleAttendee}))
	for _, c := range []*hubtest.Client{fac2, att2} {
		if got := projection(c.State()); got != want {
			t.Fatalf("after restart:\n got %s\nwant %s", got, want)
		}
	}
	// The room keeps working, and the returning attendee is still itself.
	r := do(t, ctx, att2, map[string]any{"type": "upvote", "question": "q1"})
	if err := fac2.WaitSeq(ctx, r.Seq); err != nil {
		t.Fatal(err)
	}
	if q, _ := fac2.State().Question("q1"); q.Votes != 1 || !q.Voters[w.Participant] {
		t.Fatalf("vote after restart: %+v\nr.Seq=%d fac2.Seq=%d before.Seq=%d st.Seq=%d\n%s", q, r.Seq, fac2.Seq(), before.Seq, st.Seq, fmtFrames(fac2.Frames()))
	}
	// Whole state, secrets included, survived byte for byte.
	st2, err := srv2.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Secrets.FacilitatorKeyHash != st.Secrets.FacilitatorKeyHash || st2.Seq != r.Seq {
		t.Fatalf("reloaded state differs")
	}
	b1, _ := json.Marshal(room.View(st, room.Audience{Role: room.RoleFacilitator}))
	if len(b1) == 0 {
		t.Fatal("empty view")
	}
}

func hasAction(st *room.State, aspect, text string) bool {
	for _, a := range st.Actions[aspect] {
		if a.Text == text {
			return true
		}
	}
	return false
}
