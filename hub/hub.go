package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leveling/workshop/room"
)

// Limits and periods. The send queue bounds how far a client may fall behind
// before it is closed as too slow; the read timeout must exceed the client's
// ping period (PROTOCOL.md, "Keepalive": clients ping at least every 25 s).
const (
	defaultSendQueue     = 512              // messages queued per client
	defaultWriteTimeout  = 10 * time.Second // one frame write
	defaultReadTimeout   = 75 * time.Second // silence before a client is dropped (3 missed pings)
	defaultHelloTimeout  = 10 * time.Second // first message must arrive by then
	defaultHeartbeat     = time.Second      // room head heartbeat on the bus
	defaultPresenceTick  = 500 * time.Millisecond
	presenceRepublish    = 3 * time.Second  // an instance re-announces its presence this often
	presenceExpiry       = 10 * time.Second // a silent instance's presence is dropped after this
	defaultSnapshotEvery = 100              // events between stored snapshots
	commandQueue         = 4096             // commands waiting for a room actor
	maxBatch             = 512              // commands decided and committed together
	maxWriteBatchBytes   = 1 << 20          // bytes: a write batch stops growing past this (client messages: Limits.MaxClientMessageBytes)
	recentEvents         = 1024             // events kept in memory for resumes
	maxResumeGap         = 2000             // a resume further behind than this gets a snapshot
	storeTimeout         = 5 * time.Second  // one store call from a room actor
	maxAppendAttempts    = 12               // conflicts retried before giving up
	appendBackoff        = time.Millisecond // times the attempt: the bound of the random pause after a conflict
	maxPresenceNames     = 1000             // names sent to the facilitator
	publishQueue         = 1024             // heartbeats and presence waiting for the bus; past it they are dropped (the next beat repeats them)
	publishTimeout       = 2 * time.Second  // one heartbeat or presence publish; shorter than the 3 s presence republish
	rememberedResults    = 1000             // ack results (fresh keys) a room actor keeps for retries, newest first
	maxPersonalCache     = 1 << 20          // bytes of attendees' own snapshot views a room keeps at its head
)

// Config configures a Hub. The zero value of each optional field means the
// default in its comment.
type Config struct {
	Store Store // required
	Bus   Bus   // required; pair it with the store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Instance names this instance on the bus; defaults to a random id.
	Instance string
	// SendQueue is the per-client queue length in messages (512).
	SendQueue int
	// WriteTimeout bounds one write to a client (10 s).
	WriteTimeout time.Duration
	// ReadTimeout closes a client that sent nothing for this long (75 s).
	ReadTimeout time.Duration
	// HelloTimeout bounds the wait for a client's first message (10 s).
	HelloTimeout time.Duration
	// Heartbeat is how often each room actor announces its head (1 s).
	Heartbeat time.Duration
	// SnapshotEvery is how many events pass between stored snapshots (100).
	SnapshotEvery int
	// TallyInterval is the shortest time between two tallies a room sends
	// its attendees (250 ms; PROTOCOL.md, "Tallies"). Negative turns
	// tallies off: every client gets every event.
	TallyInterval time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Metrics receives counters; nil means none.
	Metrics *Metrics
	// Limits bounds rates and sizes; zero fields take DefaultLimits.
	Limits Limits
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Instance == "" {
		c.Instance = randomHex(8)
	}
	if c.SendQueue <= 0 {
		c.SendQueue = defaultSendQueue
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = defaultReadTimeout
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = defaultHelloTimeout
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = defaultHeartbeat
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = defaultSnapshotEvery
	}
	if c.TallyInterval == 0 {
		c.TallyInterval = defaultTallyInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits.setDefaults()
}

// Hub owns the room actors and client connections of one instance.
type Hub struct {
	cfg   Config
	store Store
	bus   Bus
	log   *slog.Logger
	m     *Metrics

	// ctx ends when the hub shuts down; every actor and client stops then.
	ctx    context.Context
	cancel context.CancelFunc
	// leaving ends when Shutdown begins, before it waits for the
	// connections: one still waiting for its hello closes then with 1001
	// (readHello), since ctx ends only after that wait.
	leaving context.Context
	leave   context.CancelFunc

	mu       sync.Mutex
	rooms    map[string]*roomActor // guarded by mu
	draining bool                  // guarded by mu
	conns    sync.WaitGroup        // WebSocket handlers in flight
	actors   sync.WaitGroup        // room actor goroutines

	// Per-address token buckets (see Limits).
	addrCommands, addrConnects, addrIdentities, addrRooms, addrLookups *addrLimiters
	addrPings, addrResumes                                             *addrLimiters

	publishQ  chan Message // heartbeats and presence, published off the actors
	pubDone   chan struct{}
	closeOnce sync.Once
}

// New returns a running Hub. Call Shutdown to stop it.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("hub: a store and a bus are required")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	leaving, leave := context.WithCancel(ctx)
	h := &Hub{
		cfg: cfg, store: cfg.Store, bus: cfg.Bus, log: cfg.Logger, m: cfg.Metrics,
		ctx: ctx, cancel: cancel, leaving: leaving, leave: leave,
		rooms:    map[string]*roomActor{},
		publishQ: make(chan Message, publishQueue),
		pubDone:  make(chan struct{}),

		addrCommands:   newAddrLimiters(cfg.Limits.AddrCommands),
		addrConnects:   newAddrLimiters(cfg.Limits.AddrConnects),
		addrIdentities: newAddrLimiters(cfg.Limits.AddrIdentities),
		addrRooms:      newAddrLimiters(cfg.Limits.AddrRooms),
		addrLookups:    newAddrLimiters(cfg.Limits.AddrLookups),
		addrPings:      newAddrLimiters(cfg.Limits.AddrPings),
		addrResumes:    newAddrLimiters(cfg.Limits.AddrResumes),
	}
	if h.m == nil {
		h.m = NewMetrics(nil)
	}
	go h.publishLoop()
	return h, nil
}

// Draining reports whether Shutdown has begun.
func (h *Hub) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// StartDrain makes the hub refuse new connections (and /readyz fail) while
// existing ones keep working, so a load balancer moves new clients away.
func (h *Hub) StartDrain() {
	h.mu.Lock()
	h.draining = true
	h.mu.Unlock()
}

// Ready checks the store and reports whether the hub takes new clients.
func (h *Hub) Ready(ctx context.Context) error {
	if h.Draining() {
		return errors.New("draining")
	}
	return h.store.Ping(ctx)
}

// publishLoop publishes heartbeats and presence so that a slow or down
// Redis never blocks a room actor. Messages that do not fit the queue are
// dropped and counted: the next heartbeat repeats them.
func (h *Hub) publishLoop() {
	defer close(h.pubDone)
	for {
		select {
		case <-h.ctx.Done():
			return
		case m := <-h.publishQ:
			ctx, cancel := context.WithTimeout(h.ctx, publishTimeout)
			if err := h.bus.Publish(ctx, m); err != nil && h.ctx.Err() == nil {
				h.m.busErrors.Inc()
				h.log.Debug("hub: publish", "room", m.Room, "err", err)
			}
			cancel()
		}
	}
}

func (h *Hub) publishAsync(m Message) {
	select {
	case h.publishQ <- m:
	default:
		h.m.publishDrops.Inc()
	}
}

// acquire returns the running actor of a room, starting it (subscribe, then
// load) for the first client. Each acquire is paired with a release.
func (h *Hub) acquire(ctx context.Context, roomID string) (*roomActor, error) {
	h.mu.Lock()
	if h.draining {
		h.mu.Unlock()
		return nil, room.Errorf(room.EUNAVAILABLE, "server going away")
	}
	ra := h.rooms[roomID]
	if ra == nil {
		ra = newRoomActor(h, roomID)
		h.rooms[roomID] = ra
		h.actors.Add(1)
		go ra.start()
	}
	ra.refs++
	h.mu.Unlock()

	select {
	case <-ra.ready:
	case <-ctx.Done():
		h.release(ra)
		return nil, ctx.Err()
	}
	if ra.startErr != nil {
		h.release(ra)
		return nil, ra.startErr
	}
	return ra, nil
}

// release drops a reference; the last one stops the actor.
func (h *Hub) release(ra *roomActor) {
	h.mu.Lock()
	ra.refs--
	last := ra.refs == 0
	if last && h.rooms[ra.id] == ra {
		delete(h.rooms, ra.id)
	}
	h.mu.Unlock()
	if last {
		ra.shutdown()
	}
}

// Shutdown stops the hub: no new connections, every client is told to go
// away (1001) and reconnect elsewhere, in-flight commands finish, actors
// stop, and Shutdown waits for every connection handler until ctx ends.
// The store and bus are left open for the caller to close. Idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.StartDrain()
	h.leave()
	h.mu.Lock()
	actors := make([]*roomActor, 0, len(h.rooms))
	for _, ra := range h.rooms {
		actors = append(actors, ra)
	}
	h.mu.Unlock()
	for _, ra := range actors {
		ra.goingAway()
	}
	done := make(chan struct{})
	go func() {
		h.conns.Wait()
		h.actors.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("hub: shutdown: %w", ctx.Err())
	}
	h.closeOnce.Do(func() {
		h.cancel()
		<-h.pubDone
	})
	return err
}
