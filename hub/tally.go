package hub

// Tallies: the audience's share of a vote storm. Votes, reports and hands
// (room.Tallied) reach the facilitator one by one, as they commit; every
// other client gets them folded into one tally frame per room and tick,
// carrying the new totals, so a storm costs ticks x attendees deliveries
// instead of votes x attendees. A quiet room does not wait: the first
// tallied event after a quiet interval goes out at once.

import (
	"slices"
	"time"

	"github.com/leveling/workshop/room"
)

// defaultTallyInterval is Config.TallyInterval's default: votes, reports
// and hands reach attendees at most this often.
const defaultTallyInterval = 250 * time.Millisecond

// tallyState is a room actor's tally in the making.
type tallyState struct {
	events []room.Event // committed, Tallied, not yet sent to the tallied classes
	hands  []room.Hand  // the hand queue after events, when they moved it
	sentAt time.Time    // when the last tally went out
	cost   time.Duration
	timer  *time.Timer // armed while a tally waits for its tick
	due    <-chan time.Time
}

// tallies reports whether class gets tallied events as tallies.
func (ra *roomActor) tallies(class string) bool {
	return ra.h.cfg.TallyInterval > 0 && class != room.ClassFacilitator
}

// holdForTally takes a batch of committed events that are all Tallied
// into the tally in the making, and arms or fires its tick. It reports
// false, taking nothing, when the batch holds anything else.
func (ra *roomActor) holdForTally(events []room.Event) bool {
	if ra.h.cfg.TallyInterval <= 0 || len(events) == 0 || slices.ContainsFunc(events, func(e room.Event) bool { return !room.Tallied(e) }) {
		return false
	}
	t := &ra.tally
	t.events = append(t.events, events...)
	if slices.ContainsFunc(events, func(e room.Event) bool {
		return e.Type == room.EvHandRaised || e.Type == room.EvHandLowered
	}) {
		t.hands = slices.Clone(ra.state.Hands)
	}
	if t.timer != nil {
		return true // the tick is coming
	}
	wait := ra.tallyInterval() - time.Since(t.sentAt)
	if wait <= 0 {
		ra.flushTally()
		return true
	}
	t.timer = time.NewTimer(wait)
	t.due = t.timer.C
	return true
}

// tallyInterval is the configured interval, stretched so that sending
// tallies takes at most a quarter of the actor's time in a large room (a
// tally that took 100 ms to queue waits 400 ms for the next), but never
// past twice the configured interval: the cost is wall time, and on a
// saturated machine the actor waits behind the very write loops it woke,
// which once stretched the tick past 10 s at 10,000 attendees.
func (ra *roomActor) tallyInterval() time.Duration {
	base := ra.h.cfg.TallyInterval
	return min(max(base, 4*ra.tally.cost), 2*base)
}

// flushTally sends the tally in the making to every client of a tallied
// class: one frame per class, and one of their own to attendees who voted
// or reported in it. Run before any other event reaches those clients, so
// that they see sequences in order.
func (ra *roomActor) flushTally() {
	t := &ra.tally
	if t.timer != nil {
		t.timer.Stop()
		t.timer, t.due = nil, nil
	}
	if len(t.events) == 0 {
		return
	}
	start := time.Now()
	events, hands := t.events, t.hands
	t.events, t.hands = nil, nil
	// Each voter's own events, to cut its own tally from the public one
	// at the cost of those alone: a storm has as many voters as votes.
	personal := map[string][]room.Event{}
	for _, e := range events {
		for _, pid := range room.PersonalIn(e) {
			personal[pid] = append(personal[pid], e)
		}
	}
	public := room.TallyFor(events, hands, ra.state, room.ClassAudience(room.ClassPublic))
	n := 0
	for class, members := range ra.byClass {
		if len(members) == 0 || !ra.tallies(class) {
			continue
		}
		cut := public
		if class != room.ClassPublic {
			cut = room.TallyFor(events, hands, ra.state, room.ClassAudience(class))
		}
		frame := tallyFrame(cut)
		for c := range members {
			if class == room.ClassPublic && personal[c.actor.Participant] != nil {
				continue // gets a frame of its own below
			}
			c.enqueue(frame)
			n++
		}
	}
	for pid, own := range personal {
		var frame []byte // one per participant, however many connections it has
		for c := range ra.byPeer[pid] {
			if c.class != room.ClassPublic {
				continue
			}
			if frame == nil {
				frame = tallyFrame(public.Personal(own, ra.state, c.aud))
			}
			c.enqueue(frame)
			n++
		}
	}
	ra.shown.Store(events[len(events)-1].Seq)
	t.sentAt = time.Now()
	t.cost = t.sentAt.Sub(start)
	ra.h.m.deliveries.Add(float64(n))
	ra.h.m.fanoutSeconds.Observe(t.cost.Seconds())
}

// dropTally forgets the tally in the making: every client is getting a
// snapshot that holds it.
func (ra *roomActor) dropTally() {
	if ra.tally.timer != nil {
		ra.tally.timer.Stop()
	}
	ra.tally = tallyState{sentAt: ra.tally.sentAt, cost: ra.tally.cost}
}

type tallyMsg struct {
	Type string `json:"type"`
	room.Tally
}

// tallyFrame encodes a tally; like an events frame it names no epoch
// (eventsFrame).
func tallyFrame(t room.Tally) []byte {
	return mustJSON(tallyMsg{Type: msgTally, Tally: t})
}

// pongSeq is the sequence a pong tells c (PROTOCOL.md, "pong"): what its
// class has been sent, so that a client a tally is on its way to does not
// take the wait for a gap and resume.
func (c *Client) pongSeq() uint64 {
	if c.ra.tallies(c.class) {
		return c.ra.shown.Load()
	}
	return c.ra.head.Load()
}
