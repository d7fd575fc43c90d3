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
	// Attendees, with Presence, are the participant ids of the sender's
	// local attendees, all of them: an attendee connected to two
	// instances is counted once (room.Presence's names stop at 1,000).
	Attendees []string `json:"attendees,omitempty"`
	// Instance names the sending instance (heartbeats and presence).
	Instance string `json:"instance,omitempty"`
}

// A Delivery is one message a Bus hands to a Subscriber. A bus that carries
// bytes (Redis) hands it over undecoded, so that decoding runs on the
// subscriber's goroutine (its room actor's) and never on the bus's one
// receive goroutine for every room; the in-process bus hands over the
// Message itself.
type Delivery interface {
	// Decode returns the message. It is safe on any goroutine and decodes
	// once however often it is called. An error means the message is
	// unreadable: the subscriber takes it for lost and refills from the
	// Store, as after Resync.
	Decode() (Message, error)
}

// Decode returns m: a Message is a Delivery decoded already.
func (m Message) Decode() (Message, error) { return m, nil }

// Subscriber receives a room's messages. Handle must not block, and should
// not decode: it is called on the bus's receive goroutine, so it queues d
// for its own goroutine. Resync is called when messages may have been lost
// (a dropped message, a reconnect or resubscription of the underlying
// connection); the subscriber then refills from the Store.
type Subscriber interface {
	Handle(d Delivery)
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
	// subscribed to the room. Whether it comes back to this instance is
	// the bus's choice (the in-process bus delivers it, the Redis bus skips
	// its own by origin): the hub needs neither its own heartbeats nor its
	// own presence. Committed events are published by the Store, never
	// through here.
	Publish(ctx context.Context, m Message) error
	// Close stops the bus. It is idempotent.
	Close() error
}
