package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// attendee is one simulated attendee in a worker: a WebSocket connection
// and what its read loop saw. It reads only the few fields the scenarios
// measure, by scanning bytes rather than decoding JSON: in a vote storm
// every attendee receives every vote, and decoding them all would cost the
// load generator more CPU than the server spends sending them, on the
// same two cores.
//
// With resume set (the fault scenario) an attendee whose connection drops
// connects again as the pages do (redial); otherwise a dropped connection
// ends it. The read loop owns resume and replaces sess; the worker reads
// the atomics at any time and seqs, the drop figures and the histogram
// under mu; the vote's goroutine owns vote and ask until the vote's
// WaitGroup is done.
// Writes (hello, pings, the vote) may come from several goroutines:
// coder/websocket allows concurrent writes.
type attendee struct {
	w      *worker
	index  int  // global index over all workers
	record bool // keep the receipt time of every event sequence (reveal)
	// estimates: count the tallies' estimates instead of votes, keep the
	// reveal's histogram and count any histogram before it (estimates)
	estimates bool

	sess    atomic.Pointer[session] // the current connection; a reconnect replaces it
	resume  *resumePoint            // nil: a dropped connection ends the attendee
	joined  chan struct{}           // closed at the first snapshot
	dead    chan struct{}           // closed when the attendee is done for good
	answers chan answerSeen         // acks and errors, from the read loop to the command waiting
	err     error                   // why it is done; set before dead is closed
	closing atomic.Bool             // the worker is closing it: an end is not a failure

	joinedAt atomic.Int64 // Unix ns of the snapshot
	frames   atomic.Int64 // messages received (reset when a storm begins)
	maxCount atomic.Int64 // the highest count seen of the scenario's one question's votes, or one team's estimates
	countAt  atomic.Int64 // Unix ns when maxCount was first seen
	lastSeq  atomic.Uint64

	mu     sync.Mutex
	seqs   []seqSeen // guarded by mu; increasing seq
	drops  int       // guarded by mu: connections that ended unasked (reconnecting attendees only)
	dropAt int64     // guarded by mu: Unix ns of the first
	dropOn string    // guarded by mu: the URL that connection was to
	backAt int64     // guarded by mu: Unix ns of the welcome after the latest drop; 0 while away
	// histogram is the room's estimate the reveal carried (estimates),
	// guarded by mu; nil until then.
	histogram []int

	started  bool // owned by the read loop
	revealed bool // owned by the read loop: the reveal of the room's estimate came (estimates)

	vote cmdOutcome // the upvote's fate
	ask  cmdOutcome // the question's (askers of the mixed scenario)
}

// session is one connection of an attendee. welcomed is closed at its
// welcome; down once its read loop is done with it and the attendee has
// its next session in sess or is dead, so that whoever waits on down
// finds out which.
type session struct {
	conn     *websocket.Conn
	welcomed chan struct{}
	down     chan struct{}

	gotWelcome bool // owned by the read loop
	live       bool // owned by the read loop: counted in the worker's connected
}

func newSession(conn *websocket.Conn) *session {
	return &session{conn: conn, welcomed: make(chan struct{}), down: make(chan struct{})}
}

func (s *session) write(ctx context.Context, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, []byte(msg))
}

// resumePoint is what an attendee that reconnects says in its hello, as
// the pages do (conn.js): who it is, from its welcome, and how far into
// the room it is, from its snapshot, events and tallies. Owned by the
// read loop.
type resumePoint struct {
	urls        []string
	room        string
	sourceAddrs int
	timeout     time.Duration // one dial and hello
	at          int           // index in urls of the current connection
	rejoining   bool          // the current connection's welcome has not come yet
	gapped      bool          // a gap was seen (and counted) once

	participant string
	token       string
	epoch       string
	seq         uint64 // the last sequence applied without a gap
}

// answerSeen is an ack or error the read loop saw.
type answerSeen struct {
	id         string // the command's
	code       string // "ack" or the error code
	retryAfter int64  // ms, of a rate_limited error
}

type seqSeen struct {
	seq uint64
	at  int64 // Unix ns
}

// write writes msg on the current connection.
func (a *attendee) write(ctx context.Context, msg string) error {
	return a.sess.Load().write(ctx, msg)
}

func (a *attendee) isDead() bool {
	select {
	case <-a.dead:
		return true
	default:
		return false
	}
}

// live answers the attendee's connection once it is welcomed: the current
// one, or the next after a reconnect; nil once the attendee is done or ctx
// ends.
func (a *attendee) live(ctx context.Context) *session {
	for {
		s := a.sess.Load()
		select {
		case <-s.down: // welcomed may be closed too: down tells first
			if a.isDead() {
				return nil
			}
			continue // sess holds the next connection
		default:
		}
		select {
		case <-s.welcomed:
			return s
		case <-s.down:
		case <-ctx.Done():
			return nil
		}
	}
}

// gotAnswer hands an ack or error to the command waiting for it; an answer
// nobody waits for (the buffer is full) is dropped.
func (a *attendee) gotAnswer(an answerSeen) {
	select {
	case a.answers <- an:
	default:
	}
}

// receivedAt answers when the event with seq arrived. Call with mu held.
func (a *attendee) receivedAt(seq uint64) (int64, bool) {
	i := sort.Search(len(a.seqs), func(i int) bool { return a.seqs[i].seq >= seq })
	if i < len(a.seqs) && a.seqs[i].seq == seq {
		return a.seqs[i].at, true
	}
	return 0, false
}

// Resends of a command answered rate_limited or unavailable, as the web
// client does (frontend/static/js/conn.js): at most cmdRetries, after
// retryAfter, or a second per try, but at least retryMin and at most
// retryMax.
const (
	cmdRetries = 3
	retryMin   = 250 * time.Millisecond
	retryMax   = 10 * time.Second
)

// cmdOutcome is what became of one command.
type cmdOutcome struct {
	code     string // the final answer: "ack" or an error code, or why there was none; "" if never sent
	at       int64  // Unix ns of that answer
	lastSent int64  // Unix ns of its last write
	retries  int    // resends the server asked for (rate_limited, unavailable)
	resent   int    // resends after a reconnect
}

// command sends msg, a command whose id is id, until it is answered for
// good or ctx ends: again with the same id after rate_limited or
// unavailable, as the web client does, and, for an attendee that
// reconnects, after the next welcome when the connection dropped before
// the answer, as the pages resend their pending commands (the server
// answers a retried id once: PROTOCOL.md, "Commands").
func (a *attendee) command(ctx context.Context, id, msg string) cmdOutcome {
	var out cmdOutcome
	for {
		s := a.live(ctx)
		if s == nil {
			out.code = "connection closed"
			if ctx.Err() != nil {
				out.code = "no answer"
			}
			return out
		}
		sent := time.Now().UnixNano()
		if err := s.write(ctx, msg); err != nil {
			if a.resume == nil {
				out.code = "write failed"
				return out
			}
			// The read loop is still finding the next connection: wait
			// for it rather than write to the dead one again at once.
			select {
			case <-s.down:
			case <-ctx.Done():
				out.code = "no answer"
				return out
			}
			out.resent++
			continue
		}
		out.lastSent = sent
		an, ok := a.answerTo(ctx, s, id)
		if !ok {
			if ctx.Err() != nil {
				out.code = "no answer"
				return out
			}
			if a.resume == nil {
				out.code = "connection closed"
				return out
			}
			out.resent++
			continue
		}
		out.code, out.at = an.code, time.Now().UnixNano()
		if (an.code != "rate_limited" && an.code != "unavailable") || out.retries >= cmdRetries {
			return out
		}
		out.retries++
		wait := time.Duration(an.retryAfter) * time.Millisecond
		if wait == 0 {
			wait = time.Duration(out.retries) * time.Second
		}
		if !sleepUntil(ctx, time.Now().Add(min(max(wait, retryMin), retryMax))) {
			return out
		}
	}
}

// answerTo waits for the answer to command id on s; false if s went down
// or ctx ended first. Answers to other ids (a late one, a refused ping)
// are passed over.
func (a *attendee) answerTo(ctx context.Context, s *session, id string) (answerSeen, bool) {
	for {
		select {
		case an := <-a.answers:
			if an.id == id {
				return an, true
			}
		case <-s.down:
			return answerSeen{}, false
		case <-ctx.Done():
			return answerSeen{}, false
		}
	}
}

// readLoop reads messages until the attendee is done, recording the
// time of each as soon as it is read, before any parsing; an attendee
// that reconnects goes on with its next connection when one drops.
func (a *attendee) readLoop() {
	s := a.sess.Load()
	for {
		next, err := a.ended(s, a.read(s))
		if next == nil {
			a.err = err
			close(a.dead)
			close(s.down)
			return
		}
		a.sess.Store(next)
		close(s.down)
		if a.closing.Load() {
			next.conn.CloseNow() // closeAll may have closed the one before
		}
		s = next
	}
}

// read reads s until its connection ends and answers why.
func (a *attendee) read(s *session) error {
	w := a.w
	var buf bytes.Buffer
	for {
		// No context: a cancellable one would cost a registration per
		// message on a context shared by thousands of read loops. The
		// worker ends connections by closing them.
		_, r, err := s.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		a.frames.Add(1)
		w.frames.Add(1)
		w.bytes.Add(int64(buf.Len()))
		data := buf.Bytes()
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			a.handle(s, line, now)
		}
		if buf.Cap() > keepBufferBytes {
			buf = bytes.Buffer{} // an idle attendee does not keep a burst's buffer
		}
	}
}

// ended counts a connection that ended unasked and, for an attendee that
// reconnects, connects again: it answers the next session, or nil and
// why the attendee is done.
func (a *attendee) ended(s *session, err error) (*session, error) {
	if !a.started || a.closing.Load() {
		return nil, err
	}
	w := a.w
	if s.live {
		w.connected.Add(-1)
	}
	w.closed.Add(1)
	w.mu.Lock()
	w.closeReasons[errClass(err)]++
	w.mu.Unlock()
	r := a.resume
	if r == nil || isFinalClose(err) {
		return nil, err
	}
	a.mu.Lock()
	if a.drops == 0 {
		a.dropAt, a.dropOn = time.Now().UnixNano(), r.urls[r.at]
	}
	a.drops++
	a.backAt = 0
	a.mu.Unlock()
	return a.redial()
}

// isFinalClose reports whether the server closed the connection with a
// code after which the pages stop rather than reconnect (conn.js fatal).
func isFinalClose(err error) bool {
	switch websocket.CloseStatus(err) {
	case websocket.StatusPolicyViolation, 4000, 4001, 4003, 4004:
		return true
	}
	return false
}

// Reconnecting, as the pages do (conn.js) but quicker, since the bench
// measures how soon everyone is back: the first pause is 100 to 500 ms
// (a fifth of reconnectFirst to all of it, at random, so that the
// attendees of a dead instance do not all knock at once), and each
// failure doubles it up to reconnectMax.
const (
	reconnectFirst = 500 * time.Millisecond
	reconnectMax   = 5 * time.Second
)

// errClosing is why an attendee the worker closes stops reconnecting.
var errClosing = errors.New("closed by the worker while reconnecting")

// redial connects again after a dropped connection: after a pause, to the
// next URL in the list, and on to the one after while they do not answer,
// with a hello that says who the attendee is and the epoch and sequence it
// has, so that the server sends what it missed. It answers the new
// session once its hello is written; nil when the worker closes the
// attendee.
func (a *attendee) redial() (*session, error) {
	r, w := a.resume, a.w
	for pause := reconnectFirst; ; pause = min(2*pause, reconnectMax) {
		if !sleepUntil(w.ctx, time.Now().Add(pause/5+rand.N(pause*4/5))) {
			return nil, w.ctx.Err()
		}
		if a.closing.Load() {
			return nil, errClosing
		}
		r.at = (r.at + 1) % len(r.urls)
		hello, err := json.Marshal(map[string]any{
			"type": "hello", "participant": r.participant, "token": r.token, "epoch": r.epoch, "seq": r.seq,
		})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(w.ctx, r.timeout)
		conn, err := w.connect(ctx, r.urls[r.at], r.room, a.index, r.sourceAddrs)
		if err == nil {
			s := newSession(conn)
			if err = s.write(ctx, string(hello)); err == nil {
				cancel()
				r.rejoining = true
				return s, nil
			}
			conn.CloseNow()
		}
		cancel()
	}
}

// handle looks at one server message received at now on s.
func (a *attendee) handle(s *session, line []byte, now int64) {
	r := a.resume
	if a.estimates && !a.revealed {
		a.watchEstimates(line)
	}
	switch messageType(line) {
	case "welcome":
		if !s.gotWelcome {
			s.gotWelcome = true
			close(s.welcomed)
		}
		if r != nil {
			a.welcomed(s, r, line, now)
		}
	case "snapshot":
		if !a.started {
			a.started = true
			s.live = true // the dial counts it connected
			a.joinedAt.Store(now)
			close(a.joined)
		}
		// A snapshot shows the counts too: one may answer a reconnect.
		a.sawCount(maxIntField(line, `"votes":`), now)
		if r != nil {
			r.epoch = stringField(line, `"epoch":"`)
			r.seq, _ = uintField(line, `"seq":`)
		}
	case "events":
		if a.record {
			a.recordSeqs(line, now)
		}
		a.sawCount(maxIntField(line, `"count":`), now)
		if r != nil {
			a.followEvents(r, line)
		}
	case "tally":
		// Votes and estimates reach attendees as tallies (PROTOCOL.md):
		// the bench has one question, or estimates one team, so the
		// largest count is its count. In a tally only an estimate's
		// entry has a count.
		if a.estimates {
			a.sawCount(maxIntField(line, `"count":`), now)
		} else {
			a.sawCount(maxIntField(line, `"votes":`), now)
		}
		if r != nil {
			a.followTally(r, line)
		}
	case "ack":
		a.gotAnswer(answerSeen{id: stringField(line, `"id":"`), code: "ack"})
	case "error":
		code := stringField(line, `"code":"`)
		if code == "" {
			code = "error"
		}
		a.gotAnswer(answerSeen{id: stringField(line, `"id":"`), code: code, retryAfter: maxIntField(line, `"retryAfter":`)})
	}
}

// welcomed keeps who the attendee is (a welcome answers the token to keep,
// PROTOCOL.md "welcome") and counts a reconnect's welcome: the attendee is
// back.
func (a *attendee) welcomed(s *session, r *resumePoint, line []byte, now int64) {
	r.participant = stringField(line, `"participant":"`)
	if t := stringField(line, `"token":"`); t != "" {
		r.token = t
	}
	r.epoch = stringField(line, `"epoch":"`)
	if !r.rejoining {
		return
	}
	r.rejoining = false
	s.live = true
	a.w.connected.Add(1)
	a.w.rejoined.Add(1)
	a.mu.Lock()
	a.backAt = now
	a.mu.Unlock()
}

// followEvents moves the resume point along an events message: each
// event's seq follows the last (PROTOCOL.md "events"). A gap, which the
// server should never leave, is counted and the point stays before it, so
// that the next hello asks for what was missed; the pages would resume at
// once, which changes nothing the bench measures.
func (a *attendee) followEvents(r *resumePoint, line []byte) {
	for n := range eventSeqs(line) {
		switch {
		case n <= r.seq:
		case n == r.seq+1:
			r.seq = n
		default:
			a.sawGap(r)
			return
		}
	}
}

// followTally moves the resume point to a tally's seq: a tally stands for
// the events from..seq and applies anywhere from from-1 on (PROTOCOL.md
// "tally").
func (a *attendee) followTally(r *resumePoint, line []byte) {
	from, _ := uintField(line, `"from":`)
	seq, _ := uintField(line, `"seq":`)
	switch {
	case seq <= r.seq:
	case from > r.seq+1:
		a.sawGap(r)
	default:
		r.seq = seq
	}
}

func (a *attendee) sawGap(r *resumePoint) {
	if !r.gapped {
		r.gapped = true
		a.w.gaps.Add(1)
	}
}

// watchEstimates looks at a message for the room's estimate before the
// attendee's reveal: the revealed event carries the histogram, which it
// keeps; any other message that holds one is a leak, counted (PROTOCOL.md:
// until the reveal no frame carries a count per level). A scan for one
// key is cheap beside the read; decoding every tally would not be.
func (a *attendee) watchEstimates(line []byte) {
	if !bytes.Contains(line, []byte(`"histogram":`)) {
		return
	}
	if messageType(line) == "events" && bytes.Contains(line, []byte(`"type":"revealed"`)) {
		h := intList(line, `"histogram":[`)
		a.mu.Lock()
		a.histogram = h
		a.mu.Unlock()
		a.revealed = true
		return
	}
	a.w.leaks.Add(1)
}

// sawCount notes a count (votes, or estimates) shown at now.
func (a *attendee) sawCount(c, now int64) {
	if c > a.maxCount.Load() {
		a.maxCount.Store(c)
		a.countAt.Store(now)
	}
}

// recordSeqs notes the receipt time of every event in an events message.
func (a *attendee) recordSeqs(line []byte, now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for n := range eventSeqs(line) {
		if n <= a.lastSeq.Load() {
			continue
		}
		a.seqs = append(a.seqs, seqSeen{seq: n, at: now})
		a.lastSeq.Store(n)
		a.w.received.Add(1)
	}
}

// eventSeqs yields the seq of every event in an events message, in order:
// each event is encoded with its seq first ({"seq":N,...}).
func eventSeqs(line []byte) iter.Seq[uint64] {
	const key = `{"seq":`
	return func(yield func(uint64) bool) {
		for rest := line; ; {
			i := bytes.Index(rest, []byte(key))
			if i < 0 {
				return
			}
			rest = rest[i+len(key):]
			n, used := parseUint(rest)
			rest = rest[used:]
			if used > 0 && !yield(n) {
				return
			}
		}
	}
}

// messageType reads the type of a server message, which every message
// carries first: {"type":"events",...}.
func messageType(line []byte) string {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return ""
	}
	rest := line[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

// maxIntField is the largest integer that follows key in line (0 if none).
func maxIntField(line []byte, key string) int64 {
	var best int64
	for rest := line; ; {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			return best
		}
		rest = rest[i+len(key):]
		n, used := parseUint(rest)
		rest = rest[used:]
		best = max(best, int64(n))
	}
}

// intList is the list of whole numbers that follows key (which ends in
// a bracket): [3,0,12]; nil without key.
func intList(line []byte, key string) []int {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return nil
	}
	out := []int{}
	for rest := line[i+len(key):]; len(rest) > 0 && rest[0] != ']'; {
		n, used := parseUint(rest)
		if used == 0 {
			return out // not a list of whole numbers: what was read so far, which will not match
		}
		out = append(out, int(n))
		rest = rest[used:]
		if len(rest) > 0 && rest[0] == ',' {
			rest = rest[1:]
		}
	}
	return out
}

// uintField is the first whole number that follows key.
func uintField(line []byte, key string) (uint64, bool) {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0, false
	}
	n, used := parseUint(line[i+len(key):])
	return n, used > 0
}

// stringField is the string that follows key (which ends in a quote).
func stringField(line []byte, key string) string {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

// parseUint reads the decimal digits at the start of b.
func parseUint(b []byte) (n uint64, used int) {
	for used < len(b) && b[used] >= '0' && b[used] <= '9' {
		n = n*10 + uint64(b[used]-'0')
		used++
	}
	return n, used
}
