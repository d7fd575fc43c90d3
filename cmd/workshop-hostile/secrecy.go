package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// keyHashFields are the names under which key material would travel.
var keyHashFields = map[string]bool{"facilitatorKeyHash": true, "presenterKeyHash": true, "teamKeyHashes": true, "participantSecret": true, "keyHash": true}

// auditMessage checks one server message against what PROTOCOL.md lets
// the audience see, and answers the violations.
func auditMessage(aud audience, m *msg) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: ", m.Type)+fmt.Sprintf(format, args...))
	}
	var v any
	_ = json.Unmarshal(m.raw, &v)
	walkJSON(v, func(k string, x any) {
		if keyHashFields[k] && !emptyJSON(x) {
			bad("%s carries %s (key hashes never leave the server)", m.Type, k)
		}
	})
	switch m.Type {
	case "welcome":
		if aud.role != "attendee" && m.has("token") {
			bad("token sent to a %s (token is sent to attendees only)", aud.role)
		}
		if aud.role != "facilitator" && m.has("keys") {
			bad("keys sent to a %s (a facilitator's welcome carries keys)", aud.role)
		}
	case "snapshot":
		out = append(out, auditRoom(aud, m.Room)...)
		out = append(out, auditPresence(aud, m.Presence)...)
	case "presence":
		out = append(out, auditPresence(aud, m.Presence)...)
	case "events":
		for _, e := range m.Events {
			out = append(out, auditEvent(aud, e)...)
		}
	}
	return out
}

func emptyJSON(x any) bool {
	switch t := x.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}

// walkJSON calls f for every object member, depth first.
func walkJSON(v any, f func(key string, x any)) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			f(k, x)
			walkJSON(x, f)
		}
	case []any:
		for _, x := range t {
			walkJSON(x, f)
		}
	}
}

// auditRoom checks a room view ("Room state").
func auditRoom(aud audience, raw json.RawMessage) []string {
	var out []string
	var room struct {
		Scores    map[string]map[string]map[string]json.RawMessage `json:"scores"`
		Estimates map[string]map[string]struct {
			Levels   map[string]json.RawMessage `json:"levels"`
			Revealed bool                       `json:"revealed"`
			Result   json.RawMessage            `json:"result"`
		} `json:"estimates"`
		Questions []struct {
			ID        string          `json:"id"`
			Text      string          `json:"text"`
			Author    string          `json:"author"`
			Anonymous bool            `json:"anonymous"`
			Pending   bool            `json:"pending"`
			Hidden    bool            `json:"hidden"`
			Voters    json.RawMessage `json:"voters"`
		} `json:"questions"`
	}
	if err := json.Unmarshal(raw, &room); err != nil {
		return []string{"snapshot: room is not the documented object: " + err.Error()}
	}
	for team, byAspect := range room.Scores {
		own := aud.role == "team" && aud.team == team
		for aspect, sc := range byAspect {
			var revealed bool
			_ = json.Unmarshal(sc["revealed"], &revealed)
			for _, f := range []string{"level", "rationale", "draftLevel", "draftRationale"} {
				_, has := sc[f]
				if !has || own {
					continue
				}
				if strings.HasPrefix(f, "draft") || !revealed {
					out = append(out, fmt.Sprintf("snapshot: scores.%s.%s.%s reaches a %s (level and rationale only once revealed; drafts to that team only)", team, aspect, f, aud.role))
				}
			}
		}
	}
	for team, byAspect := range room.Estimates {
		for aspect, e := range byAspect {
			for p := range e.Levels {
				if p != aud.participant {
					out = append(out, fmt.Sprintf("snapshot: estimates.%s.%s.levels holds %s's estimate (only the client's own, and nobody's for the facilitator)", team, aspect, p))
				}
			}
			if len(e.Result) > 0 && !e.Revealed {
				out = append(out, fmt.Sprintf("snapshot: estimates.%s.%s.result before the reveal (result only once revealed)", team, aspect))
			}
		}
	}
	for _, q := range room.Questions {
		mine := aud.participant != "" && q.Author == aud.participant
		if aud.role != "facilitator" && q.Hidden {
			out = append(out, fmt.Sprintf("snapshot: hidden question %s reaches a %s", q.ID, aud.role))
		}
		if aud.role != "facilitator" && q.Pending && !mine && aud.role != "team" {
			out = append(out, fmt.Sprintf("snapshot: pending question %s reaches a %s who did not ask it", q.ID, aud.role))
		}
		for _, v := range participantIDs(q.Voters) {
			if aud.role != "facilitator" && v != aud.participant {
				out = append(out, fmt.Sprintf("snapshot: question %s voters holds %s (voters holds only the client's own participant id)", q.ID, v))
			}
		}
	}
	return out
}

// auditPresence checks presence: names reach the facilitator only.
func auditPresence(aud audience, raw json.RawMessage) []string {
	if aud.role == "facilitator" || len(raw) == 0 {
		return nil
	}
	var p struct {
		Names []json.RawMessage `json:"names"`
	}
	_ = json.Unmarshal(raw, &p)
	if len(p.Names) > 0 {
		return []string{fmt.Sprintf("presence: %d names reach a %s (names reach the facilitator only)", len(p.Names), aud.role)}
	}
	return nil
}

// auditEvent checks one event against the Events table.
func auditEvent(aud audience, e event) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("event %d %s: ", e.Seq, e.Type)+fmt.Sprintf(format, args...))
	}
	own := aud.role == "team" && aud.team == e.str("team")
	switch e.Type {
	case "private":
		for k := range e.fields {
			if k != "seq" && k != "type" && k != "at" {
				bad("carries %s (private: nothing, it only moves the sequence)", k)
			}
		}
	case "room_created":
		bad("reaches a client (clients get a snapshot instead)")
	case "draft_saved":
		if !own {
			bad("reaches a %s (that team only)", aud.role)
		}
	case "submitted":
		if !own && (e.fields["level"] != nil || e.fields["rationale"] != nil) {
			bad("level/rationale reach a %s (only that team gets level and rationale)", aud.role)
		}
	case "upvoted", "unvoted":
		if p := e.str("participant"); p != "" && aud.role != "facilitator" && p != aud.participant {
			bad("participant %s reaches a %s (only the voter and the facilitator)", p, aud.role)
		}
	case "estimated":
		// The estimator's own only: the facilitator is no exception.
		if p := e.str("participant"); p != "" && p != aud.participant || p == "" && e.fields["level"] != nil {
			bad("another's estimate reaches a %s (participant and level only for the estimator itself)", aud.role)
		}
	case "reported":
		if aud.role != "facilitator" && e.str("participant") != aud.participant {
			bad("reaches a %s who did not report (the reporter and the facilitator only)", aud.role)
		}
	case "participant_removed":
		if aud.role != "facilitator" {
			bad("reaches a %s (facilitator only)", aud.role)
		}
	case "question_posted", "question_approved", "question_restored":
		var q struct {
			Author  string `json:"author"`
			Pending bool   `json:"pending"`
			Hidden  bool   `json:"hidden"`
		}
		_ = json.Unmarshal(e.fields["q"], &q)
		mine := aud.participant != "" && q.Author == aud.participant
		if aud.role != "facilitator" && ((q.Pending && !mine && aud.role != "team") || q.Hidden) {
			bad("a pending or hidden question reaches a %s", aud.role)
		}
	}
	var v any
	_ = json.Unmarshal(e.raw, &v)
	if !own {
		walkJSON(v, func(k string, x any) {
			if k == "draftLevel" || k == "draftRationale" {
				bad("%s reaches a %s (drafts to that team only)", k, aud.role)
			}
		})
	}
	return out
}

// auditAll reports, per connection, the secrecy rules, the sequence, the
// frame format and the one-answer-per-command rule over everything the
// connection received.
func (w *walker) auditAll() {
	w.mu.Lock()
	conns := append([]*wsClient(nil), w.conns...)
	secrets := append([]secret(nil), w.secrets...)
	w.mu.Unlock()
	var seq, format, replies []string
	secrecy := newTally()
	frames, commands := 0, 0
	checked := 0
	for _, cl := range conns {
		cl.mu.Lock()
		aud := cl.aud
		if aud.role == "stranger" {
			cl.mu.Unlock()
			continue
		}
		checked++
		frames += len(cl.frames)
		for _, s := range secrets {
			if s.allowed(aud) {
				continue
			}
			for _, f := range cl.frames {
				if strings.Contains(string(f), s.value) {
					secrecy.add(fmt.Sprintf("a %s received %s (%s)", aud.role, s.what, excerpt(string(f), s.value)), cl.name)
					break
				}
			}
		}
		for _, v := range cl.secrecy {
			secrecy.add(v, cl.name)
		}
		for _, g := range cl.seqGaps {
			seq = append(seq, cl.name+": "+g)
		}
		if cl.nonText > 0 {
			format = append(format, fmt.Sprintf("%s: %d binary frames", cl.name, cl.nonText))
		}
		for _, b := range cl.bad {
			format = append(format, cl.name+": "+b)
		}
		cl.mu.Unlock()
		n, p := cl.replies()
		commands += n
		for _, x := range p {
			replies = append(replies, cl.name+": "+x)
		}
	}
	list := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		if len(xs) > 6 {
			return strings.Join(xs[:6], " | ") + fmt.Sprintf(" | … %d more", len(xs)-6)
		}
		return strings.Join(xs, " | ")
	}
	scope := fmt.Sprintf("%d connections, %d frames", checked, frames)
	w.checkFull("secrecy/raw-frames", secrecy.len() == 0, scope+", checked against "+fmt.Sprint(len(secrets))+" planted secrets and the audience rules", "violations: "+secrecy.String(),
		"an unrevealed score, a draft, a hidden or pending question and every key never leave the server toward a client whose role may not see them")
	w.check("ws/events-contiguous", len(seq) == 0, scope, "gaps: "+list(seq), "events come in order with contiguous seq")
	w.check("ws/frame-format", len(format) == 0, scope, "problems: "+list(format), "every WebSocket message is UTF-8 text holding one or more JSON messages separated by \\n")
	w.check("ws/one-answer-per-command", len(replies) == 0, fmt.Sprintf("%d command sends", commands), "problems: "+list(replies),
		"each command is answered by exactly one ack or error with its id")
}

// resumeSecrecy is issue 11's two cases: an attendee away while a question
// is posted and hidden, and while a score is revealed and hidden again,
// must not get them in its replay, whether it resumes in hello or with
// resume on an open connection.
func (w *walker) resumeSecrecy(ctx context.Context) {
	r := w.createRoom(ctx, "secrecy/resume-room", `{"title":"Resume secrecy","teams":["Red","Blue"]}`)
	if r == nil {
		return
	}
	fac, _, err := w.connect(ctx, "facilitator R2", r.ID, map[string]any{"key": r.FacilitatorKey}, audience{role: "facilitator"}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello facilitator", err.Error(), "welcome")
		return
	}
	defer fac.close()
	lead, _, err := w.connect(ctx, "team lead Red", r.ID, map[string]any{"key": r.Teams[0].Key}, audience{role: "team", team: r.Teams[0].ID}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello team lead", err.Error(), "welcome")
		return
	}
	defer lead.close()
	asker, _, err := w.connect(ctx, "attendee Asker", r.ID, map[string]any{"name": "Asker"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello attendee", err.Error(), "welcome")
		return
	}
	defer asker.close()
	if m, err := fac.cmd(ctx, map[string]any{"type": "set_approve_first", "on": false}); err != nil || m.Type != "error" && m.Type != "ack" {
		w.check("secrecy/resume-setup", false, "set_approve_first", errText(m, err), "an answer")
		return
	}
	away, wm, err := w.connect(ctx, "attendee Away", r.ID, map[string]any{"name": "Away"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello attendee", err.Error(), "welcome")
		return
	}
	snap, err := away.awaitSnapshot(ctx, 0)
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello attendee", err.Error(), "snapshot")
		return
	}
	stay, _, err := w.connect(ctx, "attendee Stay", r.ID, map[string]any{"name": "Stay"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-setup", false, "hello attendee", err.Error(), "welcome")
		return
	}
	defer stay.close()
	if _, err := stay.awaitSnapshot(ctx, 0); err != nil {
		w.check("secrecy/resume-setup", false, "hello attendee", err.Error(), "snapshot")
		return
	}
	stayHead := stay.head()
	epoch, seq := snap.Epoch, *snap.Seq
	away.close()

	question, rationale := marker("question-posted-then-hidden"), marker("rationale-revealed-then-hidden")
	inv := ""
	var room struct {
		Model struct {
			Aspects []struct {
				ID string `json:"id"`
			} `json:"aspects"`
		} `json:"model"`
	}
	_ = json.Unmarshal(snap.Room, &room)
	if len(room.Model.Aspects) > 0 {
		inv = room.Model.Aspects[0].ID
	}
	steps := []struct {
		cl  *wsClient
		cmd map[string]any
	}{
		{lead, map[string]any{"type": "submit", "aspect": inv, "level": 2, "rationale": rationale}},
		{fac, map[string]any{"type": "start"}},
		{asker, map[string]any{"type": "ask", "text": question}},
		{fac, map[string]any{"type": "reveal", "aspect": inv, "team": r.Teams[0].ID}},
		{fac, map[string]any{"type": "hide_reveal", "aspect": inv, "team": r.Teams[0].ID}},
	}
	var qid string
	for _, st := range steps {
		m, err := st.cl.cmd(ctx, st.cmd)
		if err != nil || m.Type != "ack" {
			w.check("secrecy/resume-setup", false, st.cl.name+" "+jsonText(st.cmd), errText(m, err), "ack")
			return
		}
		if st.cmd["type"] == "ask" {
			qid = m.result("question")
			if m, err := fac.cmd(ctx, map[string]any{"type": "hide_question", "question": qid}); err != nil || m.Type != "ack" {
				w.check("secrecy/resume-setup", false, "hide_question", errText(m, err), "ack")
				return
			}
		}
	}

	// Control: a fresh snapshot at the head is clean.
	fresh, _, err := w.connect(ctx, "attendee Fresh R2", r.ID, map[string]any{"name": "Fresh"}, audience{role: "attendee"}, dialOpts{})
	if err == nil {
		fs, err := fresh.awaitSnapshot(ctx, 0)
		w.check("secrecy/fresh-snapshot-clean", err == nil && presentMarkers(fs, question, rationale) == "[]", "hello as a new attendee at the head",
			"markers in the snapshot: "+presentMarkers(fs, question, rationale), "level and rationale only once revealed; hidden questions to the facilitator only")
		fresh.close()
	}

	// hello with epoch and seq from before.
	back, _, err := w.connect(ctx, "attendee Away (resumed)", r.ID, map[string]any{"participant": wm.Participant, "token": wm.Token, "epoch": epoch, "seq": seq},
		audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("secrecy/resume-hello", false, "hello participant+token+epoch+seq", err.Error(), "welcome then events or a snapshot")
		return
	}
	defer back.close()
	// The answer is events (or a snapshot); a ping's pong after it bounds the wait.
	got, err := back.await(ctx, 1, "events or snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
	from := back.mark()
	_ = back.send(ctx, map[string]any{"type": "ping", "id": "after-resume", "t": 1})
	_, _ = back.await(ctx, from, "pong", func(m *msg) bool { return m.Type == "pong" })
	q, _ := back.rawContains(question, 0)
	ra, _ := back.rawContains(rationale, 0)
	w.check("secrecy/resume-hello-hidden-question", err == nil && !q, fmt.Sprintf("hello {participant, token, epoch, seq:%d} after a question was posted and hidden", seq),
		fmt.Sprintf("%s; the hidden question's text in the replay: %v", shorten(errText(got, err)), q),
		"an event this client may not see arrives as private; a hidden question reaches the facilitator only (issue 11: a resume never tells more than a snapshot)")
	w.check("secrecy/resume-hello-hidden-rationale", err == nil && !ra, fmt.Sprintf("hello {participant, token, epoch, seq:%d} after a reveal and a hide_reveal", seq),
		fmt.Sprintf("the hidden rationale in the replay: %v", ra), "level and rationale only once revealed (issue 11: a resume never tells more than a snapshot)")

	// resume on an open connection that saw it all live: the replay must
	// be no less secret.
	from = stay.mark()
	fm := stay.frameMark()
	_ = stay.resume(ctx, epoch, stayHead)
	got, err = stay.await(ctx, from, "events or snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
	q, _ = stay.rawContains(question, fm)
	ra, _ = stay.rawContains(rationale, fm)
	w.check("secrecy/resume-message", err == nil && !q && !ra, fmt.Sprintf(`{"type":"resume","epoch":…,"seq":%d} once the question and the score are hidden again`, stayHead),
		fmt.Sprintf("%s; hidden question text in the replay: %v, hidden rationale: %v", shorten(errText(got, err)), q, ra),
		"the server answers events after seq, or a snapshot; what it sends never carries what a snapshot at the head would not (issue 11)")
}

// tally groups findings by text, with the connections that showed each.
type tally struct {
	order []string
	who   map[string][]string
}

func newTally() *tally { return &tally{who: map[string][]string{}} }

func (t *tally) add(finding, conn string) {
	if _, ok := t.who[finding]; !ok {
		t.order = append(t.order, finding)
	}
	if ws := t.who[finding]; len(ws) == 0 || ws[len(ws)-1] != conn {
		t.who[finding] = append(ws, conn)
	}
}

func (t *tally) len() int { return len(t.order) }

func (t *tally) String() string {
	if len(t.order) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, f := range t.order {
		if i == 10 {
			fmt.Fprintf(&b, "\n       … %d more", len(t.order)-10)
			break
		}
		ws := t.who[f]
		shown := strings.Join(ws[:min(len(ws), 3)], ", ")
		if len(ws) > 3 {
			shown += fmt.Sprintf(" and %d more", len(ws)-3)
		}
		fmt.Fprintf(&b, "\n       - %s [%s]", f, shown)
	}
	return b.String()
}

// excerpt answers the part of a frame around a secret.
func excerpt(frame, secret string) string {
	i := strings.Index(frame, secret)
	if i < 0 {
		return shorten(frame)
	}
	lo, hi := max(0, i-120), min(len(frame), i+len(secret)+40)
	return "…" + strings.ToValidUTF8(frame[lo:hi], "\uFFFD") + "…"
}

// participantIDs reads voters as PROTOCOL.md leaves its form open: a list
// of participant ids, or an object keyed by them.
func participantIDs(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var set map[string]json.RawMessage
	_ = json.Unmarshal(raw, &set)
	for k := range set {
		list = append(list, k)
	}
	return list
}
