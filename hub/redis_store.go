package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/room"
)

// Redis key layout. Every key of a room carries the room id as its hash tag,
// so a room's keys and its channel live in one Cluster slot and one Lua
// script can touch them all. <p> is the KeyPrefix.
//
//	<p>room:{<id>}:seq    string  the room's head: the newest committed sequence.
//	                              The room exists while this key does.
//	<p>room:{<id>}:log    stream  the room's events, entry id "<seq>-0",
//	                              one field "e" holding the event's JSON.
//	<p>room:{<id>}:snap   string  JSON room.State at sequence meta.snapseq
//	                              (absent until the hub first passes one).
//	<p>room:{<id>}:epoch  string  the room's epoch: random hex set by Create.
//	<p>room:{<id>}:meta   hash    code (the join code), created (unix ms),
//	                              snapseq (sequence of :snap), closed (unix ms,
//	                              set when a closed event is appended).
//	<p>room:{<id>}:ch     channel (pub/sub, not a key) every commit as a JSON
//	                              Message with Events, plus heartbeats and
//	                              presence. PUBLISH, or SPUBLISH on Cluster.
//	<p>code:<code>        string  the room id of a join code (SET NX by Create).
//	<p>probe:<instance>   channel (pub/sub) a RedisBus's probe of its own
//	                              subscription; on Cluster one per room
//	                              connection: <p>probe:<instance>:{<id>}.
//
// Nothing expires while a room is open. Appending a closed event sets a TTL
// (RedisStoreConfig.ClosedRoomTTL) on every key of the room and on its code
// key; later appends to a closed room renew it.
// Defaults of RedisStoreConfig and NewRedisClient.
const (
	defaultClosedRoomTTL = 30 * 24 * time.Hour
	redisDialTimeout     = 2 * time.Second // one connection attempt
	redisIOTimeout       = 2 * time.Second // one command's read or write
	redisPoolTimeout     = 3 * time.Second // wait for a free pooled connection; > redisIOTimeout
	redisMaxRetries      = 1               // go-redis retries of a failed command
	redisDialAttempts    = 2               // dial attempts per connection (go-redis: 5)
	redisDialRetryWait   = 100 * time.Millisecond
)

// redisKeys names a deployment's keys and channels; see the layout above.
// The store and the bus of one deployment must use the same prefix.
type redisKeys struct{ prefix string }

// room returns the keys of a room in the order the scripts expect them:
// log, snap, seq, epoch, meta.
func (k redisKeys) room(id string) []string {
	base := k.prefix + "room:{" + id + "}:"
	return []string{base + "log", base + "snap", base + "seq", base + "epoch", base + "meta"}
}

func (k redisKeys) seq(id string) string         { return k.prefix + "room:{" + id + "}:seq" }
func (k redisKeys) channel(id string) string     { return k.prefix + "room:{" + id + "}:ch" }
func (k redisKeys) code(code string) string      { return k.prefix + "code:" + code }
func (k redisKeys) codePrefix() string           { return k.prefix + "code:" }
func (k redisKeys) probe(instance string) string { return k.prefix + "probe:" + instance }

// roomOfChannel is the room id of a room channel, or "" for another name.
func (k redisKeys) roomOfChannel(ch string) string {
	rest, ok := strings.CutPrefix(ch, k.prefix+"room:{")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "}:ch")
	if !ok {
		return ""
	}
	return id
}

// RedisStoreConfig configures a RedisStore. The zero value of each field
// means the default in its comment.
type RedisStoreConfig struct {
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
}

// RedisStore is the Store on Redis: a room's log is a Stream, and each
// Append is one Lua script that checks the sequence, appends, keeps the
// snapshot and publishes the commit on the room's channel, so nothing is
// committed unpublished or published out of order. With the append-only
// file and appendfsync always, an acknowledged Append survives a Redis
// restart. It is safe for concurrent use; it does not own the client.
type RedisStore struct {
	client  redis.UniversalClient
	cfg     RedisStoreConfig
	keys    redisKeys
	cluster bool // Cluster: SPUBLISH, and the code key is written apart
	closed  atomic.Bool
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on client. The client stays the caller's:
// Close does not close it, so a store and a bus may share one.
func NewRedisStore(client redis.UniversalClient, cfg RedisStoreConfig) *RedisStore {
	if cfg.ClosedRoomTTL <= 0 {
		cfg.ClosedRoomTTL = defaultClosedRoomTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	_, cluster := client.(*redis.ClusterClient)
	return &RedisStore{client: client, cfg: cfg, keys: redisKeys{cfg.KeyPrefix}, cluster: cluster}
}

// errRedisStoreClosed answers every call after Close.
var errRedisStoreClosed = errors.New("redis store: closed")

// createScript stores a new room. KEYS: log, snap, seq, epoch, meta and,
// except on Cluster (where the code key lives in another slot and is set
// before the script), the code key. ARGV: room id, code, epoch, created
// (unix ms), then the events' JSON. Answers "ok", "room" (the id is taken)
// or "code" (the code is taken).
var createScript = redis.NewScript(`
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
var dropCodeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// appendScript commits events. KEYS: log, snap, seq, epoch, meta. ARGV:
//
//	1 expected sequence      6 snapshot JSON, "" for none
//	2 room id as JSON        7 the snapshot's sequence
//	3 closed-room TTL (ms)   8 "1" when an event closes the room
//	4 PUBLISH or SPUBLISH    9 code key prefix; "" on Cluster (the caller expires it)
//	5 the room's channel    10 now (unix ms); 11.. the events' JSON
//
// It answers {"ok", head, code} (code only when the room is closed),
// {"conflict", head}, or {"notfound"}, and writes nothing unless "ok". The
// published Message is built here so it carries the stored epoch.
var appendScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if not cur then return {'notfound'} end
if cur ~= ARGV[1] then return {'conflict', cur} end
local seq = tonumber(cur)
local evs = {}
for i = 11, #ARGV do
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
redis.call(ARGV[4], ARGV[5], '{"room":' .. ARGV[2] .. ',"epoch":"' .. epoch .. '","events":[' .. table.concat(evs, ',') .. ']}')
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
var loadScript = redis.NewScript(`
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
var sinceScript = redis.NewScript(`
local head = redis.call('GET', KEYS[2])
if not head then return false end
local out = {head}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do out[#out + 1] = e[2][2] end
return out
`)

// Create stores a room's first events under its id and code and answers a
// fresh random epoch. A taken id or code is ErrRoomExists.
func (s *RedisStore) Create(ctx context.Context, roomID, code string, events []room.Event) (string, error) {
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
			return "", redisStoreErr("create", roomID, err)
		}
		if !ok {
			return "", fmt.Errorf("redis store: create %s: code %s: %w", roomID, code, ErrRoomExists)
		}
	} else {
		keys = append(keys, codeKey)
	}
	res, err := createScript.Run(ctx, s.client, keys, args...).Text()
	if err == nil && res != "ok" {
		err = fmt.Errorf("%s taken: %w", res, ErrRoomExists)
	}
	if err != nil {
		if s.cluster {
			// Best effort: a code left behind resolves to no room (Lookup
			// checks the room exists).
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisIOTimeout)
			_ = dropCodeScript.Run(ctx, s.client, []string{codeKey}, roomID).Err()
			cancel()
		}
		if errors.Is(err, ErrRoomExists) {
			return "", fmt.Errorf("redis store: create %s: %w", roomID, err)
		}
		return "", redisStoreErr("create", roomID, err)
	}
	return epoch, nil
}

// Append commits events after expectedSeq, stores snap when given and
// publishes the commit on the room's channel, all in one script. A head
// other than expectedSeq is ErrSeqConflict, with nothing written. An error
// wrapping ErrUnavailable leaves the outcome unknown (the reply may be what
// was lost): reload before retrying; the compare-and-set makes a retry of
// a commit that did happen a conflict, never a duplicate.
func (s *RedisStore) Append(ctx context.Context, roomID string, expectedSeq uint64, events []room.Event, snap *room.State) error {
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
	args := make([]any, 0, 10+len(events))
	for _, e := range events {
		if e.Type == room.EvClosed {
			closing = "1"
		}
	}
	args = append(args,
		strconv.FormatUint(expectedSeq, 10), idJSON, s.cfg.ClosedRoomTTL.Milliseconds(),
		publish, s.keys.channel(roomID), snapJSON, strconv.FormatUint(head, 10),
		closing, codePrefix, s.cfg.Now().UnixMilli())
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("redis store: append %s: encode event %d: %w", roomID, e.Seq, err)
		}
		args = append(args, b)
	}
	res, err := appendScript.Run(ctx, s.client, s.keys.room(roomID), args...).StringSlice()
	if err != nil {
		return redisStoreErr("append", roomID, err)
	}
	switch res[0] {
	case "ok":
	case "conflict":
		return fmt.Errorf("redis store: append %s at %d: head is %s: %w", roomID, expectedSeq, res[1], ErrSeqConflict)
	case "notfound":
		return fmt.Errorf("redis store: append %s: %w", roomID, ErrRoomNotFound)
	default:
		return fmt.Errorf("redis store: append %s: unexpected answer %q", roomID, res)
	}
	if s.cluster && len(res) > 2 && res[2] != "" {
		// The code key lives in another slot; the script could not reach
		// it. If this fails the code outlives the room, and Lookup still
		// answers not found once the room's keys are gone.
		if err := s.client.PExpire(ctx, s.keys.code(res[2]), s.cfg.ClosedRoomTTL).Err(); err != nil {
			return redisStoreErr("append: expire code", roomID, err)
		}
	}
	return nil
}

// Load returns the room's state from its newest snapshot and the events
// after it (or a replay of the whole log without a snapshot), read at one
// instant, and its epoch.
func (s *RedisStore) Load(ctx context.Context, roomID string) (*room.State, string, error) {
	if err := s.check(roomID); err != nil {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, err)
	}
	res, err := loadScript.Run(ctx, s.client, s.keys.room(roomID)).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("redis store: load %s: %w", roomID, ErrRoomNotFound)
	}
	if err != nil {
		return nil, "", redisStoreErr("load", roomID, err)
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
func (s *RedisStore) Since(ctx context.Context, roomID string, seq uint64) ([]room.Event, error) {
	if err := s.check(roomID); err != nil {
		return nil, fmt.Errorf("redis store: since %s: %w", roomID, err)
	}
	keys := s.keys.room(roomID)
	res, err := sinceScript.Run(ctx, s.client, []string{keys[0], keys[2]}, fmt.Sprintf("%d-0", seq+1)).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: since %s: %w", roomID, ErrRoomNotFound)
	}
	if err != nil {
		return nil, redisStoreErr("since", roomID, err)
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
		return nil, fmt.Errorf("redis store: since %s at %d: %w", roomID, seq, ErrTruncated)
	}
	if err := checkSeqs(seq, events); err != nil || events[len(events)-1].Seq != head {
		return nil, fmt.Errorf("redis store: since %s at %d: log does not reach head %d: %w", roomID, seq, head, ErrTruncated)
	}
	return events, nil
}

// Lookup resolves a join code. A code that was never issued and one whose
// room has expired both answer ErrRoomNotFound.
func (s *RedisStore) Lookup(ctx context.Context, code string) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("redis store: lookup: %w", errRedisStoreClosed)
	}
	if code == "" {
		return "", fmt.Errorf("redis store: lookup: %w", ErrRoomNotFound)
	}
	id, err := s.client.Get(ctx, s.keys.code(code)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("redis store: lookup %s: %w", code, ErrRoomNotFound)
	}
	if err != nil {
		return "", redisStoreErr("lookup", code, err)
	}
	n, err := s.client.Exists(ctx, s.keys.seq(id)).Result()
	if err != nil {
		return "", redisStoreErr("lookup", code, err)
	}
	if n == 0 {
		return "", fmt.Errorf("redis store: lookup %s: %w", code, ErrRoomNotFound)
	}
	return id, nil
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("redis store: ping: %w", errRedisStoreClosed)
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return redisStoreErr("ping", "", err)
	}
	return nil
}

// Close makes every later call fail. It does not close the client, which
// the caller owns. It is idempotent.
func (s *RedisStore) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *RedisStore) check(roomID string) error {
	if s.closed.Load() {
		return errRedisStoreClosed
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

// redisStoreErr wraps a failed Redis call: ErrUnavailable when Redis could
// not be reached or cannot serve now, so the hub answers "unavailable".
func redisStoreErr(op, id string, err error) error {
	if id != "" {
		op += " " + id
	}
	if redisUnavailable(err) {
		return fmt.Errorf("redis store: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("redis store: %s: %w", op, err)
}

// redisUnavailable tells a failure to reach Redis, or a Redis that cannot
// serve right now, from a reply that is an answer (a script error). A
// caller's own cancellation is not unavailability; its deadline is, since
// the hub bounds store calls with deadlines sized for a healthy Redis.
func redisUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "NOREPLICAS", "MISCONF", "MAXCLIENTS"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return redis.IsOOMError(err)
	}
	// Dial and I/O errors, io.EOF, timeouts, a closed client, pool
	// exhaustion.
	return true
}

// NewRedisClient makes a client from a URL with timeouts fit for the hub, so
// that a call fails within about a second while Redis is down and answers
// "unavailable": 2 s to dial (2 attempts), 2 s per read or write, one retry
// (unless the URL sets them; go-redis's query options apply). Forms:
//
//	redis://[user:password@]host:port[/db][?options]   one server (also rediss://, unix://)
//	redis://[user:password@]host1:port1,host2:port2[,...][/db][?master_name=NAME]
//
// A comma-separated list of addresses is a Redis Cluster (its seed nodes);
// with master_name it is the list of Sentinels that watch the master of that
// name. The list form accepts only master_name and the timeouts
// dial_timeout, read_timeout and write_timeout (Go durations) as options.
// On a Cluster the store and bus use sharded pub/sub (Redis 7 or later).
func NewRedisClient(rawURL string) (redis.UniversalClient, error) {
	if !strings.Contains(rawURL, ",") {
		opt, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis client: %w", err)
		}
		q := url.Values{}
		if u, err := url.Parse(rawURL); err == nil {
			q = u.Query()
		}
		if !q.Has("dial_timeout") {
			opt.DialTimeout = redisDialTimeout
		}
		if !q.Has("read_timeout") {
			opt.ReadTimeout = redisIOTimeout
		}
		if !q.Has("write_timeout") {
			opt.WriteTimeout = redisIOTimeout
		}
		if !q.Has("pool_timeout") {
			opt.PoolTimeout = redisPoolTimeout
		}
		if !q.Has("max_retries") {
			opt.MaxRetries = redisMaxRetries
		}
		opt.DialerRetries, opt.DialerRetryTimeout = redisDialAttempts, redisDialRetryWait
		opt.ContextTimeoutEnabled = true
		return redis.NewClient(opt), nil
	}
	opt, err := parseRedisList(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis client: %w", err)
	}
	return redis.NewUniversalClient(opt), nil
}

// parseRedisList parses the list form of NewRedisClient's URL.
func parseRedisList(rawURL string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return nil, fmt.Errorf("address list %q: want redis:// or rediss://", rawURL)
	}
	// Split off the hosts by hand (net/url rejects a comma in the port),
	// then let net/url parse the rest around one placeholder host.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	auth, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		auth, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(scheme + "://" + auth + "placeholder" + tail)
	if err != nil {
		return nil, err
	}
	opt := &redis.UniversalOptions{
		DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
		PoolTimeout: redisPoolTimeout, MaxRetries: redisMaxRetries, ContextTimeoutEnabled: true,
		DialerRetries: redisDialAttempts, DialerRetryTimeout: redisDialRetryWait,
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if !strings.Contains(h, ":") {
				h += ":6379"
			}
			opt.Addrs = append(opt.Addrs, h)
		}
	}
	if len(opt.Addrs) == 0 {
		return nil, fmt.Errorf("address list %q: no address", rawURL)
	}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if opt.DB, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("address list %q: database %q: %w", rawURL, p, err)
		}
	}
	for k, v := range u.Query() {
		val := v[len(v)-1]
		switch k {
		case "master_name":
			opt.MasterName = val
		case "dial_timeout", "read_timeout", "write_timeout":
			d, err := time.ParseDuration(val)
			if err != nil {
				return nil, fmt.Errorf("address list %q: %s: %w", rawURL, k, err)
			}
			switch k {
			case "dial_timeout":
				opt.DialTimeout = d
			case "read_timeout":
				opt.ReadTimeout = d
			default:
				opt.WriteTimeout = d
			}
		default:
			return nil, fmt.Errorf("address list %q: unknown option %q", rawURL, k)
		}
	}
	if opt.MasterName == "" && opt.DB != 0 {
		return nil, fmt.Errorf("address list %q: a Cluster has only database 0", rawURL)
	}
	if scheme == "rediss" {
		host, _, _ := net.SplitHostPort(opt.Addrs[0])
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}
