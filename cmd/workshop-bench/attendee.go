package main

import (
	"bytes"
	"context"
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
// The worker reads the atomics at any time and seqs under mu; the vote's
// goroutine owns voteCode and voteAt until the vote's WaitGroup is done.
// Writes (hello, pings, the vote) may come from several
// goroutines: coder/websocket allows concurrent writes.
type attendee struct {
	w      *worker
	index  int // global index over all workers
	conn   *websocket.Conn
	record bool // keep the receipt time of every event sequence (reveal)

	joined  chan struct{}   // closed at the first snapshot
	dead    chan struct{}   // closed when the read loop ends
	answers chan voteAnswer // acks and errors, from the read loop to the vote
	err     error           // why the read loop ended; set before dead is closed
	closing atomic.Bool     // the worker is closing it: an end is not a failure

	joinedAt atomic.Int64 // Unix ns of the snapshot
	frames   atomic.Int64 // messages received (reset when a storm begins)
	maxCount atomic.Int64 // the highest vote count seen
	countAt  atomic.Int64 // Unix ns when maxCount was first seen
	lastSeq  atomic.Uint64

	mu   sync.Mutex
	seqs []seqSeen // guarded by mu; increasing seq

	started bool // owned by the read loop

	voteCode  string // the vote's final answer: "ack" or an error code
	voteAt    int64  // Unix ns of that answer
	voteTries int    // resends of the vote
}

// voteAnswer is an ack or error the read loop saw.
type voteAnswer struct {
	code       string // "ack" or the error code
	retryAfter int64  // ms, of a rate_limited error
}

type seqSeen struct {
	seq uint64
	at  int64 // Unix ns
}

func (a *attendee) write(ctx context.Context, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return a.conn.Write(ctx, websocket.MessageText, []byte(msg))
}

func (a *attendee) isDead() bool {
	select {
	case <-a.dead:
		return true
	default:
		return false
	}
}

// gotAnswer hands an ack or error to the vote waiting for it; an answer
// nobody waits for (the buffer is full) is dropped.
func (a *attendee) gotAnswer(an voteAnswer) {
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

// readLoop reads messages until the connection ends, recording the time
// of each as soon as it is read, before any parsing.
func (a *attendee) readLoop() {
	w := a.w
	defer close(a.dead)
	var buf bytes.Buffer
	for {
		// No context: a cancellable one would cost a registration per
		// message on a context shared by thousands of read loops. The
		// worker ends connections by closing them.
		_, r, err := a.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			a.err = err
			if a.started && !a.closing.Load() {
				w.connected.Add(-1)
				w.closed.Add(1)
				w.mu.Lock()
				w.closeReasons[errClass(err)]++
				w.mu.Unlock()
			}
			return
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
			a.handle(line, now)
		}
		if buf.Cap() > keepBufferBytes {
			buf = bytes.Buffer{} // an idle attendee does not keep a burst's buffer
		}
	}
}

// handle looks at one server message received at now.
func (a *attendee) handle(line []byte, now int64) {
	switch messageType(line) {
	case "snapshot":
		if !a.started {
			a.started = true
			a.joinedAt.Store(now)
			close(a.joined)
		}
	case "events":
		if a.record {
			a.recordSeqs(line, now)
		}
		a.sawCount(maxIntField(line, `"count":`), now)
	case "tally":
		// Votes reach attendees as tallies (PROTOCOL.md): the bench has
		// one question, so the largest count is its count.
		a.sawCount(maxIntField(line, `"votes":`), now)
	case "ack":
		a.gotAnswer(voteAnswer{code: "ack"})
	case "error":
		code := stringField(line, `"code":"`)
		if code == "" {
			code = "error"
		}
		a.gotAnswer(voteAnswer{code: code, retryAfter: maxIntField(line, `"retryAfter":`)})
	}
}

// sawCount notes a vote count shown at now.
func (a *attendee) sawCount(c, now int64) {
	if c > a.maxCount.Load() {
		a.maxCount.Store(c)
		a.countAt.Store(now)
	}
}

// recordSeqs notes the receipt time of every event in an events message:
// each event is encoded with its seq first ({"seq":N,...}).
func (a *attendee) recordSeqs(line []byte, now int64) {
	const key = `{"seq":`
	a.mu.Lock()
	defer a.mu.Unlock()
	for rest := line; ; {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			return
		}
		rest = rest[i+len(key):]
		n, used := parseUint(rest)
		rest = rest[used:]
		if used == 0 || n <= a.lastSeq.Load() {
			continue
		}
		a.seqs = append(a.seqs, seqSeen{seq: n, at: now})
		a.lastSeq.Store(n)
		a.w.received.Add(1)
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
