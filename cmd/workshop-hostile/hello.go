package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// session is the main room with a connection per role.
type session struct {
	room    *createdRoom
	aspects []string // the model's aspect ids, in order
	epoch   string
	fac     *wsClient
	t1, t2  *wsClient
	pres    *wsClient
	ana     *wsClient // attendee Ana
	bo      *wsClient // attendee Bo
	carl    *wsClient // attendee Carl
	anaID   string
	anaTok  string
	boID    string
	boTok   string
	carlID  string
}

func (s *session) team(i int) string { return s.room.Teams[i].ID }

// wsOrigin walks the upgrade's Origin check.
func (w *walker) wsOrigin(ctx context.Context, r *createdRoom) {
	path := "/api/rooms/" + r.ID + "/ws"
	c, resp, err := w.dialWS(ctx, path, dialOpts{src: w.shared(), origin: "https://evil.example"})
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if c != nil {
		c.CloseNow()
	}
	w.check("ws/origin-foreign", err != nil && status == 403, "upgrade "+path+" with Origin: https://evil.example", fmt.Sprintf("HTTP %d (%v)", status, err),
		"others are refused with 403")
	own := w.cfg.base.Scheme + "://" + w.cfg.base.Host
	c, resp, err = w.dialWS(ctx, path, dialOpts{src: w.shared(), origin: own})
	status = 0
	if resp != nil {
		status = resp.StatusCode
	}
	if c != nil {
		c.CloseNow()
	}
	w.check("ws/origin-same-host", err == nil && status == 101, "upgrade with Origin: "+own, fmt.Sprintf("HTTP %d (%v)", status, err), "same host as the request is allowed")
	c, resp, err = w.dialWS(ctx, path, dialOpts{src: w.shared()})
	status = 0
	if resp != nil {
		status = resp.StatusCode
	}
	if c != nil {
		c.CloseNow()
	}
	w.check("ws/origin-none", err == nil && status == 101, "upgrade without Origin", fmt.Sprintf("HTTP %d (%v)", status, err), "a request without Origin (a non-browser client) is allowed")
}

// welcomeProblems answers what in a welcome does not match PROTOCOL.md for
// the role.
func welcomeProblems(m *msg, role, team string, r *createdRoom) []string {
	var p []string
	if m.Role != role {
		p = append(p, fmt.Sprintf("role %q, want %q", m.Role, role))
	}
	if m.Epoch == "" {
		p = append(p, "no epoch")
	}
	if m.Now == nil || time.Since(time.UnixMilli(*m.Now)).Abs() > clockSkew {
		p = append(p, "now missing or far from this machine's clock")
	}
	if role == "attendee" {
		if m.Token == "" || m.Participant == "" {
			p = append(p, "attendee without participant or token")
		}
	} else if m.has("token") {
		p = append(p, "token sent to a "+role)
	}
	gotTeam := ""
	if m.Team != nil {
		gotTeam = *m.Team
	}
	if gotTeam != team {
		p = append(p, fmt.Sprintf("team %q, want %q", gotTeam, team))
	}
	if role == "facilitator" {
		var keys struct {
			Presenter string            `json:"presenter"`
			Teams     map[string]string `json:"teams"`
		}
		_ = json.Unmarshal(m.Keys, &keys)
		want := map[string]string{}
		for _, t := range r.Teams {
			want[t.ID] = t.Key
		}
		if keys.Presenter != r.PresenterKey || !maps.Equal(keys.Teams, want) {
			p = append(p, "keys do not match the created room's presenter and team keys")
		}
	} else if m.has("keys") {
		p = append(p, "keys sent to a "+role)
	}
	return p
}

// awaitSnapshot waits for the snapshot after the welcome and checks it
// continues the welcome's epoch.
func (cl *wsClient) awaitSnapshot(ctx context.Context, from int) (*msg, error) {
	return cl.await(ctx, from, "snapshot", func(m *msg) bool { return m.Type == "snapshot" })
}

// wsHello walks every hello form and answers the main session.
func (w *walker) wsHello(ctx context.Context, r *createdRoom) *session {
	s := &session{room: r}
	type role struct {
		name, role, team string
		hello            map[string]any
		into             **wsClient
	}
	roles := []role{
		{"facilitator", "facilitator", "", map[string]any{"key": r.FacilitatorKey}, &s.fac},
		{"team lead " + r.Teams[0].Name, "team", r.Teams[0].ID, map[string]any{"key": r.Teams[0].Key}, &s.t1},
		{"team lead " + r.Teams[1].Name, "team", r.Teams[1].ID, map[string]any{"key": r.Teams[1].Key}, &s.t2},
		{"presenter", "presenter", "", map[string]any{"key": r.PresenterKey}, &s.pres},
		{"attendee Ana", "attendee", "", map[string]any{"name": "Ana"}, &s.ana},
		{"attendee Bo", "attendee", "", map[string]any{"name": "Bo"}, &s.bo},
		{"attendee Carl", "attendee", "", map[string]any{"name": "Carl"}, &s.carl},
	}
	for _, ro := range roles {
		sent := "hello " + jsonText(redactHello(ro.hello))
		cl, m, err := w.connect(ctx, ro.name, r.ID, ro.hello, audience{role: ro.role, team: ro.team}, dialOpts{})
		if err != nil {
			w.check("ws/hello-"+ro.role, false, sent, err.Error(), "answers welcome, then a snapshot")
			return nil
		}
		*ro.into = cl
		problems := welcomeProblems(m, ro.role, ro.team, r)
		if ro.role == "attendee" && m.Name != ro.hello["name"] {
			problems = append(problems, fmt.Sprintf("name %q", m.Name))
		}
		snap, err := cl.awaitSnapshot(ctx, 0)
		if err != nil {
			problems = append(problems, err.Error())
		} else if snap.Epoch != m.Epoch || snap.Seq == nil || *snap.Seq == 0 || !strings.Contains(string(snap.Room), `"id":"`+r.ID+`"`) {
			problems = append(problems, "snapshot epoch/seq/room do not match: "+shorten(snap.String()))
		}
		says := map[string]string{
			"facilitator": "welcome role, epoch, now; a facilitator's welcome carries keys {presenter, teams}; no token; then a snapshot",
			"team":        "welcome with team set for team leads; token to attendees only; then a snapshot",
			"presenter":   "welcome; token to attendees only; then a snapshot",
			"attendee":    "a name mints a new attendee identity: welcome with participant, token, name; then a snapshot",
		}[ro.role]
		w.check("ws/hello-"+strings.ReplaceAll(ro.name, " ", "-"), len(problems) == 0, sent, fmt.Sprintf("%s %v", shorten(m.String()), problems), says)
		if snap != nil && (ro.role == "facilitator" || ro.name == "attendee Ana") {
			var room struct {
				Secrets map[string]json.RawMessage `json:"secrets"`
			}
			_ = json.Unmarshal(snap.Room, &room)
			_, gen := room.Secrets["generation"]
			w.check("ws/snapshot-secrets-"+ro.role, gen && len(room.Secrets) == 1, sent, "room.secrets = "+jsonText(room.Secrets),
				"`secrets`: `{generation}` only: key hashes never leave the server")
		}
		if snap != nil && s.aspects == nil {
			s.epoch = snap.Epoch
			var room struct {
				Model struct {
					Aspects []struct {
						ID string `json:"id"`
					} `json:"aspects"`
				} `json:"model"`
			}
			_ = json.Unmarshal(snap.Room, &room)
			for _, a := range room.Model.Aspects {
				s.aspects = append(s.aspects, a.ID)
			}
		}
		if ro.role == "attendee" {
			switch ro.name {
			case "attendee Ana":
				s.anaID, s.anaTok = m.Participant, m.Token
			case "attendee Bo":
				s.boID, s.boTok = m.Participant, m.Token
			case "attendee Carl":
				s.carlID = m.Participant
			}
		}
	}
	if len(s.aspects) < 2 {
		w.check("ws/snapshot-model", false, "hello as facilitator", "no aspects in the snapshot's room.model", "room.model.aspects")
		return nil
	}

	// An attendee comes back with participant and token and no name.
	s.ana.close()
	cl, m, err := w.connect(ctx, "attendee Ana (resumed)", r.ID, map[string]any{"participant": s.anaID, "token": s.anaTok}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("ws/hello-resume-identity", false, "hello participant+token", err.Error(), "participant+token resumes an identity")
		return nil
	}
	s.ana = cl
	w.check("ws/hello-resume-identity", m.Participant == s.anaID && m.Token == s.anaTok && m.Role == "attendee",
		"hello {participant, token} of Ana", shorten(m.String()),
		"participant+token resumes one; token is sent to attendees on every welcome, the same token as long as the name stays the same")
	w.check("ws/hello-resume-keeps-name", m.Name == "Ana", "hello {participant, token} of Ana, no name", fmt.Sprintf("name %q", m.Name),
		"participant+token resumes one, under the name the token carries")

	// A name next to participant and token renames.
	ren, m, err := w.connect(ctx, "attendee Bo (renamed)", r.ID, map[string]any{"participant": s.boID, "token": s.boTok, "name": "Bo B"}, audience{role: "attendee"}, dialOpts{})
	w.check("ws/hello-rename", err == nil && m.Participant == s.boID && m.Name == "Bo B" && m.Token != "" && m.Token != s.boTok,
		`hello {participant, token, name:"Bo B"} of Bo`, errText(m, err), "or under name when the hello gives one (a rename); a rename answers a new token in welcome")
	if ren != nil {
		ren.close()
	}
	if err == nil && m.Token != "" {
		s.boTok = m.Token // the client keeps the newest
		again, m2, err := w.connect(ctx, "attendee Bo (renamed, resumed)", r.ID, map[string]any{"participant": s.boID, "token": s.boTok}, audience{role: "attendee"}, dialOpts{})
		w.check("ws/hello-rename-kept", err == nil && m2.Name == "Bo B" && m2.Token == s.boTok, "hello {participant, token} with the token of the rename, no name", errText(m2, err),
			"resumes under the name the token carries")
		if again != nil {
			again.close()
		}
	}
	name40 := strings.Repeat("n", 40)
	cl40, m, err := w.connect(ctx, "attendee n*40", r.ID, map[string]any{"name": name40}, audience{role: "attendee"}, dialOpts{})
	w.check("ws/hello-name-40", err == nil && m.Name == name40, "hello with a 40-character name", errText(m, err), "a name (1 to 40 characters) mints a new attendee identity")
	if cl40 != nil {
		cl40.close()
	}

	w.badHellos(ctx, s)
	return s
}

// redactHello shortens keys and tokens in a hello for the report.
func redactHello(h map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		if s, ok := v.(string); ok && (k == "key" || k == "token") && len(s) > 6 {
			v = s[:4] + "…"
		}
		out[k] = v
	}
	return out
}

// closeCheck opens a connection, sends first (nil: nothing) as a frame of
// typ, and checks the server closes it with code and reason: exactly, or,
// when reason ends in ": ", starting with it.
func (w *walker) closeCheck(ctx context.Context, name, roomID string, typ websocket.MessageType, first []byte, code websocket.StatusCode, reason, says string) {
	cl, err := w.open(ctx, name, roomID, audience{role: "stranger"}, dialOpts{})
	if err != nil {
		w.check(name, false, string(first), err.Error(), says)
		return
	}
	defer cl.conn.CloseNow()
	if first != nil {
		if err := cl.sendRaw(ctx, typ, first); err != nil {
			w.check(name, false, string(first), err.Error(), says)
			return
		}
	}
	got, why, err := cl.waitClose(ctx, replyTimeout)
	sent := shorten(string(first))
	if typ == websocket.MessageBinary {
		sent = "binary frame " + sent
	}
	w.check(name, err == nil && got == code && reasonIs(why, reason), sent, closeText(got, why, err), says)
}

// reasonIs matches a close reason against PROTOCOL.md's: exactly, or by
// prefix when the documented one ends in ": " (a message follows).
func reasonIs(got, want string) bool {
	if strings.HasSuffix(want, ": ") {
		return strings.HasPrefix(got, want) && len(got) > len(want)
	}
	return got == want
}

func closeText(code websocket.StatusCode, reason string, err error) string {
	if err != nil {
		return err.Error()
	}
	if code == -1 {
		return "connection ended without a close frame"
	}
	return fmt.Sprintf("close %d %q", int(code), reason)
}

// badHellos walks the hellos that must be refused, each with its close
// code and the exact reason of PROTOCOL.md's close code table.
func (w *walker) badHellos(ctx context.Context, s *session) {
	r := s.room
	hello := func(fields string) []byte { return []byte(`{"type":"hello"` + fields + `}`) }
	const says4000 = "4000 `protocol error: …` (first message not a valid `hello`)"
	const needs = "protocol error: hello needs a key, a name, or a participant and token"
	const says4001 = "4001 `unauthorized` (wrong key or token)"
	tampered := s.anaTok
	if i := strings.LastIndexByte(tampered, '.'); i >= 0 {
		tampered = tampered[:i+1] + base64.RawURLEncoding.EncodeToString([]byte("Mallory"))
	}
	text, binary := websocket.MessageText, websocket.MessageBinary
	cases := []struct {
		name   string
		typ    websocket.MessageType
		first  []byte
		code   websocket.StatusCode
		reason string
		says   string
	}{
		{"ws/hello-wrong-key", text, hello(`,"key":"` + randHex(24) + `"`), 4001, "unauthorized", says4001},
		{"ws/hello-wrong-token", text, hello(`,"participant":"` + s.anaID + `","token":"` + randHex(24) + `"`), 4001, "unauthorized", says4001},
		{"ws/hello-tampered-token-name", text, hello(`,"participant":"` + s.anaID + `","token":"` + tampered + `"`), 4001, "unauthorized",
			says4001 + "; nobody can change the name in a token without the secret"},
		{"ws/hello-unknown-participant", text, hello(`,"participant":"p_nobody","token":"` + randHex(24) + `"`), 4001, "unauthorized", says4001},
		{"ws/hello-empty", text, hello(``), 4000, needs, "4000 `" + needs + "`"},
		{"ws/hello-empty-name", text, hello(`,"name":""`), 4000, needs, "a field at its zero value counts as absent: 4000 `" + needs + "`"},
		{"ws/hello-token-only", text, hello(`,"token":"` + s.anaTok + `"`), 4000, "protocol error: ", "a hello without a key, a name or a participant closes with 4000"},
		{"ws/hello-name-41", text, hello(`,"name":"` + strings.Repeat("n", 41) + `"`), 4000, "protocol error: name: at most 40 characters, got 41",
			"4000 `protocol error: name: at most 40 characters, got 41`"},
		{"ws/hello-foreign-field", text, hello(`,"name":"Ana","question":"q1"`), 4000, "protocol error: question: not a field of hello",
			"a field of another message closes with 4000 `protocol error: question: not a field of hello`"},
		{"ws/hello-key-and-name", text, hello(`,"key":"` + r.PresenterKey + `","name":"Ana"`), 4000, "protocol error: ",
			"a key next to an attendee's fields closes the connection with 4000"},
		{"ws/first-message-ping", text, []byte(`{"type":"ping","id":"p1","t":1}`), 4000, "protocol error: the first message must be a hello", says4000},
		{"ws/first-message-command", text, []byte(`{"id":"c1","type":"raise_hand"}`), 4000, "protocol error: the first message must be a hello", says4000},
		{"ws/first-message-malformed", text, []byte(`{"type":"hello",`), 4000, "protocol error: malformed message: the JSON ends too soon",
			"4000 `protocol error: ` and the message an error would carry (`malformed message: the JSON ends too soon`)"},
		{"ws/first-message-binary", binary, hello(`,"name":"Ana"`), 4000, "protocol error: text frames only", "4000 `protocol error: text frames only`"},
		{"ws/hello-unknown-room", text, hello(`,"name":"Ana"`), 4004, "room not found", "4004 `room not found`"},
	}
	for _, c := range cases {
		id := r.ID
		if c.code == 4004 {
			id = "00000000-0000-4000-8000-" + randHex(6)
		}
		w.closeCheck(ctx, c.name, id, c.typ, c.first, c.code, c.reason, c.says)
	}
}

// startHelloTimeout opens a connection that sends nothing and answers a
// function that reports how it was closed: PROTOCOL.md says hello must
// come within 10 seconds, and the close is 4000 with a close frame. It
// runs while the rest of the walk goes on.
func (w *walker) startHelloTimeout(ctx context.Context, roomID string) func() {
	const name, says = "ws/hello-timeout", "a connection that sends nothing for 10 seconds is closed with 4000 `protocol error: no hello within 10s` (a close frame, then the connection ends)"
	start := time.Now()
	cl, err := w.open(ctx, name, roomID, audience{role: "stranger"}, dialOpts{})
	if err != nil {
		return func() { w.check(name, false, "nothing", err.Error(), says) }
	}
	type result struct {
		code   websocket.StatusCode
		reason string
		err    error
		after  time.Duration
	}
	res := make(chan result, 1)
	go func() {
		code, reason, err := cl.waitClose(ctx, helloTimeout+closeSlack)
		res <- result{code, reason, err, time.Since(start)}
		cl.conn.CloseNow()
	}()
	return func() {
		r := <-res
		ok := r.err == nil && r.code == 4000 && r.reason == "protocol error: no hello within 10s" && r.after >= helloTimeout-time.Second
		w.check(name, ok, "nothing after the upgrade", fmt.Sprintf("%s after %s", closeText(r.code, r.reason, r.err), r.after.Round(100*time.Millisecond)), says)
	}
}

// wsResume walks hello with epoch and seq, the resume message and ping.
func (w *walker) wsResume(ctx context.Context, s *session) {
	r := s.room
	// Ana drops; something happens; Ana comes back with epoch and seq.
	seq := s.ana.head()
	s.ana.close()
	if m, err := s.fac.cmd(ctx, map[string]any{"type": "set_note", "aspect": s.aspects[0], "text": "while Ana was away"}); err != nil || m.Type != "ack" {
		w.check("ws/resume-setup", false, "set_note", errText(m, err), "ack")
		return
	}
	hello := map[string]any{"participant": s.anaID, "token": s.anaTok, "epoch": s.epoch, "seq": seq}
	cl, m, err := w.connect(ctx, "attendee Ana (resumed with seq)", r.ID, hello, audience{role: "attendee"}, dialOpts{})
	sent := fmt.Sprintf("hello {participant, token, epoch:%q, seq:%d}", s.epoch, seq)
	if err != nil {
		w.check("ws/hello-epoch-seq", false, sent, err.Error(), "welcome, then events with everything after seq")
		return
	}
	s.ana = cl
	next, err := cl.await(ctx, 1, "events or snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
	ok := err == nil && next.Type == "events" && len(next.Events) > 0 && next.Events[0].Seq == seq+1 && next.Epoch == ""
	hasNote := false
	if ok {
		for _, e := range next.Events {
			hasNote = hasNote || e.Type == "note_set"
		}
	}
	w.check("ws/hello-epoch-seq", ok && hasNote && m.Epoch == s.epoch, sent, errText(next, err),
		"when they match what the server can continue, welcome (with the epoch), then events with everything after seq (they name no epoch)")

	for _, c := range []struct {
		name  string
		epoch string
		seq   uint64
		says  string
	}{
		{"ws/hello-wrong-epoch", "not-" + s.epoch, seq, "otherwise welcome and a snapshot"},
		{"ws/hello-seq-ahead", s.epoch, seq + 1_000_000, "otherwise (the server cannot continue) welcome and a snapshot"},
	} {
		h := map[string]any{"key": r.FacilitatorKey, "epoch": c.epoch, "seq": c.seq}
		cl, _, err := w.connect(ctx, "facilitator ("+c.name+")", r.ID, h, audience{role: "facilitator"}, dialOpts{})
		var next *msg
		if err == nil {
			next, err = cl.await(ctx, 1, "events or snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
			cl.close()
		}
		w.check(c.name, err == nil && next.Type == "snapshot", fmt.Sprintf("hello {key, epoch:%q, seq:%d}", c.epoch, c.seq), errText(next, err), c.says)
	}

	// resume on an open connection.
	head := cl.head()
	from := cl.mark()
	if err := cl.resume(ctx, s.epoch, head-1); err != nil {
		w.check("ws/resume", false, "resume", err.Error(), "events after seq")
		return
	}
	got, err := cl.await(ctx, from, "events or snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
	w.check("ws/resume", err == nil && got.Type == "events" && len(got.Events) > 0 && got.Events[0].Seq == head,
		fmt.Sprintf(`{"type":"resume","epoch":%q,"seq":%d}`, s.epoch, head-1), errText(got, err), "the server answers events after seq, or a snapshot")
	from = cl.mark()
	_ = cl.resume(ctx, "not-"+s.epoch, head)
	got, err = cl.await(ctx, from, "snapshot", func(m *msg) bool { return m.Type == "events" || m.Type == "snapshot" })
	w.check("ws/resume-wrong-epoch", err == nil && got.Type == "snapshot", fmt.Sprintf(`{"type":"resume","epoch":"not-…","seq":%d}`, head), errText(got, err),
		"events after seq, or a snapshot (the epoch changed)")

	// ping
	t := time.Now().UnixMilli()
	head = cl.head()
	from = cl.mark()
	_ = cl.send(ctx, map[string]any{"type": "ping", "id": "p1", "t": t})
	pong, err := cl.await(ctx, from, "pong", func(m *msg) bool { return m.Type == "pong" })
	ok = err == nil && pong.ID == "p1" && pong.T != nil && *pong.T == t && pong.Now != nil &&
		time.Since(time.UnixMilli(*pong.Now)).Abs() < clockSkew && pong.Seq != nil && *pong.Seq >= head
	w.check("ws/ping", ok, fmt.Sprintf(`{"type":"ping","id":"p1","t":%d}`, t), errText(pong, err),
		"pong: t echoes the ping, now is the server clock, seq the room's newest sequence; id answered")
}
