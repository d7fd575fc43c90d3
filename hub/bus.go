package hub

import (
	"context"

	"github.com/leveling/workshop/room"
)

// Message is what travels on a Bus for one room. Exactly one of Events,
// Head or Presence is set.
type Message struct {
	Room  string `json:"room"`
	Epoch string `json:"epoch,omitempty"`
	// Events were committed to the store, in order, contiguous.
	Events []room.Event `json:"events,omitempty"`
	// Head is a heartbeat: the sender's newest known sequence of the room.
	// A receiver that is behind fills the gap from the store.
	Head uint64 `json:"head,omitempty"`
	// Presence is the sender instance's local presence in the room.
	Presence *room.Presence `json:"presence,omitempty"`
	// Instance names the sending instance (heartbeats and presence).
	Instance string `json:"instance,omitempty"`
}

// Subscriber receives a room's messages. Handle must not block: it is called
// on the bus's receive goroutine. Resync is called when messages may have
// been lost (a dropped message, a reconnect or resubscription of the
// underlying connection); the subscriber then refills from the Store.
type Subscriber interface {
	Handle(m Message)
	Resync()
}

// Bus links the instances that serve a room. The hub subscribes a room when
// its first local client arrives and unsubscribes when the last one leaves.
// Every method is safe for concurrent use.
type Bus interface {
	// Subscribe registers sub for the room's messages. It returns once the
	// subscription is active, so that a state loaded after it misses nothing
	// delivered after it. The returned function unsubscribes (idempotent).
	Subscribe(ctx context.Context, roomID string, sub Subscriber) (unsubscribe func(), err error)
	// Publish sends a heartbeat or presence message to every instance
	// subscribed to the room, this one included. Committed events are
	// published by the Store, never through here.
	Publish(ctx context.Context, m Message) error
	// Close stops the bus. It is idempotent.
	Close() error
}
