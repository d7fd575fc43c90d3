package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Pauses and margins of the scenarios, each in its unit.
const (
	spreadLead   = 500 * time.Millisecond // a spread window opens this long after the orders go out, so every worker is ready
	settleAfter  = time.Second            // after the joins, before measuring: the presence updates of the joins pass
	orderMargin  = 30 * time.Second       // added to every wait for the workers' answers
	progressTick = time.Second            // the progress line is rewritten this often
	maxTeams     = 30                     // the server's ceiling of teams in a room

	// facilitatorRate is the most commands per second the bench sends on
	// one facilitator connection, under the server's limit of 10 a second
	// per connection (hub.DefaultLimits.Commands).
	facilitatorRate = 8.0
)

// bench runs the scenarios against the configured servers.
type bench struct {
	cfg config
	log io.Writer
}

// attendees is a scenario's pool of joined attendees.
type attendees struct {
	pool     *pool
	joined   int
	failed   int
	micros   []int64
	start    time.Time // when the first join was due
	lastJoin int64     // Unix ns of the newest snapshot
	errors   map[string]int
}

// joinMode says what a scenario's attendees do besides joining.
type joinMode struct {
	record    bool // keep the receipt time of every event (the reveal scenarios)
	reconnect bool // connect again when a connection drops, and resume (fault)
	estimates bool // watch the room's estimate: its counts, the reveal's histogram, any histogram before it (estimates)
}

// join starts workers for n attendees of roomID and connects them, spread
// over window (0: as fast as the workers may). The caller stops the pool.
func (b *bench) join(ctx context.Context, name, roomID string, n int, window time.Duration, mode joinMode) (*attendees, error) {
	lifetime := time.Until(deadlineOf(ctx)) + workerStopTimeout
	p, err := startPool(n, b.cfg.perWorker, lifetime, b.cfg.workerProf, b.log)
	if err != nil {
		return nil, err
	}
	at := &attendees{pool: p, start: time.Now().Add(spreadLead), errors: map[string]int{}}
	stop := b.progress(name, func() string {
		f := p.figures()
		return fmt.Sprintf("joining: %d/%d connected, %d dropped", f.Connected, n, f.Closed)
	})
	replies, err := p.ask(ctx, p.each(func(i int) order {
		return order{
			Op: opJoin, Room: roomID, URLs: b.cfg.urls, First: p.first[i], Count: p.count[i], Total: n,
			SourceAddrs: b.cfg.sourceAddrs, Record: mode.record, Reconnect: mode.reconnect, Estimates: mode.estimates,
			Start: at.start.UnixNano(), Window: int64(window), Timeout: int64(b.cfg.joinTimeout),
		}
	}), spreadLead+window+b.cfg.joinTimeout+orderMargin)
	stop()
	for _, r := range replies {
		at.joined += r.Joined
		at.failed += r.Failed
		at.micros = append(at.micros, r.JoinMicros...)
		at.lastJoin = max(at.lastJoin, r.LastJoin)
		addCounts(at.errors, r.Errors)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return at, nil
}

// deadlineOf is ctx's deadline, or the longest run.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(maxRunTime)
}

// progress rewrites one status line on stderr every progressTick until
// the returned function is called.
func (b *bench) progress(name string, status func() string) (stop func()) {
	start := time.Now()
	tty := isTerminal(b.log)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressTick)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(b.log)
				}
				return
			case <-t.C:
				line := fmt.Sprintf("%-6s %5.1fs  %s", name, time.Since(start).Seconds(), status())
				if tty {
					fmt.Fprintf(b.log, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(b.log, line)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func addCounts(into, from map[string]int) {
	for k, v := range from {
		into[k] += v
	}
}

// reveal runs the fan-out scenario: attendees in one room, the
// facilitator sends broadcasts at the configured rate, and every
// attendee's receipt of every broadcast is timed. With hostile, one more
// attendee floods resumes from a worker of its own from before the
// settling pause to the end (hostile-resume); only the others are timed.
func (b *bench) reveal(ctx context.Context, hostile bool) (*RevealResult, error) {
	cfg := b.cfg
	br, err := b.newBroadcaster(ctx, "bench reveal", cfg.broadcasts)
	if err != nil {
		return nil, err
	}
	defer br.close()

	name := "reveal"
	if hostile {
		name = "hostile-resume"
	}
	at, err := b.join(ctx, name, br.rm.ID, cfg.clients, 0, joinMode{record: true})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res := &RevealResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, Event: cfg.event, JoinErrors: at.errors}
	var attacker *pool
	if hostile {
		attacker, err = b.startHostile(ctx, br.rm.ID)
		if err != nil {
			return res, err
		}
		defer attacker.stop()
	}
	time.Sleep(settleAfter)

	stop := b.progress(name, br.status(at))
	cpuBefore, cpuErr := serverCPU(cfg.pids)
	sends, sendErr := br.stream(ctx, cfg.broadcasts, res)
	if cpuAfter, err := serverCPU(cfg.pids); err == nil && cpuErr == nil && len(cfg.pids) > 0 {
		res.ServerCPUS = (cpuAfter - cpuBefore).Seconds()
	}
	err = b.deliveries(ctx, at, sends, res)
	stop()
	if attacker != nil {
		res.Hostile, err = stopHostile(ctx, attacker, err)
	}
	return res, errors.Join(sendErr, err)
}

// broadcaster is the facilitator of the reveal scenarios: a room whose
// teams have submitted every score, as many facilitator connections as
// the rate needs, and the plan of what each broadcast reveals (or
// highlights). The scenario's goroutine owns it; sent is read by the
// progress line.
type broadcaster struct {
	cfg       config
	rm        createdRoom
	facs      []*controller
	pairs     []scorePair  // broadcast k reveals pairs[k % len]; a pair used before is hidden first (not timed)
	questions []string     // highlights alternate between these two
	next      int          // broadcasts sent so far over every stream: the plan goes on where the last stream stopped
	sent      atomic.Int64 // broadcasts sent by the current stream
}

// scorePair is one team's score for one aspect.
type scorePair struct{ aspect, team string }

// newBroadcaster creates the room on the first URL and connects its
// facilitators, for total broadcasts over the whole scenario.
func (b *bench) newBroadcaster(ctx context.Context, title string, total int) (*broadcaster, error) {
	cfg := b.cfg
	base := cfg.urls[0]
	// Every reveal is a real one, of a submitted score: 5 aspects per
	// team, so enough teams for the broadcasts (at most 30; beyond that a
	// score is hidden again before it is revealed anew).
	nTeams := 1
	if cfg.event == "reveal" {
		nTeams = min(maxTeams, (total+4)/5)
	}
	teams := make([]string, nTeams)
	for i := range teams {
		teams[i] = "Team " + strconv.Itoa(i+1)
	}
	rm, err := createRoom(ctx, base, title, teams)
	if err != nil {
		return nil, err
	}
	pub, err := getRoom(ctx, base, rm.ID)
	if err != nil {
		return nil, err
	}
	var aspects []string
	for _, a := range pub.Model.Aspects {
		aspects = append(aspects, a.ID)
	}
	if cfg.event == "reveal" {
		if err := submitScores(ctx, base, rm, aspects); err != nil {
			return nil, err
		}
	}
	br := &broadcaster{cfg: cfg, rm: rm}
	for _, t := range rm.Teams {
		for _, a := range aspects {
			br.pairs = append(br.pairs, scorePair{a, t.ID})
		}
	}
	// The server allows a connection 10 commands a second: a faster pace
	// takes several facilitator connections, used in turn.
	perBroadcast := 1.0
	if cfg.event == "reveal" && total > len(br.pairs) {
		perBroadcast = 2 // hide, then reveal again
	}
	for range int(math.Ceil(cfg.rate * perBroadcast / facilitatorRate)) {
		fac, err := dialController(ctx, base, rm.ID, map[string]any{"key": rm.FacilitatorKey})
		if err != nil {
			br.close()
			return nil, fmt.Errorf("facilitator: %w", err)
		}
		br.facs = append(br.facs, fac)
	}
	if _, err := br.facs[0].do(ctx, map[string]any{"type": "start"}); err != nil {
		br.close()
		return nil, err
	}
	// Highlights alternate between two questions, so that their order
	// across facilitator connections does not matter.
	for i := range 2 {
		if cfg.event != "highlight" {
			break
		}
		a, err := br.facs[0].do(ctx, map[string]any{"type": "ask", "text": "What would move us up a level? (" + strconv.Itoa(i+1) + ")"})
		if err != nil {
			br.close()
			return nil, err
		}
		q, _ := a.Result["question"].(string)
		br.questions = append(br.questions, q)
	}
	return br, nil
}

func (br *broadcaster) close() {
	for _, f := range br.facs {
		f.close()
	}
}

// status is the progress line of a stream to the attendees at.
func (br *broadcaster) status(at *attendees) func() string {
	return func() string {
		f := at.pool.figures()
		n := br.sent.Load()
		return fmt.Sprintf("%d/%d sent, %d/%d received, %d connected, %d dropped",
			n, br.cfg.broadcasts, f.Received, n*int64(at.joined), f.Connected, f.Closed)
	}
}

// stream sends n broadcasts at the configured rate, fills in res's
// broadcasts and achieved rate, and answers when each acknowledged
// broadcast's event (by its sequence) was sent. Commands go out on
// schedule without waiting for answers, as a facilitator clicking would;
// the answers (with the events' sequence numbers) are collected
// afterwards.
func (br *broadcaster) stream(ctx context.Context, n int, res *RevealResult) (map[uint64]int64, error) {
	cfg := br.cfg
	br.sent.Store(0)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	first, last := time.Now(), time.Now()
	var timed, untimed []*pending
	var sendErr error
send:
	for i := range n {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				sendErr = ctx.Err()
				break send
			}
		}
		k := br.next
		br.next++
		c := br.facs[k%len(br.facs)]
		var cmd map[string]any
		switch cfg.event {
		case "reveal":
			p := br.pairs[k%len(br.pairs)]
			if k >= len(br.pairs) {
				hide, err := c.send(ctx, map[string]any{"type": "hide_reveal", "aspect": p.aspect, "team": p.team})
				if err != nil {
					sendErr = err
					break send
				}
				untimed = append(untimed, hide)
			}
			cmd = map[string]any{"type": "reveal", "aspect": p.aspect, "team": p.team}
		case "highlight":
			cmd = map[string]any{"type": "highlight", "question": br.questions[k%2]}
		}
		p, err := c.send(ctx, cmd)
		if err != nil {
			sendErr = err
			break
		}
		timed = append(timed, p)
		last = time.Now()
		br.sent.Add(1)
	}
	tick.Stop()
	wctx, cancel := context.WithTimeout(ctx, cfg.deliveryWait)
	defer cancel()
	sends := map[uint64]int64{}
	for _, p := range untimed {
		if _, err := p.wait(wctx); err != nil {
			sendErr = errors.Join(sendErr, err)
		}
	}
	for _, p := range timed {
		a, err := p.wait(wctx)
		if err != nil {
			sendErr = errors.Join(sendErr, err)
			continue
		}
		sends[a.Seq] = p.sent
	}
	if d := last.Sub(first).Seconds(); len(timed) > 1 && d > 0 {
		res.RatePerS = float64(len(timed)-1) / d
	}
	res.Broadcasts = len(sends)
	return sends, sendErr
}

// deliveries asks the workers when each attendee received each broadcast
// in sends and fills in res's deliveries, misses, latency and drops.
func (b *bench) deliveries(ctx context.Context, at *attendees, sends map[uint64]int64, res *RevealResult) error {
	_, err := b.latencies(ctx, at, order{Op: opLatency, Sends: sends}, res)
	return err
}

// latencies gives the workers the latency order o (its Sends, and what
// else a scenario checks with them), fills in res's deliveries, misses,
// latency and drops, and answers the workers' replies for the rest.
func (b *bench) latencies(ctx context.Context, at *attendees, o order, res *RevealResult) ([]reply, error) {
	o.Timeout = int64(b.cfg.deliveryWait)
	replies, err := at.pool.ask(ctx, at.pool.each(func(int) order { return o }), b.cfg.deliveryWait+orderMargin)
	var micros []int64
	res.Errors = map[string]int{}
	for _, r := range replies {
		micros = append(micros, r.LatencyMicros...)
		res.Missed += r.Missed
		res.Dropped += r.Closed
		addCounts(res.Errors, r.Errors)
	}
	res.Deliveries = len(micros)
	res.Latency = latencyOf(micros)
	return replies, err
}

// startHostile starts the hostile-resume attacker in a worker of its own
// and returns once the server has refused its flood a first time.
func (b *bench) startHostile(ctx context.Context, roomID string) (*pool, error) {
	lifetime := time.Until(deadlineOf(ctx)) + workerStopTimeout
	p, err := startPool(1, 1, lifetime, b.cfg.workerProf, b.log)
	if err != nil {
		return nil, err
	}
	replies, err := p.ask(ctx, []order{{Op: opHostile, Room: roomID, URLs: b.cfg.urls[:1]}}, hostileStartWait+orderMargin)
	if err == nil && replies[0].Hostile != nil && replies[0].Hostile.Err != "" {
		err = fmt.Errorf("hostile attendee: %s", replies[0].Hostile.Err)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// stopHostile stops the attacker and answers what it did; prev is the
// scenario's error so far, joined with any of its own.
func stopHostile(ctx context.Context, p *pool, prev error) (*HostileResult, error) {
	replies, err := p.ask(ctx, []order{{Op: opHostileStop}}, orderMargin)
	if err != nil {
		return nil, errors.Join(prev, err)
	}
	return replies[0].Hostile, prev
}

// submitScores has each team lead submit a score for every aspect, so
// that every reveal carries a real score and rationale.
func submitScores(ctx context.Context, base string, rm createdRoom, aspects []string) error {
	for ti, t := range rm.Teams {
		lead, err := dialController(ctx, base, rm.ID, map[string]any{"key": t.Key})
		if err != nil {
			return fmt.Errorf("team lead %s: %w", t.ID, err)
		}
		for ai, a := range aspects {
			_, err := lead.do(ctx, map[string]any{
				"type": "submit", "aspect": a, "level": 1 + (ti+ai)%4,
				"rationale": "We run this on a shared platform team; " + strings.Repeat("the evidence is in our runbooks and dashboards. ", 3),
			})
			if err != nil {
				lead.close()
				return fmt.Errorf("team lead %s: %w", t.ID, err)
			}
		}
		lead.close()
	}
	return nil
}

// votes runs the vote storm: every attendee upvotes one question once,
// spread over the window; the count must be exact and reach every client.
func (b *bench) votes(ctx context.Context) (*VoteResult, error) {
	cfg := b.cfg
	base := cfg.urls[0]
	rm, fac, question, err := voteRoom(ctx, base, "bench votes")
	if err != nil {
		return nil, err
	}
	defer fac.close()

	at, err := b.join(ctx, "votes", rm.ID, cfg.clients, 0, joinMode{})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res := &VoteResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, WindowS: cfg.voteWindow.Seconds(), JoinErrors: at.errors}
	time.Sleep(settleAfter)

	if _, err := b.castVotes(ctx, "votes", at, b.voteOrder(question, time.Now().Add(spreadLead)), res); err != nil {
		return res, err
	}
	counted, err := questionVotes(ctx, base, rm.ID, question)
	if err != nil {
		return res, err
	}
	_, err = b.awaitFinal(ctx, "votes", at, counted, res)
	return res, err
}

// voteRoom creates a room at base for a vote storm, connects its
// facilitator (the caller closes it), starts the room and asks the
// question the attendees will vote on.
func voteRoom(ctx context.Context, base, title string) (createdRoom, *controller, string, error) {
	rm, err := createRoom(ctx, base, title, []string{"Team 1"})
	if err != nil {
		return rm, nil, "", err
	}
	fac, err := dialController(ctx, base, rm.ID, map[string]any{"key": rm.FacilitatorKey})
	if err != nil {
		return rm, nil, "", fmt.Errorf("facilitator: %w", err)
	}
	if _, err := fac.do(ctx, map[string]any{"type": "start"}); err != nil {
		fac.close()
		return rm, nil, "", err
	}
	a, err := fac.do(ctx, map[string]any{"type": "ask", "text": "Which aspect should we invest in next?"})
	if err != nil {
		fac.close()
		return rm, nil, "", err
	}
	q, _ := a.Result["question"].(string)
	return rm, fac, q, nil
}

// voteOrder is the order of a vote storm on question whose first vote is
// due at start, spread over the vote window.
func (b *bench) voteOrder(question string, start time.Time) order {
	return order{Op: opVote, Question: question, Start: start.UnixNano(), Window: int64(b.cfg.voteWindow), Total: b.cfg.clients, Timeout: int64(b.cfg.deliveryWait)}
}

// castVotes gives the workers the vote order o, waits until every vote is
// answered for good (or its time is up) and fills in res's answers. It
// answers the workers' replies, for what a scenario adds to the votes.
func (b *bench) castVotes(ctx context.Context, name string, at *attendees, o order, res *VoteResult) ([]reply, error) {
	stop := b.progress(name, func() string {
		f := at.pool.figures()
		return fmt.Sprintf("%d/%d answered, %d frames, %d connected, %d dropped", f.Answered, at.joined, f.Frames, f.Connected, f.Closed)
	})
	voted, err := at.pool.ask(ctx, at.pool.each(func(int) order { return o }), spreadLead+time.Duration(o.Window)+b.cfg.deliveryWait+orderMargin)
	stop()
	if err != nil {
		return voted, err
	}
	res.Errors = map[string]int{}
	for _, r := range voted {
		res.Acked += r.Acked
		res.Rejected += r.Rejected
		res.Unanswered += r.Unanswered
		res.Retries += r.Retries
		res.Resent += r.Resent
		res.AlreadyVoted += r.AlreadyVoted
		res.lastSend = max(res.lastSend, r.LastSend)
		res.lastAck = max(res.lastAck, r.LastAck)
		addCounts(res.Errors, r.Errors)
	}
	res.VotingS = float64(res.lastSend-o.Start) / 1e9
	return voted, nil
}

// questionVotes reads the question's vote count from the server at base:
// the store is the truth, and every attendee must come to show it.
func questionVotes(ctx context.Context, base, roomID, question string) (int, error) {
	pub, err := getRoom(ctx, base, roomID)
	if err != nil {
		return 0, err
	}
	for _, q := range pub.Questions {
		if q.ID == question {
			return q.Votes, nil
		}
	}
	return 0, nil
}

// awaitFinal checks counted, the server's count of what the storm sent,
// against the acks castVotes counted, and waits until every attendee
// shows it; it fills in res and answers when the last attendee came to
// show the count (Unix ns; 0 if none did).
func (b *bench) awaitFinal(ctx context.Context, name string, at *attendees, counted int, res *VoteResult) (int64, error) {
	res.Counted = counted
	// Each attendee votes once and the server refuses a second vote (an
	// estimate at the same level again), so a count is right when it
	// holds every acknowledged vote and no more than the attendees who
	// voted; votes answered with an error or not at all may or may not
	// have been committed before the answer.
	res.Lost = max(res.Acked-res.Counted, 0)
	res.ExactlyOnce = res.Counted >= res.Acked && res.Counted <= at.joined
	stop := b.progress(name, func() string {
		f := at.pool.figures()
		return fmt.Sprintf("%d/%d show the count of %d, %d connected, %d dropped", f.Reached, at.joined, res.Counted, f.Connected, f.Closed)
	})
	conv, err := at.pool.ask(ctx, at.pool.each(func(int) order {
		return order{Op: opConverge, Final: res.Counted, Timeout: int64(b.cfg.deliveryWait)}
	}), b.cfg.deliveryWait+orderMargin)
	stop()
	if res.Errors == nil {
		res.Errors = map[string]int{}
	}
	var lastReach, frames, bytes int64
	res.FramesMin = -1
	for _, r := range conv {
		res.NotConverged += r.NotReached
		res.Dropped += r.Closed
		lastReach = max(lastReach, r.LastReach)
		frames += r.FramesSum
		bytes += r.Bytes
		res.FramesMax = max(res.FramesMax, r.FramesMax)
		if res.FramesMin < 0 || r.FramesMin < res.FramesMin {
			res.FramesMin = r.FramesMin
		}
		addCounts(res.Errors, r.Errors)
	}
	if at.joined > 0 {
		res.FramesMean = float64(frames) / float64(at.joined)
		res.BytesMean = float64(bytes) / float64(at.joined)
	}
	if lastReach > 0 {
		res.ConvergeMs = float64(max(lastReach-res.lastSend, 0)) / 1e6
		res.ConvergeAfterAckMs = float64(max(lastReach-res.lastAck, 0)) / 1e6
	}
	return lastReach, err
}

// joins runs the join storm: attendees connect spread over the window and
// each must receive its snapshot.
func (b *bench) joins(ctx context.Context) (*JoinResult, error) {
	cfg := b.cfg
	rm, err := createRoom(ctx, cfg.urls[0], "bench joins", []string{"Team 1"})
	if err != nil {
		return nil, err
	}
	at, err := b.join(ctx, "joins", rm.ID, cfg.clients, cfg.joinWindow, joinMode{})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res := &JoinResult{
		Attendees: cfg.clients, Joined: at.joined, Failed: at.failed, WindowS: cfg.joinWindow.Seconds(),
		Join: latencyOf(at.micros), Errors: at.errors,
	}
	if at.lastJoin > 0 {
		res.ElapsedS = float64(at.lastJoin-at.start.UnixNano()) / 1e9
	}
	return res, nil
}

// idle measures the servers' resident memory before and after the
// attendees join and sit idle.
func (b *bench) idle(ctx context.Context) (*IdleResult, error) {
	cfg := b.cfg
	res := &IdleResult{Attendees: cfg.clients, PIDs: cfg.pids, SettleS: cfg.idleSettle.Seconds()}
	if len(cfg.pids) == 0 {
		res.Note = "not measured: give the servers' pids with -server-pids"
		return res, nil
	}
	rm, err := createRoom(ctx, cfg.urls[0], "bench idle", []string{"Team 1"})
	if err != nil {
		return nil, err
	}
	before, err := residentBytes(cfg.pids)
	if err != nil {
		return nil, err
	}
	at, err := b.join(ctx, "idle", rm.ID, cfg.clients, 0, joinMode{})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res.Joined = at.joined
	stop := b.progress("idle", func() string {
		f := at.pool.figures()
		return fmt.Sprintf("%d connected, settling", f.Connected)
	})
	select {
	case <-time.After(cfg.idleSettle):
	case <-ctx.Done():
	}
	stop()
	after, err := residentBytes(cfg.pids)
	if err != nil {
		return nil, err
	}
	res.RSSBefore, res.RSSAfter = before, after
	if at.joined > 0 {
		res.BytesPerConn = (after - before) / int64(at.joined)
	}
	return res, ctx.Err()
}

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTicks = 100

// serverCPU sums the CPU time (user and system, every thread) the
// processes have used; zero with no pids.
func serverCPU(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("server cpu: %w", err)
		}
		// The command name (field 2) may hold spaces; the fields after
		// its closing parenthesis start with field 3.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			return 0, fmt.Errorf("server cpu: cannot read /proc/%d/stat", pid)
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			return 0, fmt.Errorf("server cpu: cannot read /proc/%d/stat", pid)
		}
		for _, v := range f[11:13] { // utime, stime: fields 14 and 15
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server cpu: /proc/%d/stat: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// residentBytes sums VmRSS over the processes.
func residentBytes(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return 0, fmt.Errorf("server memory: %w", err)
		}
		kb, ok := statusField(string(data), "VmRSS:")
		if !ok {
			return 0, fmt.Errorf("server memory: no VmRSS for pid %d", pid)
		}
		sum += kb << 10
	}
	return sum, nil
}

// statusField reads a "Name:   1234 kB" line of /proc/PID/status.
func statusField(status, name string) (int64, bool) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}
