package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// wsRemove walks remove_participant: the attendee's connections close with
// 4003, and coming back with its identity closes with 4001.
func (w *walker) wsRemove(ctx context.Context, s *session) {
	w.expect(ctx, "cmd/remove_participant-unknown", s.fac, map[string]any{"type": "remove_participant", "participant": "p_nobody"}, "not_found", "participant",
		"remove_participant: an attendee connected now or one the room has a trace of; anyone else answers not_found")
	// An attendee who raised a hand and left has a trace: removable.
	dan, wm, err := w.connect(ctx, "attendee Dan", s.room.ID, map[string]any{"name": "Dan"}, audience{role: "attendee"}, dialOpts{})
	if err == nil {
		m, err := dan.cmd(ctx, map[string]any{"type": "raise_hand"})
		dan.close()
		_, _, _ = dan.waitClose(ctx, replyTimeout)
		if err == nil && m.Type == "ack" {
			w.expect(ctx, "cmd/remove_participant-trace", s.fac, map[string]any{"type": "remove_participant", "participant": wm.Participant}, "", "",
				"remove_participant: one the room has a trace of (a raised hand) is removable after it left")
		}
	}
	w.expect(ctx, "cmd/remove_participant", s.fac, map[string]any{"type": "remove_participant", "participant": s.boID}, "", "", "remove_participant participant")
	code, reason, err := s.bo.waitClose(ctx, replyTimeout)
	w.check("ws/close-4003-removed", err == nil && code == 4003 && reason == "removed", "remove_participant "+s.boID+" (Bo is connected)",
		closeText(code, reason, err), "their connections close with 4003 `removed`")
	cl, m, err := w.connect(ctx, "attendee Bo (removed, back)", s.room.ID, map[string]any{"participant": s.boID, "token": s.boTok}, audience{role: "attendee"}, dialOpts{})
	if err == nil {
		w.check("ws/close-4001-removed", false, "hello {participant, token} of a removed attendee", m.String(), "4001 `removed from this room` when a removed attendee comes back")
		cl.close()
		return
	}
	code, reason, _ = cl.waitClose(ctx, replyTimeout)
	w.check("ws/close-4001-removed", code == 4001 && reason == "removed from this room", "hello {participant, token} of a removed attendee",
		closeText(code, reason, nil), "4001 `removed from this room` when a removed attendee comes back")
}

// wsRotate walks rotate_keys: the ack's result holds the new keys and
// links, every connection made with an old key closes with 4003, old keys
// no longer authenticate and new ones do.
func (w *walker) wsRotate(ctx context.Context, s *session) *wsClient {
	old := s.room
	m := w.expect(ctx, "cmd/rotate_keys", s.fac, map[string]any{"type": "rotate_keys"}, "", "", "rotate_keys: the ack's result holds the new keys and links")
	if m == nil || m.Type != "ack" {
		return nil
	}
	// The new keys, under the create answer's names (or a teamKeys map),
	// and the links, by their paths.
	var res struct {
		FacilitatorKey string            `json:"facilitatorKey"`
		PresenterKey   string            `json:"presenterKey"`
		TeamKeys       map[string]string `json:"teamKeys"`
		Teams          []struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		} `json:"teams"`
	}
	_ = json.Unmarshal(m.Result, &res)
	newKeys := map[string]string{"facilitator": res.FacilitatorKey, "presenter": res.PresenterKey} // role or team id -> key
	for id, k := range res.TeamKeys {
		newKeys[id] = k
	}
	for _, t := range res.Teams {
		newKeys[t.ID] = t.Key
	}
	links := map[string]bool{}
	var tree any
	_ = json.Unmarshal(m.Result, &tree)
	walkJSON(tree, func(_ string, x any) {
		if s, ok := x.(string); ok {
			if u, err := url.Parse(s); err == nil && strings.HasPrefix(u.Fragment, "key=") {
				for _, p := range []string{"facilitator", "presenter", "team"} {
					if strings.Contains(u.Path, "/"+p+"/") {
						links[p] = true
					}
				}
			}
		}
	})
	fresh := len(newKeys) >= 2+len(old.Teams)
	for k, v := range newKeys {
		fresh = fresh && keyRE.MatchString(v) && !slices.Contains(old.allKeys(), v)
		switch k {
		case "facilitator":
			w.addSecret(v, "the rotated facilitator key", onlyFacilitator)
		case "presenter":
			w.addSecret(v, "the rotated presenter key", func(a audience) bool { return a.role == "facilitator" || a.role == "presenter" })
		default:
			id := k
			w.addSecret(v, "team "+id+"'s rotated key", func(a audience) bool { return a.role == "facilitator" || (a.role == "team" && a.team == id) })
		}
	}
	w.check("cmd/rotate_keys-result-keys", fresh, "rotate_keys", shorten(string(m.Result)), "the ack's result holds the new keys (facilitator, presenter, every team)")
	w.check("cmd/rotate_keys-result-shape", res.FacilitatorKey != "" && res.PresenterKey != "" && len(res.TeamKeys) >= len(old.Teams) && len(links) == 0, "rotate_keys", shorten(string(m.Result)),
		"the ack's result holds `facilitatorKey`, `presenterKey` and `teamKeys` (team id -> key); links are built from them")

	for _, c := range []*wsClient{s.fac, s.t1, s.t2, s.pres} {
		code, reason, err := c.waitClose(ctx, replyTimeout)
		w.check("ws/close-4003-rotated", err == nil && code == 4003 && reason == "removed: keys were rotated", "rotate_keys; "+c.name+" connected with an old key",
			closeText(code, reason, err), "every connection made with an old key closes with 4003 `removed: keys were rotated`")
	}
	from := s.ana.mark()
	_ = s.ana.send(ctx, map[string]any{"type": "ping", "id": "after-rotate", "t": 1})
	_, err := s.ana.await(ctx, from, "pong", func(m *msg) bool { return m.Type == "pong" })
	w.check("ws/rotate-keeps-attendees", err == nil, "ping from attendee Ana after rotate_keys", errText(nil, err)+"pong", "attendees authenticate by name and token, not by a key: they stay")

	for _, k := range []struct{ name, key string }{{"facilitator", old.FacilitatorKey}, {"presenter", old.PresenterKey}, {"team", old.Teams[0].Key}} {
		cl, m, err := w.connect(ctx, "old "+k.name+" key", old.ID, map[string]any{"key": k.key}, audience{role: "stranger"}, dialOpts{})
		if err == nil {
			w.check("ws/old-key-4001", false, "hello with the old "+k.name+" key", m.String(), "4001 `unauthorized` (wrong key)")
			cl.close()
			continue
		}
		code, reason, _ := cl.waitClose(ctx, replyTimeout)
		w.check("ws/old-key-4001", code == 4001 && reason == "unauthorized", "hello with the old "+k.name+" key after rotate_keys", closeText(code, reason, nil),
			"4001 `unauthorized` (wrong key)")
	}
	if newKeys["facilitator"] == "" {
		return nil
	}
	fac, wm, err := w.connect(ctx, "facilitator (new key)", old.ID, map[string]any{"key": newKeys["facilitator"]}, audience{role: "facilitator"}, dialOpts{})
	if err != nil {
		w.check("ws/new-key", false, "hello with the new facilitator key", err.Error(), "welcome")
		return nil
	}
	var keys struct {
		Presenter string            `json:"presenter"`
		Teams     map[string]string `json:"teams"`
	}
	_ = json.Unmarshal(wm.Keys, &keys)
	match := keys.Presenter == newKeys["presenter"] && len(keys.Teams) > 0
	for id, k := range keys.Teams {
		match = match && newKeys[id] == k
	}
	w.check("ws/new-key", wm.Role == "facilitator" && match, "hello with the new facilitator key", shorten(wm.String()),
		"welcome; a facilitator's welcome carries keys {presenter, teams}, here the new ones")
	w.retry(ctx, "cmd/rotate_keys-retry", fac, m, map[string]any{"id": m.ID, "type": "rotate_keys"})
	return fac
}

// wsClose walks wrap_up and close, and what a closed room refuses.
func (w *walker) wsClose(ctx context.Context, s *session, fac *wsClient) {
	w.expect(ctx, "cmd/wrap_up", fac, map[string]any{"type": "wrap_up"}, "", "", "wrap_up")
	w.expect(ctx, "cmd/wrap_up-twice", fac, map[string]any{"type": "wrap_up"}, "conflict", "", "conflict: wrong phase")
	w.expect(ctx, "cmd/close", fac, map[string]any{"type": "close"}, "", "", "close")
	w.expect(ctx, "cmd/ask-closed-room", s.carl, map[string]any{"type": "ask", "text": "Anyone there?"}, "conflict", "", "conflict: does not fit the room's current state")
	r := w.get(ctx, "/api/rooms/"+s.room.ID)
	var room struct {
		Phase    string `json:"phase"`
		ClosedAt string `json:"closedAt"`
	}
	_ = json.Unmarshal(r.body, &room)
	w.check("rest/get-room-closed", r.status == 200 && room.Phase == "closed" && room.ClosedAt != "", "GET /api/rooms/{id} after close", fmt.Sprintf("%d phase %q closedAt %q", r.status, room.Phase, room.ClosedAt),
		"phase closed, closedAt; the room stays readable by its links")
}

// gone prepares a room that is closed at once, and answers a function
// that waits until its code stops resolving (the server's closed-room
// retention, -closed-room-ttl) and checks the 404 is identical to an
// unknown code's.
func (w *walker) gone(ctx context.Context) func() {
	const name, says = "rest/join-gone-room", "a code that does not exist and one whose room is gone answer the same 404 not_found"
	src := w.dedicated(addrGone)
	if w.cfg.closedRoomTTL <= 0 || src == "" {
		return func() {
			w.skip(name, "needs -closed-room-ttl (the server's retention, short enough to wait for) and -source-addrs >= 10: lookups are rate-limited per address")
		}
	}
	r := w.createRoom(ctx, name, `{"title":"Soon gone","teams":["A"]}`)
	if r == nil {
		return func() {}
	}
	fac, _, err := w.connect(ctx, "facilitator (gone room)", r.ID, map[string]any{"key": r.FacilitatorKey}, audience{role: "facilitator"}, dialOpts{})
	if err != nil {
		return func() { w.check(name, false, "hello", err.Error(), "welcome") }
	}
	m, err := fac.cmd(ctx, map[string]any{"type": "close"})
	fac.close()
	if err != nil || m.Type != "ack" {
		return func() { w.check(name, false, "close", errText(m, err), "ack") }
	}
	closedAt := time.Now()
	return func() {
		unknown := w.request(ctx, src, "GET", "/api/join/"+unknownCode(r.Code), nil, nil)
		deadline := closedAt.Add(w.cfg.closedRoomTTL + maxGoneWait)
		wait := pollInterval * 4
		var got response
		for {
			got = w.request(ctx, src, "GET", "/api/join/"+r.Code, nil, nil)
			if got.status != 200 || time.Now().After(deadline) {
				break
			}
			t := time.NewTimer(wait) // lookups are rate-limited: back off between polls
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			wait *= 2
		}
		same := got.err == nil && unknown.err == nil && got.status == 404 && got.status == unknown.status &&
			string(got.body) == string(unknown.body) && got.header.Get("Content-Type") == unknown.header.Get("Content-Type")
		w.check(name, same, fmt.Sprintf("GET /api/join/%s up to %s after its room was closed (retention %s), and GET /api/join/%s", r.Code, w.cfg.closedRoomTTL+maxGoneWait, w.cfg.closedRoomTTL, unknownCode(r.Code)),
			fmt.Sprintf("gone: %s | unknown: %s", got.String(), unknown.String()), says)
	}
}
