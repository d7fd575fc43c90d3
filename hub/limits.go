package hub

import (
	"errors"
	"sync"
	"time"

	"github.com/leveling/workshop/room"
	"golang.org/x/time/rate"
)

// Limits bounds what one connection and one client address may do. Rates
// are token buckets (golang.org/x/time/rate): Per is the refill interval of
// one token and Burst the bucket size. Per-address limits are sized for a
// venue where hundreds of people share one address behind a NAT; the
// per-connection ones stop a single misbehaving client. The zero value of
// each field means the default in DefaultLimits.
type Limits struct {
	// Per connection.
	Commands  Rate // any command (10/s, burst 30)
	Questions Rate // ask (1 per 10 s, burst 3)
	Votes     Rate // upvote, unvote, report, estimate (5/s, burst 20)
	Hands     Rate // raise_hand, lower_hand (1 per 2 s, burst 4)
	// Pings and Resumes are sized for the web page, which pings three
	// times within a second and a half to measure the clock and then
	// every 15 s, and resumes only on a gap (at most once per 2 s, more
	// often only when the room's epoch changed); the bursts let a client
	// on a bad train connection catch up at once after a stall. A ping
	// costs no room actor time: its burst matches Commands', so a client
	// that checks its connection after each command is not refused.
	Pings   Rate // ping (1/s, burst 30)
	Resumes Rate // resume (1 per 2 s, burst 10)

	// Per client address (all its connections together).
	AddrCommands   Rate // any command (1,000/s, burst 5,000)
	AddrConnects   Rate // WebSocket upgrades (200/s, burst 5,000)
	AddrIdentities Rate // new attendee identities per address and room (50/s, burst 5,000)
	AddrRooms      Rate // rooms created (20 per hour, burst 20)
	AddrLookups    Rate // short-code lookups (1/s, burst 30): codes cannot be enumerated
	// A venue of 5,000 behind one NAT pings about 330 times a second; a
	// lagging instance makes every one of its clients resume at once.
	AddrPings   Rate // ping (1,000/s, burst 5,000)
	AddrResumes Rate // resume (200/s, burst 2,000)

	// RefusalPause is how long a connection's next message waits to be
	// read after a refused ping or resume (100 ms): a client that floods
	// is held back by its own TCP window instead of spending the server's
	// CPU on messages that are refused anyway.
	RefusalPause time.Duration

	// MaxClientMessageBytes bounds one WebSocket message from a client,
	// in bytes (64 KiB): the connection's read limit, which closes the
	// connection with 1009 when a message is larger, and the decoder's.
	// What the server writes is batched up to maxWriteBatchBytes instead.
	MaxClientMessageBytes int

	// Sizes.
	MaxConnsPerRoom     int // connections to one room on this instance (20,000)
	MaxQuestionsPerRoom int // questions in one room (10,000, the domain's ceiling)
	MaxTeamsPerRoom     int // teams in one room (30, the domain's ceiling)
}

// Rate is a token bucket: one token every Per, at most Burst saved up.
type Rate struct {
	Per   time.Duration
	Burst int
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	Commands:              Rate{100 * time.Millisecond, 30},
	Questions:             Rate{10 * time.Second, 3},
	Votes:                 Rate{200 * time.Millisecond, 20},
	Hands:                 Rate{2 * time.Second, 4},
	Pings:                 Rate{time.Second, 30},
	Resumes:               Rate{2 * time.Second, 10},
	AddrCommands:          Rate{time.Millisecond, 5000},
	AddrConnects:          Rate{5 * time.Millisecond, 5000},
	AddrIdentities:        Rate{20 * time.Millisecond, 5000},
	AddrRooms:             Rate{3 * time.Minute, 20},
	AddrLookups:           Rate{time.Second, 30},
	AddrPings:             Rate{time.Millisecond, 5000},
	AddrResumes:           Rate{5 * time.Millisecond, 2000},
	RefusalPause:          100 * time.Millisecond,
	MaxClientMessageBytes: defaultClientMessageBytes,
	MaxConnsPerRoom:       20000,
	MaxQuestionsPerRoom:   room.MaxQuestions,
	MaxTeamsPerRoom:       room.MaxTeams,
}

func (l *Limits) setDefaults() {
	d := DefaultLimits
	for _, p := range []struct{ v, def *Rate }{
		{&l.Commands, &d.Commands}, {&l.Questions, &d.Questions}, {&l.Votes, &d.Votes},
		{&l.Hands, &d.Hands}, {&l.AddrCommands, &d.AddrCommands}, {&l.AddrConnects, &d.AddrConnects},
		{&l.AddrIdentities, &d.AddrIdentities}, {&l.AddrRooms, &d.AddrRooms}, {&l.AddrLookups, &d.AddrLookups},
		{&l.Pings, &d.Pings}, {&l.Resumes, &d.Resumes}, {&l.AddrPings, &d.AddrPings}, {&l.AddrResumes, &d.AddrResumes},
	} {
		if p.v.Per <= 0 {
			p.v.Per = p.def.Per
		}
		if p.v.Burst <= 0 {
			p.v.Burst = p.def.Burst
		}
	}
	if l.RefusalPause <= 0 {
		l.RefusalPause = d.RefusalPause
	}
	if l.MaxClientMessageBytes <= 0 {
		l.MaxClientMessageBytes = d.MaxClientMessageBytes
	}
	if l.MaxConnsPerRoom <= 0 {
		l.MaxConnsPerRoom = d.MaxConnsPerRoom
	}
	if l.MaxQuestionsPerRoom <= 0 || l.MaxQuestionsPerRoom > room.MaxQuestions {
		l.MaxQuestionsPerRoom = d.MaxQuestionsPerRoom
	}
	if l.MaxTeamsPerRoom <= 0 || l.MaxTeamsPerRoom > room.MaxTeams {
		l.MaxTeamsPerRoom = d.MaxTeamsPerRoom
	}
}

// Scaled returns l with every per-address rate multiplied by f (bursts
// too): for load tests from one machine, or a venue bigger than the
// defaults assume.
func (l Limits) Scaled(f float64) Limits {
	if f <= 0 || f == 1 {
		return l
	}
	l.setDefaults()
	for _, r := range []*Rate{&l.AddrCommands, &l.AddrConnects, &l.AddrIdentities, &l.AddrRooms, &l.AddrLookups, &l.AddrPings, &l.AddrResumes} {
		r.Per = time.Duration(float64(r.Per) / f)
		r.Burst = int(float64(r.Burst) * f)
	}
	return l
}

func (r Rate) limiter() *rate.Limiter { return rate.NewLimiter(rate.Every(r.Per), r.Burst) }

// allow takes a token if one is there; otherwise it answers how long until
// one will be, and takes nothing.
func allow(l *rate.Limiter, now time.Time) (bool, time.Duration) {
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// rateLimitedError is the client's error for a refused action. The wait
// is rounded up to a whole millisecond, the unit of retryAfter, so that a
// refusal never tells a client to retry in 0 ms.
func rateLimitedError(what string, retry time.Duration) error {
	retry = max(retry, time.Nanosecond)
	retry = (retry + time.Millisecond - 1).Truncate(time.Millisecond)
	return &limitError{err: room.Errorf(room.ERATELIMITED, "too many %s; retry in %s", what, retry.Round(time.Millisecond)), retry: retry}
}

// limitError carries a retry-after next to the domain error.
type limitError struct {
	err   *room.Error
	retry time.Duration
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// retryAfter is how long a rate-limited client should wait, or 0.
func retryAfter(err error) time.Duration {
	var le *limitError
	if errors.As(err, &le) {
		return le.retry
	}
	return 0
}

// addrLimiters holds one token bucket per client address (and key), and
// forgets buckets that have been full for a while so memory stays bounded.
type addrLimiters struct {
	rate Rate
	mu   sync.Mutex
	m    map[string]*addrBucket // guarded by mu
	last time.Time              // last sweep; guarded by mu
}

type addrBucket struct {
	l    *rate.Limiter
	used time.Time
}

func newAddrLimiters(r Rate) *addrLimiters {
	return &addrLimiters{rate: r, m: map[string]*addrBucket{}}
}

// allow takes a token from key's bucket.
func (a *addrLimiters) allow(key string, now time.Time) (bool, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return allow(a.bucketLocked(key, now), now)
}

// reserve is addrLimiters.allow for an action charged only if it
// succeeds, such as creating a room: a facilitator's typos must not spend
// the budget of everyone behind the same address. It takes key's token at
// once, so concurrent requests from one address never overshoot the
// bucket (a request that fails holds its token only while it runs), and
// answers refund, which the caller calls at most once when the action
// failed. refund is x/time/rate's CancelAt at the reservation's own time
// (for a later time CancelAt restores nothing); tokens other requests
// took meanwhile stay taken. A nil refund means refused, with retry until
// the next token.
func (a *addrLimiters) reserve(key string, now time.Time) (refund func(), retry time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.bucketLocked(key, now).ReserveN(now, 1)
	if !r.OK() {
		return nil, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return func() { r.CancelAt(now) }, 0
}

// bucketLocked is key's bucket, made on first use, with the unused ones
// swept now and then. a.mu is held.
func (a *addrLimiters) bucketLocked(key string, now time.Time) *rate.Limiter {
	if now.Sub(a.last) > time.Minute {
		a.sweep(now)
	}
	b := a.m[key]
	if b == nil {
		b = &addrBucket{l: a.rate.limiter()}
		a.m[key] = b
	}
	b.used = now
	return b.l
}

// sweep drops buckets unused for longer than it takes them to refill:
// a fresh bucket would behave the same.
func (a *addrLimiters) sweep(now time.Time) {
	a.last = now
	full := a.rate.Per * time.Duration(a.rate.Burst)
	for k, b := range a.m {
		if now.Sub(b.used) > full {
			delete(a.m, k)
		}
	}
}

// connLimiters are one connection's buckets. Only its read loop uses them.
type connLimiters struct {
	commands, questions, votes, hands *rate.Limiter
}

func newConnLimiters(l Limits) *connLimiters {
	return &connLimiters{
		commands: l.Commands.limiter(), questions: l.Questions.limiter(),
		votes: l.Votes.limiter(), hands: l.Hands.limiter(),
	}
}

// check applies the per-connection and per-address limits to a command.
func (h *Hub) checkCommand(cl *connLimiters, addr, typ string, now time.Time) error {
	if ok, d := allow(cl.commands, now); !ok {
		return rateLimitedError("commands", d)
	}
	var specific *rate.Limiter
	what := ""
	switch typ {
	case room.CmdAsk:
		specific, what = cl.questions, "questions"
	case room.CmdUpvote, room.CmdUnvote, room.CmdReport, room.CmdEstimate:
		specific, what = cl.votes, "votes"
	case room.CmdRaiseHand, room.CmdLowerHand:
		specific, what = cl.hands, "hand raises"
	}
	if specific != nil {
		if ok, d := allow(specific, now); !ok {
			return rateLimitedError(what, d)
		}
	}
	if ok, d := h.addrCommands.allow(addr, now); !ok {
		return rateLimitedError("commands from your address", d)
	}
	return nil
}

// bucket is a per-connection token bucket in one word, for the messages
// every connection sends (pings): a rate.Limiter behind a pointer is
// about 90 bytes, and every live connection pings. It is the generic cell
// rate algorithm: full is when the bucket will be full again, on a
// monotonic clock; each message moves it one Per later, and a message is
// refused when that would put it more than Burst-1 periods ahead of now.
// The zero value is a full bucket. Only the connection's read loop uses it.
type bucket struct{ full time.Duration }

// monoStart is the origin of the buckets' monotonic clock.
var monoStart = time.Now()

// allow takes a token if one is there; otherwise it answers how long until
// one will be, and takes nothing.
func (b *bucket) allow(r Rate, now time.Time) (bool, time.Duration) {
	t := now.Sub(monoStart)
	full := max(b.full, t)
	if ahead := full - t - time.Duration(r.Burst-1)*r.Per; ahead > 0 {
		return false, ahead
	}
	b.full = full + r.Per
	return true, 0
}

// checkPing applies the per-connection and per-address ping limits.
func (h *Hub) checkPing(c *Client, now time.Time) error {
	if ok, d := c.pings.allow(h.cfg.Limits.Pings, now); !ok {
		return rateLimitedError("pings", d)
	}
	if ok, d := h.addrPings.allow(c.addr, now); !ok {
		return rateLimitedError("pings from your address", d)
	}
	return nil
}

// refused holds c's read loop back for RefusalPause after a refused
// ping or resume (or until c closes). It runs on the goroutine handling
// the message, which the read loop waits for.
func (h *Hub) refused(c *Client) {
	t := time.NewTimer(h.cfg.Limits.RefusalPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
	}
}

// checkResume applies the per-connection and per-address resume limits.
func (h *Hub) checkResume(c *Client, r *resumer, now time.Time) error {
	if ok, d := r.limit.allow(h.cfg.Limits.Resumes, now); !ok {
		return rateLimitedError("resumes", d)
	}
	if ok, d := h.addrResumes.allow(c.addr, now); !ok {
		return rateLimitedError("resumes from your address", d)
	}
	return nil
}
