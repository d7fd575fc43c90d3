package hub

// The commit path of a room actor: decide a batch of commands against the
// room's state, append their events to the store in one compare-and-set,
// answer every command, and recover when another instance won the race.

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/leveling/workshop/room"
)

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
	began := time.Now()
	for attempt := 1; ; attempt++ {
		now := ra.h.cfg.Now()
		base := ra.state.Seq
		tent := room.NewTentative(ra.state)
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
			if err := tent.Apply(evs); err != nil {
				ra.reject(out, r, err)
				answered[i] = true
				continue
			}
			result = withResult(room.Result(cmd.Type, evs), result)
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
		appendStart := time.Now()
		err := ra.h.store.Append(ctx, ra.id, base, events, snap)
		cancel()
		if err == nil {
			ra.h.m.appendSeconds.Observe(time.Since(appendStart).Seconds())
			for _, a := range acks {
				if a.result != nil {
					ra.remember(a.r.key(), a.result)
				}
			}
			ra.sendAcks(out, acks)
			ra.committed(events, out)
			return
		}
		// The state holds events that are not committed. Lost to another
		// instance, a batch of votes, reports and hands is taken back and
		// the state catches up with the winner's events alone (votes
		// commute: the batch then decides again on top of them); anything
		// else, or a store that failed, starts again from the store. Either
		// way whatever others committed is fanned out.
		conflict := errors.Is(err, ErrSeqConflict)
		rebased := conflict && tent.Revert()
		if !rebased {
			ra.broken = true
		}
		if conflict {
			ra.h.m.appendConflict.Inc()
		} else {
			ra.h.m.storeErrors.Inc()
			ra.h.log.Warn("hub: append failed", "room", ra.id, "err", err)
		}
		// A lost race is tried again for as long as one store call may
		// take, not only maxAppendAttempts times: the store answered, so
		// it is well and moving, and "unavailable" would be false. A race
		// of votes alone costs one read of the winner's events, anything
		// else a reload; in a vote storm over two instances a reveal lost
		// twelve races in a row.
		retry := conflict && (attempt < maxAppendAttempts || time.Since(began) < storeTimeout)
		if retry {
			// Two instances that keep colliding in a vote storm tend to
			// stay in step; a short random pause before reading what the
			// winner committed breaks the step.
			time.Sleep(rand.N(time.Duration(min(attempt, maxAppendAttempts)) * appendBackoff))
		}
		ra.resync("append failed")
		if ra.broken || ra.lagging || !retry {
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
		id := ra.state.NextTeamID()
		key := newKey() // a room from before derived keys, or no facilitator key at hand
		if ra.facKey != "" {
			key = deriveKey(ra.facKey, teamLabel(id))
		}
		cmd.NewSecrets = &room.Secrets{TeamKeyHashes: map[string]string{id: hashKey(key)}}
		return map[string]any{"key": key}
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

// recoverResult rebuilds the ack result of a command applied elsewhere
// (another instance, or before a restart) from its last event. Keys are
// never stored in plain text, so a retried add_team or rotate_keys is
// acknowledged without them (PROTOCOL.md).
func (ra *roomActor) recoverResult(typ string, seq uint64) map[string]any {
	if !room.CarriesResult(typ) || seq == 0 {
		return nil
	}
	for i := range ra.recent {
		if ra.recent[i].Seq == seq {
			return room.Result(typ, ra.recent[i:i+1])
		}
	}
	ctx, cancel := context.WithTimeout(ra.h.ctx, storeTimeout)
	evs, err := ra.h.store.Since(ctx, ra.id, seq-1)
	cancel()
	if err != nil || len(evs) == 0 || evs[0].Seq != seq {
		return nil
	}
	return room.Result(typ, evs[:1])
}

// withResult adds to the domain's result of a command (room.Result) what
// the hub made for it (fresh keys); either may be nil.
func withResult(domain, hub map[string]any) map[string]any {
	if domain == nil {
		return hub
	}
	maps.Copy(domain, hub)
	return domain
}

func (ra *roomActor) remember(key string, result map[string]any) {
	ra.results[key] = result
	ra.resultOrder = append(ra.resultOrder, key)
	if len(ra.resultOrder) > rememberedResults {
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

// committed records events that are now durable, whoever committed them:
// the head moves, every local client gets them, the answers in out (the
// acks of the commands that made them; nil for events from elsewhere) go
// out, and only then are the connections the events disowned closed, so a
// facilitator who rotated the keys still gets the ack holding the new ones.
func (ra *roomActor) committed(events []room.Event, out outbox) {
	ra.head.Store(ra.state.Seq)
	ra.fanout(events)
	out.flush()
	ra.afterEvents(events)
}

// applyCommitted applies events that others committed (read from the bus
// or the store) and that continue the state, then hands them on as
// committed. An event that does not apply leaves the state unusable: the
// actor is marked broken and reloads before its next use.
func (ra *roomActor) applyCommitted(evs []room.Event) bool {
	if err := room.Apply(ra.state, evs); err != nil {
		ra.broken = true
		ra.h.log.Warn("hub: committed events do not apply", "room", ra.id, "from", evs[0].Seq, "err", err)
		return false
	}
	ra.committed(evs, nil)
	return true
}
