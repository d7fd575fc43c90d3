package hub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/leveling/workshop/room"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// BoltStore is the embedded Store: one bbolt file under the data directory.
// Each room is a bucket holding its metadata, its newest snapshot and its
// event log keyed by big-endian sequence. bbolt syncs every transaction to
// disk before Update returns, so Append returns only once events are
// durable. After a commit the events are delivered to the paired LocalBus.
//
// A closed room's join code stops resolving ClosedRoomTTL after the room
// closed, as on Redis; its data stays in the file, readable by its links
// (see BoltStoreConfig.ClosedRoomTTL).
type BoltStore struct {
	db  *bolt.DB
	bus *LocalBus
	cfg BoltStoreConfig
	// mu orders commit-then-deliver, so subscribers see a room's events in
	// sequence order. bbolt serializes writers anyway.
	mu     sync.Mutex
	closed sync.Once
}

var _ Store = (*BoltStore)(nil)

var (
	bucketRooms = []byte("rooms")
	bucketCodes = []byte("codes")
	keyMeta     = []byte("meta")
	keySnap     = []byte("snap")
	keySeq      = []byte("seq")
	bucketLog   = []byte("log")
)

type boltMeta struct {
	Epoch string `json:"epoch"`
	Code  string `json:"code"`
	// ClosedAt is when the room's closed event was appended (Unix ms, the
	// store's clock), renewed by any later append; 0 while open.
	ClosedAt int64 `json:"closedAt,omitempty"`
}

// BoltStoreConfig configures a BoltStore. The zero value of each field
// means the default in its comment.
type BoltStoreConfig struct {
	// Dir is the data directory; the database is Dir/workshop.db
	// (required).
	Dir string
	// Bus receives every committed event (nil: none does).
	Bus *LocalBus
	// ClosedRoomTTL is how long a closed room's join code keeps resolving
	// after its closed event (DefaultClosedRoomTTL, as on Redis). Unlike on
	// Redis the room itself is not deleted: its links keep working and the
	// data stays in the file until an operator removes it. The expired
	// code stays taken, so it can never lead to another room.
	ClosedRoomTTL time.Duration
	// Now is the clock for close times and their expiry (time.Now).
	Now func() time.Time
}

type boltSnap struct {
	Seq   uint64          `json:"seq"`
	State json.RawMessage `json:"state"`
}

// OpenBoltStore opens (or creates) the store in dir, with the defaults of
// BoltStoreConfig, and pairs it with bus, to which committed events are
// delivered.
func OpenBoltStore(dir string, bus *LocalBus) (*BoltStore, error) {
	return OpenBoltStoreWithConfig(BoltStoreConfig{Dir: dir, Bus: bus})
}

// OpenBoltStoreWithConfig opens (or creates) the store cfg describes.
func OpenBoltStoreWithConfig(cfg BoltStoreConfig) (*BoltStore, error) {
	if cfg.ClosedRoomTTL <= 0 {
		cfg.ClosedRoomTTL = DefaultClosedRoomTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bolt store: create data dir: %w", err)
	}
	path := filepath.Join(cfg.Dir, "workshop.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketRooms); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketCodes)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt store: init %s: %w", path, err)
	}
	return &BoltStore{db: db, bus: cfg.Bus, cfg: cfg}, nil
}

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

// Create stores a new room.
func (s *BoltStore) Create(_ context.Context, roomID, code string, events []room.Event) (string, error) {
	epoch := randomHex(8)
	err := s.db.Update(func(tx *bolt.Tx) error {
		rooms, codes := tx.Bucket(bucketRooms), tx.Bucket(bucketCodes)
		if rooms.Bucket([]byte(roomID)) != nil || codes.Get([]byte(code)) != nil {
			return ErrRoomExists
		}
		rb, err := rooms.CreateBucket([]byte(roomID))
		if err != nil {
			return err
		}
		if err := rb.Put(keyMeta, mustJSON(boltMeta{Epoch: epoch, Code: code})); err != nil {
			return err
		}
		if _, err := rb.CreateBucket(bucketLog); err != nil {
			return err
		}
		if err := putEvents(rb, 0, events); err != nil {
			return err
		}
		return codes.Put([]byte(code), []byte(roomID))
	})
	if err != nil {
		return "", fmt.Errorf("bolt store: create %s: %w", roomID, err)
	}
	return epoch, nil
}

func putEvents(rb *bolt.Bucket, expected uint64, events []room.Event) error {
	log := rb.Bucket(bucketLog)
	next := expected
	for _, e := range events {
		next++
		if e.Seq != next {
			return fmt.Errorf("event seq %d, want %d", e.Seq, next)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := log.Put(seqKey(e.Seq), b); err != nil {
			return err
		}
	}
	return rb.Put(keySeq, seqKey(next))
}

// Append commits events if the room's sequence is expectedSeq.
func (s *BoltStore) Append(_ context.Context, roomID string, expectedSeq uint64, events []room.Event, snap *room.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var epoch string
	now := s.cfg.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(roomID))
		if rb == nil {
			return ErrRoomNotFound
		}
		if cur := binary.BigEndian.Uint64(rb.Get(keySeq)); cur != expectedSeq {
			return ErrSeqConflict
		}
		if err := putEvents(rb, expectedSeq, events); err != nil {
			return err
		}
		var meta boltMeta
		if err := json.Unmarshal(rb.Get(keyMeta), &meta); err != nil {
			return err
		}
		epoch = meta.Epoch
		if meta.ClosedAt != 0 || closes(events) {
			meta.ClosedAt = now.UnixMilli()
			if err := rb.Put(keyMeta, mustJSON(meta)); err != nil {
				return err
			}
		}
		if snap != nil {
			b, err := json.Marshal(snap)
			if err != nil {
				return err
			}
			return rb.Put(keySnap, mustJSON(boltSnap{Seq: snap.Seq, State: b}))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt store: append %s at %d: %w", roomID, expectedSeq, err)
	}
	if s.bus != nil {
		s.bus.deliver(Message{Room: roomID, Epoch: epoch, Events: events})
	}
	return nil
}

// Load returns the room's current state and epoch.
func (s *BoltStore) Load(_ context.Context, roomID string) (*room.State, string, error) {
	var st *room.State
	var epoch string
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(roomID))
		if rb == nil {
			return ErrRoomNotFound
		}
		var meta boltMeta
		if err := json.Unmarshal(rb.Get(keyMeta), &meta); err != nil {
			return err
		}
		epoch = meta.Epoch
		st = &room.State{}
		if raw := rb.Get(keySnap); raw != nil {
			var snap boltSnap
			if err := json.Unmarshal(raw, &snap); err != nil {
				return err
			}
			if err := json.Unmarshal(snap.State, st); err != nil {
				return err
			}
		}
		events, err := readLog(rb, st.Seq)
		if err != nil {
			return err
		}
		return room.Apply(st, events)
	})
	if err != nil {
		return nil, "", fmt.Errorf("bolt store: load %s: %w", roomID, err)
	}
	return st, epoch, nil
}

func readLog(rb *bolt.Bucket, after uint64) ([]room.Event, error) {
	var out []room.Event
	c := rb.Bucket(bucketLog).Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		var e room.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Since returns the events after seq.
func (s *BoltStore) Since(_ context.Context, roomID string, seq uint64) ([]room.Event, error) {
	var out []room.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRooms).Bucket([]byte(roomID))
		if rb == nil {
			return ErrRoomNotFound
		}
		var err error
		out, err = readLog(rb, seq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bolt store: since %s %d: %w", roomID, seq, err)
	}
	return out, nil
}

// closes reports whether events close the room.
func closes(events []room.Event) bool {
	for _, e := range events {
		if e.Type == room.EvClosed {
			return true
		}
	}
	return false
}

// closedAt is when the room closed, or zero while it is open. A room
// closed before meta kept the time has it in its last event: nothing is
// appended after a close.
func closedAt(rb *bolt.Bucket) (time.Time, error) {
	var meta boltMeta
	if err := json.Unmarshal(rb.Get(keyMeta), &meta); err != nil {
		return time.Time{}, err
	}
	if meta.ClosedAt != 0 {
		return time.UnixMilli(meta.ClosedAt), nil
	}
	_, last := rb.Bucket(bucketLog).Cursor().Last()
	var e struct {
		Type string    `json:"type"`
		At   time.Time `json:"at"`
	}
	if last == nil {
		return time.Time{}, nil
	}
	if err := json.Unmarshal(last, &e); err != nil {
		return time.Time{}, err
	}
	if e.Type == room.EvClosed {
		return e.At, nil
	}
	return time.Time{}, nil
}

// Lookup resolves a join code: ErrRoomNotFound for an unknown code and,
// alike, for a room closed longer than ClosedRoomTTL ago.
func (s *BoltStore) Lookup(_ context.Context, code string) (string, error) {
	var id string
	now := s.cfg.Now()
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCodes).Get([]byte(code))
		if v == nil {
			return ErrRoomNotFound
		}
		rb := tx.Bucket(bucketRooms).Bucket(v)
		if rb == nil {
			return ErrRoomNotFound
		}
		closed, err := closedAt(rb)
		if err != nil {
			return err
		}
		if !closed.IsZero() && !now.Before(closed.Add(s.cfg.ClosedRoomTTL)) {
			return ErrRoomNotFound
		}
		id = string(v)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("bolt store: lookup: %w", err)
	}
	return id, nil
}

// Ping always succeeds while the file is open.
func (s *BoltStore) Ping(context.Context) error {
	if s.db == nil {
		return ErrUnavailable
	}
	return nil
}

// Close closes the database file.
func (s *BoltStore) Close() error {
	var err error
	s.closed.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		err = s.db.Close()
	})
	if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("bolt store: close: %w", err)
	}
	return nil
}
