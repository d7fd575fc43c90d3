package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// burst makes a rate that allows n at once and refills slowly, so a test
// sees exactly n pass.
func burst(n int) hub.Rate { return hub.Rate{Per: time.Hour, Burst: n} }

// limitedRoom starts a server with tweaked limits and a running room.
func limitedRoom(t *testing.T, lim func(*hub.Limits)) (*testServer, hub.CreatedRoom, *hubtest.Client, context.Context) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { lim(&c.Limits) })
	rm := createRoom(t, srv.URL, map[string]any{"title": "Limits", "teams": []string{"A", "B"}})
	fac := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "start"})
	return srv, rm, fac, ctx
}

// sendUntilLimited sends cmd n times and returns how many were acked and
// the first rate_limited reply.
func sendUntilLimited(t *testing.T, ctx context.Context, c *hubtest.Client, n int, cmd func(i int) map[string]any) (int, hubtest.Reply) {
	t.Helper()
	acked := 0
	var limited hubtest.Reply
	for i := range n {
		r, err := c.Do(ctx, cmd(i))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.OK():
			acked++
		case r.Code == room.ERATELIMITED && limited.Type == "":
			limited = r
		case r.Code != room.ERATELIMITED:
			t.Fatalf("unexpected error %s: %s", r.Code, r.Message)
		}
	}
	return acked, limited
}

func TestRateLimitsPerConnection(t *testing.T) {
	checkNoLeaks(t)
	cases := []struct {
		name  string
		lim   func(*hub.Limits)
		n     int
		allow int
		cmd   func(i int) map[string]any
	}{
		{"commands", func(l *hub.Limits) { l.Commands = burst(5); l.Hands = burst(100) }, 8, 5,
			func(i int) map[string]any { return map[string]any{"type": "raise_hand"} }},
		{"questions", func(l *hub.Limits) { l.Questions = burst(3) }, 5, 3,
			func(i int) map[string]any {
				return map[string]any{"type": "ask", "text": "question " + string(rune('a'+i))}
			}},
		{"votes", func(l *hub.Limits) { l.Votes = burst(4) }, 6, 4,
			func(i int) map[string]any {
				if i%2 == 0 {
					return map[string]any{"type": "upvote", "question": "q1"}
				}
				return map[string]any{"type": "unvote", "question": "q1"}
			}},
		{"hands", func(l *hub.Limits) { l.Hands = burst(2) }, 4, 2,
			func(i int) map[string]any {
				if i%2 == 0 {
					return map[string]any{"type": "raise_hand"}
				}
				return map[string]any{"type": "lower_hand"}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, rm, fac, ctx := limitedRoom(t, tc.lim)
			do(t, ctx, fac, map[string]any{"type": "ask", "text": "seed question"})
			att := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "Flood"})
			seq := fac.Seq()
			cmd := tc.cmd
			if tc.name == "commands" {
				// Alternate so that every command would be valid.
				cmd = func(i int) map[string]any {
					if i%2 == 0 {
						return map[string]any{"type": "raise_hand"}
					}
					return map[string]any{"type": "lower_hand"}
				}
			}
			acked, lim := sendUntilLimited(t, ctx, att, tc.n, cmd)
			if acked != tc.allow {
				t.Fatalf("acked %d, want %d", acked, tc.allow)
			}
			if lim.Type == "" || !strings.Contains(lim.Message, "retry in") {
				t.Fatalf("no rate_limited error with a retry: %+v", lim)
			}
			var raw map[string]any
			for _, f := range att.Frames() {
				for _, line := range strings.Split(string(f), "\n") {
					if strings.Contains(line, `"rate_limited"`) {
						_ = json.Unmarshal([]byte(line), &raw)
					}
				}
			}
			if ra, _ := raw["retryAfter"].(float64); ra <= 0 {
				t.Fatalf("rate_limited error without retryAfter: %v", raw)
			}
			// Nothing refused was stored: the room moved by the acked ones only.
			if err := fac.WaitSeq(ctx, seq+uint64(acked)); err != nil {
				t.Fatal(err)
			}
			// A fence instead of a pause: a facilitator command of one
			// event, decided after every refused command was answered.
			// Had one of them been stored, the fence would come later.
			fence := do(t, ctx, fac, map[string]any{"type": "set_note", "aspect": "investment", "text": "fence"})
			if want := seq + uint64(acked) + 1; fence.Seq != want {
				t.Fatalf("fence at seq %d, want %d: a refused command was stored", fence.Seq, want)
			}
			// The connection stays and answers.
			if err := att.SendRaw(ctx, map[string]any{"type": "ping", "t": 1}); err != nil {
				t.Fatal(err)
			}
			waitForLine(t, ctx, att, 0, `"type":"pong"`)
		})
	}
}

func TestRateLimitsPerAddress(t *testing.T) {
	checkNoLeaks(t)
	t.Run("commands across connections", func(t *testing.T) {
		srv, rm, fac, ctx := limitedRoom(t, func(l *hub.Limits) { l.AddrCommands = burst(4) })
		_ = fac
		// The facilitator's start used one token of 127.0.0.1's bucket.
		a := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "A"})
		b := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "B"})
		do(t, ctx, a, map[string]any{"type": "raise_hand"})
		do(t, ctx, b, map[string]any{"type": "raise_hand"})
		do(t, ctx, a, map[string]any{"type": "lower_hand"})
		if r, _ := b.Do(ctx, map[string]any{"type": "lower_hand"}); r.Code != room.ERATELIMITED {
			t.Fatalf("fifth command from one address: got %+v, want rate_limited", r)
		}
	})
	t.Run("new identities", func(t *testing.T) {
		srv, rm, _, ctx := limitedRoom(t, func(l *hub.Limits) { l.AddrIdentities = burst(2) })
		url := srv.wsURL(rm.ID)
		first := dial(t, ctx, url, map[string]any{"name": "One"})
		dial(t, ctx, url, map[string]any{"name": "Two"})
		c, err := hubtest.Dial(ctx, url, map[string]any{"name": "Three"})
		if err == nil {
			c.Close()
			t.Fatal("third identity from one address was minted")
		}
		if !strings.Contains(err.Error(), "4029") {
			t.Fatalf("got %v, want close 4029", err)
		}
		// A returning participant is not a new identity.
		w := first.Welcome()
		dial(t, ctx, url, map[string]any{"participant": w.Participant, "token": w.Token, "name": "One"})
	})
	t.Run("connection attempts", func(t *testing.T) {
		srv, rm, _, ctx := limitedRoom(t, func(l *hub.Limits) { l.AddrConnects = burst(3) })
		url := srv.wsURL(rm.ID)
		dial(t, ctx, url, map[string]any{"name": "Two"})
		dial(t, ctx, url, map[string]any{"name": "Three"})
		_, resp, err := websocket.Dial(ctx, url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("fourth upgrade: got %v %v, want 429 with Retry-After", resp, err)
		}
	})
	t.Run("room creation", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.Limits.AddrRooms = burst(2) })
		createRoom(t, srv.URL, map[string]any{"title": "1", "teams": []string{"A"}})
		createRoom(t, srv.URL, map[string]any{"title": "2", "teams": []string{"A"}})
		resp := postJSON(t, srv.URL+"/api/rooms", `{"title":"3","teams":["A"]}`)
		if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.body, `"rate_limited"`) {
			t.Fatalf("third room: %d %s", resp.status, resp.body)
		}
	})
	t.Run("code lookups", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.Limits.AddrLookups = burst(3) })
		rm := createRoom(t, srv.URL, map[string]any{"title": "Lookup", "teams": []string{"A"}})
		if r := get(t, srv.URL+"/api/join/"+strings.ToLower(rm.Code[:4]+"-"+rm.Code[4:])); r.status != http.StatusOK || !strings.Contains(r.body, rm.ID) {
			t.Fatalf("lookup: %d %s", r.status, r.body)
		}
		unknown := get(t, srv.URL+"/api/join/ZZZZZZZZ")
		malformed := get(t, srv.URL+"/api/join/0000")
		if unknown.status != http.StatusNotFound || unknown.body != malformed.body {
			t.Fatalf("unknown and malformed codes answer differently: %q vs %q", unknown.body, malformed.body)
		}
		if r := get(t, srv.URL+"/api/join/"+rm.Code); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("fourth lookup: %d %s", r.status, r.body)
		}
	})
}

func TestSizeLimits(t *testing.T) {
	checkNoLeaks(t)
	t.Run("frame size", func(t *testing.T) {
		// MaxClientMessageBytes is the read limit and the decoder's: with
		// 1 KiB, a 900-byte command is read and acknowledged, and a 2 KiB
		// frame closes the connection with 1009.
		srv, rm, fac, ctx := limitedRoom(t, func(l *hub.Limits) { l.MaxClientMessageBytes = 1024 })
		note := map[string]any{"type": "set_note", "aspect": "investment", "text": ""}
		sized := func() int { // the frame DoID sends: note with its id
			b, _ := json.Marshal(map[string]any{"id": "n900", "type": note["type"], "aspect": note["aspect"], "text": note["text"]})
			return len(b)
		}
		note["text"] = strings.Repeat("x", 900-sized())
		if n := sized(); n != 900 {
			t.Fatalf("the note's frame is %d bytes, want 900", n)
		}
		if r, err := fac.DoID(ctx, "n900", note); err != nil || !r.OK() {
			t.Fatalf("a 900-byte note under a 1 KiB limit: %+v %v", r, err)
		}
		att := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "Big"})
		_ = att.SendBytes(ctx, []byte(`{"type":"ask","id":"x","text":"`+strings.Repeat("x", 2<<10)+`"}`))
		_ = att.WaitClosed(ctx)
		var ce websocket.CloseError
		if !errors.As(att.CloseErr(), &ce) || ce.Code != websocket.StatusMessageTooBig || ce.Reason != "read limited at 1025 bytes" {
			t.Fatalf("close after a 2 KiB frame: got %v, want 1009 \"read limited at 1025 bytes\"", att.CloseErr())
		}
	})
	t.Run("connections per room", func(t *testing.T) {
		srv, rm, _, ctx := limitedRoom(t, func(l *hub.Limits) { l.MaxConnsPerRoom = 2 })
		dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"name": "Two"})
		_, err := hubtest.Dial(ctx, srv.wsURL(rm.ID), map[string]any{"name": "Three"})
		if err == nil || !strings.Contains(err.Error(), "4029") {
			t.Fatalf("third connection: got %v, want close 4029", err)
		}
	})
	t.Run("questions per room", func(t *testing.T) {
		_, _, fac, ctx := limitedRoom(t, func(l *hub.Limits) { l.MaxQuestionsPerRoom = 2 })
		do(t, ctx, fac, map[string]any{"type": "ask", "text": "one"})
		do(t, ctx, fac, map[string]any{"type": "ask", "text": "two"})
		seq := fac.Seq()
		if r, _ := fac.Do(ctx, map[string]any{"type": "ask", "text": "three"}); r.Code != room.ECONFLICT {
			t.Fatalf("third question: got %+v, want conflict", r)
		}
		if fac.Seq() != seq || len(fac.State().Questions) != 2 {
			t.Fatal("the refused question was stored")
		}
	})
	t.Run("teams per room", func(t *testing.T) {
		srv, _, fac, ctx := limitedRoom(t, func(l *hub.Limits) { l.MaxTeamsPerRoom = 3 })
		resp := postJSON(t, srv.URL+"/api/rooms", `{"title":"Too many","teams":["a","b","c","d"]}`)
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, "at most 3 teams") {
			t.Fatalf("4 teams: %d %s", resp.status, resp.body)
		}
		do(t, ctx, fac, map[string]any{"type": "add_team", "name": "C"})
		if r, _ := fac.Do(ctx, map[string]any{"type": "add_team", "name": "D"}); r.Code != room.ECONFLICT {
			t.Fatalf("fourth team: got %+v, want conflict", r)
		}
		if n := len(fac.State().Teams); n != 3 {
			t.Fatalf("teams: %d, want 3", n)
		}
	})
	t.Run("request body", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "")
		resp := postJSON(t, srv.URL+"/api/rooms", `{"title":"`+strings.Repeat("x", 200<<10)+`","teams":["a"]}`)
		if resp.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("huge body: %d %s", resp.status, resp.body)
		}
	})
}

// TestCrossSiteWebSocket: a page of another site cannot open a socket with
// a user's browser; the server's own origin, configured origins and
// non-browser clients (no Origin) can.
func TestCrossSiteWebSocket(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 30*time.Second)
	srv := startServerHTTP(t, t.TempDir(), "", func(c *hub.HTTPConfig) { c.AllowedOrigins = []string{"workshop.example.com"} })
	rm := createRoom(t, srv.URL, map[string]any{"title": "Origin", "teams": []string{"A"}})
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://evil.example.net", false},
		{"http://" + host + ".evil.net", false},
		{"null", false},
		{"http://" + host, true},
		{"https://workshop.example.com", true},
		{"", true},
	} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		conn, resp, err := websocket.Dial(ctx, srv.wsURL(rm.ID), &websocket.DialOptions{HTTPHeader: hdr})
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			conn.Close(websocket.StatusNormalClosure, "")
			continue
		}
		if err == nil {
			conn.CloseNow()
			t.Errorf("origin %q accepted", tc.origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: got %v, want 403", tc.origin, resp)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	checkNoLeaks(t)
	srv := startServer(t, t.TempDir(), "")
	r := get(t, srv.URL+"/healthz")
	for k, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
	} {
		if got := r.header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP: %q", csp)
	}
}

// TestTrustedProxies: X-Forwarded-For counts only from a trusted proxy.
func TestTrustedProxies(t *testing.T) {
	checkNoLeaks(t)
	lookups := func(l *hub.Limits) { l.AddrLookups = burst(1) }
	t.Run("untrusted", func(t *testing.T) {
		srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { lookups(&c.Limits) })
		getXFF(t, srv.URL+"/api/join/ZZZZZZZZ", "203.0.113.1")
		// A different forged address does not get a fresh bucket.
		if r := getXFF(t, srv.URL+"/api/join/ZZZZZZZZ", "203.0.113.2"); r.status != http.StatusTooManyRequests {
			t.Fatalf("forged X-Forwarded-For was believed: %d", r.status)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		_, loop, _ := net.ParseCIDR("127.0.0.0/8")
		srv := startServerHTTP(t, t.TempDir(), "", func(c *hub.HTTPConfig) { c.TrustedProxies = []*net.IPNet{loop} },
			func(c *hub.Config) { lookups(&c.Limits) })
		getXFF(t, srv.URL+"/api/join/ZZZZZZZZ", "203.0.113.1")
		if r := getXFF(t, srv.URL+"/api/join/ZZZZZZZZ", "203.0.113.2"); r.status != http.StatusNotFound {
			t.Fatalf("client behind a trusted proxy: %d, want its own bucket (404)", r.status)
		}
		if r := getXFF(t, srv.URL+"/api/join/ZZZZZZZZ", "203.0.113.2"); r.status != http.StatusTooManyRequests {
			t.Fatalf("same client again: %d, want 429", r.status)
		}
	})
}

type httpAnswer struct {
	status int
	header http.Header
	body   string
}

func doHTTP(t *testing.T, req *http.Request) httpAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{resp.StatusCode, resp.Header, string(b)}
}

func get(t *testing.T, url string) httpAnswer {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return doHTTP(t, req)
}

func getXFF(t *testing.T, url, xff string) httpAnswer {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Forwarded-For", xff)
	return doHTTP(t, req)
}

func postJSON(t *testing.T, url, body string) httpAnswer {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	return doHTTP(t, req)
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
