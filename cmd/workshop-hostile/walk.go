package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// walk runs every check in order. The hello timeout and the gone room's
// retention run alongside, and are reported when they are due.
func (w *walker) walk(ctx context.Context) {
	w.note("walking hub/PROTOCOL.md against %s (source addresses: %d)", w.cfg.base, w.cfg.sourceAddrs)
	if !w.preflight(ctx) {
		return
	}
	r := w.restCreate(ctx)
	if r == nil {
		return
	}
	w.plantKeys(r)
	helloTimeout := w.startHelloTimeout(ctx, r.ID)
	goneRoom := w.gone(ctx)
	w.restRead(ctx, r)
	w.restJoin(ctx, r)
	w.restProbes(ctx)

	w.wsOrigin(ctx, r)
	s := w.wsHello(ctx, r)
	if s != nil {
		w.plantToken(s.anaTok, s.anaID)
		w.plantToken(s.boTok, s.boID)
		w.wsResume(ctx, s)
		w.wsCommands(ctx, s)
		w.wsRemove(ctx, s)
		w.restSecrecy(ctx, r)
		if fac := w.wsRotate(ctx, s); fac != nil {
			w.wsClose(ctx, s, fac)
		}
	}
	w.resumeSecrecy(ctx)

	if lr := w.newLimitsRoom(ctx); lr != nil {
		w.rateLimits(ctx, lr)
		w.pingResumeLimits(ctx, lr)
		w.closeEcho(ctx, lr.room.ID)
		w.envelopes(ctx, lr)
		w.slowConsumer(ctx, lr)
		w.identityFlood(ctx, lr)
		w.upgradeFlood(ctx, lr.room.ID)
		w.lookupFlood(ctx, lr.room.Code)
	}
	w.restCreateBudget(ctx)
	helloTimeout()
	goneRoom()

	w.skip("ws/close-1011", "1011 `internal error` needs a server fault (a failed write or a panic): not reachable from a well-behaved server")
	w.skip("ws/close-1013", "1013 `store unavailable` / `room unavailable` needs the store down: not reachable from a well-behaved server")
	w.skip("ws/close-4029-room-full", "4029 `too many connections: the room is full` needs 20,000 connections to one room: not a test for a shared 2-core machine")
	w.skip("ws/room-queue-full", "rate_limited `too many commands waiting in this room` needs 4,096 commands waiting for one room actor: not reachable in reasonable time within the per-address command limits")
	w.skip("ws/keepalive-75s", "a connection silent for 75 seconds is dropped without a close frame: longer than this walk may take")
	w.check("ws/no-server-pings", w.serverPings.Load() == 0, fmt.Sprintf("%d connections listening for WebSocket pings", len(w.conns)),
		fmt.Sprintf("%d pings from the server", w.serverPings.Load()), "the server does not send WebSocket pings: the client keeps the connection alive with ping messages")
	w.skip("rest/500-internal", "500 internal is a bug: not reachable from a well-behaved server")
	w.skip("rest/503-unavailable", "503 unavailable needs the store down (or a draining server: see ws/close-1001)")
	w.shutdown(ctx)
	w.auditAll()
	w.closeIdle()
}

// preflight checks the server answers and the source addresses can be
// bound.
func (w *walker) preflight(ctx context.Context) bool {
	r := w.get(ctx, "/healthz")
	if r.err != nil {
		w.check("preflight", false, "GET /healthz", r.err.Error(), "/healthz answers 200 while the process runs")
		return false
	}
	if w.cfg.sourceAddrs > 1 {
		last := fmt.Sprintf("127.0.0.%d", w.cfg.sourceAddrs)
		c, err := dialer(last, 0).DialContext(ctx, "tcp", w.cfg.base.Host)
		if err != nil {
			w.check("preflight", false, "a connection from "+last, err.Error(), "(the walk's own need: loopback source addresses)")
			return false
		}
		c.Close()
	}
	return true
}

// plantKeys registers the room's keys as secrets: a key reaches only its
// own role and the facilitator (whose welcome carries them).
func (w *walker) plantKeys(r *createdRoom) {
	w.addSecret(r.FacilitatorKey, "the facilitator key", onlyFacilitator)
	w.addSecret(r.PresenterKey, "the presenter key", func(a audience) bool { return a.role == "facilitator" || a.role == "presenter" })
	for _, t := range r.Teams {
		id := t.ID
		w.addSecret(t.Key, "team "+t.Name+"'s key", func(a audience) bool { return a.role == "facilitator" || (a.role == "team" && a.team == id) })
	}
}

// plantToken registers an attendee's token: it reaches that attendee only.
func (w *walker) plantToken(token, participant string) {
	w.addSecret(token, "another attendee's token", func(a audience) bool { return a.participant == participant })
}

// restSecrecy checks the REST views hold none of the secrets planted so
// far that the public may not see.
func (w *walker) restSecrecy(ctx context.Context, r *createdRoom) {
	w.mu.Lock()
	secrets := append([]secret(nil), w.secrets...)
	w.mu.Unlock()
	public := audience{role: "public"}
	for _, p := range []struct{ path, key string }{
		{"/api/rooms/" + r.ID, ""}, {"/api/rooms/" + r.ID + "/results", ""},
		{"/api/rooms/" + r.ID + "/export?format=json", r.FacilitatorKey}, {"/api/rooms/" + r.ID + "/export?format=csv", r.FacilitatorKey},
		{"/api/rooms/" + r.ID + "/export?format=md", r.FacilitatorKey},
	} {
		h := map[string]string{}
		if p.key != "" {
			h["Authorization"] = "Bearer " + p.key
		}
		resp := w.request(ctx, w.shared(), http.MethodGet, p.path, h, nil)
		var leaked []string
		for _, s := range secrets {
			if !s.allowed(public) && strings.Contains(string(resp.body), s.value) {
				leaked = append(leaked, s.what)
			}
		}
		problems := []string{}
		if strings.HasSuffix(p.path, r.ID) {
			problems = auditRoom(public, json.RawMessage(resp.body))
		}
		w.check("secrecy/rest", resp.status == 200 && len(leaked) == 0 && len(problems) == 0, "GET "+p.path+" after drafts, submissions, reveals and hides",
			fmt.Sprintf("%d; secrets in it: %v %v", resp.status, leaked, problems), "only revealed scores; drafts, unrevealed rationales, hidden questions and keys never")
	}
}

// shutdown sends SIGTERM to the server (when -server-pid names it) with
// connections open, and checks /readyz fails and every connection closes
// with 1001.
func (w *walker) shutdown(ctx context.Context) {
	const name, says = "ws/close-1001", "1001 `server going away` (shutdown or drain, also before the hello): reconnect at once and resume"
	if w.cfg.serverPID <= 0 {
		w.skip(name, "needs -server-pid: the walk ends by stopping the server with SIGTERM")
		return
	}
	r := w.createRoom(ctx, name, `{"title":"Going away","teams":["A"]}`)
	if r == nil {
		return
	}
	src := w.dedicated(addrShutdown)
	var conns []*wsClient
	for _, h := range []struct {
		name  string
		hello map[string]any
		aud   audience
	}{
		{"facilitator (shutdown)", map[string]any{"key": r.FacilitatorKey}, audience{role: "facilitator"}},
		{"attendee (shutdown)", map[string]any{"name": "Last one"}, audience{role: "attendee"}},
	} {
		cl, _, err := w.connect(ctx, h.name, r.ID, h.hello, h.aud, dialOpts{src: src})
		if err != nil {
			w.check(name, false, "hello", err.Error(), says)
			return
		}
		conns = append(conns, cl)
	}
	quiet, err := w.open(ctx, "a connection without hello (shutdown)", r.ID, audience{role: "stranger"}, dialOpts{src: src})
	if err != nil {
		w.check(name, false, "upgrade", err.Error(), says)
		return
	}
	conns = append(conns, quiet)
	stopped := time.Now()
	if err := terminate(w.cfg.serverPID); err != nil {
		w.check(name, false, fmt.Sprintf("SIGTERM to pid %d", w.cfg.serverPID), err.Error(), says)
		return
	}
	// /readyz fails while the server drains (503), or it stops listening.
	deadline := time.Now().Add(shutdownWait)
	var last response
	for time.Now().Before(deadline) {
		last = w.request(ctx, src, http.MethodGet, "/readyz", map[string]string{"Connection": "close"}, nil)
		if last.err != nil || last.status != 200 {
			break
		}
		t := time.NewTimer(shutdownPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	switch {
	case last.err == nil && last.status == http.StatusServiceUnavailable:
		w.check("rest/readyz-draining", readyBodyOK(last), "GET /readyz after SIGTERM", last.String(),
			"503 {\"status\":\"not ready\"} otherwise (draining): never the reason")
	case last.err != nil:
		w.skip("rest/readyz-draining", "the server stopped listening before /readyz was seen failing ("+last.err.Error()+"); a -drain-delay shows it")
	default:
		w.check("rest/readyz-draining", false, "GET /readyz after SIGTERM", last.String(), "503 while draining")
	}
	for _, cl := range conns {
		code, reason, err := cl.waitClose(ctx, shutdownWait)
		w.check(name, err == nil && code == websocket.StatusGoingAway && reason == "server going away", fmt.Sprintf("SIGTERM to the server; %s connected", cl.name),
			fmt.Sprintf("%s, %s after the SIGTERM", closeText(code, reason, err), time.Since(stopped).Round(100*time.Millisecond)), says)
	}
}
