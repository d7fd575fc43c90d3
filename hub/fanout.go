package hub

// Fan-out: committed events encoded once per audience variant and queued to
// every local client of the room, and the client classes that share bytes.

import (
	"slices"
	"time"

	"github.com/leveling/workshop/room"
)

// fanout encodes each event once per audience variant and queues the
// frames to every local client. It runs on the actor goroutine; queueing
// never blocks (a full queue closes that client).
func (ra *roomActor) fanout(events []room.Event) {
	if len(events) == 0 {
		return
	}
	ra.broadcast = events[len(events)-1].Seq
	ra.recent = append(ra.recent, events...)
	if n := len(ra.recent) - recentEvents; n > 0 {
		ra.recent = slices.Delete(ra.recent, 0, n)
	}
	if ra.h.cfg.TallyInterval <= 0 {
		ra.fanoutRun(events)
		return
	}
	// A batch that mixes votes with anything else (a reveal committed
	// with the votes queued around it) goes out run by run: the votes
	// into the tally, the rest as events. Sent whole, every vote of a
	// storm batch rode to every attendee in the reveal's frame, and each
	// voter got a copy of its own.
	for len(events) > 0 {
		tallied := room.Tallied(events[0])
		n := 1
		for n < len(events) && room.Tallied(events[n]) == tallied {
			n++
		}
		ra.fanoutRun(events[:n])
		events = events[n:]
	}
}

// fanoutRun fans out events that are all Tallied or none of them.
func (ra *roomActor) fanoutRun(events []room.Event) {
	start := time.Now()
	// Votes, reports and hands alone wait for the room's next tally;
	// anything else first sends the tally in the making, so that every
	// client sees sequences in order.
	held := ra.holdForTally(events)
	if !held {
		ra.flushTally()
	}
	enc := newEventEncoder(events, ra.state)
	// Attendees whose own twin of an event differs from their class's (the
	// domain names them: the author of a pending or anonymous question, a
	// voter, a reporter) get a frame of their own; held events reach
	// them in the tally.
	personal := map[string]bool{}
	for _, e := range events {
		if held {
			break
		}
		for _, pid := range room.PersonalIn(e) {
			personal[pid] = true
		}
	}
	n := 0
	for class, members := range ra.byClass {
		if len(members) == 0 || held && ra.tallies(class) {
			continue
		}
		frame := eventsFrame(enc.encodeFor(room.ClassAudience(class)))
		for c := range members {
			if class == room.ClassPublic && personal[c.actor.Participant] {
				continue // gets a frame of its own below
			}
			c.enqueue(frame)
			n++
		}
	}
	for pid := range personal {
		for c := range ra.byPeer[pid] {
			if c.class == room.ClassPublic {
				c.enqueue(eventsFrame(enc.encodeFor(c.aud)))
				n++
			}
		}
	}
	if !held {
		ra.shown.Store(events[len(events)-1].Seq)
	}
	ra.h.m.deliveries.Add(float64(n))
	ra.h.m.fanoutSeconds.Observe(time.Since(start).Seconds())
}

// afterEvents closes connections that events disowned: removed attendees
// and connections made with rotated keys.
func (ra *roomActor) afterEvents(events []room.Event) {
	for _, e := range events {
		switch e.Type {
		case room.EvParticipantRemoved:
			for c := range ra.byPeer[e.Participant] {
				c.close(statusRemoved, "removed")
			}
		case room.EvKeysRotated:
			for c := range ra.clients {
				if c.keyGen >= 0 && c.keyGen < ra.state.Secrets.Generation {
					c.close(statusRemoved, "removed: keys were rotated")
				}
			}
		}
	}
}

// eventEncoder caches each event's encoding per variant key, so an event is
// marshalled once per distinct audience variant however many clients get it.
// Every event is cut against end, the room's state after the last of them
// (room.Redact): a range never tells more than a snapshot at its end.
type eventEncoder struct {
	events []room.Event
	end    *room.State
	cache  []map[string][]byte
}

// newEventEncoder encodes events, a contiguous range that ends at end.
func newEventEncoder(events []room.Event, end *room.State) *eventEncoder {
	return &eventEncoder{events: events, end: end, cache: make([]map[string][]byte, len(events))}
}

func (x *eventEncoder) encodeFor(aud room.Audience) [][]byte {
	out := make([][]byte, len(x.events))
	for i, e := range x.events {
		key := room.VariantKey(e, aud)
		if b, ok := x.cache[i][key]; ok {
			out[i] = b
			continue
		}
		b := mustJSON(room.Redact(e, aud, x.end))
		if x.cache[i] == nil {
			x.cache[i] = map[string][]byte{}
		}
		x.cache[i][key] = b
		out[i] = b
	}
	return out
}
