package hub

// The bus intake of a room actor: messages from the bus are queued without
// blocking the bus's receive goroutine, then decoded and applied on the
// actor's; a gap, a drop or a resubscription makes the actor catch up from
// the store.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/leveling/workshop/room"
)

// busItem is one entry of an actor's bus queue: a message, still undecoded
// from the Redis bus, or a resync.
type busItem struct {
	d      Delivery // nil for a resync
	resync bool
}

// actorSubscriber adapts the actor to the Bus's Subscriber: it queues and
// signals, never blocks, never decodes.
type actorSubscriber roomActor

func (s *actorSubscriber) Handle(d Delivery) { (*roomActor)(s).enqueueBus(busItem{d: d}) }

func (s *actorSubscriber) Resync() { (*roomActor)(s).enqueueBus(busItem{resync: true}) }

// maxBusQueue bounds the bus queue; past it the queue is replaced by one
// resync, which refills whatever was dropped from the store.
const maxBusQueue = 4096

func (ra *roomActor) enqueueBus(it busItem) {
	ra.busMu.Lock()
	if len(ra.busQ) >= maxBusQueue {
		ra.busQ = append(ra.busQ[:0], busItem{resync: true})
	} else {
		ra.busQ = append(ra.busQ, it)
	}
	ra.busMu.Unlock()
	select {
	case ra.busSig <- struct{}{}:
	default:
	}
}

// drainBus applies the queued bus messages on the actor's goroutine, which
// is where they are decoded: a big message costs its own room's time, not
// the bus's receive loop shared by every room.
func (ra *roomActor) drainBus() {
	ra.busMu.Lock()
	items := ra.busQ
	ra.busQ = nil
	ra.busMu.Unlock()
	for _, it := range items {
		if it.resync {
			ra.resync("bus resync")
			continue
		}
		m, err := it.d.Decode()
		if err != nil {
			ra.resync("undecodable bus message")
			continue
		}
		switch {
		case m.Presence != nil:
			if m.Instance != ra.h.cfg.Instance {
				ra.remote[m.Instance] = newRemotePresence(*m.Presence, m.Attendees, time.Now())
			}
		case len(m.Events) > 0:
			ra.onBusEvents(m)
		case m.Head > 0:
			if !ra.broken && (m.Head > ra.state.Seq || m.Epoch != "" && m.Epoch != ra.epoch) {
				ra.h.m.busGaps.Inc()
				ra.resync("heartbeat ahead")
			}
		}
	}
}

func (ra *roomActor) onBusEvents(m Message) {
	if ra.broken {
		return // the next resync reads the store
	}
	if m.Epoch != "" && m.Epoch != ra.epoch {
		ra.resync("epoch changed")
		return
	}
	evs := m.Events
	for len(evs) > 0 && evs[0].Seq <= ra.state.Seq {
		evs = evs[1:] // ours (the in-process bus delivers them back), or filled from the store already
	}
	if len(evs) == 0 {
		return
	}
	if evs[0].Seq != ra.state.Seq+1 {
		ra.h.m.busGaps.Inc()
		ra.resync("gap")
		return
	}
	if !evs[0].At.IsZero() {
		ra.h.m.busLagSeconds.Observe(time.Since(evs[len(evs)-1].At).Seconds())
	}
	if !ra.applyCommitted(evs) {
		ra.resync("bad bus events")
	}
}

// resync brings the actor up to the store. A broken actor reloads its state
// (its own may hold uncommitted events); otherwise it reads the events after
// its sequence. Either way local clients get every committed event after
// the last one they were sent, or a fresh snapshot if that is impossible.
func (ra *roomActor) resync(why string) {
	ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
	defer cancel()
	if !ra.broken {
		evs, err := ra.h.store.Since(ctx, ra.id, ra.state.Seq)
		if err == nil {
			if len(evs) > 0 && evs[0].Seq == ra.state.Seq+1 {
				ra.applyCommitted(evs)
			}
			ra.lagging = false
			return
		}
		if !errors.Is(err, ErrTruncated) {
			ra.lagging = true
			ra.h.m.storeErrors.Inc()
			ra.h.log.Debug("hub: catch up failed", "room", ra.id, "why", why, "err", err)
			return
		}
	}
	ra.h.m.reloads.Inc()
	st, epoch, err := ra.h.store.Load(ctx, ra.id)
	if err != nil {
		ra.broken = true
		ra.h.m.storeErrors.Inc()
		ra.h.log.Debug("hub: reload failed", "room", ra.id, "why", why, "err", err)
		return
	}
	from := ra.broadcast
	ra.state, ra.broken, ra.lagging = st, false, false
	ra.head.Store(st.Seq)
	if epoch != ra.epoch || st.Seq < from {
		ra.epoch = epoch
		ra.resnapshotAll()
		return
	}
	if st.Seq == from {
		return
	}
	missed, err := ra.h.store.Since(ctx, ra.id, from)
	if err == nil {
		missed = slices.DeleteFunc(missed, func(e room.Event) bool { return e.Seq > st.Seq })
	}
	if err != nil || len(missed) == 0 || missed[0].Seq != from+1 || missed[len(missed)-1].Seq != st.Seq {
		ra.resnapshotAll()
		return
	}
	ra.committed(missed, nil)
}

// resnapshotAll sends every local client a fresh snapshot: after an epoch
// change, or when the missed events cannot be listed.
func (ra *roomActor) resnapshotAll() {
	ra.recent = nil
	ra.dropTally()
	ra.broadcast = ra.state.Seq
	ra.shown.Store(ra.broadcast)
	clear(ra.snapCache)
	for c := range ra.clients {
		c.enqueue(ra.snapshotFor(c))
	}
}
