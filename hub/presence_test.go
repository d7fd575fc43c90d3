package hub_test

import (
	"testing"
	"time"

	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestPresenceCountsAttendeeOnce: an attendee connected to two instances
// (a phone and a laptop behind a load balancer) is one attendee in the
// room's presence, and one name for the facilitator.
func TestPresenceCountsAttendeeOnce(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{})
	rm := createRoom(t, nodes[0].URL, map[string]any{"title": "Presence", "teams": []string{"A"}})
	fac := dial(t, ctx, nodes[0].wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	phone := dial(t, ctx, nodes[0].wsURL(rm.ID), map[string]any{"name": "Ana"})
	w := phone.Welcome()
	laptop := dial(t, ctx, nodes[1].wsURL(rm.ID), map[string]any{"participant": w.Participant, "token": w.Token})
	other := dial(t, ctx, nodes[1].wsURL(rm.ID), map[string]any{"name": "Bo"})
	want := func(p room.Presence) bool { return p.Attendees == 2 && len(p.Names) == 2 }
	if err := fac.WaitPresence(ctx, want); err != nil {
		t.Fatalf("%v: facilitator sees %+v, want Ana once and Bo", err, fac.Presence())
	}
	for i, c := range []*hubtest.Client{phone, laptop, other} {
		if err := c.WaitPresence(ctx, func(p room.Presence) bool { return p.Attendees == 2 }); err != nil {
			t.Fatalf("client %d: %v: presence %+v, want 2 attendees", i, err, c.Presence())
		}
	}
	// Ana leaves from both: Bo alone.
	phone.Close()
	laptop.Close()
	if err := fac.WaitPresence(ctx, func(p room.Presence) bool { return p.Attendees == 1 && len(p.Names) == 1 }); err != nil {
		t.Fatalf("%v: after Ana left the facilitator sees %+v", err, fac.Presence())
	}
}
