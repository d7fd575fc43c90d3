package room

import (
	"cmp"
	"slices"
)

// Presence is who is connected to a room right now. It is not part of the
// event log: connections come and go far too often, so the hub counts them
// and sends a Presence at most a few times a second.
type Presence struct {
	Facilitator bool           `json:"facilitator"`
	Teams       map[string]int `json:"teams"`     // team id -> connected team-lead connections
	Attendees   int            `json:"attendees"` // distinct attendee participants
	Presenters  int            `json:"presenters"`
	// Names are the attendees' display names, for the facilitator only.
	Names []PresentName `json:"names,omitempty"`
}

// PresentName is one connected attendee as the facilitator sees it.
type PresentName struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
}

// For cuts p down to what aud may see: only the facilitator sees names.
func (p Presence) For(aud Audience) Presence {
	if aud.Role != RoleFacilitator {
		p.Names = nil
	}
	return p
}

// Merge adds q's counts to p (presence from several instances).
func (p Presence) Merge(q Presence) Presence {
	out := Presence{
		Facilitator: p.Facilitator || q.Facilitator,
		Teams:       map[string]int{},
		Attendees:   p.Attendees + q.Attendees,
		Presenters:  p.Presenters + q.Presenters,
	}
	for k, v := range p.Teams {
		out.Teams[k] += v
	}
	for k, v := range q.Teams {
		out.Teams[k] += v
	}
	out.Names = append(append(out.Names, p.Names...), q.Names...)
	// Sorted by name, then id: the same instances give the same bytes in
	// any order, even when display names repeat.
	slices.SortFunc(out.Names, func(a, b PresentName) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Participant, b.Participant))
	})
	return out
}
