package frontend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/frontend"
	"github.com/leveling/workshop/room"
)

// stateTimeout bounds TestStateJS: chromium's start and one page that runs
// every case.
const stateTimeout = 60 * time.Second

// stateT0 is the injected clock of the logs: room/ reads no clock, so the
// logs are the same on every run.
var stateT0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

// The people of the logs. ana and ben are audiences too; cy and dee only
// act (cy is removed, dee reports).
var (
	stateFac       = room.FacilitatorActor()
	statePresenter = room.Actor{Role: room.RolePresenter, Participant: "presenter", Name: "Presenter"}
	stateAna       = room.Actor{Role: room.RoleAttendee, Participant: "p_ana", Name: "Ana"}
	stateBen       = room.Actor{Role: room.RoleAttendee, Participant: "p_ben", Name: "Ben"}
	stateCy        = room.Actor{Role: room.RoleAttendee, Participant: "p_cy", Name: "Cy"}
	stateDee       = room.Actor{Role: room.RoleAttendee, Participant: "p_dee", Name: "Dee"}
)

// stateLog is a room's log built with the exported room API, with the
// state right after each event (ends[i] after log[i]) to cut events against.
type stateLog struct {
	t    *testing.T
	name string
	s    *room.State
	log  []room.Event
	ends []*room.State
	now  time.Time
	n    int // command counter, for idempotency keys
}

func newStateLog(t *testing.T, name string) *stateLog {
	t.Helper()
	sec := room.Secrets{FacilitatorKeyHash: "fac-hash-1", PresenterKeyHash: "pres-hash-1", ParticipantSecret: "participant-secret",
		TeamKeyHashes: map[string]string{"t1": "team-hash-1", "t2": "team-hash-2", "t3": "team-hash-3"}}
	evs, err := room.Create(room.CreateParams{ID: "room-" + name, Code: "K7PQM3TX", Title: "Platform maturity Q3",
		Model: room.PEMM(), TeamNames: []string{"Payments", "Search", "Identity"}, Secrets: sec, Now: stateT0})
	if err != nil {
		t.Fatalf("%s: Create: %v", name, err)
	}
	l := &stateLog{t: t, name: name, s: &room.State{}, now: stateT0}
	l.apply(evs)
	return l
}

func (l *stateLog) apply(evs []room.Event) {
	l.t.Helper()
	for _, e := range evs {
		if err := room.Apply(l.s, []room.Event{e}); err != nil {
			l.t.Fatalf("%s: Apply: %v", l.name, err)
		}
		l.log = append(l.log, e)
		l.ends = append(l.ends, l.s.Clone())
	}
}

// try decides cmd at the log's clock (a second after the last command) and
// applies what it answers.
func (l *stateLog) try(a room.Actor, c room.Command) error {
	l.n++
	l.now = l.now.Add(time.Second)
	c.Key = fmt.Sprintf("%s/%d", a.Participant, l.n)
	switch c.Type {
	case room.CmdAddTeam:
		// The hub hands the new team's key hash to add_team.
		c.NewSecrets = &room.Secrets{TeamKeyHashes: map[string]string{l.s.NextTeamID(): fmt.Sprintf("team-hash-new-%d", l.n)}}
	case room.CmdRotateKeys:
		ns := &room.Secrets{FacilitatorKeyHash: fmt.Sprintf("fac-hash-%d", l.n), PresenterKeyHash: fmt.Sprintf("pres-hash-%d", l.n), TeamKeyHashes: map[string]string{}}
		for _, tm := range l.s.Teams {
			ns.TeamKeyHashes[tm.ID] = fmt.Sprintf("team-hash-%s-%d", tm.ID, l.n)
		}
		c.NewSecrets = ns
	case room.CmdRemove:
		c.Present = true
	}
	evs, err := room.Decide(l.s, a, c, l.now)
	if err != nil {
		return err
	}
	l.apply(evs)
	return nil
}

// do is try for a command that must succeed.
func (l *stateLog) do(a room.Actor, c room.Command) {
	l.t.Helper()
	if err := l.try(a, c); err != nil {
		l.t.Fatalf("%s: %s by %s: %v", l.name, c.Type, a.Participant, err)
	}
}

func (l *stateLog) team(id string) room.Actor {
	l.t.Helper()
	tm, ok := l.s.Team(id)
	if !ok {
		l.t.Fatalf("%s: no team %s", l.name, id)
	}
	return room.TeamActor(tm)
}

// workshopLog is a whole workshop: drafts and submissions in the lobby,
// agenda and queue, turns of teams and of a raised hand, reveals taken back
// and made anew, questions (anonymous, by a team lead, by the facilitator,
// waiting for approval), votes and unvotes, a report storm that hides a
// question, hides and restores, a removed attendee, a team added, keys
// rotated, notes, actions, the room's estimate (on every turn, opened and
// closed by hand, changed, revealed, hidden and estimated anew, closed by
// a new aspect and by the wrap up), wrap up and close.
func workshopLog(t *testing.T) *stateLog {
	l := newStateLog(t, "workshop")
	t1, t2, t3 := l.team("t1"), l.team("t2"), l.team("t3")
	C := func(typ string) room.Command { return room.Command{Type: typ} }
	l.do(t1, room.Command{Type: room.CmdSaveDraft, Aspect: "investment", Level: 2, Rationale: "a first guess"})
	l.do(t1, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 3, Rationale: "we fund it as a product"})
	l.do(t2, room.Command{Type: room.CmdSaveDraft, Aspect: "investment", Level: 1})
	l.do(t2, room.Command{Type: room.CmdSubmit, Aspect: "adoption", Level: 2, Rationale: "pushed"})
	l.do(t3, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 4, Rationale: "an ecosystem"})
	l.do(t3, room.Command{Type: room.CmdSaveDraft, Aspect: "adoption", Rationale: "to discuss"})
	l.do(stateFac, room.Command{Type: room.CmdSetAgenda, Order: []string{"adoption", "investment", "interfaces", "operations", "measurement"}})
	l.do(stateFac, room.Command{Type: room.CmdSetQueue, Aspect: "investment", Order: []string{"t3", "t1", "t2"}})
	l.do(stateFac, C(room.CmdStart))
	l.do(stateFac, room.Command{Type: room.CmdGotoAspect, Aspect: "investment"})
	// The room estimates every team called: t3 first; ana changes her mind.
	l.do(stateFac, room.Command{Type: room.CmdSetEstimateEachTurn, On: true})
	l.do(stateFac, C(room.CmdCallTurn))
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t3", Level: 2})
	l.do(stateBen, room.Command{Type: room.CmdEstimate, Team: "t3", Level: 4})
	l.do(t1, room.Command{Type: room.CmdEstimate, Team: "t3", Level: 3})
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Aspect: "investment", Team: "t3", Level: 3})
	l.do(stateFac, C(room.CmdOpenEstimates))
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 2})
	l.do(t2, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 1})
	l.do(stateBen, room.Command{Type: room.CmdEstimate, Team: "t2", Level: 1})
	l.do(stateFac, room.Command{Type: room.CmdCloseEstimates, Team: "t2"})
	l.do(stateFac, room.Command{Type: room.CmdExtendTurn, Seconds: 60})
	l.do(stateAna, C(room.CmdRaiseHand))
	l.do(stateBen, C(room.CmdRaiseHand))
	l.do(t2, C(room.CmdRaiseHand))
	l.do(stateFac, room.Command{Type: room.CmdCallTurn, Participant: stateAna.Participant, Seconds: 30})
	l.do(stateBen, C(room.CmdLowerHand))
	l.do(stateFac, room.Command{Type: room.CmdLowerHand, Participant: t2.Participant})
	l.do(stateFac, C(room.CmdEndTurn))
	l.do(stateFac, room.Command{Type: room.CmdReveal, Aspect: "investment", Team: "t3"})
	l.do(stateFac, room.Command{Type: room.CmdReveal, Aspect: "investment"})
	l.do(stateFac, room.Command{Type: room.CmdHideReveal, Aspect: "investment", Team: "t1"})
	l.do(t1, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 2, Rationale: "rethought"})
	l.do(stateFac, room.Command{Type: room.CmdReveal, Aspect: "investment", Team: "t1"})
	l.do(stateFac, room.Command{Type: room.CmdHideReveal, Aspect: "investment", Team: "t2"})
	// t2, hidden again, is estimated anew; t1, revealed, is not opened by its turn.
	l.do(stateFac, room.Command{Type: room.CmdOpenEstimates, Team: "t2"})
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t2", Level: 2})
	l.do(stateFac, C(room.CmdCloseEstimates))

	l.do(stateFac, room.Command{Type: room.CmdCallTurn, Team: "t1"})
	l.do(stateFac, room.Command{Type: room.CmdSetEstimateEachTurn})
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "How is the budget set?"})                 // q1
	l.do(stateBen, room.Command{Type: room.CmdAsk, Text: "Who owns the roadmap?", Anonymous: true}) // q2
	l.do(t1, room.Command{Type: room.CmdAsk, Text: "Can we borrow staff?"})                         // q3
	l.do(stateFac, room.Command{Type: room.CmdAsk, Text: "Any blockers?"})                          // q4
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "Asked in secret", Anonymous: true})       // q5
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q1"})
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q2"})
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q3"})
	l.do(stateAna, room.Command{Type: room.CmdUnvote, Question: "q3"})
	l.do(t2, room.Command{Type: room.CmdUpvote, Question: "q1"})
	l.do(stateFac, room.Command{Type: room.CmdUpvote, Question: "q1"})
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q4"})
	l.do(stateBen, room.Command{Type: room.CmdUnvote, Question: "q4"})
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q5"})
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q5"})
	// A report storm hides ana's q1; the facilitator restores it.
	l.do(stateBen, room.Command{Type: room.CmdReport, Question: "q1"})
	l.do(stateCy, room.Command{Type: room.CmdReport, Question: "q1"})
	l.do(stateDee, room.Command{Type: room.CmdReport, Question: "q1"})
	l.do(stateFac, room.Command{Type: room.CmdRestoreQuestion, Question: "q1"})
	l.do(stateAna, room.Command{Type: room.CmdReport, Question: "q3"})
	// q2, highlighted and voted by ana, is hidden and restored.
	l.do(stateFac, room.Command{Type: room.CmdHighlight, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdAnswer, Question: "q2", On: true})
	l.do(stateFac, room.Command{Type: room.CmdAnswer, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdUpvote, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdRestoreQuestion, Question: "q2"})
	// q5, anonymous and voted by ana and ben, is hidden for good.
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q5"})
	l.do(stateFac, room.Command{Type: room.CmdHighlight, Question: "q3"})
	l.do(stateFac, room.Command{Type: room.CmdHighlight})
	l.do(stateFac, room.Command{Type: room.CmdAnswer, Question: "q4", On: true})
	l.do(stateFac, room.Command{Type: room.CmdHighlight, Question: "q4"})

	l.do(stateFac, room.Command{Type: room.CmdSetApproveFirst, On: true})
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "Pending and anonymous", Anonymous: true}) // q6
	l.do(stateBen, room.Command{Type: room.CmdAsk, Text: "Pending from Ben"})                       // q7
	l.do(stateFac, room.Command{Type: room.CmdAsk, Text: "The facilitator needs no approval"})      // q8
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "Pending for good"})                       // q9
	l.do(stateFac, room.Command{Type: room.CmdApproveQuestion, Question: "q6"})
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q6"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q7"})
	l.do(stateFac, room.Command{Type: room.CmdSetApproveFirst})

	l.do(stateCy, C(room.CmdRaiseHand))
	l.do(stateCy, room.Command{Type: room.CmdUpvote, Question: "q3"})
	l.do(stateFac, room.Command{Type: room.CmdRemove, Participant: stateCy.Participant})
	l.do(stateFac, room.Command{Type: room.CmdAddTeam, Name: "Platform"})
	l.do(l.team("t4"), room.Command{Type: room.CmdSubmit, Aspect: "interfaces", Level: 1, Rationale: "late but here"})
	l.do(l.team("t4"), room.Command{Type: room.CmdSaveDraft, Aspect: "operations", Level: 2})
	l.do(stateFac, C(room.CmdRotateKeys))
	l.do(stateFac, room.Command{Type: room.CmdSetNote, Aspect: "investment", Text: "Budget follows the roadmap."})
	l.do(stateFac, room.Command{Type: room.CmdSetNote, Aspect: "adoption", Text: "draft"})
	l.do(stateFac, room.Command{Type: room.CmdSetNote, Aspect: "adoption"})
	l.do(stateFac, room.Command{Type: room.CmdAddAction, Aspect: "investment", Text: "Hire a product owner"})
	l.do(stateFac, room.Command{Type: room.CmdAddAction, Aspect: "investment", Text: "Write a budget"})
	l.do(stateFac, room.Command{Type: room.CmdAddAction, Aspect: "adoption", Text: "Survey users"})
	l.do(stateFac, room.Command{Type: room.CmdSetActionDone, Aspect: "investment", Action: 1, On: true})
	l.do(stateFac, room.Command{Type: room.CmdSetActionDone, Aspect: "adoption", Action: 1, On: true})
	l.do(stateFac, room.Command{Type: room.CmdSetActionDone, Aspect: "adoption", Action: 1})
	l.do(stateFac, room.Command{Type: room.CmdRemoveAction, Aspect: "investment", Action: 2})
	l.do(stateFac, room.Command{Type: room.CmdOpenEstimates, Team: "t4"})
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t4", Level: 4})
	l.do(stateFac, room.Command{Type: room.CmdGotoAspect, Aspect: "adoption"})
	l.do(stateFac, room.Command{Type: room.CmdSetEstimateEachTurn, On: true})
	l.do(stateFac, room.Command{Type: room.CmdCallTurn, Team: "t2"})
	l.do(stateBen, room.Command{Type: room.CmdEstimate, Team: "t2", Level: 3})
	l.do(t3, room.Command{Type: room.CmdEstimate, Team: "t2", Level: 1})
	l.do(stateFac, C(room.CmdWrapUp))
	l.do(stateFac, room.Command{Type: room.CmdReveal, Aspect: "adoption"})
	l.do(stateFac, C(room.CmdClose))
	return l
}

// takeBackLog puts take-backs right after what they take back, so that
// batches cut across them: a question posted and hidden at once, a vote
// on it, a reveal hidden, changed and revealed anew (with the room's
// estimate, reopened and changed in between), an approval hidden.
func takeBackLog(t *testing.T) *stateLog {
	l := newStateLog(t, "takebacks")
	t1, t2 := l.team("t1"), l.team("t2")
	l.do(t1, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 1, Rationale: "first"})
	l.do(t2, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 2, Rationale: "second"})
	l.do(stateFac, room.Command{Type: room.CmdStart})
	l.do(stateFac, room.Command{Type: room.CmdOpenEstimates})
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 2})
	l.do(stateBen, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 3})
	l.do(t2, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 4})
	l.do(stateAna, room.Command{Type: room.CmdEstimate, Team: "t2", Level: 1})
	l.do(stateFac, room.Command{Type: room.CmdReveal})
	l.do(stateFac, room.Command{Type: room.CmdHideReveal})
	l.do(stateFac, room.Command{Type: room.CmdOpenEstimates, Team: "t1"})
	l.do(stateBen, room.Command{Type: room.CmdEstimate, Team: "t1", Level: 1})
	l.do(t1, room.Command{Type: room.CmdSubmit, Aspect: "investment", Level: 4, Rationale: "changed"})
	l.do(stateFac, room.Command{Type: room.CmdReveal, Team: "t1"})
	l.do(stateFac, room.Command{Type: room.CmdReveal, Team: "t2"})
	l.do(stateFac, room.Command{Type: room.CmdHideReveal, Team: "t2"})
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "Gone soon"}) // q1
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q1"})
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q1"})
	l.do(stateBen, room.Command{Type: room.CmdReport, Question: "q1"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q1"})
	l.do(stateBen, room.Command{Type: room.CmdAsk, Text: "Back again", Anonymous: true}) // q2
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdHighlight, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdRestoreQuestion, Question: "q2"})
	l.do(stateAna, room.Command{Type: room.CmdUnvote, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdSetApproveFirst, On: true})
	l.do(stateAna, room.Command{Type: room.CmdAsk, Text: "Approved, then hidden"}) // q3
	l.do(stateFac, room.Command{Type: room.CmdApproveQuestion, Question: "q3"})
	l.do(stateBen, room.Command{Type: room.CmdUpvote, Question: "q3"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q3"})
	l.do(stateBen, room.Command{Type: room.CmdAsk, Text: "Approved and kept", Anonymous: true}) // q4
	l.do(stateFac, room.Command{Type: room.CmdApproveQuestion, Question: "q4"})
	l.do(stateAna, room.Command{Type: room.CmdUpvote, Question: "q4"})
	l.do(stateFac, room.Command{Type: room.CmdHideQuestion, Question: "q4"})
	l.do(stateFac, room.Command{Type: room.CmdRestoreQuestion, Question: "q4"})
	l.do(stateAna, room.Command{Type: room.CmdReport, Question: "q2"})
	l.do(stateCy, room.Command{Type: room.CmdReport, Question: "q2"})
	l.do(stateDee, room.Command{Type: room.CmdReport, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdRestoreQuestion, Question: "q2"})
	l.do(stateFac, room.Command{Type: room.CmdHideReveal, Team: "t1"})
	l.do(stateFac, room.Command{Type: room.CmdReveal, Team: "t1"})
	return l
}

// randomLog tries random commands by random actors: whatever room.Decide
// accepts goes into the log, so the order of things is one no person
// would think of.
func randomLog(t *testing.T, seed uint64, steps int) *stateLog {
	l := newStateLog(t, fmt.Sprintf("random-%d", seed))
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	aspects := []string{"investment", "adoption", "interfaces", "operations", "measurement"}
	people := []room.Actor{stateAna, stateBen, stateCy, stateDee}
	for range steps {
		var actors []room.Actor
		actors = append(actors, stateFac, stateFac, stateFac)
		for _, tm := range l.s.Teams {
			actors = append(actors, room.TeamActor(tm))
		}
		actors = append(actors, people...)
		a := actors[rng.IntN(len(actors))]
		var teams, qs []string
		for _, tm := range l.s.Teams {
			teams = append(teams, tm.ID)
		}
		for _, q := range l.s.Questions {
			qs = append(qs, q.ID)
		}
		qs = append(qs, "q1") // the first question may not exist yet
		c := room.Command{Type: pick(room.CommandTypes)}
		switch c.Type {
		case room.CmdClose, room.CmdWrapUp:
			if rng.IntN(8) != 0 || c.Type == room.CmdClose && len(l.log) < steps/2 {
				continue
			}
		case room.CmdGotoAspect:
			c.Aspect = pick(aspects)
		case room.CmdSetAgenda:
			c.Order = slices.Clone(aspects)
			rng.Shuffle(len(c.Order), func(i, j int) { c.Order[i], c.Order[j] = c.Order[j], c.Order[i] })
		case room.CmdAddTeam:
			c.Name = fmt.Sprintf("Team %d", len(l.s.Teams)+1)
		case room.CmdSetQueue:
			c.Aspect = pick(aspects)
			c.Order = slices.Clone(l.s.Queues[c.Aspect])
			rng.Shuffle(len(c.Order), func(i, j int) { c.Order[i], c.Order[j] = c.Order[j], c.Order[i] })
		case room.CmdCallTurn:
			switch rng.IntN(3) {
			case 0:
				c.Team = pick(teams)
			case 1:
				if len(l.s.Hands) > 0 {
					c.Participant = l.s.Hands[rng.IntN(len(l.s.Hands))].Participant
				}
			}
		case room.CmdExtendTurn:
			c.Seconds = 1 + rng.IntN(120)
		case room.CmdReveal, room.CmdHideReveal:
			c.Aspect = pick(aspects)
			if rng.IntN(2) == 0 {
				c.Team = pick(teams)
			}
		case room.CmdHighlight:
			if rng.IntN(4) != 0 {
				c.Question = pick(qs)
			}
		case room.CmdOpenEstimates, room.CmdCloseEstimates:
			if rng.IntN(2) == 0 {
				c.Team = pick(teams)
			}
		case room.CmdEstimate:
			c.Team, c.Level = pick(teams), 1+rng.IntN(5)
		case room.CmdAnswer, room.CmdSetApproveFirst, room.CmdSetActionDone, room.CmdSetEstimateEachTurn:
			c.On = rng.IntN(2) == 0
			if c.Type == room.CmdAnswer {
				c.Question = pick(qs)
			}
		case room.CmdHideQuestion, room.CmdRestoreQuestion, room.CmdApproveQuestion, room.CmdUpvote, room.CmdUnvote, room.CmdReport:
			c.Question = pick(qs)
		case room.CmdSetNote:
			c.Aspect, c.Text = pick(aspects), pick([]string{"", "a note", "another note"})
		case room.CmdAddAction:
			c.Aspect, c.Text = pick(aspects[:2]), fmt.Sprintf("action %d", l.n)
		case room.CmdRemove:
			c.Participant = pick([]string{stateCy.Participant, stateDee.Participant})
		case room.CmdSaveDraft, room.CmdSubmit:
			c.Aspect, c.Level, c.Rationale = pick(aspects[:3]), 1+rng.IntN(4), pick([]string{"", "why", "because"})
		case room.CmdAsk:
			c.Text, c.Anonymous = fmt.Sprintf("question %d", len(l.s.Questions)+1), rng.IntN(3) == 0
		case room.CmdLowerHand:
			if a.Role == room.RoleFacilitator && len(l.s.Hands) > 0 {
				c.Participant = l.s.Hands[rng.IntN(len(l.s.Hands))].Participant
			}
		}
		if c.Type == room.CmdSetActionDone || c.Type == room.CmdRemoveAction {
			c.Aspect, c.Action = pick(aspects[:2]), 1+rng.IntN(3)
		}
		_ = l.try(a, c) // refused commands leave no trace
	}
	return l
}

// stateCase is one run of state.js: a snapshot, then events applied in
// order; the page answers the state it ends with.
type stateCase struct {
	Name     string          `json:"name"`
	Me       room.Audience   `json:"me"`
	Snapshot json.RawMessage `json:"snapshot"`
	Events   []room.Event    `json:"events"`
	// Steps, when set, come after Events: each an event or a tally, as
	// the hub sends them to a class that gets tallies.
	Steps []stateStep `json:"steps,omitempty"`
}

type stateStep struct {
	Event *room.Event `json:"event,omitempty"`
	Tally *room.Tally `json:"tally,omitempty"`
}

// stateRunner is the test page: it imports state.js, applies every case
// the way conn.js applies a snapshot and events messages, and leaves the
// results (or why it failed) on window.
const stateRunner = `<!doctype html>
<meta charset="utf-8">
<title>state.js</title>
<script type="module">
try {
  const { normalize, applyEvent, applyTally } = await import('/static/js/state.js');
  const cases = await (await fetch('/cases.json')).json();
  const out = [];
  for (const c of cases) {
    let s = c.snapshot ? normalize(c.snapshot) : {};
    if (c.snapshot) s.seq = c.snapshot.seq;
    for (const e of c.events || []) s = applyEvent(s, e, c.me);
    for (const st of c.steps || []) s = st.tally ? applyTally(s, st.tally, c.me) : applyEvent(s, st.event, c.me);
    out.push(JSON.stringify(s));
  }
  window.results = JSON.stringify(out);
} catch (err) {
  window.failure = String((err && err.stack) || err);
}
</script>
`

// cut is the events of l after room_created, cut for aud in ranges that
// end at the given indexes of l.log (the last is len(l.log)-1): each event
// against the state after the last event of its range, as the hub cuts a
// batch, a catch-up or a resume.
func (l *stateLog) cut(aud room.Audience, ends []int) []room.Event {
	var out []room.Event
	i := 1
	for _, end := range ends {
		for ; i <= end; i++ {
			out = append(out, room.Redact(l.log[i], aud, l.ends[end]))
		}
	}
	return out
}

// tallied is the events of l after room_created as the hub sends them to
// a class that gets tallies: each run of room.Tallied events (split at
// random, as ticks split them) as one tally, every other event live. A run
// is cut against the state at its end or, when late, after the event that
// follows it, as the hub cuts a tally that the next event flushes.
func (l *stateLog) tallied(aud room.Audience, rng *rand.Rand, late bool) []stateStep {
	var out []stateStep
	last := len(l.log) - 1
	for i := 1; i <= last; {
		if !room.Tallied(l.log[i]) {
			e := room.Redact(l.log[i], aud, l.ends[i])
			out = append(out, stateStep{Event: &e})
			i++
			continue
		}
		j := i
		for j < last && room.Tallied(l.log[j+1]) && rng.IntN(5) > 0 {
			j++
		}
		end := j
		if late && j < last {
			end = j + 1
		}
		t := room.TallyFor(l.log[i:j+1], l.ends[j].Hands, l.ends[end], aud)
		out = append(out, stateStep{Tally: &t})
		i = j + 1
	}
	return out
}

// stateAudience is an audience of TestStateJS and the name it reports.
type stateAudience struct {
	name string
	aud  room.Audience
}

// TestStateJS feeds the browser's state.js the same logs that room.Apply
// builds, cut for each audience as the hub cuts them, and compares what it
// ends with to the server's snapshot room.View(final, audience). From
// room.View at room_created, the events come (a) live, each cut against the
// state right after it; (b) in batches of random sizes, each cut against
// the state after its last event; (c) for the take-back log, in two batches
// split at every point, so each take-back is once in the batch of what it
// takes back and once after it. And (d) room_created applied to nothing
// gives that first snapshot. Every event type in room.EventTypes occurs in
// some log.
func TestStateJS(t *testing.T) {
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()

	logs := []*stateLog{workshopLog(t), takeBackLog(t), randomLog(t, 1, 600), randomLog(t, 2, 600), randomLog(t, 3, 600)}
	seen := map[string]bool{}
	var cases []stateCase
	var wants []any
	for li, l := range logs {
		final, last := l.s, len(l.log)-1
		auds := []stateAudience{
			{"facilitator", room.AudienceOf(stateFac)},
			{"presenter", room.AudienceOf(statePresenter)},
			{"ana", room.AudienceOf(stateAna)},
			{"ben", room.AudienceOf(stateBen)},
			{"public", room.Audience{Role: room.RoleAttendee}},
		}
		for _, tm := range final.Teams {
			auds = append(auds, stateAudience{"team " + tm.ID, room.AudienceOf(room.TeamActor(tm))})
		}
		rng := rand.New(rand.NewPCG(uint64(li), 0xba7c4))
		for _, e := range l.log {
			seen[e.Type] = true
		}
		for _, a := range auds {
			want := canonRoom(t, mustMarshal(t, room.View(final, a.aud)))
			snap := mustMarshal(t, room.View(l.ends[0], a.aud))
			add := func(how string, ends []int) {
				c := stateCase{Name: fmt.Sprintf("%s, %s, %s", l.name, a.name, how), Me: a.aud, Snapshot: snap, Events: l.cut(a.aud, ends)}
				for _, e := range c.Events {
					seen[e.Type] = true
				}
				cases, wants = append(cases, c), append(wants, want)
			}

			// (a) live: each event is its own range.
			var each []int
			for i := 1; i <= last; i++ {
				each = append(each, i)
			}
			add("live", each)
			// (b) batches of 1 to 12 events.
			var sizes []string
			var batches []int
			for end := 0; end < last; {
				next := min(last, end+1+rng.IntN(12))
				batches, sizes = append(batches, next), append(sizes, fmt.Sprint(next-end))
				end = next
			}
			add("in batches of "+strings.Join(sizes, ","), batches)
			// (c) two batches, split after each event.
			if l.name == "takebacks" {
				for k := 1; k < last; k++ {
					add(fmt.Sprintf("split after seq %d", l.log[k].Seq), []int{k, last})
				}
			}

			// (e) as a class that gets tallies: runs of votes, reports and
			// hands as tallies, cut at their end and late.
			if a.name != "facilitator" {
				for _, late := range []bool{false, true} {
					c := stateCase{Name: fmt.Sprintf("%s, %s, tallied (late %v)", l.name, a.name, late), Me: a.aud, Snapshot: snap, Steps: l.tallied(a.aud, rng, late)}
					cases, wants = append(cases, c), append(wants, want)
				}
			}

			// (d) room_created applied to nothing gives the first snapshot.
			created := stateCase{Name: fmt.Sprintf("%s, %s, room_created", l.name, a.name), Me: a.aud,
				Events: []room.Event{room.Redact(l.log[0], a.aud, l.ends[0])}}
			cases, wants = append(cases, created), append(wants, canonRoom(t, snap))
		}
	}
	for _, typ := range room.EventTypes {
		if !seen[typ] {
			t.Errorf("no log has a %s event: add one, so state.js is checked on it", typ)
		}
	}

	payload := mustMarshal(t, cases)
	mux := http.NewServeMux()
	mux.Handle("/static/", http.FileServerFS(frontend.FS()))
	mux.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(stateRunner))
	})
	mux.HandleFunc("/cases.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tb := newTab(t, newBrowser(t, ctx), "state.js")
	tb.navigate(srv.URL + "/state")
	tb.waitJS("state.js to run every case", `window.results !== undefined || window.failure !== undefined`)
	if msg := eval[string](tb, `window.failure || ''`); msg != "" {
		t.Fatalf("the test page failed: %s", msg)
	}
	var results []string
	if err := json.Unmarshal([]byte(eval[string](tb, `window.results`)), &results); err != nil {
		t.Fatalf("results: %v", err)
	}
	if len(results) != len(cases) {
		t.Fatalf("got %d results, want %d", len(results), len(cases))
	}
	failed := 0
	for i, c := range cases {
		got := canonRoom(t, []byte(results[i]))
		if diffs := jsonDiff("", got, wants[i]); len(diffs) > 0 {
			failed++
			if failed <= 12 {
				if len(diffs) > 8 {
					diffs = append(diffs[:8], fmt.Sprintf("… and %d more", len(diffs)-8))
				}
				t.Errorf("%s: state.js differs from room.View:\n\t%s", c.Name, strings.Join(diffs, "\n\t"))
			}
		}
	}
	if failed > 12 {
		t.Errorf("… and %d more cases differ", failed-12)
	}
	tb.checkConsole()
	var events int
	for _, l := range logs {
		events += len(l.log)
	}
	t.Logf("%d cases (log, audience, how it is cut) over %d logs of %d events in all", len(cases), len(logs), events)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canonRoom decodes a room's JSON, from either side, into the one form the
// two are compared in. Its rules are about representation only:
//   - A field that is null, "", 0, false, or an empty list or map (once
//     its own fields went through these rules) counts as absent. Go's
//     encoding/json leaves some of these out (omitempty, omitzero) and
//     writes others ("aspect":"", "teamKeyHashes":null, an assessment's
//     "revealed":false); state.js's normalize fills lists and maps with
//     empty ones and its events leave {submitted:false, revealed:false}
//     behind. A page reads every one of them the same: falsy or empty.
//   - Maps are compared as sets of keys (JSON objects have no order); lists
//     keep their order, which is the room's (teams, hands, questions).
//
// Times need no rule: both sides carry the strings Go wrote (state.js
// copies an event's at).
func canonRoom(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode room: %v\n%s", err, b)
	}
	return canon(v)
}

func canon(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if c := canon(val); !isZero(c) {
				out[k] = c
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = canon(val)
		}
		return out
	}
	return v
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// jsonDiff lists where got and want differ, by path (questions[2].voters).
func jsonDiff(path string, got, want any) []string {
	if reflect.DeepEqual(got, want) {
		return nil
	}
	show := func(v any) string {
		if v == nil {
			return "(absent)"
		}
		b, _ := json.Marshal(v)
		if len(b) > 300 {
			return string(b[:300]) + "…"
		}
		return string(b)
	}
	switch g := got.(type) {
	case map[string]any:
		w, ok := want.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range g {
			keys[k] = true
		}
		for k := range w {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out = append(out, jsonDiff(p, g[k], w[k])...)
		}
		return out
	case []any:
		w, ok := want.([]any)
		if !ok || len(w) != len(g) {
			break
		}
		var out []string
		for i := range g {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: state.js has %s, room.View has %s", path, show(got), show(want))}
}
