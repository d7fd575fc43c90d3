package main

// TestTopologyDrain runs docker-compose.yml's topology without Docker: a
// real redis-server, two instances of the real binary as processes, and a
// round-robin reverse proxy in front that behaves like deploy/nginx.conf
// (no stickiness; skips an instance that is not ready, refuses
// connections or answers 503 to a WebSocket upgrade). A workshop runs
// through the proxy while one instance is stopped with SIGTERM, as
// `docker compose stop` or a Kubernetes rollout would: its clients are
// moved, resume on the other instance, retry what was cut off with the
// same command ids, and nobody loses or doubles anything.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/hub/redis"
	"github.com/leveling/workshop/room"
)

// Timings of the drain scenario. drainDelay is short so the test is fast
// but long enough that the proxy's readiness poll (healthPoll) usually sees
// the drain before clients are moved, as a real balancer would (when it
// does not, the draining instance's 503 sends the upgrade to the other).
// The pauses between a peer's commands spread its work over the drain, so
// that some commands are cut; nothing waits on them. drainTimeout only
// catches a hang: the scenario, build excluded, takes 2 to 3 s, on a
// loaded 2-core machine too.
const (
	drainDelay    = 400 * time.Millisecond
	shutdownGrace = 10 * time.Second
	healthPoll    = 50 * time.Millisecond
	healthTimeout = 500 * time.Millisecond // one poll; generous, a loaded machine is slow
	drainTimeout  = 3 * time.Minute
)

func TestTopologyDrain(t *testing.T) {
	testDrain(t, func(t *testing.T, ctx context.Context, addr string, insts ...*instance) {
		newBalancer(t, addr, insts...)
	})
}

// TestTopologyDrainNginx is TestTopologyDrain with real nginx in front,
// running deploy/nginx.conf itself (its upstream hosts pointed at the two
// processes), so the balancer configuration that docker-compose.yml ships is
// exercised too: WebSocket upgrades, and the retry on the other instance
// when one is draining (503) or gone (refused). `make test` installs nginx;
// elsewhere it skips without it, and under CI=true it fails.
func TestTopologyDrainNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx not found: make test installs it (apt-get install nginx)")
		}
		t.Skip("nginx not found (apt-get install nginx): deploy/nginx.conf is not exercised")
	}
	testDrain(t, func(t *testing.T, ctx context.Context, addr string, insts ...*instance) {
		startNginx(t, ctx, bin, addr, insts...)
	})
}

// startFront starts a load balancer listening on addr in front of the
// instances, stopped when the test ends.
type startFront func(t *testing.T, ctx context.Context, addr string, insts ...*instance)

func testDrain(t *testing.T, front startFront) {
	bin := workshopBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	rdb := hubtest.StartRedis(t)

	lbAddr := freeAddr(t)
	publicURL := "http://" + lbAddr
	env := map[string]string{
		"WORKSHOP_REDIS_URL":       rdb.URL(),
		"WORKSHOP_PUBLIC_URL":      publicURL,
		"WORKSHOP_TRUSTED_PROXIES": "127.0.0.1/32",
		"WORKSHOP_DRAIN_DELAY":     drainDelay.String(),
		"WORKSHOP_SHUTDOWN_GRACE":  shutdownGrace.String(),
	}
	a := startInstance(t, ctx, bin, "workshop-1", env)
	b := startInstance(t, ctx, bin, "workshop-2", env)
	front(t, ctx, lbAddr, a, b)
	// The image's HEALTHCHECK, as Docker runs it: the binary's own mode.
	hc := exec.CommandContext(ctx, bin, "healthcheck")
	hc.Env = []string{"WORKSHOP_ADDR=" + strings.TrimPrefix(a.base, "http://")}
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("workshop healthcheck: %v\n%s", err, out)
	}

	rm := createRoom(t, ctx, publicURL, []string{"Payments", "Search"})
	if !strings.HasPrefix(rm.Links.Room, publicURL+"/") {
		t.Errorf("room link %q: want it under the public URL %s", rm.Links.Room, publicURL)
	}
	wsURL := "ws" + strings.TrimPrefix(publicURL, "http") + "/api/rooms/" + rm.ID + "/ws"

	// The cast: one client per role, several attendees; round robin
	// spreads them over both instances.
	fac := dialPeer(t, ctx, wsURL, "fac", map[string]any{"key": rm.FacilitatorKey})
	leads := []*peer{
		dialPeer(t, ctx, wsURL, "lead1", map[string]any{"key": rm.Teams[0].Key}),
		dialPeer(t, ctx, wsURL, "lead2", map[string]any{"key": rm.Teams[1].Key}),
	}
	var attendees []*peer
	for _, name := range []string{"Ana", "Bo", "Cy", "Di"} {
		attendees = append(attendees, dialPeer(t, ctx, wsURL, name, map[string]any{"name": name}))
	}
	peers := append(append([]*peer{fac}, leads...), attendees...)
	for _, inst := range []*instance{a, b} {
		if n := scrape(t, ctx, inst.base).value("workshop_connections"); n == 0 {
			t.Fatalf("%s has no clients: the proxy does not spread them", inst.name)
		}
	}
	// Stop the instance that serves the facilitator, so the busiest
	// command stream is the one cut.
	victim, survivor := a, b
	if scrape(t, ctx, b.base).value("workshop_connections", "role", "facilitator") == 1 {
		victim, survivor = b, a
	}

	// Before: scores submitted, the session started, one question each.
	agenda := fac.c.State().Agenda
	if len(agenda) != 5 {
		t.Fatalf("agenda %v: want PEMM's five aspects", agenda)
	}
	var errs errList
	fac.must(ctx, &errs, map[string]any{"type": "start"})
	for i, l := range leads {
		for j, asp := range agenda {
			l.must(ctx, &errs, map[string]any{"type": "submit", "aspect": asp, "level": 1 + (i+j)%4, "rationale": fmt.Sprintf("%s on %s", l.name, asp)})
		}
	}
	var questions []string
	for _, p := range attendees {
		r := p.must(ctx, &errs, map[string]any{"type": "ask", "text": "First question from " + p.name})
		q, _ := r.reply.Result["question"].(string)
		questions = append(questions, q)
	}
	if err := errs.err(); err != nil {
		t.Fatal(err)
	}

	// During: everyone works at once while the victim drains and stops.
	// SIGTERM goes out once every peer's first busy command is
	// acknowledged: all of them are then in the middle of their work,
	// however fast or slow the machine runs it.
	var busyPeers sync.WaitGroup
	busyPeers.Add(len(peers)) // each runs busy once, below
	busy := func(p *peer, cmds []map[string]any, pause time.Duration) {
		started := sync.OnceFunc(busyPeers.Done)
		defer started() // a peer that fails before its first ack
		for _, c := range cmds {
			p.must(ctx, &errs, c)
			started()
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var cmds []map[string]any
		for _, asp := range agenda[1:4] {
			cmds = append(cmds, map[string]any{"type": "goto_aspect", "aspect": asp})
			for _, team := range []string{"t1", "t2"} {
				cmds = append(cmds,
					map[string]any{"type": "call_turn", "team": team, "seconds": 60},
					map[string]any{"type": "reveal", "aspect": asp, "team": team},
					map[string]any{"type": "end_turn"})
			}
			cmds = append(cmds,
				map[string]any{"type": "set_note", "aspect": asp, "text": "Notes on " + asp},
				map[string]any{"type": "add_action", "aspect": asp, "text": "Follow up on " + asp})
		}
		cmds = append(cmds,
			map[string]any{"type": "highlight", "question": questions[0]},
			map[string]any{"type": "answer", "question": questions[0], "on": true})
		busy(fac, cmds, 40*time.Millisecond)
	})
	last := agenda[4] // never revealed while busy: drafts stay editable
	for _, l := range leads {
		wg.Go(func() {
			var cmds []map[string]any
			for i := range 12 {
				cmds = append(cmds, map[string]any{"type": "save_draft", "aspect": last, "level": i % 5, "rationale": fmt.Sprintf("draft %d", i)})
			}
			cmds = append(cmds, map[string]any{"type": "submit", "aspect": last, "level": 3, "rationale": l.name + " final"})
			busy(l, cmds, 80*time.Millisecond)
		})
	}
	for i, p := range attendees {
		wg.Go(func() {
			var others []string
			for j, q := range questions {
				if j != i {
					others = append(others, q)
				}
			}
			var cmds []map[string]any
			// upvote, unvote, upvote: a command applied twice would be
			// refused the second time (already voted / not voted).
			for _, q := range others {
				cmds = append(cmds, map[string]any{"type": "upvote", "question": q})
			}
			cmds = append(cmds, map[string]any{"type": "raise_hand"}, map[string]any{"type": "ask", "text": "Second question from " + p.name})
			for _, q := range others {
				cmds = append(cmds, map[string]any{"type": "unvote", "question": q}, map[string]any{"type": "upvote", "question": q})
			}
			cmds = append(cmds, map[string]any{"type": "lower_hand"}, map[string]any{"type": "ask", "text": "Third question from " + p.name})
			busy(p, cmds, 90*time.Millisecond)
		})
	}
	busyPeers.Wait()
	stopped := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errs.err(); err != nil {
		t.Fatal(err)
	}
	if err := victim.wait(ctx); err != nil {
		t.Fatalf("%s after SIGTERM: %v", victim.name, err)
	}
	t.Logf("%s exited %s after SIGTERM (drain delay %s)", victim.name, victim.at.Sub(stopped).Round(time.Millisecond), drainDelay)
	if !strings.Contains(victim.log.String(), "msg=stopped") {
		t.Errorf("%s did not log a clean stop", victim.name)
	}
	moved := 0
	for _, p := range peers {
		for _, st := range p.closes {
			if st != websocket.StatusGoingAway {
				t.Errorf("%s: connection closed with %v, want 1001 (going away)", p.name, st)
			}
		}
		moved += len(p.closes)
	}
	if moved == 0 {
		t.Fatal("no client was moved: the drain did not happen while they were connected")
	}
	retries := 0
	for _, p := range peers {
		retries += p.retries
	}
	t.Logf("%d clients moved; %d commands retried with the same id", moved, retries)

	// After: the facilitator reveals what is left; then a fence command
	// whose sequence every client must reach.
	for _, asp := range []string{agenda[0], agenda[4]} {
		fac.must(ctx, &errs, map[string]any{"type": "reveal", "aspect": asp})
	}
	// Retries of commands acknowledged long ago get the same ack and apply
	// nothing. A moved client retries its first command, which the stopped
	// instance decided, so the survivor must answer from the room's record;
	// the others retry one the survivor decided itself (not an ask: the
	// per-connection question limit would answer first).
	var lostResults []string
	for _, p := range peers {
		i := 0
		if len(p.closes) == 0 {
			i = slices.IndexFunc(p.acked, func(a ackRecord) bool { return a.cmd["type"] != "ask" })
		}
		first := p.acked[i]
		r, err := p.c.DoID(ctx, first.id, first.cmd)
		if err != nil || !r.OK() || r.Seq != first.reply.Seq {
			t.Errorf("%s: retry of %s %v: got %+v %v, want an ack at seq %d", p.name, first.id, first.cmd["type"], r, err, first.reply.Seq)
		} else if !maps.Equal(r.Result, first.reply.Result) {
			lostResults = append(lostResults, fmt.Sprintf("%s: retry of %s %v: result %v, first ack had %v",
				p.name, first.id, first.cmd["type"], r.Result, first.reply.Result))
		}
	}
	t.Run("retried ask keeps its result on another instance", func(t *testing.T) {
		// The instance that did not decide the command rebuilds the ack's
		// result (the new question's id) from the log.
		if len(lostResults) > 0 {
			t.Errorf("ack result lost on another instance:\n%s", strings.Join(lostResults, "\n"))
		}
	})
	fence := fac.must(ctx, &errs, map[string]any{"type": "set_note", "aspect": agenda[0], "text": "The end"})
	if err := errs.err(); err != nil {
		t.Fatal(err)
	}
	late, err := hubtest.Dial(ctx, wsURL, map[string]any{"name": "Late"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(late.Close)

	// The log in Redis is the truth: every acknowledged command is in it
	// exactly once, at the sequence its ack named.
	log := readLog(t, ctx, rdb.URL(), rm.ID)
	final := log[len(log)-1].Seq
	if final != fence.reply.Seq {
		t.Errorf("last event %d, want the fence's %d", final, fence.reply.Seq)
	}
	runs := commandRuns(t, log)
	for _, p := range peers {
		for _, ack := range p.acked {
			seqs := runs[ack.id]
			if len(seqs) == 0 {
				t.Errorf("%s: %s %v acknowledged at %d but not in the log", p.name, ack.id, ack.cmd["type"], ack.reply.Seq)
			} else if seqs[len(seqs)-1] != ack.reply.Seq {
				t.Errorf("%s: %s %v acknowledged at %d, logged at %v", p.name, ack.id, ack.cmd["type"], ack.reply.Seq, seqs)
			}
		}
	}

	// Every client, moved or not, ends at the same sequence with the same
	// room as a newcomer sees it.
	want := project(late.State())
	for _, p := range peers {
		if err := p.c.WaitSeq(ctx, final); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if got := p.c.Seq(); got != final {
			t.Errorf("%s at seq %d, want %d", p.name, got, final)
		}
		if got := project(p.c.State()); !got.equal(want) {
			t.Errorf("%s's room differs from a newcomer's:\n got %+v\nwant %+v", p.name, got, want)
		}
	}
	checkOutcome(t, want, agenda, leads, attendees, questions)

	m := scrape(t, ctx, survivor.base)
	if m.value("workshop_connections") != float64(len(peers)+1) {
		t.Errorf("%s: %v connections, want all %d clients", survivor.name, m.value("workshop_connections"), len(peers)+1)
	}
	if !m.has("workshop_redis_bus_messages_total") || m.value("workshop_redis_bus_messages_total") == 0 {
		t.Error("workshop_redis_bus_messages_total missing or 0 with Redis")
	}
}

// checkOutcome checks the final room against what the scenario did.
func checkOutcome(t *testing.T, p projection, agenda []string, leads, attendees []*peer, first []string) {
	t.Helper()
	// Three questions per attendee; each first question got a vote from
	// each other attendee, exactly once.
	if len(p.Questions) != 3*len(attendees) {
		t.Errorf("%d questions, want %d", len(p.Questions), 3*len(attendees))
	}
	for _, q := range first {
		if got := p.votes[q]; got != len(attendees)-1 {
			t.Errorf("question %s: %d votes, want %d", q, got, len(attendees)-1)
		}
	}
	// Every score revealed: the last submitted level of each lead.
	for i, l := range leads {
		team := fmt.Sprintf("t%d", i+1)
		for j, asp := range agenda {
			want := fmt.Sprintf("%d|%s on %s", 1+(i+j)%4, l.name, asp)
			if asp == agenda[4] {
				want = "3|" + l.name + " final"
			}
			if got := p.Revealed[team+"/"+asp]; got != want {
				t.Errorf("%s/%s revealed %q, want %q", team, asp, got, want)
			}
		}
	}
	if len(p.Hands) != 0 {
		t.Errorf("hands %v still up, want none", p.Hands)
	}
	if p.Turn != "" {
		t.Errorf("turn %q, want none", p.Turn)
	}
}

// projection is what every audience of a room must agree on.
type projection struct {
	Phase, Aspect, Turn, Highlighted string
	Questions                        []string          // id|text|votes|answered, in room order
	Revealed                         map[string]string // team/aspect -> level|rationale
	Hands                            []string
	Notes                            map[string]string
	Actions                          map[string][]string
	votes                            map[string]int
}

func project(s *room.State) projection {
	p := projection{
		Phase: string(s.Phase), Aspect: s.Aspect, Highlighted: s.Highlighted,
		Revealed: map[string]string{}, Notes: maps.Clone(s.Notes), Actions: map[string][]string{},
		votes: map[string]int{},
	}
	if s.Turn != nil {
		p.Turn = s.Turn.Aspect + "/" + s.Turn.Team + "/" + s.Turn.Participant
	}
	for _, q := range s.Questions {
		p.Questions = append(p.Questions, fmt.Sprintf("%s|%s|%d|%v", q.ID, q.Text, q.Votes, q.Answered))
		p.votes[q.ID] = q.Votes
	}
	for team, byAspect := range s.Scores {
		for asp, sc := range byAspect {
			if sc.Revealed {
				p.Revealed[team+"/"+asp] = fmt.Sprintf("%d|%s", sc.Level, sc.Rationale)
			}
		}
	}
	for _, h := range s.Hands {
		p.Hands = append(p.Hands, h.Participant)
	}
	for asp, as := range s.Actions {
		for _, a := range as {
			p.Actions[asp] = append(p.Actions[asp], fmt.Sprintf("%d|%s|%v", a.ID, a.Text, a.Done))
		}
	}
	return p
}

func (p projection) equal(q projection) bool {
	return p.Phase == q.Phase && p.Aspect == q.Aspect && p.Turn == q.Turn && p.Highlighted == q.Highlighted &&
		slices.Equal(p.Questions, q.Questions) && maps.Equal(p.Revealed, q.Revealed) &&
		slices.Equal(p.Hands, q.Hands) && maps.Equal(p.Notes, q.Notes) &&
		maps.EqualFunc(p.Actions, q.Actions, slices.Equal)
}

// readLog reads the room's whole log from Redis with the server's own
// store code.
func readLog(t *testing.T, ctx context.Context, redisURL, roomID string) []room.Event {
	t.Helper()
	client, err := redis.NewClient(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store := redis.NewStore(client, redis.StoreConfig{})
	defer store.Close()
	log, err := store.Since(ctx, roomID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range log {
		if i > 0 && e.Seq != log[i-1].Seq+1 {
			t.Fatalf("log: seq %d after %d", e.Seq, log[i-1].Seq)
		}
	}
	if len(log) == 0 {
		t.Fatal("log: empty")
	}
	return log
}

// commandRuns maps each command id to the sequences of its events, and
// fails when a command's events are not one contiguous run (applied twice).
func commandRuns(t *testing.T, log []room.Event) map[string][]uint64 {
	t.Helper()
	runs := map[string][]uint64{}
	prev := ""
	for _, e := range log {
		if e.Cmd == "" {
			prev = ""
			continue
		}
		// The key is participant/id; the test's ids are unique room-wide.
		id := e.Cmd[strings.LastIndexByte(e.Cmd, '/')+1:]
		if seqs := runs[id]; len(seqs) > 0 && e.Cmd != prev {
			t.Errorf("command %s applied twice: events at %v and %d", id, seqs, e.Seq)
		}
		runs[id] = append(runs[id], e.Seq)
		prev = e.Cmd
	}
	return runs
}

// peer is one participant: its current connection, how to resume it, and
// the commands it got acknowledged. One goroutine drives a peer.
type peer struct {
	name    string
	url     string
	hello   map[string]any // key, or participant and token
	c       *hubtest.Client
	n       int
	acked   []ackRecord
	closes  []websocket.StatusCode // how each replaced connection ended
	retries int                    // commands sent again after a cut
}

type ackRecord struct {
	id    string
	cmd   map[string]any
	reply hubtest.Reply
}

func dialPeer(t *testing.T, ctx context.Context, wsURL, name string, hello map[string]any) *peer {
	t.Helper()
	c, err := hubtest.Dial(ctx, wsURL, hello)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &peer{name: name, url: wsURL, hello: hello, c: c}
	if w := c.Welcome(); w.Token != "" {
		p.hello = map[string]any{"participant": w.Participant, "token": w.Token}
	}
	t.Cleanup(func() { p.c.Close() })
	return p
}

// must sends a command with a fresh id and insists on an ack, resuming on
// another instance and retrying the same id whenever the connection is
// cut or the server says it is going away, and retrying after a pause when
// it is busy (unavailable for another reason, or rate_limited).
func (p *peer) must(ctx context.Context, errs *errList, cmd map[string]any) ackRecord {
	p.n++
	id := fmt.Sprintf("%s-%d", p.name, p.n)
	for try := 0; ; try++ {
		if ctx.Err() != nil {
			errs.add(fmt.Errorf("%s: %s %v: %w", p.name, id, cmd["type"], ctx.Err()))
			return ackRecord{}
		}
		if try > 0 {
			p.retries++
		}
		r, err := p.c.DoID(ctx, id, cmd)
		switch {
		case err != nil:
			p.resume(ctx, errs)
			continue
		case r.Code == room.EUNAVAILABLE && strings.Contains(r.Message, "going away"):
			// The instance is going away: its close follows.
			p.resume(ctx, errs)
			continue
		case r.Code == room.EUNAVAILABLE || r.Code == room.ERATELIMITED:
			select {
			case <-ctx.Done():
			case <-time.After(retryPause):
			}
			continue
		case !r.OK():
			errs.add(fmt.Errorf("%s: %s %v: %s: %s", p.name, id, cmd["type"], r.Code, r.Message))
			return ackRecord{}
		}
		a := ackRecord{id: id, cmd: cmd, reply: r}
		p.acked = append(p.acked, a)
		return a
	}
}

// retryPause is how long a peer waits before sending a command again that
// was refused for now (unavailable, rate_limited).
const retryPause = 200 * time.Millisecond

// resume replaces a closed (or closing) connection with a new one through
// the proxy, from the state the old one reached. The server closes a
// connection it is done with; resume waits for that close however long it
// takes, within the scenario's context.
func (p *peer) resume(ctx context.Context, errs *errList) {
	old := p.c
	if err := old.WaitClosed(ctx); ctx.Err() != nil {
		errs.add(fmt.Errorf("%s: the server never closed the connection it stopped answering: %w", p.name, err))
		return
	}
	p.closes = append(p.closes, old.CloseStatus())
	st := old.State()
	hello := maps.Clone(p.hello)
	hello["epoch"], hello["seq"] = old.Epoch(), old.Seq()
	for {
		c, err := hubtest.Resume(ctx, p.url, hello, st)
		if err == nil {
			p.c = c
			return
		}
		select {
		case <-ctx.Done():
			errs.add(fmt.Errorf("%s: resume: %w", p.name, err))
			return
		case <-time.After(50 * time.Millisecond): // the balancer may not have seen the drain yet
		}
	}
}

// errList collects errors from the peers' goroutines.
type errList struct {
	mu   sync.Mutex
	errs []error
}

func (l *errList) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errList) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}

// instance is one workshop process.
type instance struct {
	name string
	base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *hubtest.LockedBuffer
	done chan struct{} // closed when the process has been waited for
	err  error         // its exit, once done is closed
	at   time.Time     // when it exited, once done is closed
}

// startInstance runs the binary with env (and nothing else of the test's
// environment, so a developer's WORKSHOP_* variables do not leak in) and
// waits until /readyz answers 200. The process is killed when the test
// ends if it still runs; its log is shown when the test failed.
func startInstance(t *testing.T, ctx context.Context, bin, name string, env map[string]string) *instance {
	t.Helper()
	addr := freeAddr(t)
	inst := &instance{name: name, base: "http://" + addr, log: &hubtest.LockedBuffer{}, done: make(chan struct{})}
	inst.cmd = exec.Command(bin)
	inst.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKSHOP_ADDR=" + addr, "WORKSHOP_INSTANCE=" + name,
		"WORKSHOP_DATA_DIR=" + t.TempDir(), "WORKSHOP_LOG_LEVEL=info"}
	for k, v := range env {
		inst.cmd.Env = append(inst.cmd.Env, k+"="+v)
	}
	inst.cmd.Stdout, inst.cmd.Stderr = inst.log, inst.log
	inst.cmd.SysProcAttr = procAttr()
	if err := inst.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		inst.err = inst.cmd.Wait()
		inst.at = time.Now()
		close(inst.done)
	}()
	t.Cleanup(func() {
		select {
		case <-inst.done:
		default:
			_ = inst.cmd.Process.Kill()
			<-inst.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, inst.log.String())
		}
	})
	waitFor(t, ctx, name+" ready", func() bool {
		select {
		case <-inst.done:
			t.Fatalf("%s exited: %v\n%s", name, inst.err, inst.log.String())
		default:
		}
		return httpStatus(ctx, inst.base+"/readyz") == http.StatusOK
	})
	return inst
}

// wait waits for the process to exit and answers its error.
func (inst *instance) wait(ctx context.Context) error {
	select {
	case <-inst.done:
		return inst.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// balancer is the test's stand-in for deploy/nginx.conf: round robin, no
// stickiness, Host and X-Forwarded-For passed on, WebSocket upgrades
// proxied (httputil.ReverseProxy does that). It polls each instance's
// /readyz like a health-checking balancer and, like nginx's
// proxy_next_upstream, tries the other instance when one refuses the
// connection or answers an idempotent request with 503.
type balancer struct {
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	inst  *instance
	proxy *httputil.ReverseProxy
	ready atomic.Bool
}

// attemptKey carries one attempt's outcome from the proxy's hooks.
type attemptKey struct{}

type attempt struct{ err error }

var errNextUpstream = errors.New("balancer: 503, try the next instance")

func newBalancer(t *testing.T, addr string, insts ...*instance) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{
		DialContext:     (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConns:    16,
		IdleConnTimeout: 10 * time.Second,
	}
	lb := &balancer{}
	for _, inst := range insts {
		u, _ := url.Parse(inst.base)
		b := &backend{inst: inst}
		b.ready.Store(true)
		b.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.Out.Host = pr.In.Host // like proxy_set_header Host $http_host
				pr.SetXForwarded()
			},
			Transport: transport,
			ModifyResponse: func(resp *http.Response) error {
				if resp.StatusCode == http.StatusServiceUnavailable && idempotent(resp.Request) {
					return errNextUpstream
				}
				return nil
			},
			ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
				r.Context().Value(attemptKey{}).(*attempt).err = err
			},
		}
		lb.backends = append(lb.backends, b)
	}
	srv := httptest.NewUnstartedServer(lb)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { lb.healthLoop(stop) })
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		srv.CloseClientConnections()
		srv.Close()
		transport.CloseIdleConnections()
	})
	return lb
}

// healthLoop polls /readyz of every instance until stop is closed.
func (lb *balancer) healthLoop(stop <-chan struct{}) {
	tick := time.NewTicker(healthPoll)
	defer tick.Stop()
	for {
		for _, b := range lb.backends {
			ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
			b.ready.Store(httpStatus(ctx, b.inst.base+"/readyz") == http.StatusOK)
			cancel()
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "balancer: read body", http.StatusBadRequest)
		return
	}
	// Ready instances first, in round-robin order; the others only when
	// no instance is ready (a balancer would rather try than refuse).
	start := int(lb.next.Add(1))
	var order, down []*backend
	for i := range lb.backends {
		b := lb.backends[(start+i)%len(lb.backends)]
		if b.ready.Load() {
			order = append(order, b)
		} else {
			down = append(down, b)
		}
	}
	order = append(order, down...)
	for _, b := range order {
		att := &attempt{}
		r2 := r.Clone(context.WithValue(r.Context(), attemptKey{}, att))
		r2.Body = io.NopCloser(bytes.NewReader(body))
		b.proxy.ServeHTTP(w, r2)
		if att.err == nil {
			return
		}
		b.ready.Store(false) // until the next poll, like max_fails=1
		var op *net.OpError
		if !idempotent(r) && !(errors.As(att.err, &op) && op.Op == "dial") {
			break // a POST that may have reached the instance is not repeated
		}
	}
	http.Error(w, "balancer: no instance answered", http.StatusBadGateway)
}

func idempotent(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// startNginx runs nginx on addr with deploy/nginx.conf as its only site,
// the compose service names replaced by the instances' addresses (in
// order). The upstream "resolve" parameter goes too: it needs nginx 1.27.3
// (Debian 12 has 1.22) and there is no name left to resolve. One process
// (master_process off), so the parent-death signal covers all of nginx.
func startNginx(t *testing.T, ctx context.Context, bin, addr string, insts ...*instance) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(repoRoot, "deploy/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(conf)
	for i, inst := range insts {
		host := fmt.Sprintf("workshop-%d:%d", i+1, serverPort)
		re := regexp.MustCompile(`server\s+` + regexp.QuoteMeta(host) + `(\s+resolve)?`)
		if !re.MatchString(site) {
			t.Fatalf("deploy/nginx.conf: no upstream server %s", host)
		}
		site = re.ReplaceAllLiteralString(site, "server "+strings.TrimPrefix(inst.base, "http://"))
	}
	if n := strings.Count(site, "listen 80;"); n != 1 {
		t.Fatalf("deploy/nginx.conf: want one \"listen 80;\", got %d", n)
	}
	site = strings.Replace(site, "listen 80;", "listen "+addr+";", 1)

	dir := t.TempDir()
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 512; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir)
	for name, body := range map[string]string{"site.conf": site, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out := &hubtest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: finish what is in flight
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log (tail):\n%s", out.String(), tail(errLog, 4000))
		}
	})
	waitFor(t, ctx, "nginx", func() bool {
		select {
		case <-done:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited:\n%s\n%s", out.String(), tail(errLog, 4000))
		default:
		}
		return httpStatus(ctx, "http://"+addr+"/healthz") == http.StatusOK
	})
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
