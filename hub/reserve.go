package hub

import "time"

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
	if now.Sub(a.last) > time.Minute {
		a.sweep(now)
	}
	b := a.m[key]
	if b == nil {
		b = &addrBucket{l: a.rate.limiter()}
		a.m[key] = b
	}
	b.used = now
	r := b.l.ReserveN(now, 1)
	if !r.OK() {
		return nil, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return func() { r.CancelAt(now) }, 0
}
