package hub_test

// The contract at its edges: every close code and reason, error code and
// message, and retryAfter that PROTOCOL.md documents is exactly what a
// client gets. Each test reads raw frames from a real WebSocket client of
// its own (rawClient) against a real server.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// rawClient is a bare WebSocket client: it sends frames as they are and
// reads the server's messages one JSON line at a time, so a test sees
// exactly what crossed the wire. Only the test goroutine uses it.
type rawClient struct {
	t       *testing.T
	conn    *websocket.Conn
	pending []map[string]any // lines read but not yet consumed
}

func dialRaw(t *testing.T, ctx context.Context, url string) *rawClient {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(32 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &rawClient{t: t, conn: conn}
}

func (r *rawClient) send(ctx context.Context, typ websocket.MessageType, b []byte) {
	r.t.Helper()
	if err := r.conn.Write(ctx, typ, b); err != nil {
		r.t.Fatalf("write %.80s: %v", b, err)
	}
}

func (r *rawClient) sendText(ctx context.Context, s string) {
	r.send(ctx, websocket.MessageText, []byte(s))
}

// next reads the next server message; a closed connection fails the test.
func (r *rawClient) next(ctx context.Context) map[string]any {
	r.t.Helper()
	for len(r.pending) == 0 {
		_, data, err := r.conn.Read(ctx)
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				r.t.Fatalf("server sent a line that is not JSON: %q", line)
			}
			r.pending = append(r.pending, m)
		}
	}
	m := r.pending[0]
	r.pending = r.pending[1:]
	return m
}

// await reads messages until one of the given type arrives and returns it.
func (r *rawClient) await(ctx context.Context, typ string) map[string]any {
	r.t.Helper()
	for {
		if m := r.next(ctx); m["type"] == typ {
			return m
		}
	}
}

// hello says hello and returns the welcome, once the snapshot (or the
// events) that follows it has arrived too.
func (r *rawClient) hello(ctx context.Context, fields map[string]any) map[string]any {
	r.t.Helper()
	h := map[string]any{"type": "hello"}
	for k, v := range fields {
		h[k] = v
	}
	b, _ := json.Marshal(h)
	r.sendText(ctx, string(b))
	w := r.await(ctx, "welcome")
	for {
		if typ := r.next(ctx)["type"]; typ == "snapshot" || typ == "events" {
			return w
		}
	}
}

// closed reads until the connection ends and returns the close frame the
// server sent; a connection that ends without one fails the test.
func (r *rawClient) closed(ctx context.Context) websocket.CloseError {
	r.t.Helper()
	for {
		_, _, err := r.conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			r.t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

// errorFor sends a raw frame and returns the error the server answers it
// with; pings and presence that arrive meanwhile are skipped. An ack fails
// the test.
func (r *rawClient) errorFor(ctx context.Context, typ websocket.MessageType, frame string) map[string]any {
	r.t.Helper()
	r.send(ctx, typ, []byte(frame))
	for {
		m := r.next(ctx)
		switch m["type"] {
		case "error":
			return m
		case "ack":
			r.t.Fatalf("%s: got an ack, want an error", frame)
		}
	}
}

// alive checks the connection is still open and answering. Not with a
// ping: pings are rate-limited, and a message without a type is answered
// whatever the limits.
func (r *rawClient) alive(ctx context.Context) {
	r.t.Helper()
	if e := r.errorFor(ctx, websocket.MessageText, `{"id":"alive"}`); e["message"] != "type: required" {
		r.t.Fatalf("alive: got %v, want the error type: required", e)
	}
}

// TestContractHelloTimeout: a connection that says nothing within the
// hello timeout gets a close frame with 4000 and the documented reason,
// not a dropped connection.
func TestContractHelloTimeout(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	const timeout = 300 * time.Millisecond
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.HelloTimeout = timeout })
	rm := createRoom(t, srv.URL, map[string]any{"title": "Silence", "teams": []string{"A"}})
	c := dialRaw(t, ctx, srv.wsURL(rm.ID))
	start := time.Now()
	ce := c.closed(ctx)
	if ce.Code != 4000 || ce.Reason != "protocol error: no hello within 300ms" {
		t.Fatalf("close: got %d %q, want 4000 %q", ce.Code, ce.Reason, "protocol error: no hello within 300ms")
	}
	if waited := time.Since(start); waited < timeout {
		t.Fatalf("closed after %v, before the hello timeout of %v", waited, timeout)
	}
	// PROTOCOL.md gives the reason of the default timeout (10 s).
	if want := "protocol error: no hello within " + (10 * time.Second).String(); !protocolDoc(t, "`"+want+"`") {
		t.Fatalf("PROTOCOL.md does not give the reason %q", want)
	}
}

// protocolDoc reports whether PROTOCOL.md holds s.
func protocolDoc(t *testing.T, s string) bool {
	t.Helper()
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(doc), s)
}

// TestContractCloseReasons: each way a connection is refused closes it
// with the documented code and exact reason.
func TestContractCloseReasons(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Refusals", "teams": []string{"A"}})
	url := srv.wsURL(rm.ID)
	long := strings.Repeat("n", room.MaxDisplayNameLen+1)
	cases := []struct {
		name   string
		url    string
		typ    websocket.MessageType
		first  string
		code   websocket.StatusCode
		reason string
	}{
		{"binary hello", url, websocket.MessageBinary, `{"type":"hello","name":"Bin"}`, 4000, "protocol error: text frames only"},
		{"a ping first", url, websocket.MessageText, `{"type":"ping","id":"p","t":1}`, 4000, "protocol error: the first message must be a hello"},
		{"a command first", url, websocket.MessageText, `{"type":"ask","id":"a","text":"hi"}`, 4000, "protocol error: the first message must be a hello"},
		{"malformed hello", url, websocket.MessageText, `{"type":"hello",`, 4000, "protocol error: malformed message: the JSON ends too soon"},
		{"hello with a wrong type", url, websocket.MessageText, `{"type":"hello","seq":"a"}`, 4000, "protocol error: seq: want a whole number of 0 or more, got a string"},
		{"empty hello", url, websocket.MessageText, `{"type":"hello"}`, 4000, "protocol error: hello needs a key, a name, or a participant and token"},
		{"a command field in hello", url, websocket.MessageText, `{"type":"hello","name":"Q","question":"q1"}`, 4000, "protocol error: question: not a field of hello"},
		{"key and name", url, websocket.MessageText, `{"type":"hello","key":"` + rm.FacilitatorKey + `","name":"F"}`, 4000, "protocol error: name: a hello with a key carries no name"},
		{"name too long", url, websocket.MessageText, `{"type":"hello","name":"` + long + `"}`, 4000, "protocol error: name: at most 40 characters, got 41"},
		{"wrong key", url, websocket.MessageText, `{"type":"hello","key":"not-a-key"}`, 4001, "unauthorized"},
		{"forged token", url, websocket.MessageText, `{"type":"hello","participant":"p_x","token":"forged"}`, 4001, "unauthorized"},
		{"participant without token", url, websocket.MessageText, `{"type":"hello","participant":"p_x"}`, 4001, "unauthorized"},
		{"token without participant", url, websocket.MessageText, `{"type":"hello","token":"abc.QW5h"}`, 4000, "protocol error: participant: a hello with a token needs its participant"},
		{"hello over 64 KiB", url, websocket.MessageText, `{"type":"hello","name":"` + strings.Repeat("x", 70<<10) + `"}`, 1009, "read limited at 65537 bytes"},
		{"no such room", srv.wsURL("00000000-0000-4000-8000-000000000000"), websocket.MessageText, `{"type":"hello","name":"Lost"}`, 4004, "room not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ctx, tc.url)
			c.send(ctx, tc.typ, []byte(tc.first))
			ce := c.closed(ctx)
			if ce.Code != tc.code || ce.Reason != tc.reason {
				t.Fatalf("close: got %d %q, want %d %q", ce.Code, ce.Reason, tc.code, tc.reason)
			}
			if !protocolDoc(t, "`"+tc.reason+"`") && !strings.HasPrefix(tc.reason, "protocol error: ") {
				t.Errorf("PROTOCOL.md does not give the reason %q", tc.reason)
			}
		})
	}

	// A frame over 64 KiB after the hello.
	c := dialRaw(t, ctx, url)
	c.hello(ctx, map[string]any{"name": "Big"})
	c.sendText(ctx, `{"type":"ask","id":"big","text":"`+strings.Repeat("x", 70<<10)+`"}`)
	if ce := c.closed(ctx); ce.Code != 1009 || ce.Reason != "read limited at 65537 bytes" {
		t.Fatalf("close after a big frame: got %d %q, want 1009 %q", ce.Code, ce.Reason, "read limited at 65537 bytes")
	}
}

// TestContractErrorMessages sends bad frames on an open connection: each is
// answered with an error whose code and exact message are documented, and
// the connection stays open. The rows of PROTOCOL.md's table under
// `error` are sent as they are, so the table cannot drift from the code.
func TestContractErrorMessages(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Messages", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)
	att := dialRaw(t, ctx, url)
	att.hello(ctx, map[string]any{"name": "Eve"})

	type row struct {
		typ          websocket.MessageType
		frame, code  string
		message, why string
	}
	var rows []row
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	section := splitSections(string(doc))["#### `error`"]
	for _, m := range regexp.MustCompile("(?m)^\\| (`.*`|an empty frame|a binary frame) \\| `(.*)` \\|$").FindAllStringSubmatch(section, -1) {
		r := row{typ: websocket.MessageText, frame: strings.Trim(m[1], "`"), code: room.EINVALID, message: m[2], why: "PROTOCOL.md"}
		switch m[1] {
		case "an empty frame":
			r.frame = ""
		case "a binary frame":
			r.typ, r.frame = websocket.MessageBinary, `{"type":"ping","t":1}`
		}
		rows = append(rows, r)
	}
	if len(rows) < 10 {
		t.Fatalf("PROTOCOL.md's error table: found %d rows, want at least 10", len(rows))
	}
	text := websocket.MessageText
	rows = append(rows,
		row{text, `{"type":"ask","id":"m1","text":42}`, room.EINVALID, "text: want a string, got a number", ""},
		row{text, `{"type":"answer","id":"m2","question":"q1","on":"yes"}`, room.EINVALID, "on: want true or false, got a string", ""},
		row{text, `{"type":"submit","id":"m3","level":true}`, room.EINVALID, "level: want a whole number, got a boolean", ""},
		row{text, `{"type":"extend_turn","id":"m4","seconds":[60]}`, room.EINVALID, "seconds: want a whole number, got a list", ""},
		row{text, `{"type":"set_agenda","id":"m5","order":"investment"}`, room.EINVALID, "order: want a list of ids (strings), got a string", ""},
		row{text, `{"type":"resume","epoch":"e","seq":-1}`, room.EINVALID, "seq: want a whole number of 0 or more, got -1", ""},
		row{text, `{"type":1,"id":"m6"}`, room.EINVALID, "type: want a string, got a number", ""},
		row{text, `{"type":"ask","id":{"a":1}}`, room.EINVALID, "id: want a string, got an object", ""},
		row{text, `{"admin":true,"type":"ask","id":"m7"}`, room.EINVALID, "admin: not a field of ask", ""},
		row{text, `{"admin":true}`, room.EINVALID, "admin: unknown field", ""},
		row{text, `"hello"`, room.EINVALID, "malformed message: want a JSON object, got a string", ""},
		row{text, `{"type":"ping","t":1} {"type":"ping","t":2}`, room.EINVALID, "malformed message: one JSON object per frame", ""},
		row{text, `{"id":"m8"}`, room.EINVALID, "type: required", ""},
		row{text, `{"type":"ask","text":"hi"}`, room.EINVALID, "id: a command needs an id of 1 to 64 characters", ""},
		row{text, `{"type":"make_me_admin","id":"m9"}`, room.EINVALID, `unknown message type "make_me_admin"`, ""},
		row{text, `{"type":"hello","name":"again"}`, room.EINVALID, "hello was already received", ""},
		row{text, `{"type":"upvote","id":"m10","question":"q1","key":"k"}`, room.EINVALID, "key: not a field of upvote", ""},
		row{text, `{"type":"upvote","id":"m11","question":"q1","t":5}`, room.EINVALID, "t: not a field of upvote", ""},
		row{text, `{"type":"ping","id":"m12","t":1,"name":"x"}`, room.EINVALID, "name: not a field of ping", ""},
		row{text, `{"type":"resume","id":"m13","epoch":"e","seq":1,"question":"q1"}`, room.EINVALID, "question: not a field of resume", ""},
		row{text, `{"type":"resume","id":"m14","epoch":"e","seq":1,"t":1}`, room.EINVALID, "t: not a field of resume", ""},
		row{text, `{"type":"raise_hand","id":"m15","aspect":"investment"}`, room.EINVALID, "aspect: not a field of raise_hand", ""},
	)
	for _, r := range rows {
		t.Run(fmt.Sprintf("%.60s", r.frame), func(t *testing.T) {
			e := att.errorFor(ctx, r.typ, r.frame)
			if e["code"] != r.code || e["message"] != r.message {
				t.Errorf("got %v %q, want %v %q (%s)", e["code"], e["message"], r.code, r.message, r.why)
			}
			if regexp.MustCompile(`\b(int|uint64|int64|string|bool)\b.*\bof type\b|Command\.|clientMessage|Go struct`).MatchString(fmt.Sprint(e["message"])) {
				t.Errorf("message %q speaks Go", e["message"])
			}
			att.alive(ctx)
		})
	}
}

// TestContractFieldsTheRoleMayNotSet: a field a command does not take, or
// that the sender's role may not set, is refused with invalid naming it,
// and changes nothing.
func TestContractFieldsTheRoleMayNotSet(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Fields", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})
	lead := dialRaw(t, ctx, url)
	lead.hello(ctx, map[string]any{"key": rm.Teams[0].Key})
	ana := dial(t, ctx, url, map[string]any{"name": "Ana"})
	do(t, ctx, ana, map[string]any{"type": "raise_hand"})
	att := dialRaw(t, ctx, url)
	att.hello(ctx, map[string]any{"name": "Bob"})
	before := fac.Seq()

	cases := []struct {
		name    string
		c       *rawClient
		frame   string
		message string
	}{
		{"a team lead submits for another team", lead, `{"type":"submit","id":"f1","team":"t2","aspect":"investment","level":2}`, "team: a team lead acts for its own team only"},
		{"a team lead names its own team", lead, `{"type":"submit","id":"f2","team":"t1","aspect":"investment","level":2}`, "team: a team lead acts for its own team only"},
		{"a team lead drafts for another team", lead, `{"type":"save_draft","id":"f3","team":"t2","aspect":"investment","level":1}`, "team: a team lead acts for its own team only"},
		{"an attendee lowers another's hand", att, `{"type":"lower_hand","id":"f4","participant":"` + ana.Welcome().Participant + `"}`, "participant: only the facilitator may lower another participant's hand"},
		{"an attendee raises another's hand", att, `{"type":"raise_hand","id":"f5","participant":"` + ana.Welcome().Participant + `"}`, "participant: a participant raises its own hand only"},
		{"an attendee asks under another name", att, `{"type":"ask","id":"f6","text":"hi","name":"Ana"}`, "name: a question carries its author's display name"},
		{"an attendee upvotes with a team", att, `{"type":"upvote","id":"f7","question":"q1","team":"t1"}`, "team: not a field of upvote"},
		{"a team lead submits with a question", lead, `{"type":"submit","id":"f8","aspect":"investment","level":2,"question":"q1"}`, "question: not a field of submit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.c.errorFor(ctx, websocket.MessageText, tc.frame)
			if e["code"] != room.EINVALID || e["message"] != tc.message {
				t.Fatalf("got %v %q, want invalid %q", e["code"], e["message"], tc.message)
			}
		})
	}
	facRaw := dialRaw(t, ctx, url)
	facRaw.hello(ctx, map[string]any{"key": rm.FacilitatorKey})
	for _, tc := range []struct{ frame, message string }{
		{`{"type":"start","id":"g1","aspect":"investment"}`, "aspect: not a field of start"},
		{`{"type":"reveal","id":"g2","team":"t1","level":3}`, "level: not a field of reveal"},
		{`{"type":"call_turn","id":"g3","team":"t1","participant":"` + ana.Welcome().Participant + `"}`, "participant: give the turn to a team or to a participant, not both"},
	} {
		if e := facRaw.errorFor(ctx, websocket.MessageText, tc.frame); e["code"] != room.EINVALID || e["message"] != tc.message {
			t.Errorf("%s: got %v %q, want invalid %q", tc.frame, e["code"], e["message"], tc.message)
		}
	}
	// Nothing was applied: the next command follows the last good one.
	r := do(t, ctx, fac, map[string]any{"type": "set_note", "text": "still here"})
	if r.Seq != before+1 {
		t.Fatalf("seq after refused fields: got %d, want %d", r.Seq, before+1)
	}
}

// legacyToken is an attendee token as servers minted it before tokens
// carried the display name: the bare HMAC of the participant id.
func legacyToken(secret, participant string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(participant))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestContractAttendeeKeepsName: an attendee resuming with participant
// and token and no name keeps its name, on a restarted server too; a
// rename answers a new token; an old token still works.
func TestContractAttendeeKeepsName(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Names", "teams": []string{"A"}})
	fac := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})

	first := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "Ana"})
	w := first.Welcome()
	if w.Name != "Ana" || w.Token == "" {
		t.Fatalf("welcome: got %+v, want Ana with a token", w)
	}
	first.Close()

	// Resumed without a name: still Ana, the same token, and Ana's hand.
	again := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"participant": w.Participant, "token": w.Token})
	if got := again.Welcome(); got.Name != "Ana" || got.Token != w.Token || got.Participant != w.Participant {
		t.Fatalf("resumed welcome: got %+v, want Ana with the same token", got)
	}
	hand := do(t, ctx, again, map[string]any{"type": "raise_hand"})
	if err := fac.WaitSeq(ctx, hand.Seq); err != nil {
		t.Fatal(err)
	}
	if hs := fac.State().Hands; len(hs) != 1 || hs[0].Name != "Ana" {
		t.Fatalf("hands: got %+v, want Ana's", hs)
	}
	again.Close()

	// A rename answers a new token, which carries the new name.
	renamed := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"participant": w.Participant, "token": w.Token, "name": "Ann"})
	w2 := renamed.Welcome()
	if w2.Name != "Ann" || w2.Token == w.Token || w2.Participant != w.Participant {
		t.Fatalf("renamed welcome: got %+v, want Ann with a new token", w2)
	}
	renamed.Close()

	// A name changed inside a token is a forgery.
	mac, _, _ := strings.Cut(w2.Token, ".")
	forged := mac + "." + base64.RawURLEncoding.EncodeToString([]byte("Mallory"))
	c := dialRaw(t, ctx, srv.wsURL(rm.ID))
	c.sendText(ctx, `{"type":"hello","participant":"`+w.Participant+`","token":"`+forged+`"}`)
	if ce := c.closed(ctx); ce.Code != 4001 || ce.Reason != "unauthorized" {
		t.Fatalf("forged name: got %d %q, want 4001 unauthorized", ce.Code, ce.Reason)
	}

	st, err := srv.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	secret := st.Secrets.ParticipantSecret
	fac.Close()

	// After a restart, on the same data: the name comes back from the token.
	srv.Stop()
	srv = startServer(t, dir, "")
	after := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"participant": w.Participant, "token": w2.Token})
	if got := after.Welcome(); got.Name != "Ann" || got.Token != w2.Token {
		t.Fatalf("welcome after a restart: got %+v, want Ann with the same token", got)
	}
	after.Close()

	// An old token, from before tokens carried names, still works: Guest
	// without a name, the name given otherwise, and a new token either way.
	old := legacyToken(secret, "p_legacyattendee")
	for _, tc := range []struct{ name, want string }{{"", "Guest"}, {"Old", "Old"}} {
		hello := map[string]any{"participant": "p_legacyattendee", "token": old}
		if tc.name != "" {
			hello["name"] = tc.name
		}
		c := dial(t, ctx, srv.wsURL(rm.ID), hello)
		got := c.Welcome()
		if got.Name != tc.want || got.Token == old || !strings.Contains(got.Token, ".") {
			t.Fatalf("old token, name %q: got %+v, want %s with a new token", tc.name, got, tc.want)
		}
		c.Close()
		next := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"participant": "p_legacyattendee", "token": got.Token})
		if n := next.Welcome().Name; n != tc.want {
			t.Fatalf("resumed with the new token: got %q, want %q", n, tc.want)
		}
		next.Close()
	}
}

// TestContractUnknownParticipant: a facilitator command naming a
// participant that never existed answers not_found; removing an attendee
// seen only in presence, or one who left after acting, works.
func TestContractUnknownParticipant(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Who", "teams": []string{"A"}})
	url := srv.wsURL(rm.ID)
	fac := dialRaw(t, ctx, url)
	fac.hello(ctx, map[string]any{"key": rm.FacilitatorKey})
	fac.sendText(ctx, `{"type":"start","id":"s"}`)
	fac.await(ctx, "ack")

	for _, tc := range []struct{ frame, message string }{
		{`{"type":"remove_participant","id":"u1","participant":"p_never"}`, `participant "p_never" not found: not connected and never active in this room`},
		{`{"type":"lower_hand","id":"u2","participant":"p_never"}`, `no raised hand for "p_never"`},
		{`{"type":"call_turn","id":"u3","participant":"p_never"}`, `participant "p_never" has no raised hand`},
	} {
		if e := fac.errorFor(ctx, websocket.MessageText, tc.frame); e["code"] != room.ENOTFOUND || e["message"] != tc.message {
			t.Errorf("%s: got %v %q, want not_found %q", tc.frame, e["code"], e["message"], tc.message)
		}
	}

	// Connected, never acted: removable (the console lists it from
	// presence), and its connection closes with 4003.
	quiet := dial(t, ctx, url, map[string]any{"name": "Quiet"})
	qw := quiet.Welcome()
	fac.sendText(ctx, `{"type":"remove_participant","id":"u4","participant":"`+qw.Participant+`"}`)
	if a := fac.await(ctx, "ack"); a["id"] != "u4" {
		t.Fatalf("remove a connected attendee: got %v, want the ack of u4", a)
	}
	if err := quiet.WaitClosed(ctx); websocket.CloseStatus(err) != 4003 || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("removed attendee: got %v, want 4003 removed", err)
	}
	back := dialRaw(t, ctx, url)
	back.sendText(ctx, `{"type":"hello","participant":"`+qw.Participant+`","token":"`+qw.Token+`"}`)
	if ce := back.closed(ctx); ce.Code != 4001 || ce.Reason != "removed from this room" {
		t.Fatalf("removed attendee back: got %d %q, want 4001 %q", ce.Code, ce.Reason, "removed from this room")
	}

	// Gone, but asked a question: the room has a trace, removable.
	asker := dial(t, ctx, url, map[string]any{"name": "Asker"})
	do(t, ctx, asker, map[string]any{"type": "ask", "text": "and then?"})
	aw := asker.Welcome()
	asker.Close()
	fac.sendText(ctx, `{"type":"remove_participant","id":"u5","participant":"`+aw.Participant+`"}`)
	if a := fac.await(ctx, "ack"); a["id"] != "u5" {
		t.Fatalf("remove an attendee who asked: got %v, want the ack of u5", a)
	}
}

// TestContractRemoveSeenOnAnotherInstance: an attendee connected to
// another instance, who never acted, is known from that instance's
// presence and can be removed.
func TestContractRemoveSeenOnAnotherInstance(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{})
	rm := createRoom(t, nodes[0].URL, map[string]any{"title": "Far", "teams": []string{"A"}})
	fac := dial(t, ctx, nodes[0].wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	far := dial(t, ctx, nodes[1].wsURL(rm.ID), map[string]any{"name": "Far away"})
	pid := far.Welcome().Participant
	if err := fac.WaitPresence(ctx, func(p room.Presence) bool {
		for _, n := range p.Names {
			if n.Participant == pid {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, fac, map[string]any{"type": "remove_participant", "participant": pid})
	if err := far.WaitClosed(ctx); websocket.CloseStatus(err) != 4003 {
		t.Fatalf("removed on the other instance: got %v, want 4003", err)
	}
}

// blockingStore holds Append until released, so a room's command queue
// fills while its actor waits on the store.
type blockingStore struct {
	hub.Store
	entered chan struct{} // closed when the first Append starts waiting
	release chan struct{} // closed to let Appends through
	once    sync.Once
}

func (s *blockingStore) Append(ctx context.Context, roomID string, expectedSeq uint64, events []room.Event, snap *room.State) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Append(ctx, roomID, expectedSeq, events, snap)
}

// TestContractRateLimitedRetryAfter: every rate_limited error carries a
// positive retryAfter in ms: per-connection limits, per-address limits
// that refill in under a millisecond, a room whose command queue is full,
// and REST.
func TestContractRateLimitedRetryAfter(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)

	t.Run("per connection", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.Limits.Commands = hub.Rate{Per: time.Hour, Burst: 1} })
		rm := createRoom(t, srv.URL, map[string]any{"title": "Slow down", "teams": []string{"A"}})
		c := dialRaw(t, ctx, srv.wsURL(rm.ID))
		c.hello(ctx, map[string]any{"key": rm.FacilitatorKey})
		c.sendText(ctx, `{"type":"start","id":"r1"}`)
		c.await(ctx, "ack")
		e := c.errorFor(ctx, websocket.MessageText, `{"type":"wrap_up","id":"r2"}`)
		if ms, _ := e["retryAfter"].(float64); e["code"] != room.ERATELIMITED || ms < 1 || ms > float64(time.Hour/time.Millisecond) {
			t.Fatalf("got %v, want rate_limited with retryAfter in (0, 1 h]", e)
		}
	})

	t.Run("under a millisecond", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) {
			c.Limits.Commands = hub.Rate{Per: time.Microsecond, Burst: 100000}
			c.Limits.AddrCommands = hub.Rate{Per: 900 * time.Microsecond, Burst: 1}
		})
		rm := createRoom(t, srv.URL, map[string]any{"title": "Quick", "teams": []string{"A"}})
		c := dialRaw(t, ctx, srv.wsURL(rm.ID))
		c.hello(ctx, map[string]any{"key": rm.FacilitatorKey})
		const n = 200
		for i := range n {
			c.sendText(ctx, fmt.Sprintf(`{"type":"set_note","id":"q%d","aspect":"investment","text":"n%d"}`, i, i))
		}
		limited := 0
		for answered := 0; answered < n; {
			m := c.next(ctx)
			switch m["type"] {
			case "ack":
				answered++
			case "error":
				answered++
				if m["code"] == room.ERATELIMITED {
					limited++
					if ms, _ := m["retryAfter"].(float64); ms < 1 {
						t.Fatalf("got %v, want retryAfter of at least 1 ms", m)
					}
				}
			}
		}
		if limited == 0 {
			t.Fatalf("none of %d pipelined commands was rate-limited at one per 900 µs per address", n)
		}
	})

	t.Run("room busy", func(t *testing.T) {
		var bs *blockingStore
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) {
			bs = &blockingStore{Store: c.Store, entered: make(chan struct{}), release: make(chan struct{})}
			c.Store = bs
			c.Limits.Commands = hub.Rate{Per: time.Microsecond, Burst: 100000}
			c.Limits.AddrCommands = hub.Rate{Per: time.Microsecond, Burst: 100000}
		})
		defer func() {
			select {
			case <-bs.release:
			default:
				close(bs.release)
			}
		}()
		rm := createRoom(t, srv.URL, map[string]any{"title": "Busy", "teams": []string{"A"}})
		c := dialRaw(t, ctx, srv.wsURL(rm.ID))
		c.hello(ctx, map[string]any{"key": rm.FacilitatorKey})
		c.sendText(ctx, `{"type":"start","id":"b0"}`)
		select {
		case <-bs.entered: // the actor now waits on the store
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		// The queue holds 4,096 commands while the actor waits: past that,
		// busy. Only a hundred past it, so the errors fit the client's send
		// queue (512 frames).
		const n = 4096 + 100
		var frames bytes.Buffer
		for i := range n {
			frames.Reset()
			fmt.Fprintf(&frames, `{"type":"set_note","id":"b%d","aspect":"investment","text":"n"}`, i+1)
			c.send(ctx, websocket.MessageText, frames.Bytes())
		}
		e := c.await(ctx, "error")
		want := "too many commands waiting in this room; retry in 200ms"
		if ms, _ := e["retryAfter"].(float64); e["code"] != room.ERATELIMITED || e["message"] != want || ms != 200 {
			t.Fatalf("got %v, want rate_limited %q with retryAfter 200", e, want)
		}
		close(bs.release)
	})

	t.Run("REST", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.Limits.AddrLookups = hub.Rate{Per: time.Hour, Burst: 1} })
		var last *http.Response
		for range 2 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/join/ABCDEFGH", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if last != nil {
				last.Body.Close()
			}
			last = resp
		}
		defer last.Body.Close()
		var body struct {
			Error struct {
				Code       string  `json:"code"`
				RetryAfter float64 `json:"retryAfter"`
			} `json:"error"`
		}
		if err := json.NewDecoder(last.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if last.StatusCode != http.StatusTooManyRequests || body.Error.Code != room.ERATELIMITED || body.Error.RetryAfter < 1 || last.Header.Get("Retry-After") == "" {
			t.Fatalf("got %d %+v Retry-After %q, want 429 rate_limited with retryAfter and Retry-After", last.StatusCode, body, last.Header.Get("Retry-After"))
		}
	})
}
