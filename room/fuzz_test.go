package room

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// A scenario is a room driven by a byte string: the first byte picks the
// number of teams, then every 4 bytes are one command (actor, type and two
// argument bytes) from a facilitator, a presenter screen, four attendees and
// the team leads. Every rationale, question text and key hash is a unique
// marker, so leaks can be found in the bytes each audience gets.

// A fuzz run is at most maxSteps commands: the fuzzer minimizes every new
// interesting input, at a cost quadratic in its length, so inputs stay
// short (97 bytes) and the long runs are TestRoomProperties' job.
const (
	stepBytes = 4
	maxSteps  = 24
)

// scenario is the state of one run.
type scenario struct {
	t      testing.TB
	s      *State // evolved event by event
	log    []Event
	now    time.Time
	actors []Actor
	auds   []Audience
	c      *secrecyChecker
	n      int // marker counter
	stats  scenarioStats
}

// scenarioStats say what a run exercised, so the property test can check
// the generator reaches every event and error.
type scenarioStats struct {
	events   map[string]int
	codes    map[string]int
	variants int // events where two audiences shared a VariantKey
}

func newScenario(t testing.TB, teams int) *scenario {
	names := []string{"Payments", "Search", "Identity"}[:teams]
	evs, err := Create(CreateParams{ID: "fuzz", Code: "FUZZCODE", Title: "Fuzz", Model: fuzzModel(),
		TeamNames: names, Secrets: testSecrets(teams), Now: t0})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	sc := &scenario{t: t, s: &State{}, now: t0, c: newSecrecyChecker(),
		stats: scenarioStats{events: map[string]int{}, codes: map[string]int{}}}
	sc.actors = []Actor{fac, presenter}
	for i := range 4 {
		sc.actors = append(sc.actors, Actor{Role: RoleAttendee, Participant: fmt.Sprintf("p_a%d", i), Name: fmt.Sprintf("A%d", i)})
	}
	for i, name := range names {
		sc.actors = append(sc.actors, TeamActor(Team{ID: fmt.Sprintf("t%d", i+1), Name: name}))
	}
	sc.auds = []Audience{{}}
	for _, a := range sc.actors {
		sc.auds = append(sc.auds, AudienceOf(a))
	}
	sc.commit(evs)
	return sc
}

// commit checks and applies events the way the hub does: in order, each
// redacted for every audience.
func (sc *scenario) commit(evs []Event) {
	t := sc.t
	t.Helper()
	for i, e := range evs {
		if got, want := e.Seq, sc.s.Seq+uint64(i)+1; got != want {
			t.Fatalf("%s: seq got %d, want %d", e.Type, got, want)
		}
	}
	for _, e := range evs {
		sc.c.learn(e)
		if err := Apply(sc.s, []Event{e}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		sc.log = append(sc.log, e)
		sc.stats.events[e.Type]++
		if sc.c.checkEvent(t, e, sc.s, sc.auds) > 0 {
			sc.stats.variants++
		}
		sc.checkClasses(e)
	}
}

// checkClasses checks the classes the hub encodes by: every audience that
// PersonalIn does not name gets its class's twin of e, byte for byte.
func (sc *scenario) checkClasses(e Event) {
	t := sc.t
	t.Helper()
	personal := PersonalIn(e)
	for _, aud := range sc.auds {
		if slices.Contains(personal, aud.Participant) {
			continue
		}
		class := ClassOf(aud)
		got, want := mustJSON(t, Redact(e, aud, sc.s)), mustJSON(t, Redact(e, ClassAudience(class), sc.s))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s #%d for %s: got %s, want its class %q's %s (PersonalIn names %v)", e.Type, e.Seq, audName(aud), got, class, want, personal)
		}
	}
}

func (sc *scenario) marker(prefix string) string {
	sc.n++
	return fmt.Sprintf("%s%06dX", prefix, sc.n)
}

var fuzzSeconds = [8]int{0, 1, 9, 10, 60, 180, 3600, 3601}

// command builds a command of type typ from two argument bytes, with every
// field filled; step clears those the type does not take (onlyItsFields).
func (sc *scenario) command(typ string, actor Actor, a1, a2 byte) Command {
	s := sc.s
	c := Command{Type: typ, Key: sc.marker(cmdKeyMarker)}
	aspects := s.Model.Aspects
	if i := int(a1) % (len(aspects) + 2); i < len(aspects) {
		c.Aspect = aspects[i].ID
	} else if i == len(aspects)+1 {
		c.Aspect = "nope"
	}
	if a2&8 != 0 {
		if i := int(a2>>4) % (len(sc.actors) + 2); i < len(sc.actors) {
			c.Participant = sc.actors[i].Participant
		} else if i == len(sc.actors) {
			c.Participant = "p_unknown"
		}
	} else if i := int(a1>>3) % (len(s.Teams) + 2); i < len(s.Teams) {
		c.Team = s.Teams[i].ID
	} else if i == len(s.Teams)+1 {
		c.Team = "t99"
	}
	if i := int(a1) % (len(s.Questions) + 2); i > 0 {
		c.Question = fmt.Sprintf("q%d", i)
	}
	c.Level = int(a2%7) - 1
	switch {
	case a2&0x60 == 0x60:
		c.Rationale = strings.Repeat(sc.marker("RAT"), MaxRationaleLen/8)
	case a2&0x10 == 0:
		c.Rationale = sc.marker("RAT")
	}
	switch a1 & 0xc0 {
	case 0xc0:
		c.Text = strings.Repeat(sc.marker("TXT"), MaxQuestionLen/8)
	case 0x80:
		c.Text = " "
	default:
		c.Text = sc.marker("TXT")
	}
	c.On, c.Anonymous = a2&1 != 0, a2&2 != 0
	c.Seconds = fuzzSeconds[(a1>>2)%8]
	c.Action = int(a2>>5) % 4
	c.Name = fmt.Sprintf("Team %d", a1%8)
	var list []string
	if typ == CmdSetAgenda {
		list = s.Agenda
	} else {
		aspect := c.Aspect
		if aspect == "" {
			aspect = s.Aspect
		}
		list = s.Queues[aspect]
	}
	if len(list) > 0 {
		k := int(a1) % len(list)
		c.Order = append(slices.Clone(list[k:]), list[:k]...)
		if a2&4 != 0 {
			c.Order = c.Order[1:]
		}
	}
	switch typ {
	case CmdAddTeam:
		c.NewSecrets = &Secrets{TeamKeyHashes: map[string]string{s.NextTeamID(): sc.marker("SECRETFUZZ")}}
	case CmdRotateKeys:
		ns := &Secrets{FacilitatorKeyHash: sc.marker("SECRETFUZZ"), PresenterKeyHash: sc.marker("SECRETFUZZ"), TeamKeyHashes: map[string]string{}}
		for _, tm := range s.Teams {
			ns.TeamKeyHashes[tm.ID] = sc.marker("SECRETFUZZ")
		}
		if a2&0x40 != 0 {
			ns.ParticipantSecret = sc.marker("SECRETFUZZ")
		}
		c.NewSecrets = ns
	}
	return c
}

// step decides and commits one command.
func (sc *scenario) step(b [stepBytes]byte) {
	t := sc.t
	t.Helper()
	typ := CommandTypes[int(b[1])%len(CommandTypes)]
	// Mostly an actor whose role may send the command, so runs get far;
	// with the two top bits set any actor, so permissions are tried too.
	actors := sc.actors
	if b[0]&0xc0 != 0xc0 {
		actors = slices.DeleteFunc(slices.Clone(sc.actors), func(a Actor) bool {
			return !slices.Contains(allowedRoles[typ], a.Role)
		})
	}
	actor := actors[int(b[0]&0x3f)%len(actors)]
	sc.now = sc.now.Add(time.Duration(b[2]%16) * 5 * time.Second)
	if typ == CmdAddTeam {
		// A new team's lead joins the actors and audiences.
		defer func() {
			for _, tm := range sc.s.Teams[len(sc.actors)-6:] {
				sc.actors = append(sc.actors, TeamActor(tm))
				sc.auds = append(sc.auds, AudienceOf(TeamActor(tm)))
			}
		}()
	}
	cmd := sc.command(typ, actor, b[2], b[3])
	if b[1]>>5 != 7 {
		// Mostly only the fields the type takes, so runs get far; one
		// step in eight keeps them all, so refusals of the others are
		// tried too.
		cmd = onlyItsFields(cmd)
	}
	// Decide must not change the state: finish replays the log, which
	// would then differ from the evolved state (and TestDecide compares
	// the state before and after every case).
	evs, err := Decide(sc.s, actor, cmd, sc.now)
	code := ErrorCode(err)
	sc.stats.codes[code]++
	switch code {
	case "", EINVALID, EFORBIDDEN, ENOTFOUND, ECONFLICT:
	default:
		t.Fatalf("Decide(%s by %s): got %v, want success or a client error", typ, actor.Participant, err)
	}
	// The role is checked first, then a closed room, then a removal.
	if !slices.Contains(allowedRoles[typ], actor.Role) || sc.s.Removed[actor.Participant] && sc.s.Phase != PhaseClosed {
		if code != EFORBIDDEN {
			t.Fatalf("Decide(%s by %s): got %q (%v), want forbidden", typ, actor.Participant, code, err)
		}
	}
	if err != nil {
		return
	}
	if len(evs) == 0 {
		t.Fatalf("Decide(%s by %s): no events and no error", typ, actor.Participant)
	}
	sc.commit(evs)
}

// finish checks the whole run: contiguous log, replay, views, invariants.
func (sc *scenario) finish() {
	t := sc.t
	t.Helper()
	for i, e := range sc.log {
		if e.Seq != uint64(i)+1 {
			t.Fatalf("log[%d].seq: got %d, want %d", i, e.Seq, i+1)
		}
	}
	want := mustJSON(t, sc.s)
	replayed, err := Replay(sc.log)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if got := mustJSON(t, replayed); !bytes.Equal(got, want) {
		t.Fatalf("Replay differs from the evolved state:\n got %s\nwant %s", got, want)
	}
	// The log as a store keeps it: each event through JSON.
	stored := make([]Event, len(sc.log))
	for i, e := range sc.log {
		if err := json.Unmarshal(mustJSON(t, e), &stored[i]); err != nil {
			t.Fatalf("decode event %d: %v", i+1, err)
		}
	}
	fromStore, err := Replay(stored)
	if err != nil {
		t.Fatalf("Replay of stored events: %v", err)
	}
	if got := mustJSON(t, fromStore); !bytes.Equal(got, want) {
		t.Fatalf("Replay of stored events differs:\n got %s\nwant %s", got, want)
	}
	for _, aud := range sc.auds {
		sc.c.checkView(t, sc.s, aud)
		if !HasPersonalView(sc.s, aud.Participant) {
			got, want := mustJSON(t, View(sc.s, aud)), mustJSON(t, View(sc.s, ClassAudience(ClassOf(aud))))
			if !bytes.Equal(got, want) {
				t.Fatalf("View for %s: got %s, want its class's %s (HasPersonalView says it has nothing of its own)", audName(aud), got, want)
			}
		}
	}
	sc.checkInvariants()
	res := ComputeResults(sc.s)
	public := sc.c.forbidden(sc.s, Audience{}, revealedRationales(sc.s))
	for _, out := range [][]byte{res.JSON(), res.CSV(), res.Markdown()} {
		if l := leaks(out, public); len(l) > 0 {
			t.Fatalf("results: got %v in them, want none", l)
		}
	}
}

func (sc *scenario) checkInvariants() {
	t, s := sc.t, sc.s
	t.Helper()
	for i, q := range s.Questions {
		if q.ID != fmt.Sprintf("q%d", i+1) {
			t.Errorf("questions[%d].id: got %q, want q%d", i, q.ID, i+1)
		}
		if q.Votes != len(q.Voters) {
			t.Errorf("%s: got %d votes from %d voters, want them equal", q.ID, q.Votes, len(q.Voters))
		}
		if q.Hidden && s.Highlighted == q.ID || q.Pending && s.Highlighted == q.ID {
			t.Errorf("%s is highlighted while hidden or pending", q.ID)
		}
	}
	seen := map[string]bool{}
	for _, h := range s.Hands {
		if seen[h.Participant] || s.Removed[h.Participant] {
			t.Errorf("hand of %s: twice or removed", h.Participant)
		}
		seen[h.Participant] = true
	}
	if len(s.Teams) > MaxTeams {
		t.Errorf("teams: got %d, want at most %d", len(s.Teams), MaxTeams)
	}
	for _, a := range s.Model.Aspects {
		if got := s.Queues[a.ID]; !sameSet(got, teamIDs(s.Teams)) {
			t.Errorf("queue %s: got %v, want every team once", a.ID, got)
		}
	}
	if !sameSet(s.Agenda, aspectIDs(s.Model)) {
		t.Errorf("agenda: got %v, want every aspect once", s.Agenda)
	}
	for team, byAspect := range s.Scores {
		for aspect, a := range byAspect {
			if a.Submitted && (a.Level < 1 || a.Level > s.Model.NumLevels()) || a.DraftLevel < 0 || a.DraftLevel > s.Model.NumLevels() {
				t.Errorf("score %s/%s: got %+v, want levels in range", team, aspect, a)
			}
		}
	}
	if s.Turn != nil && s.Phase != PhaseRunning {
		t.Errorf("turn in phase %s", s.Phase)
	}
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func aspectIDs(m Model) []string {
	out := make([]string, len(m.Aspects))
	for i, a := range m.Aspects {
		out[i] = a.ID
	}
	return out
}

// fuzzModel is a small model (three aspects, four levels, no
// descriptions): runs hit the same aspect often, and copies of the state
// stay cheap, which keeps the fuzzer fast.
func fuzzModel() Model {
	cells := []Cell{{Label: "L1"}, {Label: "L2"}, {Label: "L3"}, {Label: "L4"}}
	return Model{ID: "small", Name: "Small",
		Levels: []Level{{Name: "One"}, {Name: "Two"}, {Name: "Three"}, {Name: "Four"}},
		Aspects: []Aspect{
			{ID: "a", Name: "A", Cells: cells},
			{ID: "b", Name: "B", Cells: cells},
			{ID: "c", Name: "C", Cells: cells},
		}}
}

// runScenario runs the room that data describes and answers what it
// exercised.
func runScenario(t testing.TB, data []byte) scenarioStats {
	return runScenarioSteps(t, data, maxSteps)
}

func runScenarioSteps(t testing.TB, data []byte, steps int) scenarioStats {
	teams := 2
	if len(data) > 0 {
		teams += int(data[0] % 2)
		data = data[1:]
	}
	sc := newScenario(t, teams)
	for i := 0; i+stepBytes <= len(data) && i/stepBytes < steps; i += stepBytes {
		sc.step([stepBytes]byte(data[i : i+stepBytes]))
	}
	sc.finish()
	return sc.stats
}

// seedActors are the actors of a three-team scenario, in newScenario's
// order.
var seedActors = []string{"facilitator", "presenter", "p_a0", "p_a1", "p_a2", "p_a3", "team:t1", "team:t2", "team:t3"}

// seedStep encodes one command for the seed corpus: who sends it (a
// participant of seedActors), its type and its two argument bytes.
func seedStep(who string, typ string, a1, a2 byte) []byte {
	roleOf := func(p string) Role {
		switch {
		case p == "facilitator":
			return RoleFacilitator
		case p == "presenter":
			return RolePresenter
		case strings.HasPrefix(p, "team:"):
			return RoleTeam
		}
		return RoleAttendee
	}
	var permitted []string
	for _, p := range seedActors {
		if slices.Contains(allowedRoles[typ], roleOf(p)) {
			permitted = append(permitted, p)
		}
	}
	b0 := byte(slices.Index(permitted, who))
	if !slices.Contains(permitted, who) {
		b0 = 0xc0 | byte(slices.Index(seedActors, who))
	}
	return []byte{b0, byte(slices.Index(CommandTypes, typ)), a1, a2}
}

// The seed corpus: short workshops in the small model (aspects a, b, c).
// Argument byte a1 picks the aspect a1%5 (3: the current one), the
// question a1%(questions+2) and the team (a1>>3)%(teams+2); a2 picks the
// level a2%7-1, the action (a2>>5)%4 and, with a2&8, the participant
// (a2>>4)%(actors+2) instead of a team.

// seedScores: drafts, submissions, turns, reveals and hiding them.
func seedScores() []byte {
	return bytes.Join([][]byte{
		{1}, // three teams
		seedStep("team:t1", CmdSaveDraft, 0, 0x02),   // t1 drafts a, level 1
		seedStep("team:t1", CmdSubmit, 0, 0x03),      // t1 submits a, level 2
		seedStep("team:t2", CmdSubmit, 0, 0x05),      // t2 submits a, level 4
		seedStep("team:t3", CmdSaveDraft, 0, 0x04),   // t3 only drafts a
		seedStep("facilitator", CmdSetAgenda, 1, 0),  // b, c, a
		seedStep("facilitator", CmdGotoAspect, 3, 0), // refused: the lobby
		seedStep("facilitator", CmdStart, 0, 0),      // aspect b
		seedStep("facilitator", CmdGotoAspect, 0, 0), // a
		seedStep("facilitator", CmdSetQueue, 8, 0),   // on a: t3, t1, t2
		seedStep("facilitator", CmdCallTurn, 148, 0), // the next team (t3), 180 s
		seedStep("facilitator", CmdExtendTurn, 0x10, 0),
		seedStep("facilitator", CmdReveal, 13, 0),    // t2 on a (team 1)
		seedStep("facilitator", CmdCallTurn, 148, 0), // the next team (t1)
		seedStep("facilitator", CmdEndTurn, 0, 0),
		seedStep("facilitator", CmdReveal, 28, 0),     // every other team on a
		seedStep("team:t1", CmdSaveDraft, 0, 0x03),    // refused: revealed
		seedStep("facilitator", CmdHideReveal, 28, 0), // every team on a
		seedStep("team:t1", CmdSubmit, 0, 0x04),       // a again, level 3
		seedStep("team:t1", CmdSaveDraft, 1, 0x03),    // a draft on b
		seedStep("facilitator", CmdWrapUp, 0, 0),
		seedStep("facilitator", CmdReveal, 0, 0), // t1 on a
		seedStep("facilitator", CmdClose, 0, 0),
		seedStep("team:t1", CmdSubmit, 1, 0x03), // refused: closed
	}, nil)
}

// seedQuestions: questions, votes, approval, reports, hiding, hands.
func seedQuestions() []byte {
	return bytes.Join([][]byte{
		{0}, // two teams
		seedStep("facilitator", CmdStart, 0, 0),
		seedStep("p_a0", CmdAsk, 0, 0),              // q1
		seedStep("p_a1", CmdAsk, 0, 0x02),           // q2, anonymous
		seedStep("p_a2", CmdUpvote, 1, 0),           // q1
		seedStep("p_a3", CmdUpvote, 2, 0),           // q2
		seedStep("p_a3", CmdUnvote, 2, 0),           // q2
		seedStep("facilitator", CmdAnswer, 2, 0x01), // q2
		seedStep("facilitator", CmdHighlight, 1, 0), // q1
		seedStep("facilitator", CmdSetApproveFirst, 0, 0x01),
		seedStep("p_a0", CmdAsk, 0, 0),                 // q3, pending
		seedStep("p_a1", CmdUpvote, 3, 0),              // refused: pending
		seedStep("facilitator", CmdHideQuestion, 3, 0), // q3, hidden and pending
		seedStep("facilitator", CmdRestoreQuestion, 3, 0),
		seedStep("facilitator", CmdApproveQuestion, 3, 0),
		seedStep("p_a1", CmdReport, 1, 0),
		seedStep("p_a2", CmdReport, 1, 0),
		seedStep("p_a3", CmdReport, 1, 0), // hides q1
		seedStep("p_a0", CmdRaiseHand, 0, 0),
		seedStep("p_a1", CmdRaiseHand, 0, 0),
		seedStep("facilitator", CmdCallTurn, 0, 0x28),  // p_a0's raised hand
		seedStep("facilitator", CmdLowerHand, 0, 0x38), // p_a1's
		seedStep("facilitator", CmdRemove, 0, 0x48),    // p_a2
		seedStep("p_a2", CmdAsk, 0, 0),                 // refused: removed
	}, nil)
}

// seedAdmin: notes, actions, teams, keys.
func seedAdmin() []byte {
	return bytes.Join([][]byte{
		{1},
		seedStep("facilitator", CmdSetNote, 0, 0),
		seedStep("facilitator", CmdAddAction, 0, 0),
		seedStep("facilitator", CmdAddAction, 0, 0),
		seedStep("facilitator", CmdSetActionDone, 0, 0x21), // action 1 on a
		seedStep("facilitator", CmdRemoveAction, 0, 0x40),  // action 2 on a
		seedStep("facilitator", CmdAddTeam, 3, 0),
		seedStep("team:t1", CmdSubmit, 2, 0x05),
		seedStep("facilitator", CmdRotateKeys, 0, 0x40),
		seedStep("facilitator", CmdStart, 0, 0),
		seedStep("facilitator", CmdReveal, 2, 0),
		seedStep("presenter", CmdUpvote, 1, 0), // refused: a presenter
		seedStep("facilitator", CmdClose, 0, 0),
	}, nil)
}

// randomScenario is a reproducible random input of n steps.
// seedEstimates: the room's estimate, opened by hand and by a turn,
// changed, refused to a team for itself, revealed, closed and hidden.
func seedEstimates() []byte {
	return bytes.Join([][]byte{
		{1}, // three teams
		seedStep("facilitator", CmdStart, 0, 0),
		seedStep("facilitator", CmdOpenEstimates, 3, 0), // t1 on the current aspect
		seedStep("p_a0", CmdEstimate, 3, 0x03),          // t1, level 2
		seedStep("p_a1", CmdEstimate, 3, 0x04),          // level 3
		seedStep("team:t2", CmdEstimate, 3, 0x05),       // level 4
		seedStep("p_a0", CmdEstimate, 3, 0x04),          // changed to 3
		seedStep("team:t1", CmdEstimate, 3, 0x03),       // refused: itself
		seedStep("team:t1", CmdSubmit, 0, 0x03),         // a, level 2
		seedStep("facilitator", CmdReveal, 3, 0),        // t1, with its estimate
		seedStep("facilitator", CmdSetEstimateEachTurn, 0, 0x01),
		seedStep("facilitator", CmdCallTurn, 19, 0),  // t3, 60 s: opens estimating
		seedStep("p_a2", CmdEstimate, 18, 0x02),      // t3, level 1
		seedStep("facilitator", CmdGotoAspect, 1, 0), // b: closes t3's
		seedStep("facilitator", CmdHideReveal, 0, 0), // t1 on a
	}, nil)
}

func randomScenario(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, 1+n*stepBytes)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	// Start most rooms early and close few, so most commands meet a
	// running room.
	start, closing := byte(slices.Index(CommandTypes, CmdStart)), slices.Index(CommandTypes, CmdClose)
	for i := 1; i+stepBytes <= len(b); i += stepBytes {
		switch {
		case i < 5*stepBytes && r.UintN(3) == 0:
			b[i], b[i+1] = 0, start
		case int(b[i+1])%len(CommandTypes) == closing && r.UintN(4) != 0:
			b[i+1]++
		}
	}
	return b
}

func FuzzRoom(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	for _, seed := range [][]byte{seedScores(), seedQuestions(), seedAdmin(), seedEstimates()} {
		f.Add(seed)
		f.Add(append([]byte{1 - seed[0]}, seed[1:]...)) // the other number of teams
	}
	for seed := range uint64(8) {
		f.Add(randomScenario(seed, maxSteps))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runScenario(t, data)
	})
}

// TestRoomProperties runs many reproducible random rooms and checks that the
// generator reaches every event type and error code, and that VariantKey
// classes are exercised; the checks of each run are those of FuzzRoom.
func TestRoomProperties(t *testing.T) {
	runs := 150
	if testing.Short() || raceEnabled {
		runs = 25
	}
	total := scenarioStats{events: map[string]int{}, codes: map[string]int{}}
	for seed := range uint64(runs) {
		st := runScenarioSteps(t, randomScenario(seed, 120), 120)
		for k, v := range st.events {
			total.events[k] += v
		}
		for k, v := range st.codes {
			total.codes[k] += v
		}
		total.variants += st.variants
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
	for _, seed := range [][]byte{seedScores(), seedQuestions(), seedAdmin(), seedEstimates()} {
		for k, v := range runScenario(t, seed).events {
			total.events[k] += v
		}
	}
	for _, typ := range EventTypes {
		if typ != EvPrivate && total.events[typ] == 0 {
			t.Errorf("event %s: never produced", typ)
		}
	}
	for _, code := range []string{"", EINVALID, EFORBIDDEN, ENOTFOUND, ECONFLICT} {
		if total.codes[code] == 0 {
			t.Errorf("code %q: never answered", code)
		}
	}
	if total.variants == 0 {
		t.Errorf("no event had two audiences with the same VariantKey")
	}
	t.Logf("events %v codes %v shared variants %d", total.events, total.codes, total.variants)
}
