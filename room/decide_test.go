package room

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// decideCase is one row of the command table: a room brought into a state
// by setup, one command from one actor, and the answer it must get.
type decideCase struct {
	name   string
	setup  func(*fixture) // nil: a fresh room in the lobby
	actor  Actor
	cmd    Command
	want   string   // the error code; "" for success
	msg    string   // a substring of the error message, when it matters
	events []string // on success: the event types, in order
	check  func(t *testing.T, f *fixture, evs []Event)
}

// newTeamSecrets is what the hub hands add_team: the key hash of the team
// it adds. Table cases do not know the room they run in, so the hash is
// given for every id the next team could get.
func newTeamSecrets(hash string) *Secrets {
	s := &Secrets{TeamKeyHashes: map[string]string{}}
	for n := 1; n <= MaxTeams; n++ {
		s.TeamKeyHashes[TeamID(n)] = hash
	}
	return s
}

func rotatedSecrets() *Secrets {
	return &Secrets{
		FacilitatorKeyHash: "newfachash",
		TeamKeyHashes:      map[string]string{"t1": "n1", "t2": "n2", "t3": "n3"},
	}
}

// fullTeams fills the standard room up to MaxTeams.
func fullTeams(f *fixture) {
	for i := len(f.s.Teams); i < MaxTeams; i++ {
		f.do(fac, Command{Type: CmdAddTeam, Name: fmt.Sprintf("Team %d", i+1), NewSecrets: newTeamSecrets("h")})
	}
}

func raised(a Actor) func(*fixture) {
	return func(f *fixture) { f.do(a, Command{Type: CmdRaiseHand}) }
}

func reportedBy(actors ...Actor) func(*fixture) {
	return func(f *fixture) {
		for _, a := range actors {
			f.do(a, Command{Type: CmdReport, Question: "q1"})
		}
	}
}

func actionAdded(f *fixture) {
	f.do(fac, Command{Type: CmdAddAction, Aspect: "investment", Text: "Fund a platform team"})
}

func revealedInvestment(f *fixture) {
	submitted(f)
	f.do(fac, Command{Type: CmdReveal, Aspect: "investment", Team: "t1"})
}

var decideCases = []decideCase{
	// start
	{name: "happy", actor: fac, cmd: Command{Type: CmdStart}, events: []string{EvStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Phase != PhaseRunning || f.s.Aspect != "investment" {
				t.Errorf("phase, aspect: got %v %v, want running investment", f.s.Phase, f.s.Aspect)
			}
		}},
	{name: "first aspect of the agenda",
		setup: func(f *fixture) {
			f.do(fac, Command{Type: CmdSetAgenda, Order: []string{"measurement", "investment", "adoption", "interfaces", "operations"}})
		},
		actor: fac, cmd: Command{Type: CmdStart}, events: []string{EvStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Aspect, "measurement"; got != want {
				t.Errorf("aspect: got %v, want %v", got, want)
			}
		}},
	{name: "already running", setup: running, actor: fac, cmd: Command{Type: CmdStart}, want: ECONFLICT},
	{name: "in wrap-up", setup: wrapup, actor: fac, cmd: Command{Type: CmdStart}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdStart}, want: ECONFLICT, msg: "closed"},

	// goto_aspect
	{name: "happy", setup: running, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "adoption"}, events: []string{EvAspectChanged},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Aspect, "adoption"; got != want {
				t.Errorf("aspect: got %v, want %v", got, want)
			}
		}},
	{name: "ends the turn", setup: withTurn, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "adoption"},
		events: []string{EvTurnEnded, EvAspectChanged},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Turn != nil {
				t.Errorf("turn: got %v, want nil", f.s.Turn)
			}
		}},
	{name: "from wrap-up back to running", setup: wrapup, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "investment"},
		events: []string{EvAspectChanged},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Phase, PhaseRunning; got != want {
				t.Errorf("phase: got %v, want %v", got, want)
			}
		}},
	{name: "same aspect", setup: running, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "investment"}, want: ECONFLICT},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "nope"}, want: ENOTFOUND},
	{name: "no aspect", setup: running, actor: fac, cmd: Command{Type: CmdGotoAspect}, want: EINVALID},
	{name: "in the lobby", actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "adoption"}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "adoption"}, want: ECONFLICT},

	// set_agenda
	{name: "happy", actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"measurement", "operations", "interfaces", "adoption", "investment"}},
		events: []string{EvAgendaSet},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Agenda[0], "measurement"; got != want {
				t.Errorf("agenda[0]: got %v, want %v", got, want)
			}
		}},
	{name: "while running", setup: running, actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"investment", "measurement", "operations", "interfaces", "adoption"}},
		events: []string{EvAgendaSet}},
	{name: "missing aspect", actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"investment", "adoption"}}, want: EINVALID},
	{name: "empty", actor: fac, cmd: Command{Type: CmdSetAgenda}, want: EINVALID},
	{name: "listed twice", actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"investment", "investment", "interfaces", "adoption", "operations"}}, want: EINVALID},
	{name: "unknown aspect", actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"investment", "nope", "interfaces", "adoption", "operations"}}, want: ENOTFOUND},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdSetAgenda, Order: []string{"measurement", "operations", "interfaces", "adoption", "investment"}}, want: ECONFLICT},

	// add_team
	{name: "happy", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "  Data  ", NewSecrets: newTeamSecrets("newhash")},
		events: []string{EvTeamAdded},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Team, "t4"; got != want {
				t.Errorf("team: got %v, want %v", got, want)
			}
			if tm, _ := f.s.Team("t4"); tm.Name != "Data" {
				t.Errorf("name: got %q, want %q", tm.Name, "Data")
			}
			if got, want := f.s.Secrets.TeamKeyHashes["t4"], "newhash"; got != want {
				t.Errorf("key hash: got %v, want %v", got, want)
			}
			if got, want := f.s.Queues["measurement"], []string{"t1", "t2", "t3", "t4"}; !slices.Equal(got, want) {
				t.Errorf("queue: got %v, want %v", got, want)
			}
		}},
	{name: "while running", setup: running, actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Data", NewSecrets: newTeamSecrets("h")}, events: []string{EvTeamAdded}},
	{name: "name at the limit", actor: fac, cmd: Command{Type: CmdAddTeam, Name: strings.Repeat("é", MaxTeamNameLen), NewSecrets: newTeamSecrets("h")}, events: []string{EvTeamAdded}},
	{name: "name too long", actor: fac, cmd: Command{Type: CmdAddTeam, Name: strings.Repeat("é", MaxTeamNameLen+1), NewSecrets: newTeamSecrets("h")}, want: EINVALID, msg: "name"},
	{name: "no name", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "  ", NewSecrets: newTeamSecrets("h")}, want: EINVALID, msg: "name"},
	{name: "control character", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Da\x00ta", NewSecrets: newTeamSecrets("h")}, want: EINVALID},
	{name: "invalid UTF-8", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Da\xffta", NewSecrets: newTeamSecrets("h")}, want: EINVALID},
	{name: "duplicate name", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "PAYMENTS", NewSecrets: newTeamSecrets("h")}, want: ECONFLICT},
	{name: "room full", setup: fullTeams, actor: fac, cmd: Command{Type: CmdAddTeam, Name: "One too many", NewSecrets: newTeamSecrets("h")}, want: ECONFLICT},
	{name: "no key hash from the hub", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Data"}, want: EINTERNAL},
	{name: "a key hash for another team id", actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Data", NewSecrets: &Secrets{TeamKeyHashes: map[string]string{"t9": "h"}}}, want: EINTERNAL},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdAddTeam, Name: "Data", NewSecrets: newTeamSecrets("h")}, want: ECONFLICT},

	// set_queue
	{name: "happy, current aspect", setup: running, actor: fac, cmd: Command{Type: CmdSetQueue, Order: []string{"t3", "t1", "t2"}},
		events: []string{EvQueueSet},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Queues["investment"], []string{"t3", "t1", "t2"}; !slices.Equal(got, want) {
				t.Errorf("queue: got %v, want %v", got, want)
			}
		}},
	{name: "named aspect in the lobby", actor: fac, cmd: Command{Type: CmdSetQueue, Aspect: "adoption", Order: []string{"t2", "t1", "t3"}}, events: []string{EvQueueSet}},
	{name: "no aspect in the lobby", actor: fac, cmd: Command{Type: CmdSetQueue, Order: []string{"t2", "t1", "t3"}}, want: EINVALID},
	{name: "unknown aspect", actor: fac, cmd: Command{Type: CmdSetQueue, Aspect: "nope", Order: []string{"t2", "t1", "t3"}}, want: ENOTFOUND},
	{name: "unknown team", setup: running, actor: fac, cmd: Command{Type: CmdSetQueue, Order: []string{"t2", "t1", "t9"}}, want: ENOTFOUND},
	{name: "missing team", setup: running, actor: fac, cmd: Command{Type: CmdSetQueue, Order: []string{"t2", "t1"}}, want: EINVALID},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdSetQueue, Aspect: "adoption", Order: []string{"t2", "t1", "t3"}}, want: ECONFLICT},

	// call_turn
	{name: "next team, default length", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn}, events: []string{EvTurnStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			tu := f.s.Turn
			if tu == nil || tu.Team != "t1" || tu.Name != "Payments" || tu.Aspect != "investment" {
				t.Fatalf("turn: got %+v, want Payments on investment", tu)
			}
			if got, want := tu.EndsAt, t0.Add(DefaultTurn); !got.Equal(want) {
				t.Errorf("endsAt: got %v, want %v", got, want)
			}
			if got, want := f.s.Spoken["investment"], []string{"t1"}; !slices.Equal(got, want) {
				t.Errorf("spoken: got %v, want %v", got, want)
			}
		}},
	{name: "next team skips who spoke", setup: withTurn, actor: fac, cmd: Command{Type: CmdCallTurn}, events: []string{EvTurnStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Turn.Team, "t2"; got != want {
				t.Errorf("team: got %v, want %v", got, want)
			}
		}},
	{name: "named team, 60 s", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t3", Seconds: 60}, events: []string{EvTurnStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Turn.EndsAt, t0.Add(time.Minute); f.s.Turn.Team != "t3" || !got.Equal(want) {
				t.Errorf("turn: got %+v, want t3 until %v", f.s.Turn, want)
			}
		}},
	{name: "raised hand", setup: seq(running, raised(ana)), actor: fac, cmd: Command{Type: CmdCallTurn, Participant: "p_ana"},
		events: []string{EvHandLowered, EvTurnStarted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Turn.Participant != "p_ana" || f.s.Turn.Name != "Ana" || len(f.s.Hands) != 0 {
				t.Errorf("turn, hands: got %+v %v, want Ana with no hand up", f.s.Turn, f.s.Hands)
			}
		}},
	{name: "shortest turn", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Seconds: 10}, events: []string{EvTurnStarted}},
	{name: "longest turn", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Seconds: 3600}, events: []string{EvTurnStarted}},
	{name: "too short", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Seconds: 9}, want: EINVALID, msg: "seconds"},
	{name: "too long", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Seconds: 3601}, want: EINVALID},
	{name: "negative", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Seconds: -5}, want: EINVALID},
	{name: "team and participant", setup: seq(running, raised(ana)), actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t1", Participant: "p_ana"}, want: EINVALID},
	{name: "participant without a hand", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Participant: "p_ana"}, want: ENOTFOUND},
	{name: "participant who never existed", setup: seq(running, raised(ana)), actor: fac, cmd: Command{Type: CmdCallTurn, Participant: "p_nobody"},
		want: ENOTFOUND, msg: `participant "p_nobody" has no raised hand`},
	{name: "unknown team", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t9"}, want: ENOTFOUND},
	{name: "every team spoke", setup: func(f *fixture) {
		running(f)
		for range 3 {
			f.do(fac, Command{Type: CmdCallTurn})
		}
	}, actor: fac, cmd: Command{Type: CmdCallTurn}, want: ECONFLICT},
	{name: "in the lobby", actor: fac, cmd: Command{Type: CmdCallTurn}, want: ECONFLICT},
	{name: "in wrap-up", setup: wrapup, actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t1"}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdCallTurn}, want: ECONFLICT},

	// extend_turn
	{name: "happy", setup: withTurn, actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 60}, events: []string{EvTurnChanged},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Turn.EndsAt, t0.Add(DefaultTurn+time.Minute); !got.Equal(want) {
				t.Errorf("endsAt: got %v, want %v", got, want)
			}
		}},
	{name: "overrun turn counts from now", setup: func(f *fixture) {
		withTurn(f)
		f.tick(10 * time.Minute)
	}, actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 30}, events: []string{EvTurnChanged},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Turn.EndsAt, t0.Add(10*time.Minute+30*time.Second); !got.Equal(want) {
				t.Errorf("endsAt: got %v, want %v", got, want)
			}
		}},
	{name: "no turn", setup: running, actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 60}, want: ECONFLICT},
	{name: "zero seconds", setup: withTurn, actor: fac, cmd: Command{Type: CmdExtendTurn}, want: EINVALID},
	{name: "too many seconds", setup: withTurn, actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 3601}, want: EINVALID},
	{name: "past an hour from now", setup: withTurn, actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 3600}, want: EINVALID},
	{name: "closed room", setup: seq(withTurn, closed), actor: fac, cmd: Command{Type: CmdExtendTurn, Seconds: 60}, want: ECONFLICT},

	// end_turn
	{name: "happy", setup: withTurn, actor: fac, cmd: Command{Type: CmdEndTurn}, events: []string{EvTurnEnded},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Turn != nil {
				t.Errorf("turn: got %v, want nil", f.s.Turn)
			}
		}},
	{name: "no turn", setup: running, actor: fac, cmd: Command{Type: CmdEndTurn}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdEndTurn}, want: ECONFLICT},

	// reveal
	{name: "one team", setup: submitted, actor: fac, cmd: Command{Type: CmdReveal, Team: "t1"}, events: []string{EvRevealed},
		check: func(t *testing.T, f *fixture, evs []Event) {
			want := []RevealedScore{{Team: "t1", Level: 2, Rationale: "a dedicated team", Submitted: true}}
			if got := evs[0].Scores; !slices.Equal(got, want) {
				t.Errorf("scores: got %v, want %v", got, want)
			}
			if !f.s.Score("t1", "investment").Revealed {
				t.Errorf("revealed: got false, want true")
			}
		}},
	{name: "every team", setup: submitted, actor: fac, cmd: Command{Type: CmdReveal, Aspect: "investment"}, events: []string{EvRevealed},
		check: func(t *testing.T, f *fixture, evs []Event) {
			want := []RevealedScore{{Team: "t1", Level: 2, Rationale: "a dedicated team", Submitted: true}, {Team: "t2"}, {Team: "t3"}}
			if got := evs[0].Scores; !slices.Equal(got, want) {
				t.Errorf("scores: got %v, want %v", got, want)
			}
		}},
	{name: "draft is not revealed", setup: func(f *fixture) {
		running(f)
		f.do(search, Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3, Rationale: "draft only"})
	}, actor: fac, cmd: Command{Type: CmdReveal, Team: "t2"}, events: []string{EvRevealed},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Scores, []RevealedScore{{Team: "t2"}}; !slices.Equal(got, want) {
				t.Errorf("scores: got %v, want %v", got, want)
			}
		}},
	{name: "in wrap-up", setup: seq(submitted, func(f *fixture) { f.do(fac, Command{Type: CmdWrapUp}) }), actor: fac,
		cmd: Command{Type: CmdReveal, Aspect: "investment", Team: "t1"}, events: []string{EvRevealed}},
	{name: "already revealed", setup: revealedInvestment, actor: fac, cmd: Command{Type: CmdReveal, Team: "t1"}, want: ECONFLICT},
	{name: "every team already revealed", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdReveal}) }), actor: fac, cmd: Command{Type: CmdReveal}, want: ECONFLICT},
	{name: "unknown team", setup: running, actor: fac, cmd: Command{Type: CmdReveal, Team: "t9"}, want: ENOTFOUND},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdReveal, Aspect: "nope"}, want: ENOTFOUND},
	{name: "in the lobby", actor: fac, cmd: Command{Type: CmdReveal, Aspect: "investment"}, want: ECONFLICT},
	{name: "closed room", setup: seq(submitted, closed), actor: fac, cmd: Command{Type: CmdReveal, Aspect: "investment"}, want: ECONFLICT},

	// hide_reveal
	{name: "one team", setup: revealedInvestment, actor: fac, cmd: Command{Type: CmdHideReveal, Team: "t1"}, events: []string{EvRevealHidden},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Score("t1", "investment").Revealed {
				t.Errorf("revealed: got true, want false")
			}
		}},
	{name: "every team", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdReveal}) }), actor: fac, cmd: Command{Type: CmdHideReveal},
		events: []string{EvRevealHidden},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Order, []string{"t1", "t2", "t3"}; !slices.Equal(got, want) {
				t.Errorf("order: got %v, want %v", got, want)
			}
		}},
	{name: "nothing revealed", setup: running, actor: fac, cmd: Command{Type: CmdHideReveal}, want: ECONFLICT},
	{name: "unknown team", setup: revealedInvestment, actor: fac, cmd: Command{Type: CmdHideReveal, Team: "t9"}, want: ENOTFOUND},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdHideReveal, Aspect: "nope"}, want: ENOTFOUND},
	{name: "no aspect in the lobby", actor: fac, cmd: Command{Type: CmdHideReveal}, want: EINVALID},
	{name: "closed room", setup: seq(revealedInvestment, closed), actor: fac, cmd: Command{Type: CmdHideReveal, Aspect: "investment"}, want: ECONFLICT},

	// highlight
	{name: "happy", setup: asked, actor: fac, cmd: Command{Type: CmdHighlight, Question: "q1"}, events: []string{EvHighlighted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Highlighted, "q1"; got != want {
				t.Errorf("highlighted: got %v, want %v", got, want)
			}
		}},
	{name: "clear", setup: seq(asked, func(f *fixture) { f.do(fac, Command{Type: CmdHighlight, Question: "q1"}) }),
		actor: fac, cmd: Command{Type: CmdHighlight}, events: []string{EvHighlighted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Highlighted != "" {
				t.Errorf("highlighted: got %q, want none", f.s.Highlighted)
			}
		}},
	{name: "clear with none", setup: asked, actor: fac, cmd: Command{Type: CmdHighlight}, want: ECONFLICT},
	{name: "hidden question", setup: hiddenQ, actor: fac, cmd: Command{Type: CmdHighlight, Question: "q1"}, want: ECONFLICT},
	{name: "pending question", setup: pendingQ, actor: fac, cmd: Command{Type: CmdHighlight, Question: "q1"}, want: ECONFLICT},
	{name: "unknown question", setup: asked, actor: fac, cmd: Command{Type: CmdHighlight, Question: "q2"}, want: ENOTFOUND},
	{name: "malformed question id", setup: asked, actor: fac, cmd: Command{Type: CmdHighlight, Question: "q0"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(asked, closed), actor: fac, cmd: Command{Type: CmdHighlight, Question: "q1"}, want: ECONFLICT},

	// answer
	{name: "happy", setup: asked, actor: fac, cmd: Command{Type: CmdAnswer, Question: "q1", On: true}, events: []string{EvAnswered},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); !q.Answered {
				t.Errorf("answered: got false, want true")
			}
		}},
	{name: "unmark", setup: seq(asked, func(f *fixture) { f.do(fac, Command{Type: CmdAnswer, Question: "q1", On: true}) }),
		actor: fac, cmd: Command{Type: CmdAnswer, Question: "q1"}, events: []string{EvAnswered}},
	{name: "already so", setup: asked, actor: fac, cmd: Command{Type: CmdAnswer, Question: "q1"}, want: ECONFLICT},
	{name: "unknown question", setup: asked, actor: fac, cmd: Command{Type: CmdAnswer, Question: "q7", On: true}, want: ENOTFOUND},
	{name: "no question", setup: asked, actor: fac, cmd: Command{Type: CmdAnswer, On: true}, want: EINVALID},
	{name: "closed room", setup: seq(asked, closed), actor: fac, cmd: Command{Type: CmdAnswer, Question: "q1", On: true}, want: ECONFLICT},

	// hide_question
	{name: "happy", setup: seq(asked, func(f *fixture) { f.do(fac, Command{Type: CmdHighlight, Question: "q1"}) }),
		actor: fac, cmd: Command{Type: CmdHideQuestion, Question: "q1"}, events: []string{EvQuestionHidden},
		check: func(t *testing.T, f *fixture, evs []Event) {
			q, _ := f.s.Question("q1")
			if !q.Hidden || q.HiddenBy != "facilitator" || f.s.Highlighted != "" {
				t.Errorf("hidden, by, highlighted: got %v %q %q, want true facilitator none", q.Hidden, q.HiddenBy, f.s.Highlighted)
			}
		}},
	{name: "already hidden", setup: hiddenQ, actor: fac, cmd: Command{Type: CmdHideQuestion, Question: "q1"}, want: ECONFLICT},
	{name: "unknown question", setup: asked, actor: fac, cmd: Command{Type: CmdHideQuestion, Question: "q2"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(asked, closed), actor: fac, cmd: Command{Type: CmdHideQuestion, Question: "q1"}, want: ECONFLICT},

	// restore_question
	{name: "happy, clears reports", setup: seq(asked, reportedBy(bob, cleo, search)),
		actor: fac, cmd: Command{Type: CmdRestoreQuestion, Question: "q1"}, events: []string{EvQuestionRestored},
		check: func(t *testing.T, f *fixture, evs []Event) {
			q, _ := f.s.Question("q1")
			if q.Hidden || q.HiddenBy != "" || len(q.Reporters) != 0 {
				t.Errorf("question: got %+v, want visible without reports", q)
			}
		}},
	{name: "keeps votes", setup: seq(asked, func(f *fixture) {
		f.do(bob, Command{Type: CmdUpvote, Question: "q1"})
		f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
	}), actor: fac, cmd: Command{Type: CmdRestoreQuestion, Question: "q1"}, events: []string{EvQuestionRestored},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.Votes != 1 || !q.Voters["p_bob"] {
				t.Errorf("votes: got %d %v, want 1 by p_bob", q.Votes, q.Voters)
			}
		}},
	{name: "not hidden", setup: asked, actor: fac, cmd: Command{Type: CmdRestoreQuestion, Question: "q1"}, want: ECONFLICT},
	{name: "unknown question", setup: asked, actor: fac, cmd: Command{Type: CmdRestoreQuestion, Question: "q2"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(hiddenQ, closed), actor: fac, cmd: Command{Type: CmdRestoreQuestion, Question: "q1"}, want: ECONFLICT},

	// approve_question
	{name: "happy", setup: pendingQ, actor: fac, cmd: Command{Type: CmdApproveQuestion, Question: "q1"}, events: []string{EvQuestionApproved},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.Pending {
				t.Errorf("pending: got true, want false")
			}
		}},
	{name: "not pending", setup: asked, actor: fac, cmd: Command{Type: CmdApproveQuestion, Question: "q1"}, want: ECONFLICT},
	{name: "unknown question", setup: pendingQ, actor: fac, cmd: Command{Type: CmdApproveQuestion, Question: "q9"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(pendingQ, closed), actor: fac, cmd: Command{Type: CmdApproveQuestion, Question: "q1"}, want: ECONFLICT},

	// set_approve_first
	{name: "happy", actor: fac, cmd: Command{Type: CmdSetApproveFirst, On: true}, events: []string{EvApproveFirstSet},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if !f.s.ApproveFirst {
				t.Errorf("approveFirst: got false, want true")
			}
		}},
	{name: "already off", actor: fac, cmd: Command{Type: CmdSetApproveFirst}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdSetApproveFirst, On: true}, want: ECONFLICT},

	// set_note
	{name: "happy, current aspect", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Text: "Most teams fund\nthe platform ad hoc"}, events: []string{EvNoteSet},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Notes["investment"], "Most teams fund\nthe platform ad hoc"; got != want {
				t.Errorf("note: got %q, want %q", got, want)
			}
		}},
	{name: "clear", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Aspect: "adoption"}, events: []string{EvNoteSet}},
	{name: "at the limit", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Text: strings.Repeat("ü", MaxNoteLen)}, events: []string{EvNoteSet}},
	{name: "too long", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Text: strings.Repeat("ü", MaxNoteLen+1)}, want: EINVALID, msg: "text"},
	{name: "control character", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Text: "bell\a"}, want: EINVALID},
	{name: "no aspect in the lobby", actor: fac, cmd: Command{Type: CmdSetNote, Text: "x"}, want: EINVALID},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdSetNote, Aspect: "nope", Text: "x"}, want: ENOTFOUND},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdSetNote, Aspect: "investment", Text: "x"}, want: ECONFLICT},

	// add_action
	{name: "happy", setup: running, actor: fac, cmd: Command{Type: CmdAddAction, Text: " Fund a team "}, events: []string{EvActionAdded},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Actions["investment"], []Action{{ID: 1, Text: "Fund a team"}}; !slices.Equal(got, want) {
				t.Errorf("actions: got %v, want %v", got, want)
			}
		}},
	{name: "next id", setup: seq(running, actionAdded), actor: fac, cmd: Command{Type: CmdAddAction, Aspect: "investment", Text: "Second"}, events: []string{EvActionAdded},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Action.ID, 2; got != want {
				t.Errorf("id: got %v, want %v", got, want)
			}
		}},
	{name: "empty", setup: running, actor: fac, cmd: Command{Type: CmdAddAction, Text: "  "}, want: EINVALID},
	{name: "too long", setup: running, actor: fac, cmd: Command{Type: CmdAddAction, Text: strings.Repeat("a", MaxActionLen+1)}, want: EINVALID},
	{name: "too many", setup: func(f *fixture) {
		running(f)
		for range MaxActionsPerAspect {
			actionAdded(f)
		}
	}, actor: fac, cmd: Command{Type: CmdAddAction, Aspect: "investment", Text: "one more"}, want: ECONFLICT},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdAddAction, Aspect: "nope", Text: "x"}, want: ENOTFOUND},
	{name: "no aspect in the lobby", actor: fac, cmd: Command{Type: CmdAddAction, Text: "x"}, want: EINVALID},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdAddAction, Aspect: "investment", Text: "x"}, want: ECONFLICT},

	// set_action_done
	{name: "happy", setup: actionAdded, actor: fac, cmd: Command{Type: CmdSetActionDone, Aspect: "investment", Action: 1, On: true},
		events: []string{EvActionDone},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if !f.s.Actions["investment"][0].Done {
				t.Errorf("done: got false, want true")
			}
		}},
	{name: "unknown action", setup: actionAdded, actor: fac, cmd: Command{Type: CmdSetActionDone, Aspect: "investment", Action: 2, On: true}, want: ENOTFOUND},
	{name: "unknown aspect", setup: actionAdded, actor: fac, cmd: Command{Type: CmdSetActionDone, Aspect: "nope", Action: 1}, want: ENOTFOUND},
	{name: "closed room", setup: seq(actionAdded, closed), actor: fac, cmd: Command{Type: CmdSetActionDone, Aspect: "investment", Action: 1, On: true}, want: ECONFLICT},

	// remove_action
	{name: "happy", setup: actionAdded, actor: fac, cmd: Command{Type: CmdRemoveAction, Aspect: "investment", Action: 1}, events: []string{EvActionRemoved},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if n := len(f.s.Actions["investment"]); n != 0 {
				t.Errorf("actions: got %d, want 0", n)
			}
		}},
	{name: "unknown action", setup: actionAdded, actor: fac, cmd: Command{Type: CmdRemoveAction, Aspect: "investment", Action: 0}, want: ENOTFOUND},
	{name: "closed room", setup: seq(actionAdded, closed), actor: fac, cmd: Command{Type: CmdRemoveAction, Aspect: "investment", Action: 1}, want: ECONFLICT},

	// wrap_up
	{name: "happy", setup: running, actor: fac, cmd: Command{Type: CmdWrapUp}, events: []string{EvWrappedUp},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Phase, PhaseWrapUp; got != want {
				t.Errorf("phase: got %v, want %v", got, want)
			}
		}},
	{name: "ends the turn", setup: withTurn, actor: fac, cmd: Command{Type: CmdWrapUp}, events: []string{EvTurnEnded, EvWrappedUp}},
	{name: "in the lobby", actor: fac, cmd: Command{Type: CmdWrapUp}, want: ECONFLICT},
	{name: "already", setup: wrapup, actor: fac, cmd: Command{Type: CmdWrapUp}, want: ECONFLICT},
	{name: "closed room", setup: seq(running, closed), actor: fac, cmd: Command{Type: CmdWrapUp}, want: ECONFLICT},

	// close
	{name: "happy", actor: fac, cmd: Command{Type: CmdClose}, events: []string{EvClosed},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if f.s.Phase != PhaseClosed || !f.s.ClosedAt.Equal(t0) {
				t.Errorf("phase, closedAt: got %v %v, want closed %v", f.s.Phase, f.s.ClosedAt, t0)
			}
		}},
	{name: "ends the turn", setup: withTurn, actor: fac, cmd: Command{Type: CmdClose}, events: []string{EvTurnEnded, EvClosed}},
	{name: "from wrap-up", setup: wrapup, actor: fac, cmd: Command{Type: CmdClose}, events: []string{EvClosed}},
	{name: "already closed", setup: closed, actor: fac, cmd: Command{Type: CmdClose}, want: ECONFLICT},

	// remove_participant
	{name: "connected, never acted", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob", Present: true}, events: []string{EvParticipantRemoved},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if !f.s.Removed["p_bob"] {
				t.Errorf("removed: got false, want true")
			}
		}},
	{name: "lowers the hand", setup: seq(running, raised(bob)), actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob"},
		events: []string{EvHandLowered, EvParticipantRemoved}},
	{name: "gone, but asked", setup: asked, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_ana"}, events: []string{EvParticipantRemoved}},
	{name: "gone, but voted", setup: seq(asked, func(f *fixture) { f.do(bob, Command{Type: CmdUpvote, Question: "q1"}) }),
		actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob"}, events: []string{EvParticipantRemoved}},
	{name: "gone, but reported", setup: seq(asked, reportedBy(cleo)), actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_cleo"}, events: []string{EvParticipantRemoved}},
	{name: "gone, but has the floor", setup: seq(running, raised(bob), func(f *fixture) { f.do(fac, Command{Type: CmdCallTurn, Participant: "p_bob"}) }),
		actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob"}, events: []string{EvParticipantRemoved}},
	{name: "never existed", setup: asked, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_nobody"}, want: ENOTFOUND, msg: `participant "p_nobody" not found`},
	{name: "a hand since lowered leaves no trace", setup: seq(running, raised(bob), func(f *fixture) { f.do(bob, Command{Type: CmdLowerHand}) }),
		actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob"}, want: ENOTFOUND},
	{name: "the presenter screen", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "presenter", Present: true}, want: EINVALID, msg: "participant"},
	{name: "no participant", setup: running, actor: fac, cmd: Command{Type: CmdRemove}, want: EINVALID},
	{name: "participant id too long", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_" + strings.Repeat("x", 63)}, want: EINVALID, msg: "participant"},
	{name: "participant id with a control character", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_\x00"}, want: EINVALID},
	{name: "the facilitator", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "facilitator"}, want: EINVALID},
	{name: "a team lead", setup: running, actor: fac, cmd: Command{Type: CmdRemove, Participant: "team:t1"}, want: EINVALID},
	{name: "twice", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdRemove, Participant: "p_bob", Present: true}) }),
		actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob", Present: true}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_bob"}, want: ECONFLICT},

	// rotate_keys
	{name: "happy", actor: fac, cmd: Command{Type: CmdRotateKeys, NewSecrets: rotatedSecrets()}, events: []string{EvKeysRotated},
		check: func(t *testing.T, f *fixture, evs []Event) {
			sec := f.s.Secrets
			if sec.Generation != 1 || sec.FacilitatorKeyHash != "newfachash" || sec.TeamKeyHashes["t2"] != "n2" || sec.ParticipantSecret != secretPartSecret {
				t.Errorf("secrets: got %+v, want generation 1 with new hashes and the old participant secret", sec)
			}
			if got, want := evs[0].Count, 1; got != want {
				t.Errorf("count: got %v, want %v", got, want)
			}
		}},
	{name: "no hashes from the hub", actor: fac, cmd: Command{Type: CmdRotateKeys}, want: EINTERNAL},
	{name: "a team hash missing", actor: fac, cmd: Command{Type: CmdRotateKeys, NewSecrets: &Secrets{FacilitatorKeyHash: "x", TeamKeyHashes: map[string]string{"t1": "y"}}}, want: EINTERNAL},
	{name: "a hash for another team", actor: fac, cmd: Command{Type: CmdRotateKeys, NewSecrets: &Secrets{FacilitatorKeyHash: "x", TeamKeyHashes: map[string]string{"t1": "y", "t2": "y", "t9": "y"}}}, want: EINTERNAL},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdRotateKeys, NewSecrets: rotatedSecrets()}, want: ECONFLICT},

	// save_draft
	{name: "happy in the lobby", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3, Rationale: "we think"},
		events: []string{EvDraftSaved},
		check: func(t *testing.T, f *fixture, evs []Event) {
			a := f.s.Score("t1", "investment")
			if a.DraftLevel != 3 || a.DraftRationale != "we think" || a.Submitted || a.Level != 0 {
				t.Errorf("assessment: got %+v, want a level 3 draft only", a)
			}
		}},
	{name: "no level yet", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Rationale: "thinking"}, events: []string{EvDraftSaved}},
	{name: "top level", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 4}, events: []string{EvDraftSaved}},
	{name: "rationale at the limit", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Rationale: strings.Repeat("ß", MaxRationaleLen)}, events: []string{EvDraftSaved}},
	{name: "in wrap-up", setup: wrapup, actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 1}, events: []string{EvDraftSaved}},
	{name: "after submitting keeps the submission", setup: submitted, actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 4, Rationale: "maybe more"},
		events: []string{EvDraftSaved},
		check: func(t *testing.T, f *fixture, evs []Event) {
			a := f.s.Score("t1", "investment")
			if a.Level != 2 || !a.Submitted || a.DraftLevel != 4 {
				t.Errorf("assessment: got %+v, want submitted 2 with draft 4", a)
			}
		}},
	{name: "level too high", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 5}, want: EINVALID, msg: "level"},
	{name: "negative level", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: -1}, want: EINVALID},
	{name: "unknown aspect", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "nope", Level: 1}, want: ENOTFOUND},
	{name: "no aspect", actor: payments, cmd: Command{Type: CmdSaveDraft, Level: 1}, want: EINVALID},
	{name: "rationale too long", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Rationale: strings.Repeat("ß", MaxRationaleLen+1)}, want: EINVALID, msg: "rationale"},
	{name: "rationale with a control character", actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Rationale: "esc\x1b[2J"}, want: EINVALID},
	{name: "revealed", setup: revealedInvestment, actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3}, want: ECONFLICT},
	{name: "revealed as not submitted", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdReveal}) }),
		actor: search, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3}, want: ECONFLICT},
	{name: "after hide_reveal again", setup: seq(revealedInvestment, func(f *fixture) { f.do(fac, Command{Type: CmdHideReveal, Aspect: "investment"}) }),
		actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3}, events: []string{EvDraftSaved}},
	{name: "closed room", setup: closed, actor: payments, cmd: Command{Type: CmdSaveDraft, Aspect: "investment", Level: 1}, want: ECONFLICT},
	{name: "another team", actor: payments, cmd: Command{Type: CmdSaveDraft, Team: "t2", Aspect: "investment", Level: 1},
		want: EINVALID, msg: "team: a team lead acts for its own team only"},
	{name: "its own team named", actor: payments, cmd: Command{Type: CmdSaveDraft, Team: "t1", Aspect: "investment", Level: 1},
		want: EINVALID, msg: "team: a team lead acts for its own team only"},

	// submit
	{name: "happy", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "a team"},
		events: []string{EvSubmitted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			a := f.s.Score("t1", "investment")
			if a.Level != 2 || a.Rationale != "a team" || !a.Submitted || a.Revealed || !a.SubmittedAt.Equal(t0) {
				t.Errorf("assessment: got %+v, want submitted 2 at t0, not revealed", a)
			}
			if got, want := evs[0].Count, 1; got != want {
				t.Errorf("count: got %v, want %v", got, want)
			}
		}},
	{name: "resubmit keeps the count", setup: submitted, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 3},
		events: []string{EvSubmitted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Count, 1; got != want {
				t.Errorf("count: got %v, want %v", got, want)
			}
			if got, want := f.s.Score("t1", "investment").Level, 3; got != want {
				t.Errorf("level: got %v, want %v", got, want)
			}
		}},
	{name: "second team counts", setup: submitted, actor: search, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 1},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := evs[0].Count, 2; got != want {
				t.Errorf("count: got %v, want %v", got, want)
			}
		}},
	{name: "in the lobby", actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "adoption", Level: 1}, events: []string{EvSubmitted}},
	{name: "level zero", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment"}, want: EINVALID, msg: "level"},
	{name: "level too high", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 5}, want: EINVALID},
	{name: "negative level", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: -3}, want: EINVALID},
	{name: "unknown aspect", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "nope", Level: 1}, want: ENOTFOUND},
	{name: "rationale too long", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 1, Rationale: strings.Repeat("x", MaxRationaleLen+1)}, want: EINVALID},
	{name: "revealed", setup: revealedInvestment, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 3}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 1}, want: ECONFLICT},
	{name: "another team", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Team: "t2", Aspect: "investment", Level: 1},
		want: EINVALID, msg: "team: a team lead acts for its own team only"},
	{name: "a question", setup: running, actor: payments, cmd: Command{Type: CmdSubmit, Aspect: "investment", Level: 1, Question: "q1"},
		want: EINVALID, msg: "question: not a field of submit"},

	// ask
	{name: "happy", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: "  Who funds it?  "}, events: []string{EvQuestionPosted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			q, ok := f.s.Question("q1")
			if !ok || q.Text != "Who funds it?" || q.Author != "p_ana" || q.AuthorName != "Ana" || q.Pending || q.Aspect != "investment" || !q.At.Equal(t0) {
				t.Errorf("question: got %+v, want Ana's on investment", q)
			}
		}},
	{name: "anonymous", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: "Who?", Anonymous: true},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.AuthorName != "" || !q.Anonymous || q.Author != "p_ana" {
				t.Errorf("question: got %+v, want anonymous by p_ana without a name", q)
			}
		}},
	{name: "during a turn", setup: withTurn, actor: bob, cmd: Command{Type: CmdAsk, Text: "Why level 2?"},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.Team != "t1" {
				t.Errorf("team: got %q, want t1", q.Team)
			}
		}},
	{name: "pending with approve-first", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdSetApproveFirst, On: true}) }),
		actor: ana, cmd: Command{Type: CmdAsk, Text: "Pending?"},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); !q.Pending {
				t.Errorf("pending: got false, want true")
			}
		}},
	{name: "the facilitator skips approval", setup: seq(running, func(f *fixture) { f.do(fac, Command{Type: CmdSetApproveFirst, On: true}) }),
		actor: fac, cmd: Command{Type: CmdAsk, Text: "Warm-up question"},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.Pending {
				t.Errorf("pending: got true, want false")
			}
		}},
	{name: "a team lead", setup: running, actor: search, cmd: Command{Type: CmdAsk, Text: "To Payments: how?"}, events: []string{EvQuestionPosted}},
	{name: "in wrap-up", setup: wrapup, actor: ana, cmd: Command{Type: CmdAsk, Text: "Next steps?"}, events: []string{EvQuestionPosted}},
	{name: "at the limit", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: strings.Repeat("ñ", MaxQuestionLen)}, events: []string{EvQuestionPosted}},
	{name: "too long", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: strings.Repeat("ñ", MaxQuestionLen+1)}, want: EINVALID, msg: "text"},
	{name: "empty", setup: running, actor: ana, cmd: Command{Type: CmdAsk}, want: EINVALID},
	{name: "blank", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: " \n\t "}, want: EINVALID},
	{name: "control character", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: "x\x7f"}, want: EINVALID},
	{name: "in the lobby", actor: ana, cmd: Command{Type: CmdAsk, Text: "Early?"}, want: ECONFLICT},
	{name: "room full of questions", setup: func(f *fixture) {
		running(f)
		for i := range MaxQuestions {
			f.apply([]Event{{Seq: f.s.Seq + 1, Type: EvQuestionPosted, At: t0, QuestionID: fmt.Sprintf("q%d", i+1),
				Question: &Question{ID: fmt.Sprintf("q%d", i+1), Text: "x", Author: "p_x", At: t0}}})
		}
	}, actor: ana, cmd: Command{Type: CmdAsk, Text: "One more"}, want: ECONFLICT},
	{name: "closed room", setup: seq(running, closed), actor: ana, cmd: Command{Type: CmdAsk, Text: "Late?"}, want: ECONFLICT},
	{name: "under another name", setup: running, actor: ana, cmd: Command{Type: CmdAsk, Text: "Who am I?", Name: "Bob"},
		want: EINVALID, msg: "name: a question carries its author's display name"},

	// upvote
	{name: "happy", setup: asked, actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, events: []string{EvUpvoted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			q, _ := f.s.Question("q1")
			if q.Votes != 1 || !q.Voters["p_bob"] || evs[0].Count != 1 {
				t.Errorf("votes: got %d %v count %d, want 1 by p_bob", q.Votes, q.Voters, evs[0].Count)
			}
		}},
	{name: "own question", setup: asked, actor: ana, cmd: Command{Type: CmdUpvote, Question: "q1"}, events: []string{EvUpvoted}},
	{name: "the facilitator", setup: asked, actor: fac, cmd: Command{Type: CmdUpvote, Question: "q1"}, events: []string{EvUpvoted}},
	{name: "a team lead", setup: asked, actor: search, cmd: Command{Type: CmdUpvote, Question: "q1"}, events: []string{EvUpvoted}},
	{name: "answered question", setup: seq(asked, func(f *fixture) { f.do(fac, Command{Type: CmdAnswer, Question: "q1", On: true}) }),
		actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, events: []string{EvUpvoted}},
	{name: "twice", setup: seq(asked, func(f *fixture) { f.do(bob, Command{Type: CmdUpvote, Question: "q1"}) }),
		actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ECONFLICT},
	{name: "pending, by its author", setup: pendingQ, actor: ana, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ECONFLICT},
	{name: "pending, by the facilitator", setup: pendingQ, actor: fac, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ECONFLICT},
	{name: "pending, by another attendee", setup: pendingQ, actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ENOTFOUND},
	{name: "hidden", setup: hiddenQ, actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ENOTFOUND},
	{name: "hidden, by its author", setup: hiddenQ, actor: ana, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ENOTFOUND},
	{name: "unknown question", setup: asked, actor: bob, cmd: Command{Type: CmdUpvote, Question: "q2"}, want: ENOTFOUND},
	{name: "no question", setup: asked, actor: bob, cmd: Command{Type: CmdUpvote}, want: EINVALID},
	{name: "closed room", setup: seq(asked, closed), actor: bob, cmd: Command{Type: CmdUpvote, Question: "q1"}, want: ECONFLICT},

	// unvote
	{name: "happy", setup: seq(asked, func(f *fixture) { f.do(bob, Command{Type: CmdUpvote, Question: "q1"}) }),
		actor: bob, cmd: Command{Type: CmdUnvote, Question: "q1"}, events: []string{EvUnvoted},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); q.Votes != 0 || q.Voters["p_bob"] {
				t.Errorf("votes: got %d %v, want 0", q.Votes, q.Voters)
			}
		}},
	{name: "not voted", setup: asked, actor: bob, cmd: Command{Type: CmdUnvote, Question: "q1"}, want: ECONFLICT},
	{name: "hidden", setup: seq(asked, func(f *fixture) {
		f.do(bob, Command{Type: CmdUpvote, Question: "q1"})
		f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
	}), actor: bob, cmd: Command{Type: CmdUnvote, Question: "q1"}, want: ENOTFOUND},
	{name: "unknown question", setup: asked, actor: bob, cmd: Command{Type: CmdUnvote, Question: "q3"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(asked, func(f *fixture) { f.do(bob, Command{Type: CmdUpvote, Question: "q1"}) }, closed),
		actor: bob, cmd: Command{Type: CmdUnvote, Question: "q1"}, want: ECONFLICT},

	// report
	{name: "happy", setup: asked, actor: bob, cmd: Command{Type: CmdReport, Question: "q1"}, events: []string{EvReported},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); !q.Reporters["p_bob"] || q.Hidden {
				t.Errorf("question: got %+v, want reported by p_bob and visible", q)
			}
		}},
	{name: "the limit hides", setup: seq(asked, reportedBy(bob, search)), actor: cleo, cmd: Command{Type: CmdReport, Question: "q1"},
		events: []string{EvReported, EvQuestionHidden},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if q, _ := f.s.Question("q1"); !q.Hidden || q.HiddenBy != "reports" {
				t.Errorf("question: got %+v, want hidden by reports", q)
			}
		}},
	{name: "own question", setup: asked, actor: ana, cmd: Command{Type: CmdReport, Question: "q1"}, want: ECONFLICT},
	{name: "twice", setup: seq(asked, reportedBy(bob)), actor: bob, cmd: Command{Type: CmdReport, Question: "q1"}, want: ECONFLICT},
	{name: "hidden", setup: hiddenQ, actor: bob, cmd: Command{Type: CmdReport, Question: "q1"}, want: ENOTFOUND},
	{name: "pending", setup: pendingQ, actor: bob, cmd: Command{Type: CmdReport, Question: "q1"}, want: ENOTFOUND},
	{name: "unknown question", setup: asked, actor: bob, cmd: Command{Type: CmdReport, Question: "q9"}, want: ENOTFOUND},
	{name: "closed room", setup: seq(asked, closed), actor: bob, cmd: Command{Type: CmdReport, Question: "q1"}, want: ECONFLICT},

	// raise_hand
	{name: "happy", setup: running, actor: ana, cmd: Command{Type: CmdRaiseHand}, events: []string{EvHandRaised},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if got, want := f.s.Hands, []Hand{{Participant: "p_ana", Name: "Ana", At: t0}}; !slices.Equal(got, want) {
				t.Errorf("hands: got %v, want %v", got, want)
			}
		}},
	{name: "a team lead", setup: running, actor: search, cmd: Command{Type: CmdRaiseHand}, events: []string{EvHandRaised}},
	{name: "already raised", setup: seq(running, raised(ana)), actor: ana, cmd: Command{Type: CmdRaiseHand}, want: ECONFLICT},
	{name: "too many hands", setup: func(f *fixture) {
		running(f)
		for i := range MaxHands {
			f.do(Actor{Role: RoleAttendee, Participant: fmt.Sprintf("p_%d", i), Name: "N"}, Command{Type: CmdRaiseHand})
		}
	}, actor: ana, cmd: Command{Type: CmdRaiseHand}, want: ECONFLICT},
	{name: "in the lobby", actor: ana, cmd: Command{Type: CmdRaiseHand}, want: ECONFLICT},
	{name: "in wrap-up", setup: wrapup, actor: ana, cmd: Command{Type: CmdRaiseHand}, want: ECONFLICT},
	{name: "closed room", setup: seq(running, closed), actor: ana, cmd: Command{Type: CmdRaiseHand}, want: ECONFLICT},
	{name: "for someone else", setup: running, actor: ana, cmd: Command{Type: CmdRaiseHand, Participant: "p_bob"},
		want: EINVALID, msg: "participant: a participant raises its own hand only"},

	// lower_hand
	{name: "own", setup: seq(running, raised(ana), raised(bob)), actor: ana, cmd: Command{Type: CmdLowerHand}, events: []string{EvHandLowered},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if len(f.s.Hands) != 1 || f.s.Hands[0].Participant != "p_bob" {
				t.Errorf("hands: got %v, want only Bob's", f.s.Hands)
			}
		}},
	{name: "own, named", setup: seq(running, raised(ana)), actor: ana, cmd: Command{Type: CmdLowerHand, Participant: "p_ana"}, events: []string{EvHandLowered}},
	{name: "the facilitator lowers another's", setup: seq(running, raised(ana)), actor: fac, cmd: Command{Type: CmdLowerHand, Participant: "p_ana"}, events: []string{EvHandLowered}},
	{name: "another's", setup: seq(running, raised(ana)), actor: bob, cmd: Command{Type: CmdLowerHand, Participant: "p_ana"},
		want: EINVALID, msg: "participant: only the facilitator may lower another participant's hand"},
	{name: "a team lead lowers another's", setup: seq(running, raised(ana)), actor: search, cmd: Command{Type: CmdLowerHand, Participant: "p_ana"}, want: EINVALID, msg: "participant: "},
	{name: "no hand", setup: running, actor: ana, cmd: Command{Type: CmdLowerHand}, want: ENOTFOUND},
	{name: "the facilitator names someone who never existed", setup: seq(running, raised(ana)), actor: fac, cmd: Command{Type: CmdLowerHand, Participant: "p_nobody"},
		want: ENOTFOUND, msg: `no raised hand for "p_nobody"`},
	{name: "closed room", setup: seq(running, raised(ana), closed), actor: ana, cmd: Command{Type: CmdLowerHand}, want: ECONFLICT},
}

func TestDecide(t *testing.T) {
	for _, tc := range decideCases {
		t.Run(tc.cmd.Type+"/"+tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			before := mustJSON(t, f.s)
			cmd := tc.cmd
			cmd.Key = "cmd-under-test"
			evs, err := Decide(f.s, tc.actor, cmd, f.now)
			if !bytes.Equal(before, mustJSON(t, f.s)) {
				t.Fatalf("Decide changed the state")
			}
			if got := ErrorCode(err); got != tc.want {
				t.Fatalf("code: got %q (%v), want %q", got, err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(ErrorMessage(err), tc.msg) {
				t.Errorf("message: got %q, want it to mention %q", ErrorMessage(err), tc.msg)
			}
			if err != nil {
				if evs != nil {
					t.Errorf("events: got %v, want none with an error", types(evs))
				}
				return
			}
			if len(evs) == 0 {
				t.Fatalf("events: got none, want some")
			}
			if tc.events != nil && !slices.Equal(types(evs), tc.events) {
				t.Errorf("events: got %v, want %v", types(evs), tc.events)
			}
			for i, e := range evs {
				if got, want := e.Seq, f.s.Seq+uint64(i)+1; got != want {
					t.Errorf("events[%d].seq: got %v, want %v", i, got, want)
				}
				if !e.At.Equal(f.now) || e.Cmd != "cmd-under-test" {
					t.Errorf("events[%d] at, cmd: got %v %q, want %v cmd-under-test", i, e.At, e.Cmd, f.now)
				}
			}
			f.apply(evs)
			if seq, ok := f.s.Applied("cmd-under-test"); !ok || seq != f.s.Seq {
				t.Errorf("applied: got %v %v, want %v true", seq, ok, f.s.Seq)
			}
			if tc.check != nil {
				tc.check(t, f, evs)
			}
		})
	}
}

// TestDecideCoversEveryCommand fails when a command type has no success
// case or no error case in decideCases, or no entry in allowedRoles.
func TestDecideCoversEveryCommand(t *testing.T) {
	ok, bad := map[string]int{}, map[string]int{}
	for _, tc := range decideCases {
		if !slices.Contains(CommandTypes, tc.cmd.Type) {
			t.Errorf("case %q: unknown command type %q", tc.name, tc.cmd.Type)
		}
		if tc.want == "" {
			ok[tc.cmd.Type]++
		} else {
			bad[tc.cmd.Type]++
		}
	}
	for _, typ := range CommandTypes {
		if ok[typ] == 0 {
			t.Errorf("%s: no success case", typ)
		}
		if bad[typ] == 0 {
			t.Errorf("%s: no error case", typ)
		}
		if _, found := allowedRoles[typ]; !found {
			t.Errorf("%s: not in allowedRoles", typ)
		}
	}
	if got, want := len(allowedRoles), len(CommandTypes); got != want {
		t.Errorf("allowedRoles: got %d entries, want %d", got, want)
	}
}

// allowedRoles is who may send each command, as hub/PROTOCOL.md says.
var allowedRoles = map[string][]Role{
	CmdStart: {RoleFacilitator}, CmdGotoAspect: {RoleFacilitator}, CmdSetAgenda: {RoleFacilitator},
	CmdAddTeam: {RoleFacilitator}, CmdSetQueue: {RoleFacilitator}, CmdCallTurn: {RoleFacilitator},
	CmdExtendTurn: {RoleFacilitator}, CmdEndTurn: {RoleFacilitator}, CmdReveal: {RoleFacilitator},
	CmdHideReveal: {RoleFacilitator}, CmdHighlight: {RoleFacilitator}, CmdAnswer: {RoleFacilitator},
	CmdHideQuestion: {RoleFacilitator}, CmdRestoreQuestion: {RoleFacilitator}, CmdApproveQuestion: {RoleFacilitator},
	CmdSetApproveFirst: {RoleFacilitator}, CmdSetNote: {RoleFacilitator}, CmdAddAction: {RoleFacilitator},
	CmdSetActionDone: {RoleFacilitator}, CmdRemoveAction: {RoleFacilitator}, CmdWrapUp: {RoleFacilitator},
	CmdClose: {RoleFacilitator}, CmdRemove: {RoleFacilitator}, CmdRotateKeys: {RoleFacilitator},
	CmdSaveDraft: {RoleTeam}, CmdSubmit: {RoleTeam},
	CmdAsk:    {RoleFacilitator, RoleTeam, RoleAttendee},
	CmdUpvote: {RoleFacilitator, RoleTeam, RoleAttendee}, CmdUnvote: {RoleFacilitator, RoleTeam, RoleAttendee},
	CmdReport: {RoleTeam, RoleAttendee}, CmdRaiseHand: {RoleTeam, RoleAttendee},
	CmdLowerHand:     {RoleFacilitator, RoleTeam, RoleAttendee},
	CmdOpenEstimates: {RoleFacilitator}, CmdCloseEstimates: {RoleFacilitator},
	CmdEstimate: {RoleTeam, RoleAttendee}, CmdSetEstimateEachTurn: {RoleFacilitator},
}

// TestDecidePermissions sends every command from every role: a role that
// may not send it gets "forbidden", whatever the state and input, and a
// role that may is never answered "forbidden" for a plain command.
func TestDecidePermissions(t *testing.T) {
	actors := []Actor{fac, payments, ana, presenter,
		{Role: "", Participant: "p_nobody"}, {Role: "admin", Participant: "p_admin"}}
	setup := seq(asked, raised(ana), submitInvestment)
	for _, typ := range CommandTypes {
		for _, a := range actors {
			allowed := slices.Contains(allowedRoles[typ], a.Role)
			t.Run(fmt.Sprintf("%s/%s", typ, a.Role), func(t *testing.T) {
				f := newFixture(t)
				setup(f)
				_, err := f.try(a, Command{Type: typ, Aspect: "investment", Question: "q1", Level: 1, Text: "x", Name: "X"})
				got := ErrorCode(err)
				if !allowed && got != EFORBIDDEN {
					t.Errorf("code: got %q (%v), want %q", got, err, EFORBIDDEN)
				}
				if allowed && got == EFORBIDDEN {
					t.Errorf("code: got %q (%v), want anything else", got, err)
				}
			})
		}
	}
}

// setField sets the client field named (a JSON name) of c to a non-zero
// value; every field Command.Fields reports has a setter here.
var setField = map[string]func(*Command){
	"aspect":      func(c *Command) { c.Aspect = "investment" },
	"team":        func(c *Command) { c.Team = "t1" },
	"participant": func(c *Command) { c.Participant = "p_bob" },
	"question":    func(c *Command) { c.Question = "q1" },
	"level":       func(c *Command) { c.Level = 1 },
	"rationale":   func(c *Command) { c.Rationale = "r" },
	"text":        func(c *Command) { c.Text = "x" },
	"name":        func(c *Command) { c.Name = "X" },
	"anonymous":   func(c *Command) { c.Anonymous = true },
	"on":          func(c *Command) { c.On = true },
	"seconds":     func(c *Command) { c.Seconds = 60 },
	"action":      func(c *Command) { c.Action = 1 },
	"order":       func(c *Command) { c.Order = []string{"t1"} },
}

// onlyItsFields clears every client field of c that its type does not
// take, so generated commands can be mostly well-formed.
func onlyItsFields(c Command) Command {
	var out Command
	for _, f := range commandFields[c.Type] {
		switch f {
		case "aspect":
			out.Aspect = c.Aspect
		case "team":
			out.Team = c.Team
		case "participant":
			out.Participant = c.Participant
		case "question":
			out.Question = c.Question
		case "level":
			out.Level = c.Level
		case "rationale":
			out.Rationale = c.Rationale
		case "text":
			out.Text = c.Text
		case "name":
			out.Name = c.Name
		case "anonymous":
			out.Anonymous = c.Anonymous
		case "on":
			out.On = c.On
		case "seconds":
			out.Seconds = c.Seconds
		case "action":
			out.Action = c.Action
		case "order":
			out.Order = c.Order
		}
	}
	out.Type, out.Key, out.NewSecrets, out.Present = c.Type, c.Key, c.NewSecrets, c.Present
	return out
}

// TestCommandFields: Fields names every client field of Command by its
// JSON name, and commandFields lists only such names, for every command.
func TestCommandFields(t *testing.T) {
	rt := reflect.TypeFor[Command]()
	var client []string
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "-" && name != "type" {
			client = append(client, name)
		}
	}
	for _, name := range client {
		set, ok := setField[name]
		if !ok {
			t.Errorf("%s: no setter in setField", name)
			continue
		}
		var c Command
		set(&c)
		if got := c.Fields(); !slices.Equal(got, []string{name}) {
			t.Errorf("Fields() with %s set: got %v, want [%s]", name, got, name)
		}
		if got := onlyItsFields(Command{Type: CmdStart, Aspect: c.Aspect, Team: c.Team, Participant: c.Participant, Question: c.Question,
			Level: c.Level, Rationale: c.Rationale, Text: c.Text, Name: c.Name, Anonymous: c.Anonymous, On: c.On, Seconds: c.Seconds,
			Action: c.Action, Order: c.Order}).Fields(); len(got) != 0 {
			t.Errorf("onlyItsFields(start with %s): kept %v", name, got)
		}
	}
	if got := (Command{Type: CmdStart, Key: "k", NewSecrets: &Secrets{}, Present: true}).Fields(); len(got) != 0 {
		t.Errorf("server-set fields: got %v in Fields(), want none", got)
	}
	for _, typ := range CommandTypes {
		fields, ok := commandFields[typ]
		if !ok {
			t.Errorf("%s: not in commandFields", typ)
		}
		for _, f := range fields {
			if !slices.Contains(client, f) {
				t.Errorf("%s: takes %q, which is not a field of Command", typ, f)
			}
		}
	}
	if got, want := len(commandFields), len(CommandTypes); got != want {
		t.Errorf("commandFields: got %d entries, want %d", got, want)
	}
}

// TestDecideRefusesFieldsItDoesNotTake sends every command, from a role
// that may send it, with each field it does not take: invalid, and the
// message starts with that field's name. The role's permission is checked
// first (TestDecidePermissions): a role that may not send the command
// hears forbidden, whatever its fields.
func TestDecideRefusesFieldsItDoesNotTake(t *testing.T) {
	actorOf := map[Role]Actor{RoleFacilitator: fac, RoleTeam: payments, RoleAttendee: ana}
	for _, typ := range CommandTypes {
		a := actorOf[allowedRoles[typ][0]]
		for field, set := range setField {
			if slices.Contains(commandFields[typ], field) {
				continue
			}
			t.Run(typ+"/"+field, func(t *testing.T) {
				f := newFixture(t)
				seq(asked, raised(ana))(f)
				cmd := Command{Type: typ}
				set(&cmd)
				_, err := f.try(a, cmd)
				if got := ErrorCode(err); got != EINVALID {
					t.Fatalf("code: got %q (%v), want %q", got, err, EINVALID)
				}
				if msg := ErrorMessage(err); !strings.HasPrefix(msg, field+": ") {
					t.Errorf("message: got %q, want it to start with %q", msg, field+": ")
				}
			})
		}
	}
}

// TestDecideRemovedParticipant: a removed attendee may do nothing more, and
// neither may anyone in a closed room.
func TestDecideRemovedParticipant(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"ask", Command{Type: CmdAsk, Text: "back again"}},
		{"upvote", Command{Type: CmdUpvote, Question: "q1"}},
		{"unvote", Command{Type: CmdUnvote, Question: "q1"}},
		{"report", Command{Type: CmdReport, Question: "q1"}},
		{"raise_hand", Command{Type: CmdRaiseHand}},
		{"lower_hand", Command{Type: CmdLowerHand}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			asked(f)
			f.do(bob, Command{Type: CmdUpvote, Question: "q1"})
			f.do(fac, Command{Type: CmdRemove, Participant: "p_bob"})
			_, err := f.try(bob, tc.cmd)
			if got := ErrorCode(err); got != EFORBIDDEN {
				t.Errorf("code: got %q (%v), want %q", got, err, EFORBIDDEN)
			}
		})
	}
}

func TestDecideNoRoomOrUnknownCommand(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		s    *State
		cmd  Command
		want string
	}{
		{"nil state", nil, Command{Type: CmdStart}, ENOTFOUND},
		{"empty state", &State{}, Command{Type: CmdStart}, ENOTFOUND},
		{"unknown type", f.s, Command{Type: "drop_tables"}, EINVALID},
		{"empty type", f.s, Command{}, EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decide(tc.s, fac, tc.cmd, t0)
			if got := ErrorCode(err); got != tc.want {
				t.Errorf("code: got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestApplyRefusesAGap(t *testing.T) {
	f := newFixture(t)
	evs, err := f.try(fac, Command{Type: CmdStart})
	if err != nil {
		t.Fatal(err)
	}
	evs[0].Seq += 1
	if err := Apply(f.s, evs); ErrorCode(err) != EINTERNAL {
		t.Errorf("Apply with a gap: got %v, want an internal error", err)
	}
	if got, want := f.s.Seq, uint64(1); got != want {
		t.Errorf("seq: got %v, want %v", got, want)
	}
	if _, err := Replay([]Event{{Seq: 2, Type: EvStarted}}); err == nil {
		t.Errorf("Replay from seq 2: got no error, want one")
	}
}

func TestErrorHelpers(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		code, message string
	}{
		{"nil", nil, "", ""},
		{"domain", Errorf(EINVALID, "level: %d", 5), EINVALID, "level: 5"},
		{"wrapped", fmt.Errorf("hub: decide: %w", Errorf(ECONFLICT, "closed")), ECONFLICT, "closed"},
		{"other", fmt.Errorf("disk on fire"), EINTERNAL, "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.code {
				t.Errorf("code: got %q, want %q", got, tc.code)
			}
			if got := ErrorMessage(tc.err); got != tc.message {
				t.Errorf("message: got %q, want %q", got, tc.message)
			}
		})
	}
	if got, want := Errorf(EFORBIDDEN, "no").Error(), "forbidden: no"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}

// TestRememberForgetsTheOldest: a room remembers the last
// MaxRememberedCommands command keys, forgets older ones first, and a
// replay (also of the state through JSON) remembers the same.
func TestRememberForgetsTheOldest(t *testing.T) {
	f := newFixture(t)
	const extra = 5
	var evs []Event
	for i := range MaxRememberedCommands + extra {
		evs = append(evs, Event{Seq: f.s.Seq + uint64(i) + 1, Type: EvNoteSet, At: t0, Aspect: "investment",
			Text: "n", Cmd: fmt.Sprintf("k%d", i)})
	}
	f.apply(evs)
	for _, tc := range []struct {
		key  string
		want bool
	}{{"k0", false}, {fmt.Sprintf("k%d", extra-1), false}, {fmt.Sprintf("k%d", extra), true}, {fmt.Sprintf("k%d", MaxRememberedCommands+extra-1), true}} {
		if _, ok := f.s.Applied(tc.key); ok != tc.want {
			t.Errorf("Applied(%s): got %v, want %v", tc.key, ok, tc.want)
		}
	}
	if len(f.s.Done) != MaxRememberedCommands || len(f.s.DoneOrder) != MaxRememberedCommands {
		t.Errorf("remembered: got %d keys in order %d, want %d", len(f.s.Done), len(f.s.DoneOrder), MaxRememberedCommands)
	}
	if got, want := f.s.DoneOrder[0], fmt.Sprintf("k%d", extra); got != want {
		t.Errorf("oldest: got %v, want %v", got, want)
	}
	// A retried key moves nothing; a new one forgets exactly one more.
	f.apply([]Event{{Seq: f.s.Seq + 1, Type: EvNoteSet, Aspect: "investment", Cmd: "k10"}})
	f.apply([]Event{{Seq: f.s.Seq + 1, Type: EvNoteSet, Aspect: "investment", Cmd: "new"}})
	if _, ok := f.s.Applied(fmt.Sprintf("k%d", extra)); ok || len(f.s.Done) != MaxRememberedCommands {
		t.Errorf("after one more: got %d keys, k%d remembered %v", len(f.s.Done), extra, ok)
	}
	replayed, err := Replay(f.log)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, f.s), mustJSON(t, replayed); !bytes.Equal(a, b) {
		t.Errorf("replay differs")
	}
	if a, b := mustJSON(t, f.s), mustJSON(t, f.s.Clone()); !bytes.Equal(a, b) {
		t.Errorf("clone differs")
	}
}
