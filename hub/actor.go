package hub

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
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
	head     atomic.Uint64 // newest committed sequence known here, for pongs

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
	// facKey is the facilitator key the last facilitator joined with (or
	// the one a rotation made), kept in memory only, to derive team keys.
	facKey string
}

type busItem struct {
	m      Message
	resync bool
	at     time.Time
}

type remotePresence struct {
	p  room.Presence
	at time.Time
}

type cachedView struct {
	seq  uint64
	data []byte
}

// cmdReq is one command from a client.
type cmdReq struct {
	c   *Client
	id  string
	cmd room.Command
}

// key is the command's idempotency key: the client's id is unique per
// participant, so a retry from any connection of the same participant,
// on any instance, finds it.
func (r cmdReq) key() string { return r.c.actor.Participant + "/" + r.id }

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
	return nil
}

// actorSubscriber adapts the actor to the Bus's Subscriber: it queues and
// signals, never blocks.
type actorSubscriber roomActor

func (s *actorSubscriber) Handle(m Message) {
	(*roomActor)(s).enqueueBus(busItem{m: m, at: time.Now()})
}
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

// ---- commands ----

type pendingAck struct {
	r      cmdReq
	seq    uint64
	result map[string]any
}

// outbox gathers the acks and errors of one batch per client, so a client
// that pipelines many commands gets one message for all its answers rather
// than filling its queue with one message per answer.
type outbox map[*Client][]byte

func (o outbox) add(c *Client, msg []byte) {
	if b := o[c]; len(b) > 0 {
		o[c] = append(append(b, '\n'), msg...)
	} else {
		o[c] = append([]byte(nil), msg...)
	}
}

func (o outbox) flush() {
	for c, b := range o {
		c.enqueue(b)
		delete(o, c)
	}
}

func (ra *roomActor) handleCommands(batch []cmdReq) {
	out := outbox{}
	defer out.flush()
	if ra.broken {
		ra.resync("before command")
	}
	if ra.broken {
		for _, r := range batch {
			ra.reject(out, r, room.Errorf(room.EUNAVAILABLE, "the room's store is unavailable; retry"))
		}
		return
	}
	// A command may name something this instance has not heard of yet (a
	// question posted through another instance a moment ago, its event
	// still on the way): read the store first rather than answer
	// not_found. The state holds only committed events here, so this is a
	// plain catch-up.
	for _, r := range batch {
		if ra.unknownReference(r.cmd) {
			ra.resync("unknown reference")
			break
		}
	}
	answered := make([]bool, len(batch))
	for attempt := 1; ; attempt++ {
		now := ra.h.cfg.Now()
		base := ra.state.Seq
		var events []room.Event
		var acks []pendingAck
		for i, r := range batch {
			if answered[i] {
				continue
			}
			key := r.key()
			if seq, ok := ra.state.Applied(key); ok {
				result := ra.results[key]
				if result == nil {
					result = ra.recoverResult(r.cmd.Type, seq)
				}
				acks = append(acks, pendingAck{r: r, seq: seq, result: result})
				continue
			}
			cmd := r.cmd
			cmd.Key = key
			if err := ra.checkSize(cmd); err != nil {
				ra.reject(out, r, err)
				answered[i] = true
				continue
			}
			result := ra.prepare(&cmd)
			evs, err := room.Decide(ra.state, r.c.actor, cmd, now)
			if err != nil {
				ra.reject(out, r, err)
				answered[i] = true
				continue
			}
			if err := room.Apply(ra.state, evs); err != nil {
				ra.reject(out, r, err)
				answered[i] = true
				continue
			}
			if cmd.Type == room.CmdAsk {
				result = map[string]any{"question": evs[len(evs)-1].QuestionID}
			}
			events = append(events, evs...)
			acks = append(acks, pendingAck{r: r, seq: evs[len(evs)-1].Seq, result: result})
		}
		if len(events) == 0 {
			ra.sendAcks(out, acks)
			return
		}
		var snap *room.State
		every := uint64(ra.h.cfg.SnapshotEvery)
		if base/every != ra.state.Seq/every {
			snap = ra.state
		}
		ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
		err := ra.h.store.Append(ctx, ra.id, base, events, snap)
		cancel()
		if err == nil {
			ra.head.Store(ra.state.Seq)
			ra.fanout(events)
			for _, a := range acks {
				if a.result != nil {
					ra.remember(a.r.key(), a.result)
				}
			}
			ra.sendAcks(out, acks)
			out.flush()
			// Only now close what the events disowned, so a facilitator who
			// rotated the keys still gets the ack holding the new ones.
			ra.afterEvents(events)
			return
		}
		// The state holds events that may not be committed: start again
		// from the store, which also fans out whatever others committed.
		ra.broken = true
		if errors.Is(err, ErrSeqConflict) {
			ra.h.m.appendConflict.Inc()
		} else {
			ra.h.m.storeErrors.Inc()
			ra.h.log.Warn("hub: append failed", "room", ra.id, "err", err)
		}
		if errors.Is(err, ErrSeqConflict) && attempt < maxAppendAttempts {
			// Two instances that keep colliding in a vote storm tend to
			// stay in step; a short random pause before reading what the
			// winner committed breaks the step.
			time.Sleep(rand.N(time.Duration(attempt) * appendBackoff))
		}
		ra.resync("append failed")
		if ra.broken || attempt >= maxAppendAttempts || !errors.Is(err, ErrSeqConflict) {
			// An unavailable store may still have committed (a timeout after
			// the write): the reload above tells, and a retried command
			// with the same id is then acknowledged, not applied twice.
			for i, r := range batch {
				if !answered[i] {
					if seq, ok := ra.appliedAfterReload(r); ok {
						ra.sendAcks(out, []pendingAck{{r: r, seq: seq}})
						continue
					}
					ra.reject(out, r, errors.Join(room.Errorf(room.EUNAVAILABLE, "the room's store is unavailable; retry with the same id"), err))
				}
			}
			return
		}
	}
}

func (ra *roomActor) appliedAfterReload(r cmdReq) (uint64, bool) {
	if ra.broken || ra.state == nil {
		return 0, false
	}
	return ra.state.Applied(r.key())
}

// unknownReference reports whether cmd names a question or team that the
// actor's state does not have.
func (ra *roomActor) unknownReference(cmd room.Command) bool {
	if cmd.Question != "" {
		if _, ok := ra.state.Question(cmd.Question); !ok {
			return true
		}
	}
	if cmd.Team != "" {
		if _, ok := ra.state.Team(cmd.Team); !ok {
			return true
		}
	}
	return false
}

// checkSize applies the configured room size limits, which may be lower
// than the domain's ceilings.
func (ra *roomActor) checkSize(cmd room.Command) error {
	l := ra.h.cfg.Limits
	switch {
	case cmd.Type == room.CmdAsk && len(ra.state.Questions) >= l.MaxQuestionsPerRoom:
		return room.Errorf(room.ECONFLICT, "this room has reached its limit of %d questions", l.MaxQuestionsPerRoom)
	case cmd.Type == room.CmdAddTeam && len(ra.state.Teams) >= l.MaxTeamsPerRoom:
		return room.Errorf(room.ECONFLICT, "a room has at most %d teams", l.MaxTeamsPerRoom)
	}
	return nil
}

// prepare fills in what the server generates for a command (fresh keys)
// and returns the ack result that hands them to the facilitator.
func (ra *roomActor) prepare(cmd *room.Command) map[string]any {
	switch cmd.Type {
	case room.CmdAddTeam:
		id := teamIDAfter(ra.state)
		key := newKey() // a room from before derived keys, or no facilitator key at hand
		if ra.facKey != "" {
			key = deriveKey(ra.facKey, teamLabel(id))
		}
		cmd.NewSecrets = &room.Secrets{TeamKeyHashes: map[string]string{"": hashKey(key)}}
		return map[string]any{"team": id, "key": key}
	case room.CmdRotateKeys:
		fac := newKey()
		pres := deriveKey(fac, presenterLabel())
		ns := &room.Secrets{FacilitatorKeyHash: hashKey(fac), PresenterKeyHash: hashKey(pres), TeamKeyHashes: map[string]string{}}
		teams := map[string]string{}
		for _, t := range ra.state.Teams {
			k := deriveKey(fac, teamLabel(t.ID))
			ns.TeamKeyHashes[t.ID] = hashKey(k)
			teams[t.ID] = k
		}
		cmd.NewSecrets = ns
		ra.facKey = fac
		return map[string]any{"facilitatorKey": fac, "presenterKey": pres, "teamKeys": teams}
	case room.CmdRemove:
		cmd.Present = ra.attendeeConnected(cmd.Participant, time.Now())
	}
	return nil
}

// attendeeConnected reports whether attendee pid is connected to the room:
// here, or in the presence names another instance announced (the names
// the facilitator's console lists, and removes from).
func (ra *roomActor) attendeeConnected(pid string, now time.Time) bool {
	for c := range ra.byPeer[pid] {
		if c.actor.Role == room.RoleAttendee {
			return true
		}
	}
	for _, rp := range ra.remote {
		if now.Sub(rp.at) <= presenceExpiry && slices.ContainsFunc(rp.p.Names, func(n room.PresentName) bool { return n.Participant == pid }) {
			return true
		}
	}
	return false
}

// facilitatorKeys derives, from the facilitator key a facilitator joined
// with, the presenter key and every team key whose hash matches what the
// room stores (a key that does not match, from a room made before keys were
// derived or a rotation elsewhere, is left out).
func (ra *roomActor) facilitatorKeys(facKey string) *roomKeys {
	sec := ra.state.Secrets
	out := &roomKeys{Teams: map[string]string{}}
	if k := deriveKey(facKey, presenterLabel()); keyMatches(k, sec.PresenterKeyHash) {
		out.Presenter = k
	}
	for _, t := range ra.state.Teams {
		if k := deriveKey(facKey, teamLabel(t.ID)); keyMatches(k, sec.TeamKeyHashes[t.ID]) {
			out.Teams[t.ID] = k
		}
	}
	return out
}

func teamIDAfter(s *room.State) string {
	return "t" + strconv.Itoa(len(s.Teams)+1)
}

// recoverResult rebuilds the ack result of a command applied elsewhere
// (another instance, or before a restart) from its last event. Keys are
// never stored in plain text, so a retried add_team or rotate_keys is
// acknowledged without them (PROTOCOL.md).
func (ra *roomActor) recoverResult(typ string, seq uint64) map[string]any {
	if typ != room.CmdAsk && typ != room.CmdAddTeam {
		return nil
	}
	var ev *room.Event
	for i := range ra.recent {
		if ra.recent[i].Seq == seq {
			ev = &ra.recent[i]
			break
		}
	}
	if ev == nil && seq > 0 {
		ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
		evs, err := ra.h.store.Since(ctx, ra.id, seq-1)
		cancel()
		if err != nil || len(evs) == 0 || evs[0].Seq != seq {
			return nil
		}
		ev = &evs[0]
	}
	switch {
	case ev == nil:
		return nil
	case typ == room.CmdAsk && ev.Type == room.EvQuestionPosted:
		return map[string]any{"question": ev.QuestionID}
	case typ == room.CmdAddTeam && ev.Type == room.EvTeamAdded:
		return map[string]any{"team": ev.Team}
	}
	return nil
}

func (ra *roomActor) remember(key string, result map[string]any) {
	ra.results[key] = result
	ra.resultOrder = append(ra.resultOrder, key)
	if len(ra.resultOrder) > 1000 {
		delete(ra.results, ra.resultOrder[0])
		ra.resultOrder = ra.resultOrder[1:]
	}
}

func (ra *roomActor) reject(out outbox, r cmdReq, err error) {
	code := errorCode(err)
	if code == room.EINTERNAL {
		ra.h.log.Error("hub: command failed", "room", ra.id, "type", r.cmd.Type, "err", err)
	}
	ra.h.m.commands.WithLabelValues(r.cmd.Type, code).Inc()
	out.add(r.c, errorFrame(r.id, err))
}

func (ra *roomActor) sendAcks(out outbox, acks []pendingAck) {
	for _, a := range acks {
		ra.h.m.commands.WithLabelValues(a.r.cmd.Type, "ok").Inc()
		out.add(a.r.c, mustJSON(ackMsg{Type: msgAck, ID: a.r.id, Seq: a.seq, Result: a.result}))
	}
}

// committed records events that are now durable, fans them out and closes
// the connections they disowned.
func (ra *roomActor) committed(events []room.Event) {
	ra.head.Store(ra.state.Seq)
	ra.fanout(events)
	ra.afterEvents(events)
}

// ---- the bus ----

func (ra *roomActor) drainBus() {
	ra.busMu.Lock()
	items := ra.busQ
	ra.busQ = nil
	ra.busMu.Unlock()
	for _, it := range items {
		switch {
		case it.resync:
			ra.resync("bus resync")
		case it.m.Presence != nil:
			if it.m.Instance != ra.h.cfg.Instance {
				ra.remote[it.m.Instance] = remotePresence{p: *it.m.Presence, at: time.Now()}
			}
		case len(it.m.Events) > 0:
			ra.onBusEvents(it)
		case it.m.Head > 0:
			if !ra.broken && (it.m.Head > ra.state.Seq || it.m.Epoch != "" && it.m.Epoch != ra.epoch) {
				ra.h.m.busGaps.Inc()
				ra.resync("heartbeat ahead")
			}
		}
	}
}

func (ra *roomActor) onBusEvents(it busItem) {
	if ra.broken {
		return // the next resync reads the store
	}
	if it.m.Epoch != "" && it.m.Epoch != ra.epoch {
		ra.resync("epoch changed")
		return
	}
	evs := it.m.Events
	for len(evs) > 0 && evs[0].Seq <= ra.state.Seq {
		evs = evs[1:] // ours, or already filled from the store
	}
	if len(evs) == 0 {
		return
	}
	if evs[0].Seq != ra.state.Seq+1 {
		ra.h.m.busGaps.Inc()
		ra.resync("gap")
		return
	}
	if err := room.Apply(ra.state, evs); err != nil {
		ra.broken = true
		ra.resync("bad bus events")
		return
	}
	if !evs[0].At.IsZero() {
		ra.h.m.busLagSeconds.Observe(time.Since(evs[len(evs)-1].At).Seconds())
	}
	ra.committed(evs)
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
			if len(evs) > 0 && evs[0].Seq == ra.state.Seq+1 && room.Apply(ra.state, evs) == nil {
				ra.committed(evs)
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
	ra.fanout(missed)
	ra.afterEvents(missed)
}

// resnapshotAll sends every local client a fresh snapshot: after an epoch
// change, or when the missed events cannot be listed.
func (ra *roomActor) resnapshotAll() {
	ra.recent = nil
	ra.broadcast = ra.state.Seq
	clear(ra.snapCache)
	for c := range ra.clients {
		c.enqueue(ra.snapshotFor(c))
	}
}

// ---- fan-out ----

// fanout encodes each event once per audience variant and queues the
// frames to every local client. It runs on the actor goroutine; queueing
// never blocks (a full queue closes that client).
func (ra *roomActor) fanout(events []room.Event) {
	if len(events) == 0 {
		return
	}
	start := time.Now()
	ra.broadcast = events[len(events)-1].Seq
	ra.recent = append(ra.recent, events...)
	if n := len(ra.recent) - recentEvents; n > 0 {
		ra.recent = slices.Delete(ra.recent, 0, n)
	}
	enc := newEventEncoder(events, ra.state)
	// Attendees whose own twin of an event differs from the public one (the
	// author of a pending or anonymous question, a voter, a reporter) get
	// a frame of their own.
	authors := map[string]bool{}
	for _, e := range events {
		if e.Question != nil && e.Question.Author != "" {
			authors[e.Question.Author] = true
		}
		switch e.Type {
		case room.EvUpvoted, room.EvUnvoted, room.EvReported:
			if e.Participant != "" {
				authors[e.Participant] = true
			}
		}
	}
	for class, members := range ra.byClass {
		if len(members) == 0 {
			continue
		}
		frame := eventsFrame(ra.epoch, enc.encodeFor(classAudience(class)))
		for c := range members {
			if class == classPublic && authors[c.actor.Participant] {
				continue // gets a frame of its own below
			}
			c.enqueue(frame)
		}
	}
	for pid := range authors {
		for c := range ra.byPeer[pid] {
			if c.class == classPublic {
				c.enqueue(eventsFrame(ra.epoch, enc.encodeFor(c.aud)))
			}
		}
	}
	ra.h.m.deliveries.Add(float64(len(ra.clients)))
	ra.h.m.fanoutSeconds.Observe(time.Since(start).Seconds())
}

// afterEvents closes connections that events disowned: removed attendees
// and connections made with rotated keys.
func (ra *roomActor) afterEvents(events []room.Event) {
	for _, e := range events {
		switch e.Type {
		case room.EvParticipantRemoved:
			for c := range ra.byPeer[e.Participant] {
				c.close(statusRemoved, "removed")
			}
		case room.EvKeysRotated:
			for c := range ra.clients {
				if c.keyGen >= 0 && c.keyGen < ra.state.Secrets.Generation {
					c.close(statusRemoved, "removed: keys were rotated")
				}
			}
		}
	}
}

// eventEncoder caches each event's encoding per variant key, so an event is
// marshalled once per distinct audience variant however many clients get it.
// Every event is cut against end, the room's state after the last of them
// (room.Redact): a range never tells more than a snapshot at its end.
type eventEncoder struct {
	events []room.Event
	end    *room.State
	cache  []map[string][]byte
}

// newEventEncoder encodes events, a contiguous range that ends at end.
func newEventEncoder(events []room.Event, end *room.State) *eventEncoder {
	return &eventEncoder{events: events, end: end, cache: make([]map[string][]byte, len(events))}
}

func (x *eventEncoder) encodeFor(aud room.Audience) [][]byte {
	out := make([][]byte, len(x.events))
	for i, e := range x.events {
		key := room.VariantKey(e, aud)
		if b, ok := x.cache[i][key]; ok {
			out[i] = b
			continue
		}
		b := mustJSON(room.Redact(e, aud, x.end))
		if x.cache[i] == nil {
			x.cache[i] = map[string][]byte{}
		}
		x.cache[i][key] = b
		out[i] = b
	}
	return out
}

// Client classes: every member of a class gets the same bytes, except an
// attendee's own pending or anonymous question.
const (
	classFacilitator = "facilitator"
	classPublic      = "public"
	classTeamPrefix  = "team:"
)

func classOf(a room.Actor) string {
	switch a.Role {
	case room.RoleFacilitator:
		return classFacilitator
	case room.RoleTeam:
		return classTeamPrefix + a.Team
	}
	return classPublic
}

func classAudience(class string) room.Audience {
	switch {
	case class == classFacilitator:
		return room.AudienceOf(room.FacilitatorActor())
	case len(class) > len(classTeamPrefix) && class[:len(classTeamPrefix)] == classTeamPrefix:
		t := class[len(classTeamPrefix):]
		return room.Audience{Role: room.RoleTeam, Team: t, Participant: "team:" + t}
	}
	return room.Audience{Role: room.RoleAttendee}
}

// ---- joining ----

// snapshotFor encodes a snapshot for c. Views shared by a whole class are
// cached per sequence; an attendee with votes or questions of their own
// gets a personal view, also cached at the head, so that one who resumes
// again and again (at most one resume in flight, and rate-limited)
// costs one encoding per head, however many connections it uses. The
// personal cache is the room's, bounded in bytes, rather than the
// connection's: an idle connection holds no view.
func (ra *roomActor) snapshotFor(c *Client) []byte {
	var view []byte
	pid := c.actor.Participant
	if ra.personalSeq != ra.state.Seq || ra.personalEpoch != ra.epoch {
		ra.personal, ra.personalBytes = nil, 0
		ra.personalEpoch, ra.personalSeq = ra.epoch, ra.state.Seq
	}
	if v, ok := ra.personal[pid]; ok && c.class == classPublic {
		view = v
	} else if c.class == classPublic && hasPersonal(ra.state, pid) {
		view = mustJSON(room.View(ra.state, c.aud))
		if len(view) <= maxPersonalCache {
			if ra.personalBytes+len(view) > maxPersonalCache {
				ra.personal, ra.personalBytes = nil, 0 // the newest wins
			}
			if ra.personal == nil {
				ra.personal = map[string][]byte{}
			}
			ra.personal[pid] = view
			ra.personalBytes += len(view)
		}
	} else if cv, ok := ra.snapCache[c.class]; ok && cv.seq == ra.state.Seq {
		view = cv.data
	} else {
		view = mustJSON(room.View(ra.state, classAudience(c.class)))
		ra.snapCache[c.class] = cachedView{seq: ra.state.Seq, data: view}
	}
	return snapshotFrame(ra.epoch, ra.state.Seq, ra.h.cfg.Now().UnixMilli(), view, ra.presenceJSON(c.class))
}

func hasPersonal(s *room.State, pid string) bool {
	if pid == "" {
		return false
	}
	for _, q := range s.Questions {
		if q.Author == pid || q.Voters[pid] || q.Reporters[pid] {
			return true
		}
	}
	return false
}

// hello is what a joining client asked for.
type hello struct {
	key, name, participant, token, epoch string
	seq                                  uint64
}

// join authenticates c, registers it and queues its welcome and its
// snapshot or missed events, all on the actor goroutine so that no event
// falls between the snapshot and the live stream.
func (ra *roomActor) join(c *Client, hi hello) (code websocket.StatusCode, reason string) {
	if ra.broken {
		ra.resync("join")
		if ra.broken {
			return statusTryAgainLater, "store unavailable"
		}
	}
	if len(ra.clients) >= ra.h.cfg.Limits.MaxConnsPerRoom {
		return statusTooMany, "too many connections: the room is full"
	}
	actor, gen, token, err := ra.authenticate(hi, c.addr)
	if err != nil {
		switch errorCode(err) {
		case room.ERATELIMITED:
			return statusTooMany, "too many new participants from your address; retry later"
		case room.EINVALID:
			return statusProtocol, closeReason("protocol error: " + errorMessage(err))
		}
		return statusUnauthorized, errorMessage(err)
	}
	c.actor, c.aud, c.class, c.keyGen = actor, room.AudienceOf(actor), classOf(actor), gen
	var keys *roomKeys
	if actor.Role == room.RoleFacilitator {
		ra.facKey = hi.key
		keys = ra.facilitatorKeys(hi.key)
	}
	c.enqueue(mustJSON(welcomeMsg{
		Type: msgWelcome, Role: actor.Role, Participant: actor.Participant, Token: token,
		Name: actor.Name, Team: actor.Team, Epoch: ra.epoch, Now: ra.h.cfg.Now().UnixMilli(),
		Keys: keys,
	}))
	ra.sendCatchUp(c, hi.epoch, hi.seq)
	ra.clients[c] = struct{}{}
	addTo(ra.byClass, c.class, c)
	addTo(ra.byPeer, actor.Participant, c)
	ra.counts.count(actor, 1, len(ra.byPeer[actor.Participant]) == 1)
	ra.localDirty = true
	ra.h.m.connections.WithLabelValues(string(actor.Role)).Inc()
	return 0, ""
}

// sendCatchUp queues what a client that has (epoch, seq) misses: the events
// after seq when they are at hand, else a snapshot. Never a partial replay.
func (ra *roomActor) sendCatchUp(c *Client, epoch string, seq uint64) {
	if epoch == ra.epoch && seq > ra.state.Seq && !ra.broken {
		// The client has seen more than this instance (it comes from a
		// faster one): catch up from the store rather than send it a
		// snapshot that would take it backwards.
		ra.resync("client ahead")
	}
	cur := ra.state.Seq
	if epoch != ra.epoch || seq == 0 || seq > cur || cur-seq > maxResumeGap {
		c.enqueue(ra.snapshotFor(c))
		return
	}
	var missed []room.Event
	if len(ra.recent) > 0 && ra.recent[0].Seq <= seq+1 {
		i := int(seq + 1 - ra.recent[0].Seq)
		missed = ra.recent[i:]
	} else if cur > seq {
		ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
		evs, err := ra.h.store.Since(ctx, ra.id, seq)
		cancel()
		if err != nil || len(evs) == 0 || evs[0].Seq != seq+1 {
			c.enqueue(ra.snapshotFor(c))
			return
		}
		missed = slices.DeleteFunc(evs, func(e room.Event) bool { return e.Seq > cur })
	}
	if len(missed) > 0 && missed[len(missed)-1].Seq != cur {
		c.enqueue(ra.snapshotFor(c))
		return
	}
	c.enqueue(eventsFrame(ra.epoch, newEventEncoder(missed, ra.state).encodeFor(c.aud)))
}

// authenticate turns a hello into an actor. gen is the key generation for
// key-based roles (-1 for attendees); token is the token an attendee keeps
// (PROTOCOL.md, welcome): it carries the attendee's display name, so a
// resume without a name keeps the name on any instance and after a
// restart, and a rename answers a new one. A hello that mixes a key with
// an attendee's fields, or carries nothing to go by, is invalid (4000);
// a wrong key or token is unauthorized (4001).
func (ra *roomActor) authenticate(hi hello, addr string) (actor room.Actor, gen int, token string, err error) {
	sec := ra.state.Secrets
	unauthorized := room.Errorf(EUNAUTHORIZED, "unauthorized")
	if hi.key != "" {
		switch {
		case hi.name != "":
			return room.Actor{}, 0, "", room.Errorf(room.EINVALID, "name: a hello with a key carries no name")
		case hi.participant != "" || hi.token != "":
			return room.Actor{}, 0, "", room.Errorf(room.EINVALID, "key: a hello carries a key, or a participant and token, not both")
		}
		switch {
		case keyMatches(hi.key, sec.FacilitatorKeyHash):
			return room.FacilitatorActor(), sec.Generation, "", nil
		case keyMatches(hi.key, sec.PresenterKeyHash):
			return room.Actor{Role: room.RolePresenter, Participant: "presenter", Name: "Presenter"}, sec.Generation, "", nil
		}
		// Every team hash is compared, so timing does not tell which matched.
		var found *room.Team
		for i := range ra.state.Teams {
			t := &ra.state.Teams[i]
			if keyMatches(hi.key, sec.TeamKeyHashes[t.ID]) {
				found = t
			}
		}
		if found != nil {
			return room.TeamActor(*found), sec.Generation, "", nil
		}
		return room.Actor{}, 0, "", unauthorized
	}
	if hi.participant != "" || hi.token != "" {
		carried, ok := checkToken(sec.ParticipantSecret, hi.participant, hi.token)
		if !ok {
			return room.Actor{}, 0, "", unauthorized
		}
		if ra.state.Removed[hi.participant] {
			return room.Actor{}, 0, "", room.Errorf(EUNAUTHORIZED, "removed from this room")
		}
		name, err := displayName(hi.name, carried)
		if err != nil {
			return room.Actor{}, 0, "", err
		}
		return room.Actor{Role: room.RoleAttendee, Participant: hi.participant, Name: name}, -1,
			participantToken(sec.ParticipantSecret, hi.participant, name), nil
	}
	if hi.name == "" {
		return room.Actor{}, 0, "", room.Errorf(room.EINVALID, "hello needs a key, a name, or a participant and token")
	}
	name, err := displayName(hi.name, "")
	if err != nil {
		return room.Actor{}, 0, "", err
	}
	// Minting identities is limited per address and room, so one client
	// cannot stuff the ballot with fresh identities.
	if ok, d := ra.h.addrIdentities.allow(addr+"|"+ra.id, time.Now()); !ok {
		return room.Actor{}, 0, "", rateLimitedError("new participants", d)
	}
	pid := newParticipantID()
	return room.Actor{Role: room.RoleAttendee, Participant: pid, Name: name}, -1, participantToken(sec.ParticipantSecret, pid, name), nil
}

// guestName is the name of an attendee resuming with a token from before
// tokens carried names, and no name in its hello.
const guestName = "Guest"

// displayName is the name an attendee goes by: the one its hello gives
// (a rename), else the one its token carries, else guestName. It is
// checked either way: a carried name was checked when it was signed, but
// the rules may have changed since.
func displayName(given, carried string) (string, error) {
	name := cmp.Or(given, carried, guestName)
	if err := room.ValidateDisplayName(name); err != nil {
		return "", err
	}
	return name, nil
}

func addTo(m map[string]map[*Client]struct{}, k string, c *Client) {
	if m[k] == nil {
		m[k] = map[*Client]struct{}{}
	}
	m[k][c] = struct{}{}
}

func removeFrom(m map[string]map[*Client]struct{}, k string, c *Client) {
	delete(m[k], c)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// leave unregisters c.
func (ra *roomActor) leave(c *Client) {
	if _, ok := ra.clients[c]; !ok {
		return
	}
	delete(ra.clients, c)
	removeFrom(ra.byClass, c.class, c)
	removeFrom(ra.byPeer, c.actor.Participant, c)
	ra.counts.count(c.actor, -1, len(ra.byPeer[c.actor.Participant]) == 0)
	ra.localDirty = true
	ra.h.m.connections.WithLabelValues(string(c.actor.Role)).Dec()
}

// ---- presence ----

// presenceCounts count local connections the way room.Presence does.
type presenceCounts struct {
	facilitators int            // connections
	teams        map[string]int // team id -> team-lead connections
	presenters   int            // connections
	attendees    int            // distinct participants
}

// count adds (d = 1) or removes (d = -1) one connection of a; edge says
// it is its participant's first connection (or was the last).
func (pc *presenceCounts) count(a room.Actor, d int, edge bool) {
	switch a.Role {
	case room.RoleFacilitator:
		pc.facilitators += d
	case room.RoleTeam:
		if pc.teams == nil {
			pc.teams = map[string]int{}
		}
		if pc.teams[a.Team] += d; pc.teams[a.Team] <= 0 {
			delete(pc.teams, a.Team)
		}
	case room.RolePresenter:
		pc.presenters += d
	case room.RoleAttendee:
		if edge {
			pc.attendees += d
		}
	}
}

// localPresence is this instance's presence. Names (the attendees'
// display names, for the facilitator) take a walk over the clients, so
// only the facilitator's presence and the bus announcement ask for them.
func (ra *roomActor) localPresence(names bool) room.Presence {
	pc := &ra.counts
	p := room.Presence{Facilitator: pc.facilitators > 0, Teams: maps.Clone(pc.teams), Attendees: pc.attendees, Presenters: pc.presenters}
	if p.Teams == nil {
		p.Teams = map[string]int{}
	}
	for pid, cs := range ra.byPeer {
		if !names || len(p.Names) >= maxPresenceNames {
			break
		}
		for c := range cs {
			if c.actor.Role == room.RoleAttendee {
				p.Names = append(p.Names, room.PresentName{Participant: pid, Name: c.actor.Name})
			}
			break
		}
	}
	return p
}

func (ra *roomActor) mergedPresence(now time.Time, names bool) room.Presence {
	p := ra.localPresence(names)
	for inst, rp := range ra.remote {
		if now.Sub(rp.at) > presenceExpiry {
			delete(ra.remote, inst)
			continue
		}
		p = p.Merge(rp.p)
	}
	if len(p.Names) > maxPresenceNames {
		p.Names = p.Names[:maxPresenceNames]
	}
	return p
}

func (ra *roomActor) presenceJSON(class string) []byte {
	p := ra.mergedPresence(time.Now(), class == classFacilitator)
	return mustJSON(p.For(classAudience(class)))
}

// tickPresence publishes this instance's presence when it changed (or
// every few seconds, so others can expire a dead instance), and sends
// clients the merged presence when it changed, at most once per tick.
func (ra *roomActor) tickPresence(now time.Time) {
	if ra.localDirty || now.Sub(ra.presenceAt) >= presenceRepublish {
		lp := ra.localPresence(true)
		ra.h.publishAsync(Message{Room: ra.id, Presence: &lp, Instance: ra.h.cfg.Instance})
		ra.presenceAt, ra.localDirty = now, false
	}
	_, facilitators := ra.byClass[classFacilitator]
	merged := ra.mergedPresence(now, facilitators)
	// Only the facilitator's presence differs (names): two encodings per
	// tick however many team classes there are.
	var public, withNames []byte
	for class, members := range ra.byClass {
		var frame []byte
		if class == classFacilitator {
			if withNames == nil {
				withNames = mustJSON(presenceMsg{Type: msgPresence, Presence: merged.For(classAudience(class))})
			}
			frame = withNames
		} else {
			if public == nil {
				public = mustJSON(presenceMsg{Type: msgPresence, Presence: merged.For(classAudience(classPublic))})
			}
			frame = public
		}
		if string(frame) == string(ra.sentPresence[class]) {
			continue
		}
		ra.sentPresence[class] = frame
		for c := range members {
			c.enqueue(frame)
		}
	}
	for class := range ra.sentPresence {
		if _, ok := ra.byClass[class]; !ok {
			delete(ra.sentPresence, class)
		}
	}
}
