package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestBadInput sends each kind of bad message and checks its documented
// answer, that a connection that stays open keeps working, and that the
// room is unharmed.
func TestBadInput(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Bad input", "teams": []string{"A", "B"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	att := dial(t, ctx, url, map[string]any{"name": "Eve"})
	lead := dial(t, ctx, url, map[string]any{"key": rm.Teams[0].Key})
	do(t, ctx, fac, map[string]any{"type": "start"})
	seqBefore := fac.Seq()

	// Errors that leave the connection open.
	cases := []struct {
		name     string
		c        *hubtest.Client
		raw      string
		wantCode string
	}{
		{"malformed JSON", att, `{"type":"ask","id":"x1","text":`, room.EINVALID},
		{"not an object", att, `[1,2,3]`, room.EINVALID},
		{"unknown field", att, `{"type":"ask","id":"x2","text":"hi","admin":true}`, room.EINVALID},
		{"unknown type", att, `{"type":"make_me_admin","id":"x3"}`, room.EINVALID},
		{"no type", att, `{"id":"x4"}`, room.EINVALID},
		{"command without id", att, `{"type":"ask","text":"hi"}`, room.EINVALID},
		{"id too long", att, `{"type":"ask","id":"` + strings.Repeat("x", 65) + `","text":"hi"}`, room.EINVALID},
		{"level 5 of 4", lead, `{"type":"submit","id":"x5","aspect":"investment","level":5,"rationale":"r"}`, room.EINVALID},
		{"level 0 submit", lead, `{"type":"submit","id":"x6","aspect":"investment","level":0}`, room.EINVALID},
		{"unknown aspect", lead, `{"type":"submit","id":"x7","aspect":"nope","level":2}`, room.ENOTFOUND},
		{"attendee reveals", att, `{"type":"reveal","id":"x8","team":"t1"}`, room.EFORBIDDEN},
		{"attendee submits", att, `{"type":"submit","id":"x9","aspect":"investment","level":2}`, room.EFORBIDDEN},
		{"team lead calls a turn", lead, `{"type":"call_turn","id":"x10"}`, room.EFORBIDDEN},
		{"question too long", att, `{"type":"ask","id":"x11","text":"` + strings.Repeat("q", 501) + `"}`, room.EINVALID},
		{"rationale too long", lead, `{"type":"submit","id":"x12","aspect":"investment","level":2,"rationale":"` + strings.Repeat("r", 2001) + `"}`, room.EINVALID},
		{"second hello", att, `{"type":"hello","name":"again"}`, room.EINVALID},
		{"wrong field type", att, `{"type":"ask","id":"x13","text":42}`, room.EINVALID},
		{"upvote unknown question", att, `{"type":"upvote","id":"x14","question":"q999"}`, room.ENOTFOUND},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.c.Frames())
			if err := tc.c.SendBytes(ctx, []byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			line := waitForLine(t, ctx, tc.c, n, `"type":"error"`)
			if !strings.Contains(line, `"code":"`+tc.wantCode+`"`) {
				t.Fatalf("got %s, want code %s", line, tc.wantCode)
			}
			// Still open and working: a ping is answered.
			m := len(tc.c.Frames())
			if err := tc.c.SendRaw(ctx, map[string]any{"type": "ping", "id": "alive", "t": 1}); err != nil {
				t.Fatal(err)
			}
			waitForLine(t, ctx, tc.c, m, `"type":"pong"`)
		})
	}
	if fac.Seq() != seqBefore {
		t.Fatalf("bad input changed the room: seq %d -> %d", seqBefore, fac.Seq())
	}

	// Errors that close the connection, each with its documented code.
	closing := []struct {
		name  string
		hello string // first frame; "" sends nothing
		then  string // a second frame
		want  websocket.StatusCode
	}{
		{"wrong key", `{"type":"hello","key":"not-a-key"}`, "", 4001},
		{"forged attendee token", `{"type":"hello","participant":"p_x","token":"forged","name":"M"}`, "", 4001},
		{"command before hello", `{"type":"ask","id":"a","text":"hi"}`, "", 4000},
		{"malformed hello", `{"type":"hello",`, "", 4000},
		{"frame over 64 KiB", `{"type":"hello","name":"Big"}`, `{"type":"ask","id":"big","text":"` + strings.Repeat("x", 70<<10) + `"}`, 1009},
		{"hello over 64 KiB", `{"type":"hello","name":"` + strings.Repeat("x", 70<<10) + `"}`, "", 1009},
	}
	for _, tc := range closing {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(cctx, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			conn.SetReadLimit(1 << 20)
			if err := conn.Write(cctx, websocket.MessageText, []byte(tc.hello)); err != nil {
				t.Fatal(err)
			}
			if tc.then != "" {
				_ = conn.Write(cctx, websocket.MessageText, []byte(tc.then))
			}
			for {
				_, _, err = conn.Read(cctx)
				if err != nil {
					break
				}
			}
			if got := websocket.CloseStatus(err); got != tc.want {
				t.Fatalf("close: got %v (%v), want %v", got, err, tc.want)
			}
		})
	}

	// The room is unharmed: everyone still works, nothing was stored.
	r := do(t, ctx, att, map[string]any{"type": "ask", "text": "still here?"})
	if err := fac.WaitSeq(ctx, r.Seq); err != nil {
		t.Fatal(err)
	}
	if r.Seq != seqBefore+1 {
		t.Fatalf("seq after bad input: got %d, want %d", r.Seq, seqBefore+1)
	}
}

// waitForLine waits until a frame after the first `after` ones contains a
// message with sub, and returns that message.
func waitForLine(t *testing.T, ctx context.Context, c *hubtest.Client, after int, sub string) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		frames := c.Frames()
		for _, f := range frames[min(after, len(frames)):] {
			for _, line := range strings.Split(string(f), "\n") {
				if strings.Contains(line, sub) {
					return line
				}
			}
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no message with %s; frames:\n%s", sub, fmtFrames(frames))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestRetryIsIdempotent retries an acknowledged command with the same id on
// a new connection: same answer, applied once.
func TestRetryIsIdempotent(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	rm := createRoom(t, srv.URL, map[string]any{"title": "Retry", "teams": []string{"A"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})
	a := dial(t, ctx, url, map[string]any{"name": "Ana"})
	first, err := a.DoID(ctx, "ask-1", map[string]any{"type": "ask", "text": "once?"})
	if err != nil || !first.OK() {
		t.Fatalf("ask: %+v %v", first, err)
	}
	w := a.Welcome()
	a.Close()
	b := dial(t, ctx, url, map[string]any{"participant": w.Participant, "token": w.Token, "name": "Ana"})
	again, err := b.DoID(ctx, "ask-1", map[string]any{"type": "ask", "text": "once?"})
	if err != nil || !again.OK() {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if again.Seq != first.Seq || again.Result["question"] != first.Result["question"] {
		t.Fatalf("retry answered %+v, want %+v", again, first)
	}
	if n := len(b.State().Questions); n != 1 {
		t.Fatalf("questions after retry: got %d, want 1", n)
	}
}
