package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// expect sends a command and checks its answer: an ack with a positive
// seq when code is "", otherwise an error of that code with the command's
// id whose message names field (when field is set).
func (w *walker) expect(ctx context.Context, name string, cl *wsClient, c map[string]any, code, field, says string) *msg {
	m, err := cl.cmd(ctx, c)
	sent := cl.name + " " + jsonText(c)
	if err != nil {
		w.check(name, false, sent, err.Error(), says)
		return nil
	}
	ok := false
	if code == "" {
		ok = m.Type == "ack" && m.Seq != nil && *m.Seq > 0
	} else {
		ok = m.Type == "error" && m.Code == code && humane(m.Message)
		if field != "" && code == "invalid" { // not_found may name the missing thing instead
			ok = ok && namesField(m.Message, field)
		}
	}
	w.check(name, ok, sent, m.String(), says)
	return m
}

// result answers a string field of an ack's result.
func (m *msg) result(field string) string {
	if m == nil {
		return ""
	}
	var r map[string]any
	_ = json.Unmarshal(m.Result, &r)
	s, _ := r[field].(string)
	return s
}

// marker answers a unique string to plant as a secret.
func marker(what string) string { return "SECRET-" + what + "-" + randHex(markerBytes) }

// wsCommands walks the command table of PROTOCOL.md: each command from the
// right role, the wrong roles, out-of-range fields, and retries.
func (w *walker) wsCommands(ctx context.Context, s *session) {
	inv, adopt := s.aspects[0], s.aspects[1]
	t1, t2 := s.team(0), s.team(1)
	const forbidden = "the role may not do this: forbidden"

	// Wrong roles, in the lobby.
	for _, c := range []struct {
		cl  *wsClient
		cmd map[string]any
	}{
		{s.ana, map[string]any{"type": "start"}},
		{s.t1, map[string]any{"type": "start"}},
		{s.pres, map[string]any{"type": "start"}},
		{s.ana, map[string]any{"type": "reveal", "aspect": inv}},
		{s.t1, map[string]any{"type": "add_team", "name": "Sneaky"}},
		{s.ana, map[string]any{"type": "rotate_keys"}},
		{s.t1, map[string]any{"type": "remove_participant", "participant": s.boID}},
		{s.ana, map[string]any{"type": "set_note", "aspect": inv, "text": "x"}},
		{s.ana, map[string]any{"type": "save_draft", "aspect": inv, "level": 1, "rationale": "x"}},
		{s.fac, map[string]any{"type": "save_draft", "aspect": inv, "level": 1, "rationale": "x"}},
		{s.pres, map[string]any{"type": "submit", "aspect": inv, "level": 1, "rationale": "x"}},
		{s.pres, map[string]any{"type": "ask", "text": "from the big screen"}},
		{s.pres, map[string]any{"type": "raise_hand"}},
		{s.fac, map[string]any{"type": "raise_hand"}},
		{s.pres, map[string]any{"type": "lower_hand"}},
	} {
		w.expect(ctx, "cmd/wrong-role-"+c.cmd["type"].(string), c.cl, c.cmd, "forbidden", "", forbidden+" (table: who)")
	}

	// Fields the sender's role may not set, and fields a command does not take.
	const saysField = "a field the sender's role may not set is refused with invalid and a message that names it, never ignored: "
	for _, c := range []struct {
		name string
		cl   *wsClient
		cmd  map[string]any
		want string
	}{
		{"cmd/role-field-team", s.t1, map[string]any{"type": "save_draft", "team": t2, "aspect": inv, "level": 1, "rationale": "x"}, "team: a team lead acts for its own team only"},
		{"cmd/role-field-own-team", s.t1, map[string]any{"type": "submit", "team": t1, "aspect": inv, "level": 1, "rationale": "x"}, "team: a team lead acts for its own team only"},
		{"cmd/role-field-participant", s.ana, map[string]any{"type": "lower_hand", "participant": s.boID}, "participant: only the facilitator may lower another participant's hand"},
		{"cmd/not-a-field", s.ana, map[string]any{"type": "raise_hand", "seq": 5}, "seq: not a field of raise_hand"},
		{"cmd/not-a-field-ask", s.ana, map[string]any{"type": "ask", "text": "hi", "admin": true}, "admin: not a field of ask"},
	} {
		m, err := c.cl.cmd(ctx, c.cmd)
		w.check(c.name, err == nil && m.Type == "error" && m.Code == "invalid" && m.Message == c.want, c.cl.name+" "+jsonText(c.cmd), errText(m, err),
			saysField+"`"+c.want+"`")
	}

	// Drafts and submissions (team leads, before the reveal).
	draft1, draft2 := marker("draft-t1"), marker("draft-t2")
	draft1b, sub2 := marker("draft-t1-adoption"), marker("submitted-never-revealed-t2")
	sub1, sub1b := marker("submitted-t1"), marker("submitted-t1-adoption")
	w.addSecret(draft1, "team t1's draft", onlyTeam(t1))
	w.addSecret(draft2, "team t2's draft", onlyTeam(t2))
	w.addSecret(draft1b, "team t1's draft", onlyTeam(t1))
	w.addSecret(sub2, "team t2's unrevealed submission", onlyTeam(t2))

	const saysLevel = "save_draft: level 0 to the model's top level; submit: 1 to top; errors name the field"
	w.expect(ctx, "cmd/save_draft-rationale-2000", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": 0, "rationale": strings.Repeat("r", 2000)}, "", "", "rationale at most 2,000")
	w.expect(ctx, "cmd/save_draft", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": 2, "rationale": draft1}, "", "", "team lead: save_draft aspect, level, rationale")
	w.expect(ctx, "cmd/save_draft-level-5", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": 5, "rationale": "x"}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/save_draft-level-negative", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": -1, "rationale": "x"}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/save_draft-rationale-2001", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": 1, "rationale": strings.Repeat("r", 2001)}, "invalid", "rationale", "rationale (at most 2,000)")
	w.expect(ctx, "cmd/save_draft-unknown-aspect", s.t1, map[string]any{"type": "save_draft", "aspect": "nope", "level": 1, "rationale": "x"}, "not_found", "aspect", "not_found: no such aspect")
	w.expect(ctx, "cmd/submit-level-0", s.t1, map[string]any{"type": "submit", "aspect": inv, "level": 0, "rationale": "x"}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/submit-level-5", s.t1, map[string]any{"type": "submit", "aspect": inv, "level": 5, "rationale": "x"}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/submit", s.t1, map[string]any{"type": "submit", "aspect": inv, "level": 3, "rationale": sub1}, "", "", "team lead: submit aspect, level (1 to top), rationale")
	w.expect(ctx, "cmd/save_draft-t2", s.t2, map[string]any{"type": "save_draft", "aspect": inv, "level": 1, "rationale": draft2}, "", "", "team lead: save_draft")
	w.expect(ctx, "cmd/submit-t2-adoption", s.t2, map[string]any{"type": "submit", "aspect": adopt, "level": 2, "rationale": sub2}, "", "", "team lead: submit")
	w.expect(ctx, "cmd/save_draft-t1-adoption", s.t1, map[string]any{"type": "save_draft", "aspect": adopt, "level": 1, "rationale": draft1b}, "", "", "team lead: save_draft")
	w.expect(ctx, "cmd/submit-again", s.t1, map[string]any{"type": "submit", "aspect": adopt, "level": 4, "rationale": sub1b}, "", "", "submit again to change a submission")

	// start, and a retry of it.
	m := w.expect(ctx, "cmd/start", s.fac, map[string]any{"type": "start"}, "", "", "facilitator: start")
	if m != nil && m.Type == "ack" {
		w.retry(ctx, "cmd/start-retry", s.fac, m, map[string]any{"id": m.ID, "type": "start"})
	}
	w.expect(ctx, "cmd/start-twice", s.fac, map[string]any{"type": "start"}, "conflict", "", "conflict: does not fit the room's current state (wrong phase)")

	// Agenda, aspects.
	rev := append([]string(nil), s.aspects...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	w.expect(ctx, "cmd/set_agenda", s.fac, map[string]any{"type": "set_agenda", "order": rev}, "", "", "set_agenda order: every aspect id once")
	w.expect(ctx, "cmd/set_agenda-missing", s.fac, map[string]any{"type": "set_agenda", "order": rev[1:]}, "invalid", "order", "order: every aspect id once; invalid names the field")
	w.expect(ctx, "cmd/set_agenda-twice", s.fac, map[string]any{"type": "set_agenda", "order": append(rev[1:], rev[1])}, "invalid", "order", "order: every aspect id once; invalid names the field")
	w.expect(ctx, "cmd/goto_aspect", s.fac, map[string]any{"type": "goto_aspect", "aspect": adopt}, "", "", "facilitator: goto_aspect aspect")
	w.expect(ctx, "cmd/goto_aspect-unknown", s.fac, map[string]any{"type": "goto_aspect", "aspect": "nope"}, "not_found", "aspect", "not_found: no such aspect")
	w.expect(ctx, "cmd/goto_aspect-back", s.fac, map[string]any{"type": "goto_aspect", "aspect": inv}, "", "", "facilitator: goto_aspect aspect")

	// add_team: result holds the team id and key; a retry gets the same ack.
	m = w.expect(ctx, "cmd/add_team", s.fac, map[string]any{"type": "add_team", "name": "Ops"}, "", "", "add_team name; the ack's result holds the new team's id and key")
	t3 := ""
	if m != nil && m.Type == "ack" {
		key, link := m.result("key"), m.result("link")
		var res map[string]any
		_ = json.Unmarshal(m.Result, &res)
		t3, _ = res["team"].(string)
		if t3 == "" {
			t3, _ = res["id"].(string)
		}
		_ = link // PROTOCOL.md: the console builds the link from the id and key
		w.check("cmd/add_team-result", keyRE.MatchString(key) && t3 != "",
			"add_team Ops", string(m.Result), "the ack's result holds the new team's id (`team`) and `key`")
		w.addSecret(key, "team Ops's key", onlyFacilitator)
		if key != "" {
			cl, wm, err := w.connect(ctx, "team lead Ops", s.room.ID, map[string]any{"key": key}, audience{role: "team"}, dialOpts{})
			gotTeam := ""
			if err == nil && wm.Team != nil {
				gotTeam = *wm.Team
				cl.mu.Lock()
				cl.aud.team = gotTeam
				cl.mu.Unlock()
				w.setSecretAllowed(key, func(a audience) bool { return a.role == "facilitator" || (a.role == "team" && a.team == gotTeam) })
			}
			w.check("cmd/add_team-key-works", err == nil && wm.Role == "team" && gotTeam != "" && (t3 == "" || gotTeam == t3), "hello with the new team's key", errText(wm, err),
				"a team key authenticates its team lead")
			if t3 == "" {
				t3 = gotTeam
			}
			if cl != nil {
				cl.close()
			}
		}
		w.retry(ctx, "cmd/add_team-retry", s.fac, m, map[string]any{"id": m.ID, "type": "add_team", "name": "Ops"})
	}
	w.expect(ctx, "cmd/add_team-empty-name", s.fac, map[string]any{"type": "add_team", "name": ""}, "invalid", "name", "add_team name; errors name the field")

	// Queues and turns.
	order := []string{t2, t1}
	if t3 != "" {
		order = []string{t3, t2, t1}
	}
	w.expect(ctx, "cmd/set_queue", s.fac, map[string]any{"type": "set_queue", "aspect": inv, "order": order}, "", "", "set_queue aspect, order: every team id once")
	w.expect(ctx, "cmd/set_queue-missing", s.fac, map[string]any{"type": "set_queue", "order": order[1:]}, "invalid", "order", "order: every team id once")
	w.expect(ctx, "cmd/set_queue-unknown-aspect", s.fac, map[string]any{"type": "set_queue", "aspect": "nope", "order": order}, "not_found", "aspect", "not_found: no such aspect")
	w.expect(ctx, "cmd/call_turn-seconds-9", s.fac, map[string]any{"type": "call_turn", "team": t1, "seconds": 9}, "invalid", "seconds", "call_turn seconds (10 to 3600)")
	w.expect(ctx, "cmd/call_turn-seconds-3601", s.fac, map[string]any{"type": "call_turn", "team": t1, "seconds": 3601}, "invalid", "seconds", "call_turn seconds (10 to 3600)")
	w.expect(ctx, "cmd/call_turn-unknown-team", s.fac, map[string]any{"type": "call_turn", "team": "t99"}, "not_found", "team", "not_found: no such team")
	w.expect(ctx, "cmd/call_turn-team", s.fac, map[string]any{"type": "call_turn", "team": t1, "seconds": 60}, "", "", "call_turn team, seconds")
	w.expect(ctx, "cmd/extend_turn-0", s.fac, map[string]any{"type": "extend_turn", "seconds": 0}, "invalid", "seconds", "extend_turn seconds (1 to 3600)")
	w.expect(ctx, "cmd/extend_turn-3601", s.fac, map[string]any{"type": "extend_turn", "seconds": 3601}, "invalid", "seconds", "extend_turn seconds (1 to 3600)")
	w.expect(ctx, "cmd/extend_turn", s.fac, map[string]any{"type": "extend_turn", "seconds": 30}, "", "", "extend_turn seconds")
	w.expect(ctx, "cmd/end_turn", s.fac, map[string]any{"type": "end_turn"}, "", "", "end_turn")
	w.expect(ctx, "cmd/end_turn-none", s.fac, map[string]any{"type": "end_turn"}, "conflict", "", "conflict: does not fit the room's current state")
	from := s.fac.mark()
	m = w.expect(ctx, "cmd/call_turn-next", s.fac, map[string]any{"type": "call_turn"}, "", "", "call_turn with neither: the next team in the queue")
	if m != nil && m.Type == "ack" {
		e, err := s.fac.awaitEvent(ctx, from, "turn_started", nil)
		var turn struct{ Team string }
		_ = json.Unmarshal(e.fields["turn"], &turn)
		w.check("cmd/call_turn-next-team", err == nil && turn.Team == order[0], "call_turn (neither), queue "+jsonText(order)+", "+t1+" has spoken",
			string(e.raw), "the next team in the queue ("+order[0]+")")
	}
	w.expect(ctx, "cmd/end_turn-2", s.fac, map[string]any{"type": "end_turn"}, "", "", "end_turn")
	w.expect(ctx, "cmd/raise_hand", s.ana, map[string]any{"type": "raise_hand", "team": "", "seconds": 0}, "", "", "attendee: raise_hand (a field at its zero value counts as absent)")
	w.expect(ctx, "cmd/raise_hand-team", s.t1, map[string]any{"type": "raise_hand"}, "", "", "team lead: raise_hand")
	w.expect(ctx, "cmd/call_turn-participant", s.fac, map[string]any{"type": "call_turn", "participant": s.anaID, "seconds": 30}, "", "", "call_turn participant (a raised hand)")
	w.expect(ctx, "cmd/end_turn-3", s.fac, map[string]any{"type": "end_turn"}, "", "", "end_turn")
	w.expect(ctx, "cmd/call_turn-unknown-participant", s.fac, map[string]any{"type": "call_turn", "participant": "p_nobody"}, "not_found", "participant",
		"call_turn participant (a raised hand; not_found without one)")
	w.expect(ctx, "cmd/lower_hand-own", s.t1, map[string]any{"type": "lower_hand"}, "", "", "lower_hand: own hand")
	w.expect(ctx, "cmd/raise_hand-bo", s.bo, map[string]any{"type": "raise_hand"}, "", "", "attendee: raise_hand")
	w.expect(ctx, "cmd/lower_hand-facilitator", s.fac, map[string]any{"type": "lower_hand", "participant": s.boID}, "", "", "lower_hand: facilitator: participant")
	w.expect(ctx, "cmd/lower_hand-unknown-participant", s.fac, map[string]any{"type": "lower_hand", "participant": "p_nobody"}, "not_found", "participant",
		"lower_hand, the facilitator: anyone's raised hand, not_found without one")
	w.expect(ctx, "cmd/lower_hand-no-hand", s.fac, map[string]any{"type": "lower_hand", "participant": s.carlID}, "not_found", "participant",
		"lower_hand, the facilitator: anyone's raised hand, not_found without one")

	w.wsEstimates(ctx, s, inv, adopt)

	// Reveals.
	from = s.ana.mark()
	w.expect(ctx, "cmd/reveal-team", s.fac, map[string]any{"type": "reveal", "aspect": inv, "team": t1}, "", "", "reveal aspect, team")
	e, err := s.ana.awaitEvent(ctx, from, "revealed", nil)
	w.check("cmd/reveal-reaches-attendee", err == nil && strings.Contains(string(e.raw), sub1) && strings.Contains(string(e.raw), `"level":3`),
		"reveal "+inv+" "+t1, shorten(string(e.raw)), "revealed: aspect, scores [{team,level,rationale,submitted}]")
	w.check("cmd/reveal-carries-estimate", err == nil && strings.Contains(string(e.raw), `"histogram":[0,1,0,1]`) && strings.Contains(string(e.raw), `"self":3`),
		"reveal "+inv+" "+t1+" after estimates 2 and 4", shorten(string(e.raw)),
		"revealed: estimate {count,histogram,median,mean,self,gap,flagged}, histogram[i] the estimates of level i+1")
	w.expect(ctx, "cmd/estimate-after-reveal", s.bo, map[string]any{"type": "estimate", "team": t1, "level": 1}, "conflict", "", "the reveal closes estimating for the teams it reveals")
	w.expect(ctx, "cmd/reveal-again", s.fac, map[string]any{"type": "reveal", "aspect": inv, "team": t1}, "conflict", "", "conflict: already revealed")
	w.expect(ctx, "cmd/reveal-unknown-team", s.fac, map[string]any{"type": "reveal", "aspect": inv, "team": "t99"}, "not_found", "team", "not_found: no such team")
	w.expect(ctx, "cmd/reveal-unknown-aspect", s.fac, map[string]any{"type": "reveal", "aspect": "nope"}, "not_found", "aspect", "not_found: no such aspect")
	from = s.ana.mark()
	w.expect(ctx, "cmd/reveal-draft-only", s.fac, map[string]any{"type": "reveal", "aspect": inv, "team": t2}, "", "", "reveal a team that only saved a draft")
	e, err = s.ana.awaitEvent(ctx, from, "revealed", nil)
	w.check("cmd/reveal-not-submitted", err == nil && strings.Contains(string(e.raw), `"submitted":false`) && !strings.Contains(string(e.raw), draft2),
		"reveal "+inv+" "+t2+" (draft only)", shorten(string(e.raw)), "submitted:false: not submitted (and a draft is never shown)")
	w.expect(ctx, "cmd/save_draft-after-reveal", s.t1, map[string]any{"type": "save_draft", "aspect": inv, "level": 1, "rationale": "late"}, "conflict", "",
		"scores can change until revealed")
	w.expect(ctx, "cmd/hide_reveal", s.fac, map[string]any{"type": "hide_reveal", "aspect": inv, "team": t1}, "", "", "hide_reveal aspect, team")
	w.expect(ctx, "cmd/reveal-adoption-t1", s.fac, map[string]any{"type": "reveal", "aspect": adopt, "team": t1}, "", "", "reveal aspect, team")
	if len(s.aspects) > 2 {
		w.expect(ctx, "cmd/reveal-all-teams", s.fac, map[string]any{"type": "reveal", "aspect": s.aspects[2]}, "", "", "reveal (team absent: every team)")
		w.expect(ctx, "cmd/hide_reveal-all-teams", s.fac, map[string]any{"type": "hide_reveal", "aspect": s.aspects[2]}, "", "", "hide_reveal (team absent: every team)")
	}
	w.expect(ctx, "cmd/hide_reveal-nothing", s.fac, map[string]any{"type": "hide_reveal", "aspect": adopt, "team": t2}, "conflict", "", "conflict: nothing revealed to hide")

	// A fresh attendee after hide_reveal sees no hidden rationale.
	fresh, _, err := w.connect(ctx, "attendee Fresh", s.room.ID, map[string]any{"name": "Fresh"}, audience{role: "attendee"}, dialOpts{})
	if err == nil {
		snap, err := fresh.awaitSnapshot(ctx, 0)
		ok := err == nil && !strings.Contains(string(snap.raw), sub1) && !strings.Contains(string(snap.raw), sub2) && strings.Contains(string(snap.raw), sub1b)
		w.check("secrecy/snapshot-after-hide_reveal", ok, "hello as a new attendee after hide_reveal", "rationales in its snapshot: "+presentMarkers(snap, sub1, sub1b, sub2),
			"level and rationale only once revealed (hidden again: not shown); "+t1+"'s adoption stays revealed")
		fresh.close()
	}

	w.wsQuestions(ctx, s)

	// Notes and actions.
	w.expect(ctx, "cmd/set_note-5000", s.fac, map[string]any{"type": "set_note", "aspect": inv, "text": strings.Repeat("n", 5000)}, "", "", "set_note text (at most 5,000)")
	w.expect(ctx, "cmd/set_note-5001", s.fac, map[string]any{"type": "set_note", "aspect": inv, "text": strings.Repeat("n", 5001)}, "invalid", "text", "set_note text (at most 5,000)")
	w.expect(ctx, "cmd/set_note-unknown-aspect", s.fac, map[string]any{"type": "set_note", "aspect": "nope", "text": "x"}, "not_found", "aspect", "not_found: no such aspect")
	w.expect(ctx, "cmd/set_note-current", s.fac, map[string]any{"type": "set_note", "text": "current aspect"}, "", "", "set_note aspect (default: current)")
	w.expect(ctx, "cmd/add_action-empty", s.fac, map[string]any{"type": "add_action", "aspect": inv, "text": ""}, "invalid", "text", "add_action text (1 to 300)")
	w.expect(ctx, "cmd/add_action-301", s.fac, map[string]any{"type": "add_action", "aspect": inv, "text": strings.Repeat("a", 301)}, "invalid", "text", "add_action text (1 to 300)")
	from = s.fac.mark()
	m = w.expect(ctx, "cmd/add_action", s.fac, map[string]any{"type": "add_action", "aspect": inv, "text": "Automate the builds"}, "", "", "add_action aspect, text")
	if m != nil && m.Type == "ack" {
		e, err := s.fac.awaitEvent(ctx, from, "action_added", nil)
		var a struct {
			ID json.Number `json:"id"`
		}
		_ = json.Unmarshal(e.fields["action"], &a)
		id, _ := a.ID.Int64()
		w.check("cmd/action_added", err == nil && id > 0, "add_action", string(e.raw), "action_added: aspect, action")
		w.expect(ctx, "cmd/set_action_done", s.fac, map[string]any{"type": "set_action_done", "aspect": inv, "action": id, "on": true}, "", "", "set_action_done aspect, action (its id), on")
		w.expect(ctx, "cmd/set_action_done-unknown", s.fac, map[string]any{"type": "set_action_done", "aspect": inv, "action": 999, "on": true}, "not_found", "action",
			"not_found: no such action")
		w.expect(ctx, "cmd/remove_action", s.fac, map[string]any{"type": "remove_action", "aspect": inv, "action": id}, "", "", "remove_action aspect, action")
		w.expect(ctx, "cmd/remove_action-again", s.fac, map[string]any{"type": "remove_action", "aspect": inv, "action": id}, "not_found", "action", "not_found: no such action")
	}
}

// presentMarkers lists which markers a message holds.
func presentMarkers(m *msg, markers ...string) string {
	if m == nil {
		return "no message"
	}
	var in []string
	for _, k := range markers {
		if strings.Contains(string(m.raw), k) {
			in = append(in, k)
		}
	}
	return fmt.Sprintf("%v", in)
}

// retry resends an acknowledged command with the same id and checks it
// gets the same ack and changes nothing: the room's head (a pong's seq)
// stays where the first ack left it.
func (w *walker) retry(ctx context.Context, name string, cl *wsClient, first *msg, c map[string]any) {
	again, err := cl.cmd(ctx, c)
	same := err == nil && again.Type == "ack" && again.Seq != nil && *again.Seq == *first.Seq
	if same && first.Result != nil {
		var a, b map[string]any
		_ = json.Unmarshal(first.Result, &a)
		_ = json.Unmarshal(again.Result, &b)
		for k, v := range a {
			if k != "key" && k != "link" && k != "keys" && k != "links" && fmt.Sprint(b[k]) != fmt.Sprint(v) {
				same = false
			}
		}
	}
	from := cl.mark()
	_ = cl.send(ctx, map[string]any{"type": "ping", "id": "retry", "t": 1})
	pong, perr := cl.await(ctx, from, "pong", func(m *msg) bool { return m.Type == "pong" })
	unchanged := perr == nil && pong.Seq != nil && *pong.Seq == *first.Seq
	w.check(name, same && unchanged, cl.name+" "+jsonText(c)+" again (same id)",
		fmt.Sprintf("first %s; again %s; head after: %s", first.String(), errText(again, err), errText(pong, perr)),
		"a command retried with the same id gets the same ack and is applied once")
}

// wsQuestions walks ask, votes, reports and the facilitator's moderation.
func (w *walker) wsQuestions(ctx context.Context, s *session) {
	const asks = "ask text (1 to 500), anonymous; the ack's result holds question (its id)"
	from := s.ana.mark()
	m := w.expect(ctx, "cmd/ask", s.ana, map[string]any{"type": "ask", "text": "How do teams find the platform?"}, "", "", asks)
	qa := m.result("question")
	if m == nil || m.Type != "ack" || qa == "" {
		w.check("cmd/ask-result", false, "ask", errText(m, nil), asks)
		return
	}
	e, err := s.ana.awaitEvent(ctx, from, "question_posted", func(e event) bool { return e.str("question") == qa })
	w.check("cmd/ack-seq", err == nil && m.Seq != nil && e.Seq == *m.Seq, "ask", fmt.Sprintf("ack seq %d, question_posted seq %d", *m.Seq, e.Seq),
		"ack: seq is the sequence of its last event; its events reach the client through events")
	w.retry(ctx, "cmd/ask-retry", s.ana, m, map[string]any{"id": m.ID, "type": "ask", "text": "How do teams find the platform?"})

	// The same id after a reconnect.
	s.ana.close()
	cl, _, err := w.connect(ctx, "attendee Ana (reconnected)", s.room.ID, map[string]any{"participant": s.anaID, "token": s.anaTok}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("cmd/ask-retry-after-reconnect", false, "hello participant+token", err.Error(), "a retry after a reconnect gets the same ack")
		return
	}
	s.ana = cl
	again, err := cl.cmd(ctx, map[string]any{"id": m.ID, "type": "ask", "text": "How do teams find the platform?"})
	snap := cl.latest("snapshot")
	count := 0
	if snap != nil {
		count = strings.Count(string(snap.Room), "How do teams find the platform?")
	}
	w.check("cmd/ask-retry-after-reconnect", err == nil && again.Type == "ack" && again.Seq != nil && *again.Seq == *m.Seq && again.result("question") == qa && count == 1,
		"the same ask (same id) after a reconnect", fmt.Sprintf("%s; the question %d times in the snapshot", errText(again, err), count),
		"retried with the same id, after a reconnect, gets the same ack and is applied once")

	w.expect(ctx, "cmd/ask-empty", s.carl, map[string]any{"type": "ask", "text": ""}, "invalid", "text", asks)
	w.expect(ctx, "cmd/ask-501", s.carl, map[string]any{"type": "ask", "text": strings.Repeat("q", 501)}, "invalid", "text", asks)
	mb := w.expect(ctx, "cmd/ask-anonymous", s.bo, map[string]any{"type": "ask", "text": "Who pays for the platform?", "anonymous": true}, "", "", asks)
	qb := mb.result("question")
	mt := w.expect(ctx, "cmd/ask-team", s.t1, map[string]any{"type": "ask", "text": strings.Repeat("t", 500)}, "", "", "anyone but a presenter: ask (500 characters)")
	qt := mt.result("question")

	// Votes.
	w.expect(ctx, "cmd/upvote", s.bo, map[string]any{"type": "upvote", "question": qa}, "", "", "upvote question")
	w.expect(ctx, "cmd/upvote-again", s.bo, map[string]any{"type": "upvote", "question": qa}, "conflict", "", "conflict: already voted")
	w.expect(ctx, "cmd/unvote", s.bo, map[string]any{"type": "unvote", "question": qa}, "", "", "unvote question")
	w.expect(ctx, "cmd/upvote-after-unvote", s.bo, map[string]any{"type": "upvote", "question": qa}, "", "", "upvote question")
	w.expect(ctx, "cmd/upvote-team", s.t2, map[string]any{"type": "upvote", "question": qa}, "", "", "anyone but a presenter: upvote")
	w.expect(ctx, "cmd/upvote-facilitator", s.fac, map[string]any{"type": "upvote", "question": qa}, "", "", "anyone but a presenter: upvote")
	w.expect(ctx, "cmd/upvote-presenter", s.pres, map[string]any{"type": "upvote", "question": qa}, "forbidden", "", "anyone but a presenter")
	w.expect(ctx, "cmd/upvote-unknown", s.bo, map[string]any{"type": "upvote", "question": "q-nope"}, "not_found", "question", "not_found: no such question")

	// Moderation.
	w.expect(ctx, "cmd/highlight", s.fac, map[string]any{"type": "highlight", "question": qa}, "", "", "highlight question")
	w.expect(ctx, "cmd/highlight-clear", s.fac, map[string]any{"type": "highlight"}, "", "", "highlight (absent: clear)")
	w.expect(ctx, "cmd/highlight-unknown", s.fac, map[string]any{"type": "highlight", "question": "q-nope"}, "not_found", "question", "not_found: no such question")
	w.expect(ctx, "cmd/answer", s.fac, map[string]any{"type": "answer", "question": qa, "on": true}, "", "", "answer question, on")
	w.expect(ctx, "cmd/hide_question", s.fac, map[string]any{"type": "hide_question", "question": qa}, "", "", "hide_question question")
	w.expect(ctx, "cmd/restore_question", s.fac, map[string]any{"type": "restore_question", "question": qa}, "", "", "restore_question question")
	w.expect(ctx, "cmd/hide_question-unknown", s.fac, map[string]any{"type": "hide_question", "question": "q-nope"}, "not_found", "question", "not_found: no such question")
	w.expect(ctx, "cmd/upvote-wrong-role-answer", s.ana, map[string]any{"type": "answer", "question": qa, "on": false}, "forbidden", "", "answer: facilitator")

	// Approve-first: a pending question that is then hidden must never
	// reach anyone but the facilitator and its author.
	w.expect(ctx, "cmd/set_approve_first", s.fac, map[string]any{"type": "set_approve_first", "on": true}, "", "", "set_approve_first on")
	pending := marker("pending-then-hidden-question")
	w.addSecret(pending, "a pending question hidden before approval", onlyFacilitatorOr(s.carlID))
	mp := w.expect(ctx, "cmd/ask-pending", s.carl, map[string]any{"type": "ask", "text": pending}, "", "", asks)
	ma := w.expect(ctx, "cmd/ask-pending-2", s.t2, map[string]any{"type": "ask", "text": "Can we approve this one?"}, "", "", asks)
	if qp := mp.result("question"); qp != "" {
		w.expect(ctx, "cmd/hide_question-pending", s.fac, map[string]any{"type": "hide_question", "question": qp}, "", "", "hide_question question")
	}
	if q := ma.result("question"); q != "" {
		w.expect(ctx, "cmd/approve_question", s.fac, map[string]any{"type": "approve_question", "question": q}, "", "", "approve_question question")
	}
	w.expect(ctx, "cmd/approve_question-not-pending", s.fac, map[string]any{"type": "approve_question", "question": qa}, "conflict", "", "conflict: does not fit the question's state")
	w.expect(ctx, "cmd/set_approve_first-off", s.fac, map[string]any{"type": "set_approve_first", "on": false}, "", "", "set_approve_first on")

	// Reports: at 3 the question is hidden.
	if qb != "" {
		w.expect(ctx, "cmd/report", s.ana, map[string]any{"type": "report", "question": qb}, "", "", "report: attendee")
		w.expect(ctx, "cmd/report-again", s.ana, map[string]any{"type": "report", "question": qb}, "conflict", "", "conflict: already reported")
		w.expect(ctx, "cmd/report-presenter", s.pres, map[string]any{"type": "report", "question": qb}, "forbidden", "", "report: attendee, team lead")
		w.expect(ctx, "cmd/report-facilitator", s.fac, map[string]any{"type": "report", "question": qb}, "forbidden", "", "report: attendee, team lead")
		w.expect(ctx, "cmd/report-team", s.t1, map[string]any{"type": "report", "question": qb}, "", "", "report: team lead")
		from := s.carl.mark()
		w.expect(ctx, "cmd/report-third", s.carl, map[string]any{"type": "report", "question": qb}, "", "", "report: attendee")
		e, err := s.carl.awaitEvent(ctx, from, "question_hidden", func(e event) bool { return e.str("question") == qb })
		w.check("cmd/report-hides-at-3", err == nil && e.str("name") == "reports", "three reports of "+qb, errText(nil, err)+string(e.raw),
			"at 3 reports the question is hidden (question_hidden name `reports`)")
	}
	_ = qt
	w.wrongRoles(ctx, s, qa)
}

// wrongRoles sends every command of the table, with exactly the fields its
// row names, from a role the table does not list for it: each must be
// refused with forbidden.
func (w *walker) wrongRoles(ctx context.Context, s *session, question string) {
	inv, t1 := s.aspects[0], s.team(0)
	fields := map[string]map[string]any{
		"start": {}, "goto_aspect": {"aspect": inv}, "set_agenda": {"order": s.aspects}, "add_team": {"name": "Intruders"},
		"set_queue": {"aspect": inv, "order": []string{s.team(1), t1}}, "call_turn": {"team": t1, "seconds": 30}, "extend_turn": {"seconds": 30},
		"end_turn": {}, "reveal": {"aspect": inv, "team": t1}, "hide_reveal": {"aspect": inv, "team": t1}, "highlight": {"question": question},
		"answer": {"question": question, "on": true}, "hide_question": {"question": question}, "restore_question": {"question": question},
		"approve_question": {"question": question}, "set_approve_first": {"on": true}, "set_note": {"aspect": inv, "text": "x"},
		"add_action": {"aspect": inv, "text": "x"}, "set_action_done": {"aspect": inv, "action": 1, "on": true}, "remove_action": {"aspect": inv, "action": 1},
		"wrap_up": {}, "close": {}, "remove_participant": {"participant": s.anaID}, "rotate_keys": {},
		"save_draft": {"aspect": inv, "level": 1, "rationale": "x"}, "submit": {"aspect": inv, "level": 1, "rationale": "x"},
		"ask": {"text": "x"}, "upvote": {"question": question}, "unvote": {"question": question}, "report": {"question": question},
		"raise_hand": {}, "lower_hand": {},
	}
	facilitatorOnly := []string{"start", "goto_aspect", "set_agenda", "add_team", "set_queue", "call_turn", "extend_turn", "end_turn", "reveal",
		"hide_reveal", "highlight", "answer", "hide_question", "restore_question", "approve_question", "set_approve_first", "set_note",
		"add_action", "set_action_done", "remove_action", "wrap_up", "close", "remove_participant", "rotate_keys"}
	mallory, _, err := w.connect(ctx, "attendee Mallory", s.room.ID, map[string]any{"name": "Mallory"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("cmd/wrong-role", false, "hello", err.Error(), "welcome")
		return
	}
	defer mallory.close()
	var refused, wrong []string
	try := func(cl *wsClient, types []string) {
		for _, t := range types {
			c := map[string]any{"type": t}
			for k, v := range fields[t] {
				c[k] = v
			}
			m, err := cl.cmd(ctx, c)
			if err == nil && m.Type == "error" && m.Code == "forbidden" && humane(m.Message) {
				refused = append(refused, t)
			} else {
				wrong = append(wrong, cl.name+" "+t+": "+errText(m, err))
			}
		}
	}
	try(mallory, append(facilitatorOnly, "save_draft", "submit"))
	try(s.pres, []string{"save_draft", "submit", "ask", "upvote", "unvote", "report", "raise_hand", "lower_hand"})
	try(s.t2, []string{"reveal", "rotate_keys", "remove_participant"})
	w.check("cmd/wrong-role-every-command", len(wrong) == 0, fmt.Sprintf("every command of the table from an attendee, the presenter's own and some from a team lead (%d)", len(refused)+len(wrong)),
		fmt.Sprintf("%d forbidden; otherwise: %v", len(refused), wrong), "each command's `who`: any other role is refused with forbidden")
}

// secret is a value that only some audiences may ever receive.
type secret struct {
	value   string
	what    string
	allowed func(audience) bool
}

func (w *walker) addSecret(value, what string, allowed func(audience) bool) {
	if value == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, secret{value, what, allowed})
}

func (w *walker) setSecretAllowed(value string, allowed func(audience) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.secrets {
		if w.secrets[i].value == value {
			w.secrets[i].allowed = allowed
		}
	}
}

func onlyTeam(team string) func(audience) bool {
	return func(a audience) bool { return a.role == "team" && a.team == team }
}

func onlyFacilitator(a audience) bool { return a.role == "facilitator" }

func onlyFacilitatorOr(participant string) func(audience) bool {
	return func(a audience) bool {
		return a.role == "facilitator" || (participant != "" && a.participant == participant)
	}
}

// wsEstimates walks the room's estimate on inv, the aspect under
// discussion: who may open, estimate and close, the ranges, and that no
// estimate reaches anyone but its author before the reveal (the audits of
// every frame check the rest). It leaves estimating open for team t1, with
// Ana at level 2 and team t2 at level 4, for the reveal that follows.
func (w *walker) wsEstimates(ctx context.Context, s *session, inv, adopt string) {
	t1, t2 := s.team(0), s.team(1)
	const saysLevel = "estimate level (1 to the model's top)"
	w.expect(ctx, "cmd/open_estimates-attendee", s.ana, map[string]any{"type": "open_estimates", "team": t1}, "forbidden", "", "open_estimates: facilitator")
	w.expect(ctx, "cmd/open_estimates-other-aspect", s.fac, map[string]any{"type": "open_estimates", "aspect": adopt, "team": t1}, "conflict", "",
		"open_estimates aspect: the aspect under discussion; another is conflict")
	w.expect(ctx, "cmd/open_estimates-unknown-team", s.fac, map[string]any{"type": "open_estimates", "team": "t99"}, "not_found", "team", "not_found: no such team")
	w.expect(ctx, "cmd/estimate-not-open", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 2}, "conflict", "", "the team must be open for estimates")
	w.expect(ctx, "cmd/open_estimates", s.fac, map[string]any{"type": "open_estimates", "team": t1}, "", "", "open_estimates aspect, team")
	w.expect(ctx, "cmd/open_estimates-again", s.fac, map[string]any{"type": "open_estimates", "team": t1}, "conflict", "", "conflict: already open")
	w.expect(ctx, "cmd/estimate-level-0", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 0}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/estimate-level-5", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 5}, "invalid", "level", saysLevel)
	w.expect(ctx, "cmd/estimate-unknown-team", s.ana, map[string]any{"type": "estimate", "team": "t99", "level": 2}, "not_found", "team", "not_found: no such team")
	w.expect(ctx, "cmd/estimate-other-team-closed", s.ana, map[string]any{"type": "estimate", "team": t2, "level": 2}, "conflict", "", "the team must be open for estimates")
	w.expect(ctx, "cmd/estimate-itself", s.t1, map[string]any{"type": "estimate", "team": t1, "level": 3}, "forbidden", "", "a lead estimating its own team is forbidden")
	w.expect(ctx, "cmd/estimate-facilitator", s.fac, map[string]any{"type": "estimate", "team": t1, "level": 3}, "forbidden", "", "estimate: attendee, team lead of another team")
	w.expect(ctx, "cmd/estimate-presenter", s.pres, map[string]any{"type": "estimate", "team": t1, "level": 3}, "forbidden", "", "estimate: attendee, team lead of another team")
	w.expect(ctx, "cmd/estimate-with-rationale", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 2, "rationale": "x"}, "invalid", "rationale",
		"a command carries only the fields its row names")
	m := w.expect(ctx, "cmd/estimate", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 3}, "", "", "estimate aspect, team, level")
	if m != nil && m.Type == "ack" {
		var res struct {
			Aspect, Team string
			Level, Count int
		}
		_ = json.Unmarshal(m.Result, &res)
		w.check("cmd/estimate-result", res.Aspect == inv && res.Team == t1 && res.Level == 3 && res.Count == 1, "estimate "+t1+" level 3", string(m.Result),
			"the ack's result holds {aspect,team,level,count}")
		w.retry(ctx, "cmd/estimate-retry", s.ana, m, map[string]any{"id": m.ID, "type": "estimate", "team": t1, "level": 3})
	}
	w.expect(ctx, "cmd/estimate-same-level", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 3}, "conflict", "", "the same level again is conflict")
	w.expect(ctx, "cmd/estimate-change", s.ana, map[string]any{"type": "estimate", "team": t1, "level": 2}, "", "", "estimating again changes the estimate")
	w.expect(ctx, "cmd/estimate-team-lead", s.t2, map[string]any{"type": "estimate", "team": t1, "level": 4}, "", "", "estimate: team lead of another team")
	w.expect(ctx, "cmd/close_estimates-none", s.fac, map[string]any{"type": "close_estimates", "team": t2}, "conflict", "", "close_estimates: conflict when none is open")
	w.expect(ctx, "cmd/close_estimates", s.fac, map[string]any{"type": "close_estimates", "team": t1}, "", "", "close_estimates aspect, team")
	w.expect(ctx, "cmd/estimate-closed", s.bo, map[string]any{"type": "estimate", "team": t1, "level": 1}, "conflict", "", "the team must be open for estimates")
	w.expect(ctx, "cmd/open_estimates-reopen", s.fac, map[string]any{"type": "open_estimates", "team": t1}, "", "", "reopening a closed estimation keeps its estimates")
	w.expect(ctx, "cmd/set_estimate_each_turn", s.fac, map[string]any{"type": "set_estimate_each_turn", "on": true}, "", "", "set_estimate_each_turn on")
	w.expect(ctx, "cmd/set_estimate_each_turn-off", s.fac, map[string]any{"type": "set_estimate_each_turn"}, "", "", "set_estimate_each_turn on")
	w.expect(ctx, "cmd/set_estimate_each_turn-attendee", s.ana, map[string]any{"type": "set_estimate_each_turn", "on": true}, "forbidden", "", "set_estimate_each_turn: facilitator")
}
