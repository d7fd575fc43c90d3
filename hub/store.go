package hub

import (
	"context"
	"errors"
	"time"

	"github.com/leveling/workshop/room"
)

// Errors a Store answers. Callers test them with errors.Is.
var (
	// ErrSeqConflict: Append's expectedSeq is not the room's sequence; the
	// caller reloads (Since) and retries.
	ErrSeqConflict = errors.New("store: sequence conflict")
	// ErrRoomNotFound: no room with that id or code.
	ErrRoomNotFound = errors.New("store: room not found")
	// ErrRoomExists: Create was given an id or code that is taken.
	ErrRoomExists = errors.New("store: room exists")
	// ErrTruncated: Since cannot answer from that sequence (the log no
	// longer holds it); the caller loads a snapshot instead.
	ErrTruncated = errors.New("store: log truncated")
	// ErrUnavailable wraps a failure to reach the store (Redis down).
	ErrUnavailable = errors.New("store: unavailable")
)

// DefaultClosedRoomTTL is how long a store keeps a closed room's join code
// resolving after its closed event, unless configured otherwise. Both
// stores honour it (WORKSHOP_CLOSED_ROOM_TTL).
const DefaultClosedRoomTTL = 30 * 24 * time.Hour

// Store is a room's durable, ordered event log with snapshots. Every method
// is safe for concurrent use.
//
// Contract shared by every implementation:
//   - Append is compare-and-set: it commits events only if the room's
//     sequence equals expectedSeq, and the events' Seq continue it without a
//     hole. It returns only once the events are durable.
//   - Whatever Append commits is delivered, in order, to the subscribers of
//     the room on the Bus paired with the store (every other instance's),
//     as a Message with Events set. The appending instance's own bus may
//     skip it (the Redis bus does, by origin, without decoding it): its hub
//     fans its own commits out itself. Nothing is delivered that was not
//     committed. Delivery itself may be lost (Redis pub/sub is at most
//     once); Since is the truth.
type Store interface {
	// Create stores a new room's first events (room_created) under its id
	// and short code. It returns the room's epoch.
	Create(ctx context.Context, roomID, code string, events []room.Event) (epoch string, err error)
	// Append commits events after expectedSeq; see the contract above.
	// snap, when not nil, is the room's state after the events: the store
	// keeps it as the room's snapshot so Load need not replay the whole
	// log. The hub passes one every SnapshotEvery events or so.
	Append(ctx context.Context, roomID string, expectedSeq uint64, events []room.Event, snap *room.State) error
	// Load returns the room's current state (from the newest snapshot plus
	// the events after it) and its epoch.
	Load(ctx context.Context, roomID string) (st *room.State, epoch string, err error)
	// Since returns the events after seq, up to the newest, in order.
	Since(ctx context.Context, roomID string, seq uint64) ([]room.Event, error)
	// Lookup resolves a short join code to a room id.
	Lookup(ctx context.Context, code string) (roomID string, err error)
	// Ping checks that the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store. It is idempotent.
	Close() error
}
