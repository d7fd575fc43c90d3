package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/room"
)

// StoreConfig configures a Store. The zero value of each field
// means the default in its comment.
type StoreConfig struct {
	// KeyPrefix goes before every key and channel name ("" by default).
	// Several deployments, or tests, can share one Redis with different
	// prefixes. A store's prefix must equal its bus's.
	KeyPrefix string
	// ClosedRoomTTL is how long a closed room's keys and join code are kept
	// after its closed event (30 days). Open rooms never expire.
	ClosedRoomTTL time.Duration
	// Now is the clock for the creation and close times kept in the room's
	// meta hash (time.Now).
	Now func() time.Time
	// Bus is this instance's bus (nil: none). The store publishes its
	// commits with the bus's origin, so that the bus skips them, undecoded,
	// when they come back: this instance's hub has fanned them out already.
	// Without it every bus decodes every commit, this instance's too.
	Bus *Bus
}

// Store is the Store on Redis: a room's log is a Stream, and each
// Append is one Lua script that checks the sequence, appends, keeps the
// snapshot and publishes the commit on the room's channel, so nothing is
// committed unpublished or published out of order. With the append-only
// file and appendfsync always, an acknowledged Append survives a Redis
// restart. It is safe for concurrent use; it does not own the client.
type Store struct {
	client  goredis.UniversalClient
	cfg     StoreConfig
	keys    layout
	cluster bool   // Cluster: SPUBLISH, and the code key is written apart
	opening string // how a published commit starts: with the bus's origin, or a bare "{"
	closed  atomic.Bool
}

var _ hub.Store = (*Store)(nil)

// NewStore returns a store on client. The client stays the caller's:
// Close does not close it, so a store and a bus may share one.
func NewStore(client goredis.UniversalClient, cfg StoreConfig) *Store {
	if cfg.ClosedRoomTTL <= 0 {
		cfg.ClosedRoomTTL = hub.DefaultClosedRoomTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	_, cluster := client.(*goredis.ClusterClient)
	opening := "{"
	if cfg.Bus != nil {
		opening = cfg.Bus.origin
	}
	return &Store{client: client, cfg: cfg, keys: layout{cfg.KeyPrefix}, cluster: cluster, opening: opening}
}

// errStoreClosed answers every call after Close.
var errStoreClosed = errors.New("redis store: closed")

// createScript stores a new room. KEYS: log, snap, seq, epoch, meta and,
// except on Cluster (where the code key lives in another slot and is set
// before the script), the code key. ARGV: room id, code, epoch, created
// (unix ms), then the events' JSON. Answers "ok", "room" (the id is taken)
// or "code" (the code is taken).
var createScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 'room' end
if KEYS[6] and not redis.call('SET', KEYS[6], ARGV[1], 'NX') then return 'code' end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
for i = 5, #ARGV do
  redis.call('XADD', KEYS[1], string.format('%d-0', i - 4), 'e', ARGV[i])
end
redis.call('SET', KEYS[3], #ARGV - 4)
redis.call('SET', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[5], 'code', ARGV[2], 'created', ARGV[4])
return 'ok'
`)

// dropCodeScript deletes a code key if it still names the room (KEYS: code;
// ARGV: room id): Create's undo on Cluster.
var dropCodeScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// appendScript commits events. KEYS: log, snap, seq, epoch, meta. ARGV:
//
//	1 expected sequence      6 snapshot JSON, "" for none
//	2 room id as JSON        7 the snapshot's sequence
//	3 closed-room TTL (ms)   8 "1" when an event closes the room
//	4 PUBLISH or SPUBLISH    9 code key prefix; "" on Cluster (the caller expires it)
//	5 the room's channel    10 now (unix ms)
//	                        11 the published JSON's opening: {"origin":"<id>", or {
//	                        12.. the events' JSON
//
// It answers {"ok", head, code} (code only when the room is closed),
// {"conflict", head}, or {"notfound"}, and writes nothing unless "ok". The
// published Message is built here so it carries the stored epoch.
var appendScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if not cur then return {'notfound'} end
if cur ~= ARGV[1] then return {'conflict', cur} end
local seq = tonumber(cur)
local evs = {}
for i = 12, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[1], string.format('%d-0', seq), 'e', ARGV[i])
  evs[#evs + 1] = ARGV[i]
end
local head = string.format('%d', seq)
redis.call('SET', KEYS[3], head)
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[2], ARGV[6])
  redis.call('HSET', KEYS[5], 'snapseq', ARGV[7])
end
local epoch = redis.call('GET', KEYS[4]) or ''
redis.call(ARGV[4], ARGV[5], ARGV[11] .. '"room":' .. ARGV[2] .. ',"epoch":"' .. epoch .. '","events":[' .. table.concat(evs, ',') .. ']}')
if ARGV[8] == '1' then redis.call('HSET', KEYS[5], 'closed', ARGV[10]) end
if redis.call('HEXISTS', KEYS[5], 'closed') == 1 then
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
  local code = redis.call('HGET', KEYS[5], 'code') or ''
  if ARGV[9] ~= '' and code ~= '' then redis.call('PEXPIRE', ARGV[9] .. code, ARGV[3]) end
  return {'ok', head, code}
end
return {'ok', head}
`)

// loadScript reads a room at one instant. KEYS: log, snap, seq, epoch, meta.
// It answers nil for no room, else {head, epoch, snapshot JSON or "", the
// events after the snapshot (all of them without one)...}.
var loadScript = goredis.NewScript(`
local head = redis.call('GET', KEYS[3])
if not head then return false end
local epoch = redis.call('GET', KEYS[4]) or ''
local snapseq = tonumber(redis.call('HGET', KEYS[5], 'snapseq') or '0')
local snap, from = '', '-'
if snapseq > 0 then
  snap = redis.call('GET', KEYS[2]) or ''
  if snap ~= '' then from = string.format('%d-0', snapseq + 1) end
end
local out = {head, epoch, snap}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], from, '+')) do out[#out + 1] = e[2][2] end
return out
`)

// sinceScript reads the events from a sequence on. KEYS: log, seq. ARGV:
// the first entry id wanted. It answers nil for no room, else {head,
// events...}.
var sinceScript = goredis.NewScript(`
local head = redis.call('GET', KEYS[2])
if not head then return false end
local out = {head}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do out[#out + 1] = e[2][2] end
return out
`)

// Create stores a room's first events under its id and code and answers a
// fresh random epoch. A taken id or code is ErrRoomExists.
func (s *Store) Create(ctx context.Context, roomID, code string, events []room.Event) (string, error) {
	if err := s.check(roomID); err != nil {
		return "", fmt.Errorf("redis store: create %s: %w", roomID, err)
	}
	if code == "" {
		return "", fmt.Errorf("redis store: create %s: empty code", roomID)
	}
	if err := checkSeqs(0, events); err != nil {
		return "", fmt.Errorf("redis store: create %s: %w", roomID, err)
	}
	if events[0].Type != room.EvRoomCreated {
		return "", fmt.Errorf("redis store: create %s: first event is %q, want %q", roomID, events[0].Type, room.EvRoomCreated)
	}
	epoch := randomHex(8)
	args := make([]any, 0, 4+len(events))
	args = append(args, roomID, code, epoch, s.cfg.Now().UnixMilli())
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return "", fmt.Errorf("redis store: create %s: encode event %d: %w", roomID, e.Seq, err)
		}
		args = append(args, b)
	}
	keys := s.keys.room(roomID)
	codeKey := s.keys.code(code)
	if s.cluster {
		// The code key hashes to another slot: claim it first, undo it if
		// the room part fails.
		ok, err := s.client.SetNX(ctx, codeKey, roomID, 0).Result()
		if err != nil {
			return "", storeErr("create", roomID, err)
		}
		if !ok {
			return "", fmt.Errorf("redis store: create %s: code %s: %w", roomID, code, hub.ErrRoomExists)
		}
	} else {
		keys = append(keys, codeKey)
	}
	res, err := createScript.Run(ctx, s.client, keys, args...).Text()
	if err == nil && res != "ok" {
		err = fmt.Errorf("%s taken: %w", res, hub.ErrRoomExists)
	}
	if err != nil {
		if s.cluster {
			// Best effort: a code left behind resolves to no room (Lookup
			// checks the room exists).
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
			_ = dropCodeScript.Run(ctx, s.client, []string{codeKey}, roomID).Err()
			cancel()
		}
		if errors.Is(err, hub.ErrRoomExists) {
			return "", fmt.Errorf("redis store: create %s: %w", roomID, err)
		}
		return "", storeErr("create", roomID, err)
	}
	return epoch, nil
}

// Append commits events after expectedSeq, stores snap when given and
// publishes the commit on the room's channel, all in one script. A head
// other than expectedSeq is ErrSeqConflict, with nothing written. An error
// wrapping ErrUnavailable leaves the outcome unknown (the reply may be what
// was lost): reload before retrying; the compare-and-set makes a retry of
// a commit that did happen a conflict, never a duplicate.
func (s *Store) Append(ctx context.Context, roomID string, expectedSeq uint64, events []room.Event, snap *room.State) error {
	if err := s.check(roomID); err != nil {
		return fmt.Errorf("redis store: append %s: %w", roomID, err)
	}
	if err := checkSeqs(expectedSeq, events); err != nil {
		return fmt.Errorf("redis store: append %s: %w", roomID, err)
	}
	head := expectedSeq + uint64(len(events))
	var snapJSON []byte
	if snap != nil {
		if snap.Seq != head {
			return fmt.Errorf("redis store: append %s: snapshot at %d, events end at %d", roomID, snap.Seq, head)
		}
		var err error
		if snapJSON, err = json.Marshal(snap); err != nil {
			return fmt.Errorf("redis store: append %s: encode snapshot: %w", roomID, err)
		}
	}
	idJSON, _ := json.Marshal(roomID) // a string always encodes
	publish, codePrefix := "PUBLISH", s.keys.codePrefix()
	if s.cluster {
		publish, codePrefix = "SPUBLISH", ""
	}
	closing := "0"
	args := make([]any, 0, 11+len(events))
	for _, e := range events {
		if e.Type == room.EvClosed {
			closing = "1"
		}
	}
	args = append(args,
		strconv.FormatUint(expectedSeq, 10), idJSON, s.cfg.ClosedRoomTTL.Milliseconds(),
		publish, s.keys.channel(roomID), snapJSON, strconv.FormatUint(head, 10),
		closing, codePrefix, s.cfg.Now().UnixMilli(), s.opening)
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("redis store: append %s: encode event %d: %w", roomID, e.Seq, err)
		}
		args = append(args, b)
	}
	res, err := appendScript.Run(ctx, s.client, s.keys.room(roomID), args...).StringSlice()
	if err != nil {
		return storeErr("append", roomID, err)
	}
	switch res[0] {
	case "ok":
	case "conflict":
		return fmt.Errorf("redis store: append %s at %d: head is %s: %w", roomID, expectedSeq, res[1], hub.ErrSeqConflict)
	case "notfound":
		return fmt.Errorf("redis store: append %s: %w", roomID, hub.ErrRoomNotFound)
	default:
		return fmt.Errorf("redis store: append %s: unexpected answer %q", roomID, res)
	}
	if s.cluster && len(res) > 2 && res[2] != "" {
		// The code key lives in another slot; the script could not reach
		// it. If this fails the code outlives the room, and Lookup still
		// answers not found once the room's keys are gone.
		if err := s.client.PExpire(ctx, s.keys.code(res[2]), s.cfg.ClosedRoomTTL).Err(); err != nil {
			return storeErr("append: expire code", roomID, err)
		}
	}
	return nil
}

// Load returns the room's state from its newest snapshot and the events
// after it (or a replay of the whole log without a snapshot), read at one
// instant, and its epoch.
func (s *Store) Load(ctx context.Context, roomID string) (*room.State, string, error) {
	if err := s.check(roomID); err != nil {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, err)
	}
	res, err := loadScript.Run(ctx, s.client, s.keys.room(roomID)).StringSlice()
	if errors.Is(err, goredis.Nil) {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, hub.ErrRoomNotFound)
	}
	if err != nil {
		return nil, "", storeErr("load", roomID, err)
	}
	if len(res) < 3 {
		return nil, "", fmt.Errorf("redis store: load %s: unexpected answer of %d values", roomID, len(res))
	}
	head, err := strconv.ParseUint(res[0], 10, 64)
	if err != nil {
		return nil, "", fmt.Errorf("redis store: load %s: head %q: %w", roomID, res[0], err)
	}
	st := &room.State{}
	if res[2] != "" {
		if err := json.Unmarshal([]byte(res[2]), st); err != nil {
			return nil, "", fmt.Errorf("redis store: load %s: decode snapshot: %w", roomID, err)
		}
	}
	events, err := decodeEvents(res[3:])
	if err != nil {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, err)
	}
	if err := room.Apply(st, events); err != nil {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, err)
	}
	if st.Seq != head {
		return nil, "", fmt.Errorf("redis store: load %s: state at %d, head is %d", roomID, st.Seq, head)
	}
	return st, res[1], nil
}

// Since returns the events after seq up to the head, in order: none when
// seq is the head or past it. ErrTruncated when the log no longer starts at
// seq+1.
func (s *Store) Since(ctx context.Context, roomID string, seq uint64) ([]room.Event, error) {
	if err := s.check(roomID); err != nil {
		return nil, fmt.Errorf("redis store: since %s: %w", roomID, err)
	}
	keys := s.keys.room(roomID)
	res, err := sinceScript.Run(ctx, s.client, []string{keys[0], keys[2]}, fmt.Sprintf("%d-0", seq+1)).StringSlice()
	if errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis store: since %s: %w", roomID, hub.ErrRoomNotFound)
	}
	if err != nil {
		return nil, storeErr("since", roomID, err)
	}
	head, err := strconv.ParseUint(res[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redis store: since %s: head %q: %w", roomID, res[0], err)
	}
	if seq >= head {
		return nil, nil
	}
	events, err := decodeEvents(res[1:])
	if err != nil {
		return nil, fmt.Errorf("redis store: since %s: %w", roomID, err)
	}
	if len(events) == 0 || events[0].Seq != seq+1 {
		return nil, fmt.Errorf("redis store: since %s at %d: %w", roomID, seq, hub.ErrTruncated)
	}
	if err := checkSeqs(seq, events); err != nil || events[len(events)-1].Seq != head {
		return nil, fmt.Errorf("redis store: since %s at %d: log does not reach head %d: %w", roomID, seq, head, hub.ErrTruncated)
	}
	return events, nil
}

// Lookup resolves a join code. A code that was never issued and one whose
// room has expired both answer ErrRoomNotFound.
func (s *Store) Lookup(ctx context.Context, code string) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("redis store: lookup: %w", errStoreClosed)
	}
	if code == "" {
		return "", fmt.Errorf("redis store: lookup: %w", hub.ErrRoomNotFound)
	}
	id, err := s.client.Get(ctx, s.keys.code(code)).Result()
	if errors.Is(err, goredis.Nil) {
		return "", fmt.Errorf("redis store: lookup %s: %w", code, hub.ErrRoomNotFound)
	}
	if err != nil {
		return "", storeErr("lookup", code, err)
	}
	n, err := s.client.Exists(ctx, s.keys.seq(id)).Result()
	if err != nil {
		return "", storeErr("lookup", code, err)
	}
	if n == 0 {
		return "", fmt.Errorf("redis store: lookup %s: %w", code, hub.ErrRoomNotFound)
	}
	return id, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("redis store: ping: %w", errStoreClosed)
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeErr("ping", "", err)
	}
	return nil
}

// Close makes every later call fail. It does not close the client, which
// the caller owns. It is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) check(roomID string) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	if roomID == "" {
		return errors.New("empty room id")
	}
	return nil
}

// checkSeqs checks that events are not empty and number after without a
// hole.
func checkSeqs(after uint64, events []room.Event) error {
	if len(events) == 0 {
		return errors.New("no events")
	}
	for i, e := range events {
		if want := after + uint64(i) + 1; e.Seq != want {
			return fmt.Errorf("event %d has sequence %d, want %d", i, e.Seq, want)
		}
	}
	return nil
}

func decodeEvents(raw []string) ([]room.Event, error) {
	events := make([]room.Event, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &events[i]); err != nil {
			return nil, fmt.Errorf("decode event %d of %d: %w", i+1, len(raw), err)
		}
	}
	return events, nil
}

// storeErr wraps a failed Redis call: ErrUnavailable when Redis could
// not be reached or cannot serve now, so the hub answers "unavailable".
func storeErr(op, id string, err error) error {
	if id != "" {
		op += " " + id
	}
	if unavailable(err) {
		return fmt.Errorf("redis store: %s: %w: %w", op, hub.ErrUnavailable, err)
	}
	return fmt.Errorf("redis store: %s: %w", op, err)
}

// unavailable tells a failure to reach Redis, or a Redis that cannot
// serve right now, from a reply that is an answer (a script error). A
// caller's own cancellation is not unavailability; its deadline is, since
// the hub bounds store calls with deadlines sized for a healthy Redis.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "NOREPLICAS", "MISCONF", "MAXCLIENTS"} {
			if goredis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return goredis.IsOOMError(err)
	}
	// Dial and I/O errors, io.EOF, timeouts, a closed client, pool
	// exhaustion.
	return true
}
