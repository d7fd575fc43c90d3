package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// workerEnv, when set, makes this binary a worker process; its value is the
// worker's lifetime (a Go duration), after which it exits whatever happens,
// so that no worker outlives a coordinator that died.
const workerEnv = "WORKSHOP_BENCH_WORKER"

// workerProfileEnv, when set, names a directory where each worker writes
// its CPU profile (worker-PID.pprof), to see what the load generator
// itself costs.
const workerProfileEnv = "WORKSHOP_BENCH_WORKER_CPUPROFILE"

// Limits and periods of a worker, each in its unit.
const (
	progressPeriod  = 500 * time.Millisecond // a progress reply this often
	pingPeriod      = 20 * time.Second       // each attendee pings this often (the server drops one silent for 75 s; PROTOCOL.md asks for 25 s at most)
	pingSlots       = 20                     // pings are spread over pingPeriod in this many slots
	writeTimeout    = 5 * time.Second        // one hello, ping or vote write
	closeTimeout    = 10 * time.Second       // closing every connection at the end
	closeParallel   = 500                    // closes in flight
	joinParallel    = 200                    // dials in flight when joins are not spread over a window
	pollPeriod      = 10 * time.Millisecond  // while waiting for deliveries or counts
	readLimit       = 16 << 20               // one server message; batches stop near 1 MiB, snapshots are smaller
	keepBufferBytes = 64 << 10               // a read buffer grown past this is dropped after use
	gcPercent       = 400                    // memory is plentiful and the CPU is shared with the server
)

// workerMain serves orders from stdin until a close order, the end of
// stdin or the lifetime; it answers on stdout. It returns the exit code.
func workerMain(lifetime string, stdin io.Reader, stdout, stderr io.Writer) int {
	d, err := time.ParseDuration(lifetime)
	if err != nil || d <= 0 || d > maxRunTime {
		fmt.Fprintf(stderr, "workshop-bench worker: %s=%q: want a duration up to %s\n", workerEnv, lifetime, maxRunTime)
		return 2
	}
	// The load generator shares two cores with the server it measures:
	// fewer collections leave more of them to the server.
	debug.SetGCPercent(gcPercent)
	time.AfterFunc(d, func() {
		fmt.Fprintln(stderr, "workshop-bench worker: lifetime over, exiting")
		os.Exit(3)
	})
	if dir := os.Getenv(workerProfileEnv); dir != "" {
		stop, err := startCPUProfile(dir)
		if err != nil {
			fmt.Fprintln(stderr, "workshop-bench worker:", err)
			return 2
		}
		defer stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &worker{ctx: ctx, enc: json.NewEncoder(stdout), clients: map[string]*http.Client{}, closeReasons: map[string]int{}}
	go w.progressLoop()
	go w.pingLoop()
	dec := json.NewDecoder(stdin)
	for {
		var o order
		if err := dec.Decode(&o); err != nil {
			w.closeAll()
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(stderr, "workshop-bench worker: read order:", err)
			return 1
		}
		var r reply
		switch o.Op {
		case opJoin:
			r = w.join(o)
		case opVote:
			r = w.vote(o)
		case opConverge:
			r = w.converge(o)
		case opLatency:
			r = w.latency(o)
		case opRejoins:
			r = w.rejoins()
		case opHostile:
			r = w.hostileStart(o)
		case opHostileStop:
			r = w.hostileStop()
		case opClose:
			w.closeAll()
			w.send(reply{Op: opClose})
			return 0
		default:
			r = reply{Op: opFailed, Err: fmt.Sprintf("unknown order %q", o.Op)}
		}
		w.send(r)
	}
}

// worker holds one process's attendees. Orders run one at a time on the
// main goroutine; the read loops, the pinger and the progress loop run
// beside them and share only the atomics and what mu guards.
type worker struct {
	ctx   context.Context
	encMu sync.Mutex
	enc   *json.Encoder

	mu           sync.Mutex
	attendees    []*attendee             // joined, guarded by mu
	attacker     *hostile                // the hostile-resume attacker; main goroutine only
	clients      map[string]*http.Client // per source address, guarded by mu
	closeReasons map[string]int          // why connections ended unasked, guarded by mu

	connected atomic.Int64
	closed    atomic.Int64
	frames    atomic.Int64
	bytes     atomic.Int64
	answered  atomic.Int64
	reached   atomic.Int64
	received  atomic.Int64
	rejoined  atomic.Int64 // welcomes after a reconnect
	gaps      atomic.Int64 // attendees that saw a gap in the room's sequence
	leaks     atomic.Int64 // messages with a histogram before the attendee's reveal (Estimates)
}

// send writes one reply line, with the current progress figures.
func (w *worker) send(r reply) {
	r.Connected, r.Closed = int(w.connected.Load()), int(w.closed.Load())
	r.Frames, r.Bytes = w.frames.Load(), w.bytes.Load()
	r.Answered, r.Reached, r.Received = int(w.answered.Load()), int(w.reached.Load()), w.received.Load()
	r.Rejoined = int(w.rejoined.Load())
	w.encMu.Lock()
	defer w.encMu.Unlock()
	_ = w.enc.Encode(r) // a broken pipe means the coordinator is gone; stdin's end stops us
}

func (w *worker) progressLoop() {
	t := time.NewTicker(progressPeriod)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			w.send(reply{Op: opProgress})
		}
	}
}

// pingLoop pings every attendee once per pingPeriod, a slot of them at a
// time, so the server never sees a silent client or a burst of pings.
func (w *worker) pingLoop() {
	t := time.NewTicker(pingPeriod / pingSlots)
	defer t.Stop()
	for slot := 0; ; slot = (slot + 1) % pingSlots {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range w.snapshot() {
			if a.index%pingSlots != slot || a.isDead() {
				continue
			}
			msg := `{"type":"ping","id":"p","t":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`
			_ = a.write(w.ctx, msg) // a failed write also ends the read loop, which counts it
		}
	}
}

func (w *worker) snapshot() []*attendee {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*attendee(nil), w.attendees...)
}

// httpClient returns the client that dials from the source address src
// ("" lets the kernel choose).
func (w *worker) httpClient(src string) *http.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.clients[src]; ok {
		return c
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil}}
	w.clients[src] = c
	return c
}

// sourceAddr spreads attendees over 127.0.0.1 to 127.0.0.n when the server
// is an IPv4 loopback address: every address has its own ephemeral ports
// and its own per-address limits on the server, as attendees on different
// networks would.
func sourceAddr(index, n int, base string) string {
	if n <= 1 {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return ""
	}
	return "127.0.0." + strconv.Itoa(1+index%n)
}

// wsURL is the room's WebSocket URL on the server at base.
func wsURL(base, roomID string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base + "/api/rooms/" + roomID + "/ws"
}

// join connects the order's attendees, spread over its window or as fast
// as joinParallel allows, and answers how each went.
func (w *worker) join(o order) reply {
	if len(o.URLs) == 0 || o.Count <= 0 || o.Total <= 0 {
		return reply{Op: opFailed, Err: "join: urls, count and total are required"}
	}
	w.frames.Store(0)
	w.bytes.Store(0)
	type result struct {
		a   *attendee
		d   time.Duration
		err error
	}
	results := make([]result, o.Count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, joinParallel)
	for k := range o.Count {
		idx := o.First + k
		if o.Window > 0 {
			at := time.Unix(0, o.Start+int64(idx)*o.Window/int64(o.Total))
			if !sleepUntil(w.ctx, at) {
				break
			}
		} else {
			sem <- struct{}{}
		}
		wg.Go(func() {
			if o.Window == 0 {
				defer func() { <-sem }()
			}
			a, d, err := w.dial(o, idx)
			results[k] = result{a, d, err}
		})
	}
	wg.Wait()
	r := reply{Op: opJoin, Errors: map[string]int{}}
	for _, res := range results {
		if res.err != nil || res.a == nil {
			r.Failed++
			if res.err == nil {
				res.err = errors.New("not started: worker stopping")
			}
			r.Errors[errClass(res.err)]++
			continue
		}
		r.Joined++
		r.JoinMicros = append(r.JoinMicros, res.d.Microseconds())
		r.LastJoin = max(r.LastJoin, res.a.joinedAt.Load())
	}
	return r
}

// dial connects attendee idx and waits for its snapshot.
func (w *worker) dial(o order, idx int) (*attendee, time.Duration, error) {
	base := o.URLs[idx%len(o.URLs)]
	ctx, cancel := context.WithTimeout(w.ctx, time.Duration(o.Timeout))
	defer cancel()
	start := time.Now()
	conn, err := w.connect(ctx, base, o.Room, idx, o.SourceAddrs)
	if err != nil {
		return nil, 0, err
	}
	a := &attendee{w: w, index: idx, record: o.Record, estimates: o.Estimates, joined: make(chan struct{}), dead: make(chan struct{}), answers: make(chan answerSeen, 4)}
	s := newSession(conn)
	a.sess.Store(s)
	if o.Reconnect {
		a.resume = &resumePoint{urls: o.URLs, room: o.Room, sourceAddrs: o.SourceAddrs, timeout: time.Duration(o.Timeout), at: idx % len(o.URLs)}
	}
	if err := s.write(ctx, `{"type":"hello","name":"bench `+strconv.Itoa(idx)+`"}`); err != nil {
		conn.CloseNow()
		return nil, 0, fmt.Errorf("hello: %w", err)
	}
	go a.readLoop()
	select {
	case <-a.joined:
		w.mu.Lock()
		w.attendees = append(w.attendees, a)
		w.mu.Unlock()
		w.connected.Add(1)
		return a, time.Duration(a.joinedAt.Load() - start.UnixNano()), nil
	case <-a.dead:
		return nil, 0, a.err
	case <-ctx.Done():
		a.closing.Store(true)
		conn.CloseNow()
		return nil, 0, fmt.Errorf("no snapshot within %s", time.Duration(o.Timeout))
	}
}

// connect opens attendee idx's WebSocket to roomID on the server at base,
// from its source address.
func (w *worker) connect(ctx context.Context, base, roomID string, idx, sourceAddrs int) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, wsURL(base, roomID), &websocket.DialOptions{
		HTTPClient:      w.httpClient(sourceAddr(idx, sourceAddrs, base)),
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(readLimit)
	return conn, nil
}

// vote makes each attendee upvote o.Question once (or estimate o.Team,
// each at the level of its index), attendee i at Start + i*Window/Total,
// and answers once every vote is acknowledged or refused for good (or its
// time is up). The askers among them (isAsker) first ask a question and
// wait for its answer.
func (w *worker) vote(o order) reply {
	as := w.snapshot()
	// Attendees joined in any order; their votes go out in index order.
	sort.Slice(as, func(i, j int) bool { return as[i].index < as[j].index })
	// Frames and bytes per client count from the start of the storm, not
	// from the join: the snapshot and the presence of the joins are not
	// the storm's.
	for _, a := range as {
		a.frames.Store(0)
	}
	w.frames.Store(0)
	w.bytes.Store(0)
	var wg sync.WaitGroup
	for _, a := range as {
		at := time.Unix(0, o.Start+int64(a.index)*o.Window/int64(max(o.Total, 1)))
		if !sleepUntil(w.ctx, at) {
			break
		}
		wg.Go(func() {
			defer w.answered.Add(1)
			ctx, cancel := context.WithTimeout(w.ctx, time.Duration(o.Timeout))
			defer cancel()
			if isAsker(a.index, o.Askers, o.Total) {
				text := "Attendee " + strconv.Itoa(a.index) + " asks: what would move this team up a level?"
				a.ask = a.command(ctx, "a1", `{"id":"a1","type":"ask","text":`+strconv.Quote(text)+`}`)
			}
			a.vote = a.command(ctx, "v1", o.voteMsg(a.index))
		})
	}
	wg.Wait()
	r := reply{Op: opVote, Errors: map[string]int{}}
	if o.Team != "" {
		r.AckedLevels = make([]int, estimateLevels)
	}
	for _, a := range as {
		v := a.vote
		r.Retries += v.retries
		r.Resent += v.resent
		r.LastSend = max(r.LastSend, v.lastSent)
		acked := false
		switch {
		case v.code == "ack":
			acked = true
		case v.code == "conflict" && v.retries+v.resent > 0:
			// Sent again, refused as a second vote: the server forgot
			// the id (it remembers the newest room.MaxRememberedCommands)
			// and the domain refuses a second upvote (an estimate at the
			// level it already holds), so an earlier send was counted:
			// its ack was lost with the connection.
			acked = true
			r.AlreadyVoted++
		case v.code == "":
			r.Rejected++
			r.Unanswered++
			r.Errors["not sent"]++
		default:
			r.Rejected++
			if !serverAnswered(v.code) {
				r.Unanswered++
			}
			r.Errors[v.code]++
		}
		if acked {
			r.Acked++
			r.LastAck = max(r.LastAck, v.at)
			if o.Team != "" {
				r.AckedLevels[estimateLevel(a.index)-1]++
			}
		}
		if isAsker(a.index, o.Askers, o.Total) {
			if a.ask.code == "ack" {
				r.Asked++
			} else {
				r.Errors["ask: "+cmp.Or(a.ask.code, "not sent")]++
			}
		}
	}
	return r // connections that ended are counted by converge
}

// serverAnswered reports whether code, a command's outcome, is an answer
// of the server's rather than the bench's word for none (cmdOutcome).
func serverAnswered(code string) bool {
	switch code {
	case "", "no answer", "connection closed", "write failed":
		return false
	}
	return true
}

// isAsker reports whether attendee i of total is one of the askers, who
// are spread evenly over the indexes.
func isAsker(i, askers, total int) bool {
	return askers > 0 && total > 0 && (i+1)*askers/total != i*askers/total
}

// converge waits until every live attendee shows o.Final votes (or the
// timeout), then answers when the last one got there and how many frames
// each received since the storm began.
func (w *worker) converge(o order) reply {
	as := w.snapshot()
	deadline := time.Now().Add(time.Duration(o.Timeout))
	for {
		n := 0
		for _, a := range as {
			if a.maxCount.Load() >= int64(o.Final) {
				n++
			}
		}
		w.reached.Store(int64(n))
		if n == len(as) || time.Now().After(deadline) || w.ctx.Err() != nil {
			break
		}
		time.Sleep(pollPeriod)
	}
	r := reply{Op: opConverge, Errors: map[string]int{}, FramesMin: -1}
	for _, a := range as {
		if a.maxCount.Load() >= int64(o.Final) {
			r.LastReach = max(r.LastReach, a.countAt.Load())
		} else {
			r.NotReached++
		}
		f := a.frames.Load()
		r.FramesSum += f
		r.FramesMax = max(r.FramesMax, f)
		if r.FramesMin < 0 || f < r.FramesMin {
			r.FramesMin = f
		}
	}
	r.Bytes = w.bytes.Load()
	w.addCloseReasons(r.Errors)
	return r
}

// latency waits until every live attendee has received the newest
// broadcast in o.Sends (or the timeout), then answers each attendee's
// latency for each broadcast; a broadcast an attendee never got is missed.
// With o.Histogram, an attendee that got a broadcast must have got that
// histogram in its reveal.
func (w *worker) latency(o order) reply {
	as := w.snapshot()
	var last uint64
	for seq := range o.Sends {
		last = max(last, seq)
	}
	deadline := time.Now().Add(time.Duration(o.Timeout))
	for {
		done := 0
		for _, a := range as {
			if a.isDead() || a.lastSeq.Load() >= last {
				done++
			}
		}
		if done == len(as) || time.Now().After(deadline) || w.ctx.Err() != nil {
			break
		}
		time.Sleep(pollPeriod)
	}
	r := reply{Op: opLatency, Errors: map[string]int{}}
	seqs := make([]uint64, 0, len(o.Sends))
	for seq := range o.Sends {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, a := range as {
		a.mu.Lock()
		got := false
		for _, seq := range seqs {
			at, ok := a.receivedAt(seq)
			if !ok {
				r.Missed++
				continue
			}
			got = true
			r.LatencyMicros = append(r.LatencyMicros, (at-o.Sends[seq])/1e3)
		}
		if o.Histogram != nil && got && !slices.Equal(a.histogram, o.Histogram) {
			r.HistogramWrong++
		}
		a.mu.Unlock()
	}
	r.Leaks = int(w.leaks.Load())
	w.addCloseReasons(r.Errors)
	return r
}

// rejoins answers, for each attendee whose connection ended unasked,
// where and when it first dropped and when it was welcomed again.
func (w *worker) rejoins() reply {
	r := reply{Op: opRejoins, Gaps: int(w.gaps.Load())}
	for _, a := range w.snapshot() {
		a.mu.Lock()
		if a.drops > 0 {
			r.Rejoins = append(r.Rejoins, rejoin{URL: a.dropOn, Drops: a.drops, DropAt: a.dropAt, BackAt: a.backAt})
		}
		a.mu.Unlock()
	}
	return r
}

func (w *worker) addCloseReasons(into map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.closeReasons {
		into[k] += v
	}
}

// closeAll closes every connection with a normal close, closeParallel at a
// time, and gives up waiting for handshakes after closeTimeout.
func (w *worker) closeAll() {
	if h := w.attacker; h != nil && !h.stopped() {
		close(h.stop)
		<-h.done
	}
	w.mu.Lock()
	as := w.attendees
	w.attendees = nil
	w.mu.Unlock()
	sem := make(chan struct{}, closeParallel)
	var wg sync.WaitGroup
	for _, a := range as {
		a.closing.Store(true)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = a.sess.Load().conn.Close(websocket.StatusNormalClosure, "bench done")
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		for _, a := range as {
			a.sess.Load().conn.CloseNow()
		}
	}
	w.connected.Store(0)
}

// startCPUProfile profiles this process into dir until stop is called.
func startCPUProfile(dir string) (stop func(), err error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errClass names a failure briefly and without addresses or ports, so
// that thousands of failures group into a few lines.
func errClass(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("closed %d %s", ce.Code, ce.Reason)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	parts := strings.Split(err.Error(), ": ")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	s := strings.Join(parts, ": ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}
