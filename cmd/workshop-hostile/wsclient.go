package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// msg is one server message, as PROTOCOL.md "Server to client" describes
// them: the fields the walk reads, and the raw JSON for everything else.
type msg struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Code        string          `json:"code"`
	Message     string          `json:"message"`
	RetryAfter  *float64        `json:"retryAfter"`
	Seq         *uint64         `json:"seq"`
	Epoch       string          `json:"epoch"`
	Now         *int64          `json:"now"`
	T           *int64          `json:"t"`
	Role        string          `json:"role"`
	Participant string          `json:"participant"`
	Token       string          `json:"token"`
	Name        string          `json:"name"`
	Team        *string         `json:"team"`
	Keys        json.RawMessage `json:"keys"`
	Result      json.RawMessage `json:"result"`
	Room        json.RawMessage `json:"room"`
	Presence    json.RawMessage `json:"presence"`
	Events      []event         `json:"events"`
	From        *uint64         `json:"from"` // a tally's first sequence

	raw    []byte
	fields map[string]json.RawMessage
}

// event is one element of an `events` message.
type event struct {
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
	At   string `json:"at"`

	raw    []byte
	fields map[string]json.RawMessage
}

func (e *event) UnmarshalJSON(b []byte) error {
	type plain event
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = event(p)
	e.raw = append([]byte(nil), b...)
	return json.Unmarshal(b, &e.fields)
}

func (e event) str(field string) string {
	var s string
	_ = json.Unmarshal(e.fields[field], &s)
	return s
}

func (m *msg) has(field string) bool { _, ok := m.fields[field]; return ok }

func (m *msg) String() string { return string(m.raw) }

// audience is who a connection is, for the secrecy checks.
type audience struct {
	role        string // facilitator, team, presenter, attendee (the walk's names for PROTOCOL.md's roles)
	team        string // for a team lead
	participant string // for an attendee, once welcomed
}

// wsClient is one WebSocket connection of the walk. Its read loop (read)
// is the only reader; every other method may be called from the walk's
// goroutine, under mu.
type wsClient struct {
	w    *walker
	name string
	conn *websocket.Conn

	mu        sync.Mutex
	aud       audience
	frames    [][]byte // every text frame, raw
	nonText   int      // binary frames received
	msgs      []*msg
	bad       []string // frames that are not newline-separated JSON objects
	changed   chan struct{}
	done      chan struct{} // closed when the read loop ends
	code      websocket.StatusCode
	reason    string
	readErr   error
	sent      map[string]int  // command id -> times sent
	uncounted map[string]bool // ids whose answers are not commands' (pings, frames sent as they are)
	lastSeq   uint64
	haveSeq   bool
	seqGaps   []string
	secrecy   []string // audience rule violations found while reading
	resumeAt  map[uint64]bool
}

type dialOpts struct {
	src    string // source address ("": any)
	origin string // Origin header ("": none)
	rcvbuf int    // socket receive buffer (0: default)
	path   string // instead of /api/rooms/{id}/ws
}

// wsURL answers the WebSocket URL of a path.
func (w *walker) wsURL(path string) string {
	u := *w.cfg.base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = path
	return u.String()
}

// dialWS opens a WebSocket and answers the handshake's response too.
func (w *walker) dialWS(ctx context.Context, path string, o dialOpts) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer(o.src, o.rcvbuf).DialContext}}
	dctx, cancel := within(ctx, replyTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, w.wsURL(path), &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: h, CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool { w.serverPings.Add(1); return true },
	})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(readLimit)
	return c, resp, nil
}

// dialError is a refused upgrade, with the HTTP answer when there was one.
type dialError struct {
	path       string
	status     int
	retryAfter string
	err        error
}

func (e *dialError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("upgrade %s: HTTP %d (Retry-After %q): %v", e.path, e.status, e.retryAfter, e.err)
	}
	return fmt.Sprintf("upgrade %s: %v", e.path, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

// open dials a room's WebSocket and starts reading; it sends nothing.
func (w *walker) open(ctx context.Context, name, roomID string, aud audience, o dialOpts) (*wsClient, error) {
	if o.src == "" {
		o.src = w.shared()
	}
	path := o.path
	if path == "" {
		path = "/api/rooms/" + roomID + "/ws"
	}
	c, resp, err := w.dialWS(ctx, path, o)
	if err != nil {
		de := &dialError{path: path, err: err}
		if resp != nil {
			de.status, de.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		}
		return nil, de
	}
	cl := &wsClient{w: w, name: name, conn: c, aud: aud, changed: make(chan struct{}), done: make(chan struct{}),
		sent: map[string]int{}, uncounted: map[string]bool{}, resumeAt: map[uint64]bool{}}
	w.mu.Lock()
	w.conns = append(w.conns, cl)
	w.mu.Unlock()
	go cl.read(ctx)
	return cl, nil
}

// connect dials, sends hello and waits for the welcome. A close instead of
// a welcome is an error that names the close code.
func (w *walker) connect(ctx context.Context, name, roomID string, hello map[string]any, aud audience, o dialOpts) (*wsClient, *msg, error) {
	cl, err := w.open(ctx, name, roomID, aud, o)
	if err != nil {
		return nil, nil, err
	}
	hello["type"] = "hello"
	if err := cl.send(ctx, hello); err != nil {
		return cl, nil, err
	}
	m, err := cl.await(ctx, 0, "welcome", func(m *msg) bool { return m.Type == "welcome" })
	if err != nil {
		return cl, nil, err
	}
	cl.mu.Lock()
	cl.aud.participant = m.Participant // team leads and the facilitator have one too
	cl.mu.Unlock()
	return cl, m, nil
}

// read is the client's read loop: it keeps every frame, splits it into
// messages, follows the sequence and checks each message against the
// audience's secrecy rules.
func (cl *wsClient) read(ctx context.Context) {
	defer close(cl.done)
	for {
		typ, data, err := cl.conn.Read(ctx)
		if err != nil {
			cl.mu.Lock()
			cl.code = websocket.CloseStatus(err)
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				cl.reason = ce.Reason
			}
			cl.readErr = err
			cl.notifyLocked()
			cl.mu.Unlock()
			return
		}
		cl.mu.Lock()
		if typ != websocket.MessageText {
			cl.nonText++
		}
		cl.frames = append(cl.frames, data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				cl.bad = append(cl.bad, "an empty line in a frame")
				continue
			}
			m := &msg{raw: line}
			if err := json.Unmarshal(line, m); err != nil {
				cl.bad = append(cl.bad, fmt.Sprintf("not JSON (%v): %s", err, shorten(string(line))))
				continue
			}
			_ = json.Unmarshal(line, &m.fields)
			if m.Type == "welcome" && m.Participant != "" {
				// The snapshot may share the welcome's frame: what is
				// the client's own is known from here on.
				cl.aud.participant = m.Participant
			}
			cl.follow(m)
			cl.secrecy = append(cl.secrecy, auditMessage(cl.aud, m)...)
			cl.msgs = append(cl.msgs, m)
		}
		cl.notifyLocked()
		cl.mu.Unlock()
	}
}

// follow checks PROTOCOL.md "events" and "tally": contiguous seq after the
// snapshot or the last event, a tally standing for from..seq continuing
// them; a replay asked for by resume may start earlier, a tally may cover
// what a replay already brought.
func (cl *wsClient) follow(m *msg) {
	switch m.Type {
	case "tally":
		if m.From == nil || m.Seq == nil || *m.From > *m.Seq {
			cl.bad = append(cl.bad, "a tally without from <= seq")
			return
		}
		if !cl.haveSeq || *m.Seq <= cl.lastSeq {
			return
		}
		if *m.From > cl.lastSeq+1 {
			cl.seqGaps = append(cl.seqGaps, fmt.Sprintf("tally from %d after %d", *m.From, cl.lastSeq))
		}
		cl.lastSeq = *m.Seq
	case "snapshot":
		if m.Seq != nil {
			cl.lastSeq, cl.haveSeq = *m.Seq, true
		}
	case "events":
		for i, e := range m.Events {
			if cl.haveSeq && e.Seq != cl.lastSeq+1 && !(i == 0 && cl.resumeAt[e.Seq-1]) {
				cl.seqGaps = append(cl.seqGaps, fmt.Sprintf("seq %d after %d", e.Seq, cl.lastSeq))
			}
			cl.lastSeq, cl.haveSeq = e.Seq, true
		}
	}
}

func (cl *wsClient) notifyLocked() {
	close(cl.changed)
	cl.changed = make(chan struct{})
}

// mark answers how many messages have arrived, for await's from.
func (cl *wsClient) mark() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.msgs)
}

// send writes one JSON message as a text frame.
func (cl *wsClient) send(ctx context.Context, v map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return cl.sendRaw(ctx, websocket.MessageText, b)
}

// sendUncounted writes one frame as it is, without counting it as a
// command for replies (frames whose id PROTOCOL.md leaves to the server).
func (cl *wsClient) sendUncounted(ctx context.Context, typ websocket.MessageType, b []byte) error {
	var head struct {
		ID string `json:"id"`
	}
	if json.NewDecoder(bytes.NewReader(b)).Decode(&head) == nil && head.ID != "" {
		cl.mu.Lock()
		cl.uncounted[head.ID] = true
		cl.mu.Unlock()
	}
	wctx, cancel := within(ctx, replyTimeout)
	defer cancel()
	return cl.conn.Write(wctx, typ, b)
}

// sendRaw writes one frame as it is. A frame whose (first) JSON object is
// a command with an id counts as a send of that id, for replies.
func (cl *wsClient) sendRaw(ctx context.Context, typ websocket.MessageType, b []byte) error {
	var head struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if typ == websocket.MessageText && utf8.Valid(b) && json.NewDecoder(bytes.NewReader(b)).Decode(&head) == nil && head.ID != "" {
		cl.mu.Lock()
		if head.Type == "ping" {
			cl.uncounted[head.ID] = true
		} else if head.Type != "hello" && head.Type != "resume" {
			cl.sent[head.ID]++
		}
		cl.mu.Unlock()
	}
	wctx, cancel := within(ctx, replyTimeout)
	defer cancel()
	return cl.conn.Write(wctx, typ, b)
}

// await waits for the first message at index from or later that pred
// accepts. It fails when the connection closes first, naming the close.
func (cl *wsClient) await(ctx context.Context, from int, what string, pred func(*msg) bool) (*msg, error) {
	ctx, cancel := within(ctx, replyTimeout)
	defer cancel()
	for {
		cl.mu.Lock()
		for i := from; i < len(cl.msgs); i++ {
			if pred(cl.msgs[i]) {
				m := cl.msgs[i]
				cl.mu.Unlock()
				return m, nil
			}
		}
		from = len(cl.msgs)
		ch, done := cl.changed, cl.isDone()
		code, reason := cl.code, cl.reason
		cl.mu.Unlock()
		if done {
			return nil, fmt.Errorf("no %s: connection closed (%d %q)", what, code, reason)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("no %s within %s", what, replyTimeout)
		}
	}
}

func (cl *wsClient) isDone() bool {
	select {
	case <-cl.done:
		return true
	default:
		return false
	}
}

// cmd sends a command (an id is added when it has none) and answers the
// ack or error with its id. A rate_limited answer is retried with the same
// id after retryAfter, as PROTOCOL.md tells clients, unless the check is
// about rate limits itself (cmdOnce).
func (cl *wsClient) cmd(ctx context.Context, c map[string]any) (*msg, error) {
	for attempt := 0; ; attempt++ {
		m, err := cl.cmdOnce(ctx, c)
		if err != nil || m.Type != "error" || m.Code != "rate_limited" || attempt == 5 {
			return m, err
		}
		wait := maxRetryWait
		if m.RetryAfter != nil && *m.RetryAfter > 0 && time.Duration(*m.RetryAfter)*time.Millisecond < maxRetryWait {
			wait = time.Duration(*m.RetryAfter) * time.Millisecond
		}
		t := time.NewTimer(wait) // the server said when: waiting for it is the protocol
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return m, ctx.Err()
		}
	}
}

func (cl *wsClient) cmdOnce(ctx context.Context, c map[string]any) (*msg, error) {
	if _, ok := c["id"]; !ok {
		c["id"] = cl.w.newID()
	}
	id := c["id"].(string)
	from := cl.mark()
	if err := cl.send(ctx, c); err != nil {
		return nil, err
	}
	return cl.await(ctx, from, "ack or error for "+id, func(m *msg) bool {
		return (m.Type == "ack" || m.Type == "error") && m.ID == id
	})
}

// waitClose waits for the connection to end and answers the close code
// (-1 when it ended without a close frame) and reason.
func (cl *wsClient) waitClose(ctx context.Context, d time.Duration) (websocket.StatusCode, string, error) {
	ctx, cancel := within(ctx, d)
	defer cancel()
	select {
	case <-cl.done:
	case <-ctx.Done():
		return 0, "", fmt.Errorf("still open after %s", d)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.code, cl.reason, nil
}

// resume sends PROTOCOL.md's resume and lets the sequence check accept a
// replay from seq on.
func (cl *wsClient) resume(ctx context.Context, epoch string, seq uint64) error {
	cl.mu.Lock()
	cl.resumeAt[seq] = true
	cl.mu.Unlock()
	return cl.send(ctx, map[string]any{"type": "resume", "epoch": epoch, "seq": seq})
}

// close ends the connection normally (1000) without waiting long.
func (cl *wsClient) close() {
	_ = cl.conn.Close(websocket.StatusNormalClosure, "")
}

// latest answers the last message of a type, or nil.
func (cl *wsClient) latest(typ string) *msg {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for i := len(cl.msgs) - 1; i >= 0; i-- {
		if cl.msgs[i].Type == typ {
			return cl.msgs[i]
		}
	}
	return nil
}

// since answers the messages from index from on.
func (cl *wsClient) since(from int) []*msg {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]*msg(nil), cl.msgs[from:]...)
}

// head answers the last sequence this client has applied.
func (cl *wsClient) head() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.lastSeq
}

// awaitEvent waits for an event of a type (from message index from on)
// that pred accepts (nil: any), and answers it.
func (cl *wsClient) awaitEvent(ctx context.Context, from int, typ string, pred func(event) bool) (event, error) {
	var found event
	_, err := cl.await(ctx, from, "event "+typ, func(m *msg) bool {
		if m.Type != "events" {
			return false
		}
		for _, e := range m.Events {
			if e.Type == typ && (pred == nil || pred(e)) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// replies checks PROTOCOL.md "each command is answered by exactly one ack
// or error with its id": as many answers with an id as it was sent.
func (cl *wsClient) replies() (n int, problems []string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	got := map[string]int{}
	for _, m := range cl.msgs {
		if (m.Type == "ack" || m.Type == "error") && m.ID != "" && !cl.uncounted[m.ID] {
			got[m.ID]++
		}
	}
	for id, k := range cl.sent {
		n += k
		if got[id] != k && !(got[id] < k && cl.isDone()) {
			problems = append(problems, fmt.Sprintf("%s sent %d times, answered %d times", id, k, got[id]))
		}
	}
	for id, k := range got {
		if cl.sent[id] == 0 {
			problems = append(problems, fmt.Sprintf("%s answered %d times, never sent", id, k))
		}
	}
	sort.Strings(problems)
	return n, problems
}

// rawContains answers whether any raw frame holds s, with the first frame.
func (cl *wsClient) rawContains(s string, from int) (bool, string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, f := range cl.frames[min(from, len(cl.frames)):] {
		if bytes.Contains(f, []byte(s)) {
			return true, string(f)
		}
	}
	return false, ""
}

// frameMark answers how many frames have arrived.
func (cl *wsClient) frameMark() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.frames)
}

func errText(m *msg, err error) string {
	if err != nil {
		return err.Error()
	}
	if m == nil {
		return ""
	}
	return m.String()
}

// jsonText answers v as compact JSON, for the report.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// namesField answers whether a message names a field in the protocol's
// words and reads as sentence for a person (no Go type names).
func namesField(message, field string) bool {
	return strings.Contains(message, field) && humane(message)
}

// humane answers whether an error message is free of Go's vocabulary.
func humane(message string) bool {
	for _, s := range []string{"json:", "Go struct", "Go value", "int64", "uint64", "float64", "[]string", "map[", "room.", "hub.", "struct {", "*errors", "%!"} {
		if strings.Contains(message, s) {
			return false
		}
	}
	return message != ""
}
