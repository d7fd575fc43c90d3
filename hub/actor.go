package hub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leveling/workshop/room"
)

// roomActor owns one room's state on this instance and every local client
// of that room. Only its run goroutine touches the fields below the line;
// other goroutines talk to it through cmds, ctrl and the bus queue.
type roomActor struct {
	h  *Hub
	id string

	cmds chan cmdReq   // commands from client read loops; bounded, never blocks them
	ctrl chan func()   // joins, leaves, resumes: run on the actor goroutine
	stop chan struct{} // closed to stop the actor
	done chan struct{} // closed when run has returned

	ready    chan struct{} // closed once start has loaded the room (or failed)
	startErr error         // set before ready is closed

	busMu  sync.Mutex
	busQ   []busItem     // guarded by busMu; filled by the bus goroutine
	busSig chan struct{} // capacity 1: "busQ has items"

	refs     int // guarded by h.mu
	stopOnce sync.Once
	head     atomic.Uint64 // newest committed sequence known here, for the facilitator's pongs
	shown    atomic.Uint64 // newest sequence every local client has been sent, for the others' pongs (a tally may hold votes back)

	// ---- owned by the run goroutine ----
	unsubscribe func()
	state       *room.State
	epoch       string
	broadcast   uint64 // last sequence fanned out to local clients
	broken      bool   // state may hold uncommitted events: reload before use
	lagging     bool   // a gap is known but could not be filled yet
	clients     map[*Client]struct{}
	byClass     map[string]map[*Client]struct{}
	byPeer      map[string]map[*Client]struct{} // participant id -> clients
	recent      []room.Event                    // newest events, for resumes
	results     map[string]map[string]any       // command key -> ack result
	resultOrder []string

	remote       map[string]remotePresence // other instances' presence
	shared       int                       // attendees counted by more than one instance (sharedAttendees), as of the last presence tick
	sentPresence map[string][]byte         // last presence frame per class
	presenceAt   time.Time                 // last time our presence was published
	localDirty   bool
	// counts are the local clients' presence, kept by join and leave so
	// that a snapshot need not walk every client: it did, once per join,
	// and a join storm of 10,000 spent half the server's CPU on it.
	counts    presenceCounts
	snapCache map[string]cachedView
	// personal holds the views of attendees with questions or votes of
	// their own (participant -> view) at personalEpoch and personalSeq,
	// at most maxPersonalCache bytes of them (personalBytes): see
	// snapshotFor.
	personal      map[string][]byte
	personalEpoch string
	personalSeq   uint64
	personalBytes int
	// tally holds votes, reports and hands on their way to attendees.
	tally tallyState
	// facKey is the facilitator key the last facilitator joined with (or
	// the one a rotation made), kept in memory only, to derive team keys.
	facKey string
}

func newRoomActor(h *Hub, id string) *roomActor {
	return &roomActor{
		h: h, id: id,
		cmds:   make(chan cmdReq, commandQueue),
		ctrl:   make(chan func()),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
		busSig: make(chan struct{}, 1),

		clients:      map[*Client]struct{}{},
		byClass:      map[string]map[*Client]struct{}{},
		byPeer:       map[string]map[*Client]struct{}{},
		results:      map[string]map[string]any{},
		remote:       map[string]remotePresence{},
		sentPresence: map[string][]byte{},
		snapCache:    map[string]cachedView{},
	}
}

// start subscribes to the bus and then loads the room, in that order: a
// change committed between the two is in the loaded state or arrives on
// the bus (and is skipped if already applied), never lost. Then it runs.
func (ra *roomActor) start() {
	defer ra.h.actors.Done()
	ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
	err := ra.load(ctx)
	cancel()
	if err != nil {
		ra.startErr = err
		close(ra.ready)
		close(ra.done)
		if ra.unsubscribe != nil {
			ra.unsubscribe()
		}
		return
	}
	ra.h.m.rooms.Inc()
	close(ra.ready)
	ra.run()
}

func (ra *roomActor) load(ctx context.Context) error {
	unsub, err := ra.h.bus.Subscribe(ctx, ra.id, (*actorSubscriber)(ra))
	if err != nil {
		return errors.Join(room.Errorf(room.EUNAVAILABLE, "the room's bus is unavailable"), err)
	}
	ra.unsubscribe = unsub
	st, epoch, err := ra.h.store.Load(ctx, ra.id)
	if err != nil {
		return err
	}
	ra.state, ra.epoch, ra.broadcast = st, epoch, st.Seq
	ra.head.Store(st.Seq)
	ra.shown.Store(st.Seq)
	return nil
}

// shutdown stops the actor and waits for it. Called by the last release.
func (ra *roomActor) shutdown() {
	ra.stopOnce.Do(func() { close(ra.stop) })
	<-ra.done
}

// goingAway asks the actor to close every client with 1001 (server
// shutdown). The clients' handlers then release the actor.
func (ra *roomActor) goingAway() {
	select {
	case ra.ctrl <- func() {
		for c := range ra.clients {
			c.close(statusGoingAway, "server going away")
		}
	}:
	case <-ra.done:
	}
}

// call runs f on the actor goroutine and waits for it.
func (ra *roomActor) call(ctx context.Context, f func()) error {
	finished := make(chan struct{})
	select {
	case ra.ctrl <- func() { f(); close(finished) }:
	case <-ra.done:
		return room.Errorf(room.EUNAVAILABLE, "server going away")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-finished:
		return nil
	case <-ra.done:
		return room.Errorf(room.EUNAVAILABLE, "server going away")
	}
}

// submit queues a command without blocking the read loop.
func (ra *roomActor) submit(r cmdReq) bool {
	select {
	case ra.cmds <- r:
		return true
	default:
		return false
	}
}

func (ra *roomActor) run() {
	defer close(ra.done)
	defer ra.h.m.rooms.Dec()
	defer ra.dropTally()
	defer func() {
		if ra.unsubscribe != nil {
			ra.unsubscribe()
		}
	}()
	tick := time.NewTicker(defaultPresenceTick)
	defer tick.Stop()
	lastBeat := time.Time{}
	for {
		select {
		case <-ra.stop:
			ra.failQueued()
			return
		case f := <-ra.ctrl:
			f()
		case <-ra.busSig:
			ra.drainBus()
		case <-ra.tally.due:
			ra.flushTally()
		case r := <-ra.cmds:
			batch := []cmdReq{r}
		more:
			for len(batch) < maxBatch {
				select {
				case r := <-ra.cmds:
					batch = append(batch, r)
				default:
					break more
				}
			}
			ra.drainBus()
			ra.handleCommands(batch)
		case now := <-tick.C:
			if ra.broken || ra.lagging {
				ra.resync("retry")
			}
			if now.Sub(lastBeat) >= ra.h.cfg.Heartbeat {
				lastBeat = now
				ra.h.publishAsync(Message{Room: ra.id, Epoch: ra.epoch, Head: ra.state.Seq, Instance: ra.h.cfg.Instance})
			}
			ra.tickPresence(now)
		}
	}
}

// failQueued answers commands still queued at stop: the clients retry them
// with the same id after reconnecting, and idempotency makes that safe.
func (ra *roomActor) failQueued() {
	for {
		select {
		case r := <-ra.cmds:
			r.c.sendError(r.id, room.Errorf(room.EUNAVAILABLE, "server going away; retry"))
		default:
			return
		}
	}
}
