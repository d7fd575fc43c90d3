package hub

// Joining a room: authenticating a hello, registering the client, and the
// welcome and snapshot or missed events that start its stream; leaving.

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/room"
)

type cachedView struct {
	seq  uint64
	data []byte
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
	if v, ok := ra.personal[pid]; ok && c.class == room.ClassPublic {
		view = v
	} else if c.class == room.ClassPublic && room.HasPersonalView(ra.state, pid) {
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
		view = mustJSON(room.View(ra.state, room.ClassAudience(c.class)))
		ra.snapCache[c.class] = cachedView{seq: ra.state.Seq, data: view}
	}
	return snapshotFrame(ra.epoch, ra.state.Seq, ra.h.cfg.Now().UnixMilli(), view, ra.presenceJSON(c.class))
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
	c.actor, c.aud, c.class, c.keyGen = actor, room.AudienceOf(actor), room.ClassOf(room.AudienceOf(actor)), gen
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
	c.enqueue(eventsFrame(newEventEncoder(missed, ra.state).encodeFor(c.aud)))
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
			return room.PresenterActor(), sec.Generation, "", nil
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
	if hi.token != "" && hi.participant == "" {
		// Malformed rather than a failed login (a participant without its
		// token is that: unauthorized below).
		return room.Actor{}, 0, "", room.Errorf(room.EINVALID, "participant: a hello with a token needs its participant")
	}
	if hi.participant != "" {
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
