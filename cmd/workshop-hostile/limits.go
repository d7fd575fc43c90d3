package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// limitsRoom is a room of its own for the checks that flood.
type limitsRoom struct {
	room *createdRoom
	fac  *wsClient
}

func (w *walker) newLimitsRoom(ctx context.Context) *limitsRoom {
	r := w.createRoom(ctx, "limits/room", `{"title":"Limits","teams":["A","B"]}`)
	if r == nil {
		return nil
	}
	fac, _, err := w.connect(ctx, "facilitator (limits)", r.ID, map[string]any{"key": r.FacilitatorKey}, audience{role: "facilitator"}, dialOpts{})
	if err != nil {
		w.check("limits/room", false, "hello facilitator", err.Error(), "welcome")
		return nil
	}
	if m, err := fac.cmd(ctx, map[string]any{"type": "start"}); err != nil || m.Type != "ack" {
		w.check("limits/room", false, "start", errText(m, err), "ack")
		return nil
	}
	return &limitsRoom{room: r, fac: fac}
}

// flood sends n commands without waiting and answers every answer.
func (cl *wsClient) flood(ctx context.Context, n int, mk func(i int) map[string]any) ([]*msg, error) {
	ids := make([]string, n)
	from := cl.mark()
	for i := range n {
		c := mk(i)
		c["id"] = cl.w.newID()
		ids[i] = c["id"].(string)
		if err := cl.send(ctx, c); err != nil {
			return nil, err
		}
	}
	var out []*msg
	for _, id := range ids {
		m, err := cl.await(ctx, from, "answer to "+id, func(m *msg) bool { return (m.Type == "ack" || m.Type == "error") && m.ID == id })
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// limited sums up a flood's answers: how many were rate_limited, and the
// rate_limited ones without a positive retryAfter.
func limited(ms []*msg) (n int, bad []string, codes map[string]int) {
	codes = map[string]int{}
	for _, m := range ms {
		codes[m.Type+":"+m.Code]++
		if m.Code == "rate_limited" {
			n++
			if m.RetryAfter == nil || !wholeAtLeast1(*m.RetryAfter) {
				bad = append(bad, m.String())
			}
		}
	}
	return n, bad, codes
}

// stillOpen answers whether a ping gets its pong.
func (cl *wsClient) stillOpen(ctx context.Context) bool {
	from := cl.mark()
	id := cl.w.newID()
	if cl.send(ctx, map[string]any{"type": "ping", "id": id, "t": time.Now().UnixMilli()}) != nil {
		return false
	}
	// A pong, or the error that refuses a ping over its limit: either
	// answer shows the connection open.
	_, err := cl.await(ctx, from, "pong", func(m *msg) bool { return (m.Type == "pong" || m.Type == "error") && m.ID == id })
	return err == nil
}

// rateLimits floods commands on one connection: PROTOCOL.md says commands
// are rate-limited per connection (all commands, and separately
// questions, votes and hands); a refused command gets rate_limited with
// retryAfter (ms) and the connection stays open.
func (w *walker) rateLimits(ctx context.Context, lr *limitsRoom) {
	const says = "a refused command gets an error with code rate_limited and retryAfter (a whole number of ms, at least 1), and the connection stays open"
	cases := []struct {
		name, what string
		n          int
		mk         func(q string) func(int) map[string]any
	}{
		{"limits/votes", "upvote/unvote of one question, alternating", 60, func(q string) func(int) map[string]any {
			return func(i int) map[string]any {
				t := "upvote"
				if i%2 == 1 {
					t = "unvote"
				}
				return map[string]any{"type": t, "question": q}
			}
		}},
		{"limits/questions", "ask", 6, func(string) func(int) map[string]any {
			return func(i int) map[string]any {
				return map[string]any{"type": "ask", "text": fmt.Sprintf("flood question %d", i)}
			}
		}},
		{"limits/hands", "raise_hand/lower_hand, alternating", 12, func(string) func(int) map[string]any {
			return func(i int) map[string]any {
				if i%2 == 0 {
					return map[string]any{"type": "raise_hand"}
				}
				return map[string]any{"type": "lower_hand"}
			}
		}},
		{"limits/commands", "start (forbidden for an attendee)", 60, func(string) func(int) map[string]any {
			return func(int) map[string]any { return map[string]any{"type": "start"} }
		}},
	}
	m, err := lr.fac.cmd(ctx, map[string]any{"type": "ask", "text": "Vote on me"})
	q := m.result("question")
	if err != nil || q == "" {
		w.check("limits/setup", false, "ask", errText(m, err), "ack with result.question")
		return
	}
	for _, c := range cases {
		cl, _, err := w.connect(ctx, "attendee "+c.name, lr.room.ID, map[string]any{"name": "Flood"}, audience{role: "attendee"}, dialOpts{})
		if err != nil {
			w.check(c.name, false, "hello", err.Error(), says)
			continue
		}
		ms, err := cl.flood(ctx, c.n, c.mk(q))
		n, bad, codes := limited(ms)
		open := cl.stillOpen(ctx)
		got := fmt.Sprintf("answers %v; %d rate_limited; without a positive retryAfter: %v; open after: %v", codes, n, bad, open)
		if err != nil {
			got = err.Error() + "; " + got
		}
		w.check(c.name, err == nil && n > 0 && len(bad) == 0 && open, fmt.Sprintf("%d × %s at once on one connection", c.n, c.what), got, says)
		cl.close()
	}
}

// envelopes walks the client message envelope: malformed JSON, missing
// or long ids, unknown types, binary frames, and the 64 KiB frame limit.
func (w *walker) envelopes(ctx context.Context, lr *limitsRoom) {
	cl, _, err := w.connect(ctx, "attendee Envelope", lr.room.ID, map[string]any{"name": "Envelope"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("ws/envelope", false, "hello", err.Error(), "welcome")
		return
	}
	defer cl.close()
	answer := func(b []byte, typ websocket.MessageType, pred func(*msg) bool) (*msg, error) {
		from := cl.mark()
		if err := cl.sendRaw(ctx, typ, b); err != nil {
			return nil, err
		}
		return cl.await(ctx, from, "error", pred)
	}
	anyError := func(m *msg) bool { return m.Type == "error" }
	id64 := strings.Repeat("i", 64)
	id65 := strings.Repeat("i", 65)
	cases := []struct {
		name  string
		frame []byte
		typ   websocket.MessageType
		want  func(*msg) bool
		says  string
	}{
		{"ws/malformed-json", []byte(`{"id":"m1","type":`), websocket.MessageText, func(m *msg) bool {
			return m.Code == "invalid" && m.ID == "" && m.Message == "malformed message: the JSON ends too soon"
		},
			"error invalid; id is empty when the message had none (malformed JSON); the connection stays open"},
		{"ws/missing-id", []byte(`{"type":"raise_hand"}`), websocket.MessageText, func(m *msg) bool { return m.Code == "invalid" && m.ID == "" && namesField(m.Message, "id") },
			"id (1 to 64 characters) is required; invalid naming the field"},
		{"ws/id-65", []byte(`{"id":"` + id65 + `","type":"raise_hand"}`), websocket.MessageText, func(m *msg) bool { return m.Code == "invalid" && namesField(m.Message, "id") },
			"id (1 to 64 characters); invalid naming the field"},
		{"ws/unknown-type", []byte(`{"id":"u1","type":"dance"}`), websocket.MessageText, func(m *msg) bool {
			return m.Code == "invalid" && m.ID == "u1" && strings.Contains(m.Message, "dance") && humane(m.Message)
		}, "invalid: unknown type, answered with the command's id"},
		{"ws/missing-type", []byte(`{"id":"u2"}`), websocket.MessageText, func(m *msg) bool { return m.Code == "invalid" && m.ID == "u2" && namesField(m.Message, "type") },
			"invalid: malformed input, naming the field"},
		{"ws/two-objects-one-frame", []byte(`{"id":"u3","type":"raise_hand"}{"id":"u4","type":"lower_hand"}`), websocket.MessageText,
			func(m *msg) bool { return m.Code == "invalid" && humane(m.Message) }, "a client message is one JSON object per frame"},
		{"ws/binary-frame", []byte(`{"id":"b1","type":"raise_hand"}`), websocket.MessageBinary, func(m *msg) bool { return m.Code == "invalid" && m.Message == "text frames only" },
			"every WebSocket message is UTF-8 text: a binary frame gets invalid `text frames only`; the connection stays open"},
		{"ws/invalid-utf8", []byte("{\"id\":\"x1\",\"type\":\"ask\",\"text\":\"\xff\xfe\"}"), websocket.MessageText, func(m *msg) bool { return m.Code == "invalid" && humane(m.Message) },
			"all bodies are JSON (UTF-8): invalid"},
	}
	for _, c := range cases {
		m, err := answer(c.frame, c.typ, anyError)
		ok := err == nil && c.want(m)
		open := ok && cl.stillOpen(ctx)
		kind := "text"
		if c.typ == websocket.MessageBinary {
			kind = "binary"
		}
		w.check(c.name, ok && open, kind+" frame "+shorten(string(c.frame)), fmt.Sprintf("%s; open after: %v", errText(m, err), open), c.says)
		if cl.isDone() {
			cl, _, err = w.connect(ctx, "attendee Envelope (again)", lr.room.ID, map[string]any{"name": "Envelope"}, audience{role: "attendee"}, dialOpts{})
			if err != nil {
				return
			}
		}
	}
	// PROTOCOL.md's table of messages, frame for frame.
	for _, c := range []struct {
		typ   websocket.MessageType
		frame string
		want  string
	}{
		{websocket.MessageText, `{"type":"upvote","id":"x","seq":"a"}`, "seq: want a whole number of 0 or more, got a string"},
		{websocket.MessageText, `{"type":"ping","t":"x"}`, "t: want a whole number (Unix ms), got a string"},
		{websocket.MessageText, `{"type":"submit","id":"x","level":"3"}`, "level: want a whole number, got a string"},
		{websocket.MessageText, `{"type":"submit","id":"x","level":1.5}`, "level: want a whole number, got 1.5"},
		{websocket.MessageText, `{"type":"set_agenda","id":"x","order":["a",1]}`, "order: want a list of ids (strings), got a number in the list"},
		{websocket.MessageText, `{"type":"ask","id":"x","text":"hi","admin":true}`, "admin: not a field of ask"},
		{websocket.MessageText, `{"type":"ask","id":"x1","text":`, "malformed message: the JSON ends too soon"},
		{websocket.MessageText, `{"type":"ask",}`, "malformed message: not valid JSON at byte 15"},
		{websocket.MessageText, `[1,2,3]`, "malformed message: want a JSON object, got a list"},
		{websocket.MessageText, ``, "malformed message: empty"},
		{websocket.MessageBinary, `{"type":"ping","id":"p","t":1}`, "text frames only"},
	} {
		from := cl.mark()
		err := cl.sendUncounted(ctx, c.typ, []byte(c.frame))
		var m *msg
		if err == nil {
			m, err = cl.await(ctx, from, "error", anyError)
		}
		open := err == nil && cl.stillOpen(ctx)
		shown := c.frame
		if c.typ == websocket.MessageBinary {
			shown = "a binary frame " + c.frame
		} else if c.frame == "" {
			shown = "an empty frame"
		}
		w.check("ws/error-message", err == nil && m.Code == "invalid" && m.Message == c.want && open, shown, fmt.Sprintf("%s; open after: %v", errText(m, err), open),
			"messages speak to a person: invalid `"+c.want+"`; the connection stays open")
		if cl.isDone() {
			if cl, _, err = w.connect(ctx, "attendee Envelope (again)", lr.room.ID, map[string]any{"name": "Envelope"}, audience{role: "attendee"}, dialOpts{}); err != nil {
				return
			}
		}
	}

	m, err := cl.cmd(ctx, map[string]any{"id": id64, "type": "raise_hand"})
	w.check("ws/id-64", err == nil && m.ID == id64 && !(m.Type == "error" && strings.Contains(m.Message, "id")), `{"id":"<64 characters>","type":"raise_hand"}`, errText(m, err),
		"id (1 to 64 characters) is required and chosen by the client")

	// Exactly 64 KiB is a frame the server must read and answer.
	pad := maxFrame - len(`{"id":"big","type":"ask","text":""}`)
	frame := []byte(`{"id":"big","type":"ask","text":"` + strings.Repeat("x", pad) + `"}`)
	m, err = answer(frame, websocket.MessageText, func(m *msg) bool { return m.ID == "big" })
	open := err == nil && cl.stillOpen(ctx)
	w.check("ws/frame-64KiB", err == nil && m.Type == "error" && m.Code == "invalid" && namesField(m.Message, "text") && open,
		fmt.Sprintf("one %d-byte frame (an ask with a 65,501-character text)", len(frame)), fmt.Sprintf("%s; open after: %v", errText(m, err), open),
		"a client message is at most 64 KiB (this one is read: text over 500 is invalid)")

	big := []byte(`{"id":"huge","type":"ask","text":"` + strings.Repeat("x", bigFrame) + `"}`)
	_ = cl.sendRaw(ctx, websocket.MessageText, big)
	code, reason, err := cl.waitClose(ctx, replyTimeout)
	w.check("ws/close-1009", err == nil && code == websocket.StatusMessageTooBig && reason == "read limited at 65537 bytes", fmt.Sprintf("one %d-byte frame", len(big)),
		closeText(code, reason, err), "a larger frame closes the connection with 1009 `read limited at 65537 bytes`")
}

// identityFlood mints new attendee identities from one address in one
// room until the server closes with 4029, then checks that resuming an
// identity, and a new identity from another address, still work.
func (w *walker) identityFlood(ctx context.Context, lr *limitsRoom) {
	const name, says = "ws/close-4029-identities", "a new attendee identity (hello with only a name) is limited per address and room: past it the connection closes with 4029"
	src := w.dedicated(addrIdentities)
	if w.cfg.identityBurst <= 0 || src == "" {
		w.skip(name, "needs -identity-burst (the server's configured burst) and -source-addrs >= 10")
		return
	}
	ctx, cancel := within(ctx, floodTimeout)
	defer cancel()
	var first *msg
	limit := w.cfg.identityBurst*3/2 + 20
	upgrades429 := 0
	for i := 1; i <= limit; i++ {
		cl, m, err := w.connect(ctx, "attendee flood", lr.room.ID, map[string]any{"name": fmt.Sprintf("Flood %d", i)}, audience{role: "attendee"}, dialOpts{src: src})
		var de *dialError
		if cl == nil && errors.As(err, &de) && de.status == http.StatusTooManyRequests {
			// the upgrade limit of the same address: wait as told and go on
			upgrades429++
			if !waitRetryAfter(ctx, de.retryAfter) {
				w.check(name, false, fmt.Sprintf("%d hellos with a new name from %s", i, src), err.Error(), says)
				return
			}
			i--
			continue
		}
		if err == nil {
			if first == nil {
				first = m
			}
			cl.close()
			continue
		}
		code, reason := websocket.StatusCode(0), ""
		if cl != nil {
			code, reason, _ = cl.waitClose(ctx, replyTimeout)
		}
		ok := code == 4029 && i > w.cfg.identityBurst/2
		w.check(name, ok, fmt.Sprintf("hellos with a new name from %s, one after another (burst %d)", src, w.cfg.identityBurst),
			fmt.Sprintf("hello %d: %s (upgrades refused with 429 on the way: %d)", i, closeText(code, reason, nil), upgrades429), says)
		if ok {
			w.check("ws/close-4029-reason", reason == "too many new participants from your address; retry later", "the same hello", fmt.Sprintf("reason %q", reason),
				"4029 `too many new participants from your address; retry later`")
		}
		break
	}
	if first == nil {
		return
	}
	// The same address's upgrade budget may be spent by the flood: a client
	// waits as the 429 tells it, then resumes.
	var cl *wsClient
	var err error
	for {
		cl, _, err = w.connect(ctx, "attendee flood (resumed)", lr.room.ID, map[string]any{"participant": first.Participant, "token": first.Token}, audience{role: "attendee"}, dialOpts{src: src})
		var de *dialError
		if cl == nil && errors.As(err, &de) && de.status == http.StatusTooManyRequests && waitRetryAfter(ctx, de.retryAfter) {
			continue
		}
		break
	}
	w.check("ws/4029-resume-still-works", err == nil, "hello {participant, token} from the flooded address", errText(nil, err)+"welcome",
		"only a new identity (hello with only a name) is limited")
	if cl != nil {
		cl.close()
	}
	cl, _, err = w.connect(ctx, "attendee from elsewhere", lr.room.ID, map[string]any{"name": "Elsewhere"}, audience{role: "attendee"}, dialOpts{})
	w.check("ws/4029-per-address", err == nil, "hello with a new name from another address", errText(nil, err)+"welcome", "limited per address and room")
	if cl != nil {
		cl.close()
	}
}

// waitRetryAfter waits what a Retry-After header says (whole seconds; at
// most maxRetryWait), as a client refused with 429 is told to.
func waitRetryAfter(ctx context.Context, header string) bool {
	secs, err := strconv.Atoi(header)
	if err != nil || secs <= 0 {
		return false
	}
	t := time.NewTimer(min(time.Duration(secs)*time.Second, maxRetryWait))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// upgradeFlood opens upgrades from one address until one is refused
// with 429 rate_limited and a Retry-After header.
func (w *walker) upgradeFlood(ctx context.Context, roomID string) {
	const name, says = "ws/upgrade-429", "too many upgrades from one client address are refused before the upgrade with 429 rate_limited and a Retry-After header"
	src := w.dedicated(addrUpgrades)
	if w.cfg.upgradeBurst <= 0 || src == "" {
		w.skip(name, "needs -upgrade-burst (the server's configured burst) and -source-addrs >= 10")
		return
	}
	ctx, cancel := within(ctx, upgradeTimeout)
	defer cancel()
	limit := w.cfg.upgradeBurst*3/2 + 20
	for i := 1; i <= limit; i++ {
		c, resp, err := w.dialWS(ctx, "/api/rooms/"+roomID+"/ws", dialOpts{src: src})
		if err == nil {
			c.CloseNow()
			continue
		}
		status, retry := 0, ""
		if resp != nil {
			status, retry = resp.StatusCode, resp.Header.Get("Retry-After")
		}
		secs, perr := strconv.Atoi(retry)
		ok := status == http.StatusTooManyRequests && perr == nil && secs > 0 && i > w.cfg.upgradeBurst/2
		w.check(name, ok, fmt.Sprintf("upgrades from %s, one after another (burst %d)", src, w.cfg.upgradeBurst),
			fmt.Sprintf("upgrade %d: HTTP %d Retry-After %q (%v)", i, status, retry, err), says)
		return
	}
	w.check(name, false, fmt.Sprintf("%d upgrades from %s", limit, src), "every one accepted", says)
}

// lookupFlood looks a code up from one address until it is refused, then
// checks /j/{code} redirects to /?error=busy.
func (w *walker) lookupFlood(ctx context.Context, code string) {
	const name = "rest/join-rate-limited"
	src := w.dedicated(addrLookups)
	if w.cfg.lookupBurst <= 0 || src == "" {
		w.skip(name, "needs -lookup-burst (the server's configured burst) and -source-addrs >= 10")
		w.skip("rest/j-busy", "needs -lookup-burst and -source-addrs >= 10")
		return
	}
	limit := w.cfg.lookupBurst*3/2 + 20
	for i := 1; i <= limit; i++ {
		r := w.request(ctx, src, http.MethodGet, "/api/join/"+code, nil, nil)
		if r.err == nil && r.status == 200 {
			continue
		}
		ok, _ := r.errorIs(http.StatusTooManyRequests, "rate_limited")
		var e apiError
		_ = json.Unmarshal(r.body, &e)
		positive := r.header.Get("Retry-After") != "" || (e.Error != nil && e.Error.RetryAfter != nil && *e.Error.RetryAfter > 0)
		w.check(name, ok && positive && i > w.cfg.lookupBurst/2, fmt.Sprintf("GET /api/join/%s from %s, one after another (burst %d)", code, src, w.cfg.lookupBurst),
			fmt.Sprintf("lookup %d: %s Retry-After %q", i, r.String(), r.header.Get("Retry-After")),
			"lookups are rate-limited per client address: 429 rate_limited; retryAfter says when to retry")
		j := w.request(ctx, src, http.MethodGet, "/j/"+code, nil, nil)
		w.check("rest/j-busy", j.err == nil && j.status == 303 && j.header.Get("Location") == "/?error=busy", "GET /j/"+code+" from the same address",
			fmt.Sprintf("%d Location %q", j.status, j.header.Get("Location")), "redirects (303) to /?error=busy (rate-limited)")
		return
	}
	w.check(name, false, fmt.Sprintf("%d lookups from %s", limit, src), "every one answered 200", "lookups are rate-limited per client address")
}

// slowConsumer is a client that never reads: with a small receive buffer
// it says hello and sends a flood of commands in one write, each of which
// the server must answer, without reading a byte, so the answers pile up
// behind a socket nobody drains. Then it reads, and the last thing it gets
// must be close 4008. It is a WebSocket made by hand (rawConn), so nothing
// reads behind its back and the flood takes one write.
func (w *walker) slowConsumer(ctx context.Context, lr *limitsRoom) {
	const name, says = "ws/close-4008", "4008 `too slow` (the client fell too far behind)"
	src := w.dedicated(addrSlow)
	if src == "" {
		w.skip(name, "needs -source-addrs >= 10: the flood would spend the shared addresses' command budget")
		return
	}
	rc, err := w.rawDial(ctx, "/api/rooms/"+lr.room.ID+"/ws", src, slowRcvBuf)
	if err != nil {
		w.check(name, false, "upgrade", err.Error(), says)
		return
	}
	defer rc.c.Close()
	flood := maskedFrame(nil, opText, []byte(`{"type":"hello","name":"Never reads"}`))
	for i := range slowFlood {
		flood = maskedFrame(flood, opText, []byte(fmt.Sprintf(`{"id":"s%d","type":"no_such_command"}`, i)))
	}
	// The server stops reading once it has closed this client, so the
	// tail of the flood may never be taken: a write deadline, not an
	// error, ends the flood then.
	_ = rc.c.SetWriteDeadline(time.Now().Add(slowWriteWait))
	n, werr := rc.c.Write(flood)
	var ne net.Error
	if werr != nil && !(errors.As(werr, &ne) && ne.Timeout()) {
		w.check(name, false, "the flood", werr.Error(), says)
		return
	}
	msgs, code, reason := rc.readUntilClose(ctx)
	shown := fmt.Sprintf("close %d %q", code, reason)
	if code == -1 {
		shown = "connection ended without a close frame (" + reason + ")"
	}
	w.check(name, code == 4008 && reason == "too slow",
		fmt.Sprintf("hello and %d commands (unknown types: each answered by an error) in one write (%d of %d bytes taken), never reading, with a %d-byte receive buffer; then read",
			slowFlood, n, len(flood), slowRcvBuf),
		fmt.Sprintf("%d messages, then %s", msgs, shown), says)
}

// pingResumeLimits floods ping and resume on one connection each:
// PROTOCOL.md lets a connection send 30 pings at once and then one a
// second, 10 resumes at once and then one every 2 seconds; a refused one
// gets an error rate_limited (with the ping's id) and retryAfter instead of
// its answer, and the connection stays open.
func (w *walker) pingResumeLimits(ctx context.Context, lr *limitsRoom) {
	const pings, resumes = 36, 14
	cl, _, err := w.connect(ctx, "attendee Pinger", lr.room.ID, map[string]any{"name": "Pinger"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("limits/ping", false, "hello", err.Error(), "welcome")
		return
	}
	defer cl.close()
	start := time.Now()
	from := cl.mark()
	for i := range pings {
		if err := cl.send(ctx, map[string]any{"type": "ping", "id": fmt.Sprintf("pf%d", i), "t": time.Now().UnixMilli()}); err != nil {
			w.check("limits/ping", false, "ping", err.Error(), "pong")
			return
		}
	}
	pongs, refused, twice, badRetry := 0, 0, 0, 0
	var werr error
	for i := range pings {
		id := fmt.Sprintf("pf%d", i)
		if _, err := cl.await(ctx, from, "answer to ping "+id, func(m *msg) bool { return (m.Type == "pong" || m.Type == "error") && m.ID == id }); err != nil {
			werr = err
			break
		}
	}
	for _, m := range cl.since(from) {
		switch {
		case m.Type == "pong" && strings.HasPrefix(m.ID, "pf"):
			pongs++
		case m.Type == "error" && m.Code == "rate_limited" && strings.HasPrefix(m.ID, "pf"):
			refused++
			if m.RetryAfter == nil || !wholeAtLeast1(*m.RetryAfter) {
				badRetry++
			}
		}
	}
	if pongs+refused > pings {
		twice = pongs + refused - pings
	}
	allowed := 30 + int(time.Since(start).Seconds()) + 1
	open := cl.stillOpen(ctx)
	w.check("limits/ping", werr == nil && refused > 0 && pongs <= allowed && twice == 0 && badRetry == 0 && open,
		fmt.Sprintf("%d pings at once on one connection", pings),
		fmt.Sprintf("%d pongs, %d rate_limited with the ping's id (%d without a whole retryAfter >= 1), %d answered twice; open after: %v %s", pongs, refused, badRetry, twice, open, errText(nil, werr)),
		"30 pings at once and then one a second; a refused ping is answered by an error (rate_limited, the ping's id, retryAfter) instead of a pong; the connection stays open")

	rc, _, err := w.connect(ctx, "attendee Resumer", lr.room.ID, map[string]any{"name": "Resumer"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("limits/resume", false, "hello", err.Error(), "welcome")
		return
	}
	defer rc.close()
	snap, err := rc.awaitSnapshot(ctx, 0)
	if err != nil {
		w.check("limits/resume", false, "hello", err.Error(), "snapshot")
		return
	}
	from = rc.mark()
	for range resumes {
		_ = rc.resume(ctx, snap.Epoch, *snap.Seq-1)
	}
	m, err := rc.await(ctx, from, "rate_limited", func(m *msg) bool { return m.Type == "error" && m.Code == "rate_limited" })
	open = err == nil && rc.stillOpen(ctx)
	answers := 0
	for _, x := range rc.since(from) {
		if x.Type == "events" || x.Type == "snapshot" {
			answers++
		}
	}
	w.check("limits/resume", err == nil && m.RetryAfter != nil && wholeAtLeast1(*m.RetryAfter) && open && answers <= 10,
		fmt.Sprintf("%d resumes at once on one connection", resumes), fmt.Sprintf("%s; %d answered by events or a snapshot so far; open after: %v", errText(m, err), answers, open),
		"10 resumes at once and then one every 2 seconds; a refused one gets an error rate_limited with retryAfter instead of its answer; the connection stays open")
}

// closeEcho closes a connection with a code of the client's own: PROTOCOL.md
// says the server answers it with the same code.
func (w *walker) closeEcho(ctx context.Context, roomID string) {
	cl, _, err := w.connect(ctx, "attendee Leaver", roomID, map[string]any{"name": "Leaver"}, audience{role: "attendee"}, dialOpts{})
	if err != nil {
		w.check("ws/close-echo", false, "hello", err.Error(), "welcome")
		return
	}
	cl.close()
	// A library connection reads the echo inside its own Close, racing the
	// reader: a hand-made one sends the close frame and reads the answer.
	rc, err := w.rawDial(ctx, "/api/rooms/"+roomID+"/ws", "", 0)
	if err != nil {
		w.check("ws/close-echo", false, "upgrade", err.Error(), "a client's own close is answered with its own code")
		return
	}
	defer rc.c.Close()
	frames := maskedFrame(nil, opText, []byte(`{"type":"hello","name":"Leaver"}`))
	frames = maskedFrame(frames, opClose, append([]byte{4321 >> 8, 4321 & 0xff}, "bye"...))
	if _, err := rc.c.Write(frames); err != nil {
		w.check("ws/close-echo", false, "hello and close 4321", err.Error(), "a client's own close is answered with its own code")
		return
	}
	_, code, reason := rc.readUntilClose(ctx)
	w.check("ws/close-echo", code == 4321, `hello, then close 4321 "bye" from the client`, fmt.Sprintf("close %d %q", code, reason), "a client's own close is answered with its own code")
}
