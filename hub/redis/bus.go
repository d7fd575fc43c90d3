package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
)

// Periods of the Redis bus. ProbeTimeout must exceed ProbeInterval (3 × by
// default) so that one slow round trip is not taken for a stall; a probe
// PUBLISH gives up after the smaller of busCommandTimeout and ProbeInterval.
const (
	defaultProbeInterval = 2 * time.Second       // a probe is published this often
	probeTimeoutFactor   = 3                     // default ProbeTimeout = 3 × ProbeInterval
	busCommandTimeout    = ioTimeout             // one SUBSCRIBE, UNSUBSCRIBE or probe PUBLISH
	busMinBackoff        = 50 * time.Millisecond // first wait after a receive error, doubled up to busMaxBackoff
	busMaxBackoff        = time.Second           // longest wait between reconnect attempts
	busErrorLogEvery     = 30 * time.Second      // a streak of receive errors is logged this often at most
)

// BusConfig configures a Bus. The zero value of each field means
// the default in its comment.
type BusConfig struct {
	// KeyPrefix goes before every channel name (""); it must equal the
	// paired Store's, whose scripts publish on the same channels.
	KeyPrefix string
	// Instance names this instance: its probe channel is
	// <KeyPrefix>probe:<Instance> (a random id).
	Instance string
	// ProbeInterval is how often the bus publishes to its own probe channel
	// to check that its subscription still delivers (2 s).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the bus
	// takes its subscription for stalled: it then opens a new connection,
	// subscribes every room again and resyncs their subscribers
	// (3 × ProbeInterval; a value not above ProbeInterval is raised to
	// 2 × ProbeInterval, since probes are only checked once per interval).
	ProbeTimeout time.Duration
	// Logger receives warnings: stalls, reconnects, undecodable messages
	// (slog.Default()).
	Logger *slog.Logger
	// DropHook is for tests. When it returns true for a received message,
	// the bus drops it as if Redis had lost it: no Handle and, on purpose,
	// no Resync, so a test can check that the hub notices the gap from the
	// next event or heartbeat. It sees other instances' messages only, and
	// it makes the receive goroutine decode them. nil drops nothing.
	DropHook func(m hub.Message) bool
}

// BusStats counts what the bus has seen since it started.
type BusStats struct {
	Messages      int64 // messages handed, undecoded, to a room's subscribers
	Own           int64 // messages of this bus and its store that came back: skipped by origin, undecoded
	Decoded       int64 // messages decoded (once each, on the goroutine of the subscriber that asked first)
	Resubscribes  int64 // a room's channel subscribed again after a reconnect or stall: one Resync per subscriber
	ProbeFailures int64 // probes that did not come back in time: the connection was replaced
	ReceiveErrors int64 // errors reading the subscription (each may be a reconnect)
	DecodeErrors  int64 // messages that were not a valid Message (their subscribers resync)
	Dropped       int64 // messages DropHook dropped
}

// Bus is the Bus on Redis pub/sub. It keeps one PubSub connection per
// instance (on Cluster, one per room with local subscribers, because a
// sharded subscription lives on the node that owns the room's slot) with
// one subscription per room that has local subscribers, however many they
// are. Subscriptions are added and removed on demand and refcounted.
//
// Pub/sub is a doorbell, not the data: a message published while the
// connection is down or resubscribing is gone. So the bus calls Resync on
// every subscriber of a room whose subscription Redis confirms again
// (go-redis resubscribes by itself after a reconnect), and it probes its
// own connection: a probe published to the bus's own channel must come
// back within ProbeTimeout, or the connection is replaced and every room
// resubscribed and resynced. Resync is always called after the new
// subscription is confirmed, so a subscriber that refills from the store
// then misses nothing.
//
// Every payload the bus publishes, and every commit its store publishes
// (StoreConfig.Bus), is the JSON of a hub.Message whose first member names
// the bus: {"origin":"<random id>","room":...}. The receive loop drops a
// payload that starts with its own origin by a byte compare, without
// decoding it: the hub has applied its own commits already and needs
// neither its heartbeats nor its presence back. Others' payloads are
// handed to the subscribers undecoded (a hub.Delivery) and decoded on
// their goroutines, so one big message or one slow room never holds up the
// receive loop that every room on the connection shares. The decoder
// ignores "origin", so a payload without one (a store without a bus, an
// older instance) reads the same, and an older instance reads ours.
//
// Goroutines: per connection, run owns the PubSub (subscribe commands,
// probes, replacement) and receiveLoop reads it and calls Handle and Resync,
// which therefore must not block. Close stops them all.
type Bus struct {
	client  goredis.UniversalClient
	cfg     BusConfig
	keys    layout
	cluster bool
	log     *slog.Logger
	origin  string // {"origin":"<random id>", : how this bus's payloads start; set once

	stop chan struct{}  // closed by Close
	wg   sync.WaitGroup // every goroutine of the bus

	mu     sync.Mutex
	closed bool                // guarded by mu
	conns  map[string]*busConn // guarded by mu; by shard: "" off Cluster, else the room id

	stats struct {
		messages, own, decoded, resubscribes, probeFailures, receiveErrors, decodeErrors, dropped atomic.Int64
	}
}

var _ hub.Bus = (*Bus)(nil)

// errBusClosed answers Subscribe and Publish after Close.
var errBusClosed = errors.New("redis bus: closed")

// NewBus returns a bus on client. The client stays the caller's: Close
// does not close it, so a bus and a store may share one.
func NewBus(client goredis.UniversalClient, cfg BusConfig) *Bus {
	if cfg.Instance == "" {
		cfg.Instance = randomHex(8)
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = defaultProbeInterval
	}
	switch {
	case cfg.ProbeTimeout <= 0:
		cfg.ProbeTimeout = probeTimeoutFactor * cfg.ProbeInterval
	case cfg.ProbeTimeout <= cfg.ProbeInterval:
		cfg.ProbeTimeout = 2 * cfg.ProbeInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	_, cluster := client.(*goredis.ClusterClient)
	return &Bus{
		client: client, cfg: cfg, keys: layout{cfg.KeyPrefix}, cluster: cluster,
		log:    cfg.Logger.With("component", "redis bus", "instance", cfg.Instance),
		origin: originPrefix(randomHex(8)),
		stop:   make(chan struct{}),
		conns:  map[string]*busConn{},
	}
}

// Subscribe registers sub for the room's messages and returns once Redis has
// confirmed the room's subscription (at once when the room already has one).
// On ctx's end it gives up, leaving nothing registered. sub may be called
// (on the receive goroutine) before Subscribe returns.
func (b *Bus) Subscribe(ctx context.Context, roomID string, sub hub.Subscriber) (func(), error) {
	if roomID == "" || sub == nil {
		return nil, errors.New("redis bus: subscribe: a room id and a subscriber are required")
	}
	ch := b.keys.channel(roomID)
	bs := &busSub{sub: sub}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("redis bus: subscribe %s: %w", roomID, errBusClosed)
	}
	c := b.connFor(roomID)
	r := c.rooms[ch]
	if r == nil {
		r = &busRoom{ready: make(chan struct{})}
		c.rooms[ch] = r
		c.queue(busOp{channel: ch})
	}
	r.closing = false
	r.subs = append(slices.Clip(r.subs), bs) // copy on write: receiveLoop reads old slices unlocked
	ready := r.ready
	b.mu.Unlock()

	unsubscribe := sync.OnceFunc(func() { b.unsubscribe(c, ch, bs) })
	select {
	case <-ready:
		return unsubscribe, nil
	case <-ctx.Done():
		unsubscribe()
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("redis bus: subscribe %s: not confirmed: %w", roomID, err)
	case <-b.stop:
		unsubscribe()
		return nil, fmt.Errorf("redis bus: subscribe %s: %w", roomID, errBusClosed)
	}
}

// unsubscribe removes one subscriber; the room's subscription goes when its
// last local subscriber does. It never waits for Redis.
func (b *Bus) unsubscribe(c *busConn, ch string, bs *busSub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := c.rooms[ch]
	if r == nil {
		return
	}
	i := slices.Index(r.subs, bs)
	if i < 0 {
		return
	}
	r.subs = slices.Delete(slices.Clone(r.subs), i, i+1)
	if len(r.subs) > 0 || b.closed || c.retired {
		return
	}
	if !r.confirmed {
		// Its SUBSCRIBE is on the way: unsubscribe when it is confirmed, so
		// that a late confirmation is never taken for a new subscription's.
		r.closing = true
		return
	}
	c.dropRoom(ch)
}

// Publish sends a heartbeat or presence message on the room's channel.
// While Redis is down it fails after the client's timeouts (seconds): never
// call it from a read loop.
func (b *Bus) Publish(ctx context.Context, m hub.Message) error {
	if m.Room == "" {
		return errors.New("redis bus: publish: no room")
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("redis bus: publish %s: %w", m.Room, errBusClosed)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("redis bus: publish %s: %w", m.Room, err)
	}
	payload := append([]byte(b.origin), body[1:]...) // body is a JSON object: {"room":...
	if err := b.publish(ctx, b.keys.channel(m.Room), payload); err != nil {
		return fmt.Errorf("redis bus: publish %s: %w: %w", m.Room, hub.ErrUnavailable, err)
	}
	return nil
}

func (b *Bus) publish(ctx context.Context, ch string, payload any) error {
	if b.cluster {
		return b.client.SPublish(ctx, ch, payload).Err()
	}
	return b.client.Publish(ctx, ch, payload).Err()
}

// Stats returns the bus's counters.
func (b *Bus) Stats() BusStats {
	return BusStats{
		Messages:      b.stats.messages.Load(),
		Own:           b.stats.own.Load(),
		Decoded:       b.stats.decoded.Load(),
		Resubscribes:  b.stats.resubscribes.Load(),
		ProbeFailures: b.stats.probeFailures.Load(),
		ReceiveErrors: b.stats.receiveErrors.Load(),
		DecodeErrors:  b.stats.decodeErrors.Load(),
		Dropped:       b.stats.dropped.Load(),
	}
}

// Close stops every goroutine of the bus and closes its connections; it
// returns once they are gone. Waiting Subscribe calls fail. It is
// idempotent and does not close the client.
func (b *Bus) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// connFor returns the connection that carries the room, starting it if
// needed. b.mu must be held.
func (b *Bus) connFor(roomID string) *busConn {
	shard, probe := "", b.keys.probe(b.cfg.Instance)
	if b.cluster {
		// The probe channel shares the room's hash tag, so it lives on the
		// same node as the room's channel.
		shard, probe = roomID, probe+":{"+roomID+"}"
	}
	if c := b.conns[shard]; c != nil {
		return c
	}
	c := &busConn{
		b: b, shard: shard, probeCh: probe,
		done:         make(chan struct{}),
		wake:         make(chan struct{}, 1),
		rooms:        map[string]*busRoom{},
		unsubPending: map[string]int{},
	}
	b.conns[shard] = c
	b.wg.Add(1)
	go c.run()
	return c
}

// busSub is one Subscribe call; its pointer identifies it for unsubscribe.
type busSub struct{ sub hub.Subscriber }

// busRoom is a room's subscription on a connection. Guarded by Bus.mu;
// subs is replaced, never changed in place, so receiveLoop may use a copy
// of the slice header without the lock.
type busRoom struct {
	subs      []*busSub
	ready     chan struct{} // closed when Redis first confirms the subscription
	confirmed bool
	closing   bool // no subscriber left before the confirmation: unsubscribe on it
}

// busOp is a SUBSCRIBE (or UNSUBSCRIBE) waiting for run to send it.
type busOp struct {
	channel     string
	unsubscribe bool
}

// busConn is one PubSub connection and the rooms subscribed on it. run owns
// the PubSub; the fields under "guarded by Bus.mu" are shared with
// Subscribe, unsubscribe and receiveLoop.
type busConn struct {
	b       *Bus
	shard   string
	probeCh string
	done    chan struct{} // closed when the connection is retired (Cluster)
	wake    chan struct{} // cap 1: ops were queued, or a replacement is needed

	// guarded by Bus.mu:
	rooms map[string]*busRoom // by channel
	ops   []busOp             // in the order they must reach Redis
	// unsubPending counts our UNSUBSCRIBEs per channel whose confirmation
	// has not arrived. A subscribe confirmation read while one is pending
	// precedes it on the wire, so it belongs to the old subscription.
	unsubPending map[string]int
	retired      bool

	replace   atomic.Bool  // Redis dropped a subscription by itself: replace the connection
	lastProbe atomic.Int64 // unix ns when the last probe came back (or the connection opened)
}

// queue asks run to send op. b.mu must be held, so that ops reach Redis in
// the order they were decided.
func (c *busConn) queue(op busOp) {
	if op.unsubscribe {
		c.unsubPending[op.channel]++
	}
	c.ops = append(c.ops, op)
	c.signal()
}

func (c *busConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dropRoom forgets a room with no subscriber left and unsubscribes it, or on
// Cluster retires the room's connection. b.mu must be held.
func (c *busConn) dropRoom(ch string) {
	delete(c.rooms, ch)
	if c.b.cluster && len(c.rooms) == 0 {
		c.retired = true
		delete(c.b.conns, c.shard)
		close(c.done)
		return
	}
	c.queue(busOp{channel: ch, unsubscribe: true})
}

// run owns the connection's PubSub: it opens it, sends queued subscription
// changes, publishes probes and replaces the PubSub when a probe does not
// come back. It exits when the bus closes or the connection is retired.
func (c *busConn) run() {
	defer c.b.wg.Done()
	ps, recv := c.open()
	defer func() { c.shut(ps, recv) }()
	probe := time.NewTicker(c.b.cfg.ProbeInterval)
	defer probe.Stop()
	for {
		select {
		case <-c.b.stop:
			return
		case <-c.done:
			return
		case <-c.wake:
			if c.replace.Swap(false) {
				c.b.log.Warn("redis bus: a subscription was dropped by Redis; reconnecting", "shard", c.shard)
				c.shut(ps, recv)
				ps, recv = c.open()
				continue
			}
			c.sendOps(ps)
		case <-probe.C:
			if since := time.Since(time.Unix(0, c.lastProbe.Load())); since > c.b.cfg.ProbeTimeout {
				c.b.stats.probeFailures.Add(1)
				c.b.log.Warn("redis bus: probe did not come back; replacing the subscription connection",
					"shard", c.shard, "silent", since.Round(time.Millisecond))
				c.shut(ps, recv)
				ps, recv = c.open()
			}
			c.sendProbe()
		}
	}
}

// receiver is one receiveLoop: quit asks it to stop, done says it has.
type receiver struct {
	quit, done chan struct{}
}

// open makes a PubSub subscribed to the probe and to every room of the
// connection, and starts its receiveLoop. Queued ops are subsumed by it.
// Rooms that were already confirmed get a Resync when Redis confirms them
// on the new PubSub.
func (c *busConn) open() (*goredis.PubSub, receiver) {
	b := c.b
	b.mu.Lock()
	channels := []string{c.probeCh}
	for ch, r := range c.rooms {
		if r.closing {
			delete(c.rooms, ch)
			continue
		}
		channels = append(channels, ch)
	}
	c.ops = nil
	clear(c.unsubPending)
	if b.cluster && len(c.rooms) == 0 && !c.retired {
		// Only rooms given up before their confirmation were left: run
		// ends at its next turn.
		c.retired = true
		delete(b.conns, c.shard)
		close(c.done)
	}
	b.mu.Unlock()

	c.lastProbe.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), busCommandTimeout)
	var ps *goredis.PubSub
	// A failed SUBSCRIBE (Redis down) is not final: go-redis keeps the
	// channels and subscribes them when receiveLoop reconnects.
	if b.cluster {
		ps = b.client.SSubscribe(ctx, channels...)
	} else {
		ps = b.client.Subscribe(ctx, channels...)
	}
	cancel()
	rc := receiver{quit: make(chan struct{}), done: make(chan struct{})}
	b.wg.Add(1)
	go c.receiveLoop(ps, rc)
	return ps, rc
}

// shut closes a PubSub and waits for its receiveLoop, so that two loops
// never deliver for one connection at once.
func (c *busConn) shut(ps *goredis.PubSub, rc receiver) {
	close(rc.quit)
	_ = ps.Close()
	<-rc.done
}

// sendOps sends the queued subscription changes, runs of one kind in one
// command.
func (c *busConn) sendOps(ps *goredis.PubSub) {
	b := c.b
	b.mu.Lock()
	ops := c.ops
	c.ops = nil
	b.mu.Unlock()
	for len(ops) > 0 {
		n := 1
		for n < len(ops) && ops[n].unsubscribe == ops[0].unsubscribe {
			n++
		}
		unsub := ops[0].unsubscribe
		channels := make([]string, 0, n)
		for _, op := range ops[:n] {
			channels = append(channels, op.channel)
		}
		ops = ops[n:]
		ctx, cancel := context.WithTimeout(context.Background(), busCommandTimeout)
		var err error
		switch {
		case unsub && b.cluster:
			err = ps.SUnsubscribe(ctx, channels...)
		case unsub:
			err = ps.Unsubscribe(ctx, channels...)
		case b.cluster:
			err = ps.SSubscribe(ctx, channels...)
		default:
			err = ps.Subscribe(ctx, channels...)
		}
		cancel()
		if err != nil && unsub {
			// go-redis has forgotten the channels already, so no reconnect
			// brings them back; their confirmations will not come.
			b.mu.Lock()
			for _, ch := range channels {
				if c.unsubPending[ch] > 0 {
					c.unsubPending[ch]--
				}
			}
			b.mu.Unlock()
		}
		// A failed SUBSCRIBE waits for the reconnect, which sends it.
	}
}

// sendProbe publishes a probe on the connection's own channel.
func (c *busConn) sendProbe() {
	ctx, cancel := context.WithTimeout(context.Background(), min(busCommandTimeout, c.b.cfg.ProbeInterval))
	defer cancel()
	// Errors need no handling: a probe that was not sent does not come
	// back, and that is what run watches.
	_ = c.b.publish(ctx, c.probeCh, strconv.FormatInt(time.Now().UnixNano(), 10))
}

// receiveLoop reads ps until it is closed: it delivers room messages to the
// rooms' subscribers, notes probes, and turns subscription confirmations
// into readiness or Resyncs. It never blocks on a subscriber. go-redis
// reconnects and resubscribes inside Receive; between failed attempts the
// loop backs off. (PubSub.Channel would add a goroutine and a buffered Go
// channel that drops messages silently when full, and hides confirmations;
// ChannelWithSubscriptions shows them but keeps the rest. Receive gives
// the confirmations, the errors and the exit to this loop.)
func (c *busConn) receiveLoop(ps *goredis.PubSub, rc receiver) {
	b := c.b
	defer b.wg.Done()
	defer close(rc.done)
	ctx := context.Background()
	var backoff time.Duration
	var failingSince, lastLog time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if errors.Is(err, goredis.ErrClosed) {
				return
			}
			select {
			case <-rc.quit:
				return
			default:
			}
			b.stats.receiveErrors.Add(1)
			c.connectionLost()
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			}
			if now.Sub(lastLog) >= busErrorLogEvery {
				lastLog = now
				b.log.Warn("redis bus: subscription connection failed; reconnecting", "shard", c.shard, "err", err,
					"down", now.Sub(failingSince).Round(time.Millisecond))
			}
			backoff = min(max(2*backoff, busMinBackoff), busMaxBackoff)
			timer.Reset(backoff)
			select {
			case <-rc.quit:
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		if !failingSince.IsZero() {
			b.log.Info("redis bus: subscription connection back", "shard", c.shard,
				"down", time.Since(failingSince).Round(time.Millisecond))
			failingSince, lastLog, backoff = time.Time{}, time.Time{}, 0
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			c.subscription(m)
		case *goredis.Message:
			if m.Channel == c.probeCh {
				c.lastProbe.Store(time.Now().UnixNano())
				continue
			}
			c.deliver(m)
		}
	}
}

// connectionLost notes that the connection failed: the UNSUBSCRIBEs sent on
// it will not be confirmed.
func (c *busConn) connectionLost() {
	c.b.mu.Lock()
	clear(c.unsubPending)
	c.b.mu.Unlock()
}

// subscription handles Redis's confirmation of a (un)subscribe.
func (c *busConn) subscription(m *goredis.Subscription) {
	b := c.b
	switch m.Kind {
	case "subscribe", "ssubscribe":
		b.mu.Lock()
		r := c.rooms[m.Channel]
		switch {
		case r == nil || c.unsubPending[m.Channel] > 0:
			// The probe, a room that is gone, or the confirmation of a
			// subscription that our pending UNSUBSCRIBE ends.
			b.mu.Unlock()
			return
		case r.closing:
			c.dropRoom(m.Channel)
			b.mu.Unlock()
			return
		case !r.confirmed:
			r.confirmed = true
			close(r.ready)
			b.mu.Unlock()
			return
		}
		// Confirmed again: go-redis resubscribed after a reconnect, or the
		// connection was replaced. Messages may have been lost meanwhile.
		subs := r.subs
		b.mu.Unlock()
		b.stats.resubscribes.Add(1)
		for _, s := range subs {
			s.sub.Resync()
		}
	case "unsubscribe", "sunsubscribe":
		b.mu.Lock()
		if n := c.unsubPending[m.Channel]; n > 0 {
			c.unsubPending[m.Channel] = n - 1
			b.mu.Unlock()
			return
		}
		_, ours := c.rooms[m.Channel]
		b.mu.Unlock()
		if ours || m.Channel == c.probeCh {
			// Redis ended a subscription we did not end: on Cluster, the
			// slot moved to another node. Only a new PubSub, routed anew,
			// gets it back.
			c.replace.Store(true)
			c.signal()
		}
	}
}

// deliver hands a room message to the room's subscribers undecoded, or
// drops it unread if it is this bus's own.
func (c *busConn) deliver(m *goredis.Message) {
	b := c.b
	if strings.HasPrefix(m.Payload, b.origin) {
		b.stats.own.Add(1)
		return
	}
	b.mu.Lock()
	var subs []*busSub
	if r := c.rooms[m.Channel]; r != nil {
		subs = r.subs
	}
	b.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	d := &delivery{b: b, channel: m.Channel, payload: m.Payload}
	if hook := b.cfg.DropHook; hook != nil {
		if msg, err := d.Decode(); err == nil && hook(msg) {
			b.stats.dropped.Add(1)
			return
		}
	}
	b.stats.messages.Add(1)
	for _, s := range subs {
		s.sub.Handle(d)
	}
}

// delivery is a room message as Redis delivered it, decoded by the first
// subscriber that asks, on that subscriber's goroutine, once for all of
// them.
type delivery struct {
	b       *Bus
	channel string
	payload string // JSON, with another bus's origin or none

	once sync.Once
	m    hub.Message // set by once
	err  error       // set by once
}

var _ hub.Delivery = (*delivery)(nil)

func (d *delivery) Decode() (hub.Message, error) {
	d.once.Do(d.decode)
	return d.m, d.err
}

func (d *delivery) decode() {
	b := d.b
	if err := json.Unmarshal([]byte(d.payload), &d.m); err != nil {
		b.stats.decodeErrors.Add(1)
		b.log.Warn("redis bus: undecodable message; resyncing the room", "channel", d.channel, "err", err)
		d.m, d.err = hub.Message{}, fmt.Errorf("redis bus: decode a message on %s: %w", d.channel, err)
		return
	}
	b.stats.decoded.Add(1)
	if d.m.Room == "" {
		d.m.Room = b.keys.roomOfChannel(d.channel)
	}
}

// originPrefix is how the payloads of the bus with that origin start: a
// JSON object's opening and its first member. Publishers continue it with
// the rest of a Message's JSON object.
func originPrefix(origin string) string { return `{"origin":"` + origin + `",` }
