package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/hub/hubtest"
)

// TestRotateKeysAndRemove: rotated keys stop working at once and their
// connections close; a removed attendee is closed and cannot come back.
func TestRotateKeysAndRemove(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Keys", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	fac2 := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	lead := dial(t, ctx, url, map[string]any{"key": rm.Teams[0].Key})
	pres := dial(t, ctx, url, map[string]any{"key": rm.PresenterKey})
	att := dial(t, ctx, url, map[string]any{"name": "Mallory"})
	other := dial(t, ctx, url, map[string]any{"name": "Ann"})
	do(t, ctx, fac, map[string]any{"type": "start"})

	// Remove an attendee: closed with 4003, and its identity is refused.
	w := att.Welcome()
	do(t, ctx, fac, map[string]any{"type": "remove_participant", "participant": w.Participant})
	_ = att.WaitClosed(ctx)
	if att.CloseStatus() != 4003 {
		t.Fatalf("removed attendee: close %v, want 4003", att.CloseStatus())
	}
	_, err := hubtest.Dial(ctx, url, map[string]any{"participant": w.Participant, "token": w.Token, "name": "Mallory"})
	if err == nil || !strings.Contains(err.Error(), "4001") {
		t.Fatalf("removed attendee reconnecting: got %v, want close 4001", err)
	}
	if r, _ := fac.Do(ctx, map[string]any{"type": "remove_participant", "participant": "team:t1"}); r.OK() {
		t.Fatal("a team lead was removed as an attendee")
	}

	// Rotate: the ack carries the new keys; every connection made with an
	// old key closes with 4003 (the rotating one too); attendees stay.
	r := do(t, ctx, fac, map[string]any{"type": "rotate_keys"})
	newFac, _ := r.Result["facilitatorKey"].(string)
	teamKeys, _ := r.Result["teamKeys"].(map[string]any)
	newTeam, _ := teamKeys["t1"].(string)
	if newFac == "" || newTeam == "" || newFac == rm.FacilitatorKey {
		t.Fatalf("rotate result: %v", r.Result)
	}
	for name, c := range map[string]*hubtest.Client{"facilitator": fac, "second facilitator": fac2, "team lead": lead, "presenter": pres} {
		_ = c.WaitClosed(ctx)
		if c.CloseStatus() != 4003 {
			t.Fatalf("%s after rotation: close %v, want 4003", name, c.CloseStatus())
		}
	}
	if err := other.WaitSeq(ctx, r.Seq); err != nil {
		t.Fatalf("attendee after rotation: %v", err)
	}
	for _, old := range []string{rm.FacilitatorKey, rm.Teams[0].Key, rm.PresenterKey} {
		if _, err := hubtest.Dial(ctx, url, map[string]any{"key": old}); err == nil || !strings.Contains(err.Error(), "4001") {
			t.Fatalf("old key: got %v, want close 4001", err)
		}
	}
	nf := dial(t, ctx, url, map[string]any{"key": newFac})
	if nf.Welcome().Role != "facilitator" {
		t.Fatalf("new facilitator key: %+v", nf.Welcome())
	}
	nl := dial(t, ctx, url, map[string]any{"key": newTeam})
	if nl.Welcome().Team != "t1" {
		t.Fatalf("new team key: %+v", nl.Welcome())
	}
	// Export follows the rotation too.
	if a := getAuth(t, srv.URL+"/api/rooms/"+rm.ID+"/export?format=json", rm.FacilitatorKey); a.status != 401 {
		t.Fatalf("export with the old key: %d", a.status)
	}
	if a := getAuth(t, srv.URL+"/api/rooms/"+rm.ID+"/export?format=json", newFac); a.status != 200 {
		t.Fatalf("export with the new key: %d %s", a.status, a.body)
	}
	// The keys never reached the attendee, not even inside an event.
	for _, f := range other.Frames() {
		for _, k := range []string{newFac, newTeam, rm.FacilitatorKey, rm.Teams[0].Key, rm.Teams[1].Key, rm.PresenterKey} {
			if strings.Contains(string(f), k) {
				t.Fatalf("a key reached an attendee: %s", f)
			}
		}
	}
}

func getAuth(t *testing.T, url, key string) httpAnswer {
	req := mustRequest(t, url)
	req.Header.Set("Authorization", "Bearer "+key)
	return doHTTP(t, req)
}

// TestFacilitatorGetsLinksBack: the facilitator's welcome carries the
// presenter and team keys, so lost team links can be shown again; nobody
// else's welcome does.
func TestFacilitatorGetsLinksBack(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Links", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	w := string(fac.Frames()[0])
	for _, k := range []string{rm.PresenterKey, rm.Teams[0].Key, rm.Teams[1].Key} {
		if !strings.Contains(w, k) {
			t.Fatalf("facilitator welcome lacks key %q: %s", k, w)
		}
	}
	// A team added later gets a key the facilitator can see again too.
	r := do(t, ctx, fac, map[string]any{"type": "add_team", "name": "C"})
	key, _ := r.Result["key"].(string)
	fac2 := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	if !strings.Contains(string(fac2.Frames()[0]), key) {
		t.Fatalf("welcome lacks the added team's key: %s", fac2.Frames()[0])
	}
	lead := dial(t, ctx, url, map[string]any{"key": key})
	if lead.Welcome().Team != "t3" {
		t.Fatalf("added team key: %+v", lead.Welcome())
	}
	for _, c := range []*hubtest.Client{lead, dial(t, ctx, url, map[string]any{"name": "Ann"}), dial(t, ctx, url, map[string]any{"key": rm.PresenterKey})} {
		if strings.Contains(string(c.Frames()[0]), `"keys"`) {
			t.Fatalf("a non-facilitator welcome carries keys: %s", c.Frames()[0])
		}
	}
}
