package hub

import "sync"

// resumer serves one client's resumes, at most one room actor call at a
// time, so that a client resuming as fast as it can costs the room one
// catch-up per turn of the actor rather than a goroutine and a snapshot
// per message. A resume that comes while one waits for the actor replaces
// that one's (epoch, seq): the newest wins. One that comes while one is
// being served waits for it and is served next. A client gets a resumer
// on its first resume, so an idle connection holds none.
//
// The read loop fills it (request) and owns limit; the goroutine of run,
// while it lives, empties it. The actor reads the request when it runs
// the call, not when the call was made.
type resumer struct {
	limit bucket // the per-connection resume bucket; read loop only

	mu      sync.Mutex
	epoch   string // the newest request, guarded by mu
	seq     uint64 // guarded by mu
	pending bool   // a request waits for the actor; guarded by mu
	running bool   // run's goroutine lives; guarded by mu
}

// Results of a resume in workshop_client_messages_total.
const (
	resumeServed    = "served"    // answered by one actor call
	resumeCoalesced = "coalesced" // folded into a resume that was waiting
)

// request asks for (epoch, seq) to be served, and starts the goroutine
// that serves it unless one runs. It never blocks: the read loop calls it.
func (r *resumer) request(c *Client, epoch string, seq uint64) {
	r.mu.Lock()
	coalesced := r.pending
	r.epoch, r.seq, r.pending = epoch, seq, true
	start := !r.running
	r.running = true
	r.mu.Unlock()
	if coalesced {
		c.h.m.clientMessages.WithLabelValues(msgResume, resumeCoalesced).Inc()
	}
	if start {
		go r.run(c)
	}
}

// run makes one actor call per pending request until none is left, then
// returns. It ends too when the client closed or the actor stopped.
func (r *resumer) run(c *Client) {
	ra := c.ra
	serve := func() {
		r.mu.Lock()
		epoch, seq, ok := r.epoch, r.seq, r.pending
		r.pending = false
		r.mu.Unlock()
		if _, joined := ra.clients[c]; ok && joined {
			c.h.m.clientMessages.WithLabelValues(msgResume, resumeServed).Inc()
			ra.sendCatchUp(c, epoch, seq)
		}
	}
	for {
		r.mu.Lock()
		if !r.pending || c.closed() {
			r.pending, r.running = false, false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		if err := ra.call(c.h.ctx, serve); err != nil {
			r.mu.Lock()
			r.pending, r.running = false, false
			r.mu.Unlock()
			return
		}
	}
}
