package hub

// Presence: who is in a room, counted locally by join and leave, merged with
// what the other instances announce on the bus, and sent to clients when it
// changes.

import (
	"maps"
	"slices"
	"time"

	"github.com/leveling/workshop/room"
)

type remotePresence struct {
	p   room.Presence
	ids map[string]bool // its attendees' participant ids
	at  time.Time
}

func newRemotePresence(p room.Presence, attendees []string, at time.Time) remotePresence {
	ids := make(map[string]bool, len(attendees))
	for _, id := range attendees {
		ids[id] = true
	}
	return remotePresence{p: p, ids: ids, at: at}
}

// localAttendees lists this instance's attendees' participant ids.
func (ra *roomActor) localAttendees() []string {
	out := make([]string, 0, ra.counts.attendees)
	for pid := range ra.byPeer {
		if ra.isLocalAttendee(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// sharedAttendees counts the attendees connected here or to another
// instance more than once: the merged count takes them off. Computed once
// per presence tick (a walk over every remote id), not per snapshot.
func (ra *roomActor) sharedAttendees(now time.Time) int {
	seen := map[string]bool{}
	shared := 0
	for _, rp := range ra.remote {
		if now.Sub(rp.at) > presenceExpiry {
			continue
		}
		for id := range rp.ids {
			if seen[id] || ra.isLocalAttendee(id) {
				shared++
			}
			seen[id] = true
		}
	}
	return shared
}

// isLocalAttendee reports whether attendee pid is connected here (all of a
// participant's connections share its role).
func (ra *roomActor) isLocalAttendee(pid string) bool {
	for c := range ra.byPeer[pid] {
		return c.actor.Role == room.RoleAttendee
	}
	return false
}

// attendeeConnected reports whether attendee pid is connected to the room:
// here, or in the presence names another instance announced (the names
// the facilitator's console lists, and removes from).
func (ra *roomActor) attendeeConnected(pid string, now time.Time) bool {
	if ra.isLocalAttendee(pid) {
		return true
	}
	for _, rp := range ra.remote {
		if now.Sub(rp.at) <= presenceExpiry && slices.ContainsFunc(rp.p.Names, func(n room.PresentName) bool { return n.Participant == pid }) {
			return true
		}
	}
	return false
}

// presenceCounts count local connections the way room.Presence does.
type presenceCounts struct {
	facilitators int            // connections
	teams        map[string]int // team id -> team-lead connections
	presenters   int            // connections
	attendees    int            // distinct participants
}

// count adds (d = 1) or removes (d = -1) one connection of a; edge says
// it is its participant's first connection (or was the last).
func (pc *presenceCounts) count(a room.Actor, d int, edge bool) {
	switch a.Role {
	case room.RoleFacilitator:
		pc.facilitators += d
	case room.RoleTeam:
		if pc.teams == nil {
			pc.teams = map[string]int{}
		}
		if pc.teams[a.Team] += d; pc.teams[a.Team] <= 0 {
			delete(pc.teams, a.Team)
		}
	case room.RolePresenter:
		pc.presenters += d
	case room.RoleAttendee:
		if edge {
			pc.attendees += d
		}
	}
}

// localPresence is this instance's presence. Names (the attendees'
// display names, for the facilitator) take a walk over the clients, so
// only the facilitator's presence and the bus announcement ask for them.
func (ra *roomActor) localPresence(names bool) room.Presence {
	pc := &ra.counts
	p := room.Presence{Facilitator: pc.facilitators > 0, Teams: maps.Clone(pc.teams), Attendees: pc.attendees, Presenters: pc.presenters}
	if p.Teams == nil {
		p.Teams = map[string]int{}
	}
	for pid, cs := range ra.byPeer {
		if !names || len(p.Names) >= maxPresenceNames {
			break
		}
		for c := range cs {
			if c.actor.Role == room.RoleAttendee {
				p.Names = append(p.Names, room.PresentName{Participant: pid, Name: c.actor.Name})
			}
			break
		}
	}
	return p
}

func (ra *roomActor) mergedPresence(now time.Time, names bool) room.Presence {
	p := ra.localPresence(names)
	for inst, rp := range ra.remote {
		if now.Sub(rp.at) > presenceExpiry {
			delete(ra.remote, inst)
			continue
		}
		q := rp.p
		if !names {
			// Only the facilitator gets names: merging them sorted
			// 2,000 names per attendee's snapshot, a third of the
			// server's CPU in a join storm over two instances.
			q.Names = nil
		}
		p = p.Merge(q)
	}
	p.Attendees = max(p.Attendees-ra.shared, 0)
	// The same attendee on two instances is one name.
	p.Names = slices.CompactFunc(p.Names, func(a, b room.PresentName) bool { return a.Participant == b.Participant })
	if len(p.Names) > maxPresenceNames {
		p.Names = p.Names[:maxPresenceNames]
	}
	return p
}

func (ra *roomActor) presenceJSON(class string) []byte {
	p := ra.mergedPresence(time.Now(), class == room.ClassFacilitator)
	return mustJSON(p.For(room.ClassAudience(class)))
}

// tickPresence publishes this instance's presence when it changed (or
// every few seconds, so others can expire a dead instance), and sends
// clients the merged presence when it changed, at most once per tick.
func (ra *roomActor) tickPresence(now time.Time) {
	if ra.localDirty || now.Sub(ra.presenceAt) >= presenceRepublish {
		lp := ra.localPresence(true)
		ra.h.publishAsync(Message{Room: ra.id, Presence: &lp, Attendees: ra.localAttendees(), Instance: ra.h.cfg.Instance})
		ra.presenceAt, ra.localDirty = now, false
	}
	ra.shared = ra.sharedAttendees(now)
	_, facilitators := ra.byClass[room.ClassFacilitator]
	merged := ra.mergedPresence(now, facilitators)
	// Only the facilitator's presence differs (names): two encodings per
	// tick however many team classes there are.
	var public, withNames []byte
	for class, members := range ra.byClass {
		var frame []byte
		if class == room.ClassFacilitator {
			if withNames == nil {
				withNames = mustJSON(presenceMsg{Type: msgPresence, Presence: merged.For(room.ClassAudience(class))})
			}
			frame = withNames
		} else {
			if public == nil {
				public = mustJSON(presenceMsg{Type: msgPresence, Presence: merged.For(room.ClassAudience(room.ClassPublic))})
			}
			frame = public
		}
		if string(frame) == string(ra.sentPresence[class]) {
			continue
		}
		ra.sentPresence[class] = frame
		for c := range members {
			c.enqueue(frame)
		}
	}
	for class := range ra.sentPresence {
		if _, ok := ra.byClass[class]; !ok {
			delete(ra.sentPresence, class)
		}
	}
}
