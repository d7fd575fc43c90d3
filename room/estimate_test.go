package room

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The room's estimate: every command and rule as rows of the command table
// (appended to decideCases, so TestDecide runs them and
// TestDecideCoversEveryCommand counts them), then the arithmetic of the
// result, the results' calibration layer and the secrecy of estimates.

func init() { decideCases = append(decideCases, estimateCases...) }

// estimating is a running room where the room estimates Payments (t1) on
// investment, the aspect under discussion.
func estimating(f *fixture) {
	running(f)
	f.do(fac, Command{Type: CmdOpenEstimates, Team: "t1"})
}

// estimatingAll is a running room where the room estimates every team on
// investment.
func estimatingAll(f *fixture) {
	running(f)
	f.do(fac, Command{Type: CmdOpenEstimates})
}

// estimatedBy has each actor estimate Payments on investment at level.
func estimatedAt(level int, actors ...Actor) func(*fixture) {
	return func(f *fixture) {
		for _, a := range actors {
			f.do(a, Command{Type: CmdEstimate, Team: "t1", Level: level})
		}
	}
}

func eachTurn(f *fixture) { f.do(fac, Command{Type: CmdSetEstimateEachTurn, On: true}) }

// wantEstimation checks the estimation of a team on investment.
func wantEstimation(team string, open bool, count int, levels map[string]int) func(*testing.T, *fixture, []Event) {
	return func(t *testing.T, f *fixture, _ []Event) {
		t.Helper()
		e := f.s.Estimation(team, "investment")
		if e == nil {
			t.Fatalf("estimation %s/investment: got none", team)
		}
		if e.Open != open || e.Count != count || levels != nil && !equalLevels(e.Levels, levels) {
			t.Errorf("estimation %s/investment: got open %v count %d levels %v, want %v %d %v", team, e.Open, e.Count, e.Levels, open, count, levels)
		}
	}
}

func equalLevels(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func wantOrder(order ...string) func(*testing.T, *fixture, []Event) {
	return func(t *testing.T, _ *fixture, evs []Event) {
		t.Helper()
		last := evs[len(evs)-1]
		for _, e := range evs {
			if e.Type == EvEstimatesOpened || e.Type == EvEstimatesClosed {
				last = e
			}
		}
		if !slices.Equal(last.Order, order) {
			t.Errorf("%s order: got %v, want %v", last.Type, last.Order, order)
		}
	}
}

var estimateCases = []decideCase{
	// open_estimates
	{name: "one team", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"},
		events: []string{EvEstimatesOpened}, check: wantEstimation("t1", true, 0, nil)},
	{name: "the aspect under discussion named", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Aspect: "investment", Team: "t2"},
		events: []string{EvEstimatesOpened}, check: wantOrder("t2")},
	{name: "every team", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates},
		events: []string{EvEstimatesOpened}, check: wantOrder("t1", "t2", "t3")},
	{name: "every team not revealed and not open", setup: seq(revealedInvestment, func(f *fixture) {
		f.do(fac, Command{Type: CmdOpenEstimates, Team: "t2"})
	}), actor: fac, cmd: Command{Type: CmdOpenEstimates}, events: []string{EvEstimatesOpened}, check: wantOrder("t3")},
	{name: "reopened keeps the estimates", setup: seq(estimating, estimatedAt(3, ana), func(f *fixture) {
		f.do(fac, Command{Type: CmdCloseEstimates, Team: "t1"})
	}), actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"}, events: []string{EvEstimatesOpened},
		check: wantEstimation("t1", true, 1, map[string]int{"p_ana": 3})},
	{name: "another aspect", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Aspect: "adoption", Team: "t1"}, want: ECONFLICT, msg: "under discussion"},
	{name: "in the lobby", actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"}, want: ECONFLICT},
	{name: "at wrap-up", setup: wrapup, actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"}, want: ECONFLICT},
	{name: "a revealed team", setup: revealedInvestment, actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"}, want: ECONFLICT, msg: "already revealed"},
	{name: "already open", setup: estimating, actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t1"}, want: ECONFLICT, msg: "already open"},
	{name: "no team left", setup: estimatingAll, actor: fac, cmd: Command{Type: CmdOpenEstimates}, want: ECONFLICT, msg: "no team is left"},
	{name: "unknown team", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Team: "t9"}, want: ENOTFOUND},
	{name: "unknown aspect", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Aspect: "nope"}, want: ENOTFOUND},
	{name: "by a team lead", setup: running, actor: payments, cmd: Command{Type: CmdOpenEstimates}, want: EFORBIDDEN},
	{name: "with a level", setup: running, actor: fac, cmd: Command{Type: CmdOpenEstimates, Level: 2}, want: EINVALID, msg: "level: "},

	// close_estimates
	{name: "one team", setup: estimatingAll, actor: fac, cmd: Command{Type: CmdCloseEstimates, Team: "t2"},
		events: []string{EvEstimatesClosed}, check: func(t *testing.T, f *fixture, evs []Event) {
			wantOrder("t2")(t, f, evs)
			wantEstimation("t2", false, 0, nil)(t, f, evs)
			wantEstimation("t1", true, 0, nil)(t, f, evs)
		}},
	{name: "every open one", setup: seq(estimatingAll, func(f *fixture) {
		f.do(fac, Command{Type: CmdCloseEstimates, Team: "t2"})
	}), actor: fac, cmd: Command{Type: CmdCloseEstimates}, events: []string{EvEstimatesClosed}, check: wantOrder("t1", "t3")},
	{name: "keeps the estimates", setup: seq(estimating, estimatedAt(2, ana, search)), actor: fac, cmd: Command{Type: CmdCloseEstimates},
		events: []string{EvEstimatesClosed}, check: wantEstimation("t1", false, 2, map[string]int{"p_ana": 2, "team:t2": 2})},
	{name: "not open", setup: estimating, actor: fac, cmd: Command{Type: CmdCloseEstimates, Team: "t2"}, want: ECONFLICT, msg: "not open"},
	{name: "none open", setup: running, actor: fac, cmd: Command{Type: CmdCloseEstimates}, want: ECONFLICT, msg: "no estimating is open"},
	{name: "unknown team", setup: estimating, actor: fac, cmd: Command{Type: CmdCloseEstimates, Team: "t9"}, want: ENOTFOUND},
	{name: "by an attendee", setup: estimating, actor: ana, cmd: Command{Type: CmdCloseEstimates}, want: EFORBIDDEN},

	// estimate
	{name: "an attendee", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 3},
		events: []string{EvEstimated}, check: func(t *testing.T, f *fixture, evs []Event) {
			e := evs[0]
			if e.Aspect != "investment" || e.Team != "t1" || e.Participant != "p_ana" || e.Level != 3 || e.Count != 1 {
				t.Errorf("estimated: got %+v, want investment t1 p_ana level 3 count 1", e)
			}
			wantEstimation("t1", true, 1, map[string]int{"p_ana": 3})(t, f, evs)
		}},
	{name: "another team's lead", setup: seq(estimating, estimatedAt(3, ana)), actor: search, cmd: Command{Type: CmdEstimate, Aspect: "investment", Team: "t1", Level: 1},
		events: []string{EvEstimated}, check: wantEstimation("t1", true, 2, map[string]int{"p_ana": 3, "team:t2": 1})},
	{name: "changed, counted once", setup: seq(estimating, estimatedAt(3, ana, bob)), actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 4},
		events: []string{EvEstimated}, check: wantEstimation("t1", true, 2, map[string]int{"p_ana": 4, "p_bob": 3})},
	{name: "the top level", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 4}, events: []string{EvEstimated}},
	{name: "unchanged", setup: seq(estimating, estimatedAt(3, ana)), actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 3}, want: ECONFLICT, msg: "already level 3"},
	{name: "itself", setup: estimating, actor: payments, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: EFORBIDDEN, msg: "does not estimate itself"},
	{name: "by the facilitator", setup: estimating, actor: fac, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: EFORBIDDEN},
	{name: "by a presenter screen", setup: estimating, actor: presenter, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: EFORBIDDEN},
	{name: "by a removed attendee", setup: seq(estimating, func(f *fixture) {
		f.do(fac, Command{Type: CmdRemove, Participant: "p_ana", Present: true})
	}), actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: EFORBIDDEN},
	{name: "an estimator is known to remove", setup: seq(estimating, estimatedAt(2, ana)), actor: fac, cmd: Command{Type: CmdRemove, Participant: "p_ana"},
		events: []string{EvParticipantRemoved}},
	{name: "a team not open", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t2", Level: 2}, want: ECONFLICT, msg: "not open"},
	{name: "never opened", setup: running, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: ECONFLICT, msg: "not open"},
	{name: "closed", setup: seq(estimating, func(f *fixture) { f.do(fac, Command{Type: CmdCloseEstimates}) }),
		actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: ECONFLICT, msg: "not open"},
	{name: "after the reveal", setup: seq(estimating, submitInvestment, func(f *fixture) { f.do(fac, Command{Type: CmdReveal, Team: "t1"}) }),
		actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: ECONFLICT, msg: "not open"},
	{name: "after the aspect changed", setup: seq(estimating, func(f *fixture) { f.do(fac, Command{Type: CmdGotoAspect, Aspect: "adoption"}) }),
		actor: ana, cmd: Command{Type: CmdEstimate, Aspect: "investment", Team: "t1", Level: 2}, want: ECONFLICT, msg: "not open"},
	{name: "level 0", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1"}, want: EINVALID, msg: "level: choose a level from 1 to 4"},
	{name: "level -1", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: -1}, want: EINVALID, msg: "level: "},
	{name: "past the top level", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 5}, want: EINVALID, msg: "from 1 to 4, got 5"},
	{name: "no team", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Level: 2}, want: EINVALID, msg: "team: required"},
	{name: "unknown team", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t9", Level: 2}, want: ENOTFOUND},
	{name: "unknown aspect", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Aspect: "nope", Team: "t1", Level: 2}, want: ENOTFOUND},
	{name: "in the lobby", actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2}, want: ECONFLICT},
	{name: "with a rationale", setup: estimating, actor: ana, cmd: Command{Type: CmdEstimate, Team: "t1", Level: 2, Rationale: "why"}, want: EINVALID, msg: "rationale: "},

	// set_estimate_each_turn
	{name: "on", actor: fac, cmd: Command{Type: CmdSetEstimateEachTurn, On: true}, events: []string{EvEstimateEachTurnSet},
		check: func(t *testing.T, f *fixture, _ []Event) {
			if !f.s.EstimateEachTurn {
				t.Errorf("estimateEachTurn: got false, want true")
			}
		}},
	{name: "off", setup: eachTurn, actor: fac, cmd: Command{Type: CmdSetEstimateEachTurn}, events: []string{EvEstimateEachTurnSet}},
	{name: "already off", actor: fac, cmd: Command{Type: CmdSetEstimateEachTurn}, want: ECONFLICT},
	{name: "closed room", setup: closed, actor: fac, cmd: Command{Type: CmdSetEstimateEachTurn, On: true}, want: ECONFLICT},

	// what other commands do to estimates
	{name: "a turn opens estimating", setup: seq(eachTurn, running), actor: fac, cmd: Command{Type: CmdCallTurn},
		events: []string{EvTurnStarted, EvEstimatesOpened}, check: func(t *testing.T, f *fixture, evs []Event) {
			wantOrder("t1")(t, f, evs)
			wantEstimation("t1", true, 0, nil)(t, f, evs)
		}},
	{name: "a turn without estimating each turn", setup: running, actor: fac, cmd: Command{Type: CmdCallTurn}, events: []string{EvTurnStarted}},
	{name: "a turn of a team already open", setup: seq(eachTurn, estimating), actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t1"}, events: []string{EvTurnStarted}},
	{name: "a turn of a revealed team", setup: seq(eachTurn, revealedInvestment), actor: fac, cmd: Command{Type: CmdCallTurn, Team: "t1"}, events: []string{EvTurnStarted}},
	{name: "a raised hand's turn", setup: seq(eachTurn, running, raised(ana)), actor: fac, cmd: Command{Type: CmdCallTurn, Participant: "p_ana"},
		events: []string{EvHandLowered, EvTurnStarted}},
	{name: "changing aspect closes estimating", setup: seq(estimatingAll, func(f *fixture) { f.do(fac, Command{Type: CmdCallTurn}) }),
		actor: fac, cmd: Command{Type: CmdGotoAspect, Aspect: "adoption"}, events: []string{EvTurnEnded, EvEstimatesClosed, EvAspectChanged},
		check: wantOrder("t1", "t2", "t3")},
	{name: "wrapping up closes estimating", setup: estimating, actor: fac, cmd: Command{Type: CmdWrapUp}, events: []string{EvEstimatesClosed, EvWrappedUp},
		check: wantEstimation("t1", false, 0, nil)},
	{name: "closing the room closes estimating", setup: estimating, actor: fac, cmd: Command{Type: CmdClose}, events: []string{EvEstimatesClosed, EvClosed}},
	{name: "the reveal carries the estimate", setup: seq(estimating, submitInvestment, estimatedAt(3, bob, cleo), estimatedAt(2, ana), estimatedAt(4, search)),
		actor: fac, cmd: Command{Type: CmdReveal, Team: "t1"}, events: []string{EvRevealed}, check: func(t *testing.T, f *fixture, evs []Event) {
			got := evs[0].Scores[0].Estimate
			want := &EstimateResult{Count: 4, Histogram: []int{0, 1, 2, 1}, Median: 3, Mean: 3, Self: 2, Gap: ptr(-1.0), Flagged: true}
			if !got.equal(want) {
				t.Errorf("estimate: got %s, want %s", mustJSON(t, got), mustJSON(t, want))
			}
			e := f.s.Estimation("t1", "investment")
			if e.Open || !e.Revealed || !e.Result.equal(want) {
				t.Errorf("estimation after the reveal: got open %v revealed %v result %s, want closed, revealed, the result", e.Open, e.Revealed, mustJSON(t, e.Result))
			}
		}},
	{name: "the reveal of every team carries each estimate", setup: seq(estimatingAll, submitInvestment, estimatedAt(4, ana)),
		actor: fac, cmd: Command{Type: CmdReveal}, events: []string{EvRevealed}, check: func(t *testing.T, f *fixture, evs []Event) {
			sc := evs[0].Scores
			if sc[0].Estimate == nil || sc[0].Estimate.Count != 1 || sc[0].Estimate.Gap == nil || *sc[0].Estimate.Gap != -2 {
				t.Errorf("t1: got %s, want one estimate and a gap of -2", mustJSON(t, sc[0].Estimate))
			}
			// t2 did not submit and nobody estimated it: no gap, no median.
			if e := sc[1].Estimate; e == nil || e.Count != 0 || e.Gap != nil || e.Median != 0 || !slices.Equal(e.Histogram, []int{0, 0, 0, 0}) {
				t.Errorf("t2: got %s, want an empty estimate", mustJSON(t, e))
			}
			for _, team := range []string{"t1", "t2", "t3"} {
				if e := f.s.Estimation(team, "investment"); e.Open || !e.Revealed {
					t.Errorf("%s after the reveal: got open %v revealed %v, want closed and revealed", team, e.Open, e.Revealed)
				}
			}
		}},
	{name: "a team never estimated", setup: submitted, actor: fac, cmd: Command{Type: CmdReveal, Team: "t1"}, events: []string{EvRevealed},
		check: func(t *testing.T, f *fixture, evs []Event) {
			if e := evs[0].Scores[0].Estimate; e != nil {
				t.Errorf("estimate: got %s, want none", mustJSON(t, e))
			}
		}},
	{name: "hiding the reveal hides the estimate", setup: seq(estimating, submitInvestment, estimatedAt(3, ana), func(f *fixture) {
		f.do(fac, Command{Type: CmdReveal, Team: "t1"})
	}), actor: fac, cmd: Command{Type: CmdHideReveal, Team: "t1"}, events: []string{EvRevealHidden}, check: func(t *testing.T, f *fixture, _ []Event) {
		if e := f.s.Estimation("t1", "investment"); e.Revealed || e.Result != nil || e.Open {
			t.Errorf("estimation: got %+v, want closed, not revealed, no result", e)
		}
		// Estimating may open again for the reveal to come.
		f.do(fac, Command{Type: CmdOpenEstimates, Team: "t1"})
		f.do(bob, Command{Type: CmdEstimate, Team: "t1", Level: 1})
		evs := f.do(fac, Command{Type: CmdReveal, Team: "t1"})
		if r := evs[0].Scores[0].Estimate; r.Count != 2 || r.Median != 2 {
			t.Errorf("estimate revealed anew: got %s, want 2 estimates, median 2", mustJSON(t, r))
		}
	}},
}

func ptr[T any](v T) *T { return &v }

func TestComputeEstimate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		levels []int
		n      int
		self   int
		want   EstimateResult
	}{
		{"none", nil, 4, 3, EstimateResult{Histogram: []int{0, 0, 0, 0}, Self: 3}},
		{"one", []int{2}, 4, 2, EstimateResult{Count: 1, Histogram: []int{0, 1, 0, 0}, Median: 2, Mean: 2, Self: 2, Gap: ptr(0.0)}},
		{"even count: the median between the middle two", []int{1, 2, 3, 4}, 4, 4,
			EstimateResult{Count: 4, Histogram: []int{1, 1, 1, 1}, Median: 2.5, Mean: 2.5, Self: 4, Gap: ptr(1.5), Flagged: true}},
		{"a gap under a level is not flagged", []int{2, 3}, 4, 3,
			EstimateResult{Count: 2, Histogram: []int{0, 1, 1, 0}, Median: 2.5, Mean: 2.5, Self: 3, Gap: ptr(0.5)}},
		{"the team sees itself lower", []int{4, 4, 3}, 4, 2,
			EstimateResult{Count: 3, Histogram: []int{0, 0, 1, 2}, Median: 4, Mean: 3.67, Self: 2, Gap: ptr(-2.0), Flagged: true}},
		{"not submitted: no gap", []int{1, 1}, 4, 0, EstimateResult{Count: 2, Histogram: []int{2, 0, 0, 0}, Median: 1, Mean: 1}},
		{"two levels", []int{1, 2, 2}, 2, 1, EstimateResult{Count: 3, Histogram: []int{1, 2}, Median: 2, Mean: 1.67, Self: 1, Gap: ptr(-1.0), Flagged: true}},
		{"ten levels", []int{10, 9, 1}, 10, 10,
			EstimateResult{Count: 3, Histogram: []int{1, 0, 0, 0, 0, 0, 0, 0, 1, 1}, Median: 9, Mean: 6.67, Self: 10, Gap: ptr(1.0), Flagged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			levels := map[string]int{}
			for i, l := range tc.levels {
				levels[fmt.Sprintf("p%d", i)] = l
			}
			if got := computeEstimate(levels, tc.n, tc.self); !got.equal(&tc.want) {
				t.Errorf("got %s, want %s", mustJSON(t, got), mustJSON(t, &tc.want))
			}
		})
	}
}

// customFixture is the standard room on a model of n levels.
func customFixture(t *testing.T, n int) *fixture {
	t.Helper()
	m := fuzzModel()
	m.Levels = nil
	for i := range n {
		m.Levels = append(m.Levels, Level{Name: fmt.Sprintf("Level %d", i+1)})
	}
	for i := range m.Aspects {
		cells := make([]Cell, n)
		for j := range cells {
			cells[j] = Cell{Label: fmt.Sprintf("L%d", j+1)}
		}
		m.Aspects[i].Cells = cells
	}
	evs, err := Create(CreateParams{ID: "room-c", Code: "CUSTOM01", Title: "Custom", Model: m,
		TeamNames: []string{"Payments", "Search"}, Secrets: testSecrets(2), Now: t0})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	s, err := Replay(evs)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return &fixture{t: t, s: s, log: evs, now: t0}
}

// TestEstimateCustomModels: the scale of estimates is the model's, from 2
// to 10 levels.
func TestEstimateCustomModels(t *testing.T) {
	for _, n := range []int{MinLevels, 5, MaxLevels} {
		t.Run(fmt.Sprintf("%d levels", n), func(t *testing.T) {
			f := customFixture(t, n)
			running(f)
			f.do(fac, Command{Type: CmdOpenEstimates, Team: "t1"})
			f.do(ana, Command{Type: CmdEstimate, Team: "t1", Level: n})
			f.do(bob, Command{Type: CmdEstimate, Team: "t1", Level: 1})
			_, err := f.try(cleo, Command{Type: CmdEstimate, Team: "t1", Level: n + 1})
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), fmt.Sprintf("from 1 to %d", n)) {
				t.Errorf("level %d: got %v, want invalid naming the scale 1 to %d", n+1, err, n)
			}
			f.do(payments, Command{Type: CmdSubmit, Aspect: "a", Level: n})
			evs := f.do(fac, Command{Type: CmdReveal, Team: "t1"})
			r := evs[0].Scores[0].Estimate
			if len(r.Histogram) != n || r.Histogram[0] != 1 || r.Histogram[n-1] != 1 || r.Count != 2 {
				t.Errorf("estimate: got %s, want %d levels with one estimate at each end", mustJSON(t, r), n)
			}
		})
	}
}

// calibratedRoom is a room where the room estimated every team on
// investment before the reveal: Payments (own level 2) is seen at 3-4,
// Search (own 4) at 4, Identity did not submit; adoption was estimated
// but not revealed.
func calibratedRoom(t *testing.T) *fixture {
	f := newFixture(t)
	running(f)
	f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "A dedicated team"})
	f.do(search, Command{Type: CmdSubmit, Aspect: "investment", Level: 4, Rationale: "An ecosystem"})
	f.do(fac, Command{Type: CmdOpenEstimates})
	for _, a := range []Actor{ana, bob, search} {
		f.do(a, Command{Type: CmdEstimate, Team: "t1", Level: 4})
	}
	f.do(cleo, Command{Type: CmdEstimate, Team: "t1", Level: 3})
	f.do(ana, Command{Type: CmdEstimate, Team: "t2", Level: 4})
	f.do(ana, Command{Type: CmdEstimate, Team: "t3", Level: 1})
	f.do(fac, Command{Type: CmdReveal})
	f.do(fac, Command{Type: CmdGotoAspect, Aspect: "adoption"})
	f.do(fac, Command{Type: CmdOpenEstimates, Team: "t1"})
	f.do(ana, Command{Type: CmdEstimate, Team: "t1", Level: 2})
	return f
}

func TestResultsCalibration(t *testing.T) {
	r := ComputeResults(calibratedRoom(t).s)
	inv, adoption := r.Aspects[0], r.Aspects[1]
	p := inv.Scores[0].Estimate
	if p == nil || p.Count != 4 || p.Median != 4 || p.Mean != 3.75 || p.Gap == nil || *p.Gap != -2 || !p.Flagged || !slices.Equal(p.Histogram, []int{0, 0, 1, 3}) {
		t.Errorf("Payments on investment: got %s, want 4 estimates, median 4, mean 3.75, gap -2 flagged", mustJSON(t, p))
	}
	if id := inv.Scores[2].Estimate; id == nil || id.Count != 1 || id.Gap != nil {
		t.Errorf("Identity on investment: got %s, want one estimate and no gap (not submitted)", mustJSON(t, id))
	}
	want := &AspectCalibration{Estimated: 3, MeanAbsGap: 1, Lower: 1, QAFirst: []string{"t1"}}
	if got := inv.Calibration; got == nil || got.Estimated != want.Estimated || got.MeanAbsGap != want.MeanAbsGap ||
		got.Higher != 0 || got.Lower != 1 || !slices.Equal(got.QAFirst, want.QAFirst) {
		t.Errorf("investment calibration: got %s, want %s", mustJSON(t, got), mustJSON(t, want))
	}
	// Adoption was estimated but not revealed: nothing of it shows.
	if adoption.Calibration != nil || adoption.Scores[0].Estimate != nil {
		t.Errorf("adoption: got %s, want no calibration before the reveal", mustJSON(t, adoption))
	}

	csvRows, err := csv.NewReader(bytes.NewReader(r.CSV())).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if got, want := csvRows[1][6:], []string{"4", "4", "3.75", "-2", "1:0 2:0 3:1 4:3"}; !slices.Equal(got, want) {
		t.Errorf("CSV Payments on investment: got %q, want %q", got, want)
	}
	if got, want := csvRows[2][6:], []string{"1", "4", "4", "0", "1:0 2:0 3:0 4:1"}; !slices.Equal(got, want) {
		t.Errorf("CSV Search on investment: got %q, want %q", got, want)
	}
	if got := csvRows[4][6:]; !slices.Equal(got, []string{"", "", "", "", ""}) {
		t.Errorf("CSV Payments on adoption (estimated, not revealed): got %q, want empty", got)
	}

	md := string(r.Markdown())
	for _, s := range []string{"The room's estimate of each team", "room 4 (4), gap -2 ⚑", "room 4 (1), gap 0 |",
		"Calibration: the room estimated 3 teams; mean gap 1 levels; 1 team sees itself below it; to discuss first: Payments."} {
		if !strings.Contains(md, s) {
			t.Errorf("Markdown: got\n%s\nwant it to contain %q", md, s)
		}
	}

	var back Results
	if err := json.Unmarshal(r.JSON(), &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("JSON round trip: got %+v (%v), want %+v", back, err, r)
	}
}

// checkEstimations checks the estimations of v, a view or a client's copy
// for aud: no one's estimate but aud's own, no result before the reveal.
func checkEstimations(t testing.TB, what string, v *State, aud Audience) {
	t.Helper()
	for team, byAspect := range v.Estimates {
		for aspect, e := range byAspect {
			for p := range e.Levels {
				if !aud.isSelf(p) {
					t.Errorf("%s: estimation %s/%s: got %s's estimate, want only the audience's own", what, team, aspect, p)
				}
			}
			if !e.Revealed && e.Result != nil {
				t.Errorf("%s: estimation %s/%s: got a result before the reveal", what, team, aspect)
			}
			if sc := v.Scores[team][aspect]; e.Revealed && (sc == nil || !sc.Revealed) {
				t.Errorf("%s: estimation %s/%s: got it revealed while the team's score is not", what, team, aspect)
			}
		}
	}
}

// TestEstimateSecrecy runs estimate storms and checks every frame each
// audience could get of them, live (each event, and tallies of runs),
// resumed (each event cut against later heads) and as a snapshot (the
// view at every step): before the reveal none holds a distribution, a
// count per level or anyone's estimate but the audience's own; the
// facilitator is no exception.
func TestEstimateSecrecy(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 42))
		f := newFixture(t)
		running(f)
		f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 2})
		var people []Actor
		for i := range 12 {
			people = append(people, Actor{Role: RoleAttendee, Participant: fmt.Sprintf("p_%d", i), Name: fmt.Sprintf("P%d", i)})
		}
		people = append(people, search, identity)
		auds := append(testAudiences(), AudienceOf(people[0]), AudienceOf(people[1]))
		start := len(f.log)
		f.do(fac, Command{Type: CmdOpenEstimates})
		for range 60 {
			a := people[rng.IntN(len(people))]
			team := []string{"t1", "t2", "t3"}[rng.IntN(3)]
			cmd := Command{Type: CmdEstimate, Team: team, Level: 1 + rng.IntN(4)}
			if evs, err := f.try(a, cmd); err == nil {
				f.apply(evs)
			}
			if rng.IntN(10) == 0 {
				f.do(ana, Command{Type: CmdAsk, Text: "a question among the estimates"})
			}
		}
		revealAt := len(f.log)
		pre := f.log[start:revealAt]
		// Every head before the reveal: snapshot, live twins, resumes.
		for h := start + 1; h <= revealAt; h++ {
			end, err := Replay(f.log[:h])
			if err != nil {
				t.Fatal(err)
			}
			for _, aud := range auds {
				v := View(end, aud)
				checkEstimations(t, fmt.Sprintf("seed %d: snapshot at %d for %s", seed, h, audName(aud)), v, aud)
				noDistribution(t, fmt.Sprintf("seed %d: snapshot at %d for %s", seed, h, audName(aud)), mustJSON(t, v))
				for _, e := range f.log[start:h] {
					r := Redact(e, aud, end)
					b := mustJSON(t, r)
					noDistribution(t, fmt.Sprintf("seed %d: %s #%d cut at %d for %s", seed, e.Type, e.Seq, h, audName(aud)), b)
					if r.Type == EvEstimated && !aud.isSelf(e.Participant) && (r.Level != 0 || r.Participant != "") {
						t.Fatalf("seed %d: estimated #%d for %s: got %s", seed, e.Seq, audName(aud), b)
					}
				}
			}
		}
		// Tallies of every run of tallied events, cut per class and
		// made personal, as the hub sends them.
		end, _ := Replay(f.log[:revealAt])
		for i := 0; i < len(pre); {
			j := i
			for j < len(pre) && Tallied(pre[j]) {
				j++
			}
			if j == i {
				i++
				continue
			}
			run := pre[i:j]
			for _, aud := range auds {
				tl := TallyFor(run, nil, end, ClassAudience(ClassOf(aud)))
				var own []Event
				for _, e := range run {
					if slices.Contains(PersonalIn(e), aud.Participant) {
						own = append(own, e)
					}
				}
				if ClassOf(aud) == ClassPublic {
					tl = tl.Personal(own, end, aud)
				}
				b := mustJSON(t, tl)
				noDistribution(t, fmt.Sprintf("seed %d: tally %d-%d for %s", seed, tl.From, tl.Seq, audName(aud)), b)
				for _, c := range tl.Estimates {
					if c.Level == 0 {
						continue
					}
					if mine := end.Estimation(c.Team, c.Aspect).Levels[aud.Participant]; aud.Participant == "" || mine != c.Level && !slices.ContainsFunc(own, func(e Event) bool { return e.Level == c.Level }) {
						t.Fatalf("seed %d: tally for %s: got level %d on %s, which is not its own", seed, audName(aud), c.Level, c.Team)
					}
				}
				if want := TallyFor(run, nil, end, aud); !bytes.Equal(b, mustJSON(t, want)) && ClassOf(aud) == ClassPublic {
					t.Fatalf("seed %d: personal tally for %s: got %s, want %s", seed, audName(aud), b, mustJSON(t, want))
				}
			}
			i = j
		}
		// The reveal shows the distribution, to everyone alike.
		evs := f.do(fac, Command{Type: CmdReveal})
		for _, sc := range evs[0].Scores {
			e := end.Estimation(sc.Team, "investment")
			if sc.Estimate == nil || sc.Estimate.Count != e.Count || sc.Estimate.Count != len(e.Levels) {
				t.Fatalf("seed %d: reveal of %s: got %s, want every one of the %d estimates", seed, sc.Team, mustJSON(t, sc.Estimate), len(e.Levels))
			}
		}
	}
}

// noDistribution fails when b holds an estimate's result: a histogram,
// a median or a mean.
func noDistribution(t testing.TB, what string, b []byte) {
	t.Helper()
	for _, k := range []string{`"histogram"`, `"median"`, `"result"`, `"estimate":{`} {
		if bytes.Contains(b, []byte(k)) {
			t.Fatalf("%s: got %s in %s, want no distribution before the reveal", what, k, b)
		}
	}
}

// TestEstimateTallies: a client that applies the tally of an estimate run
// to its view ends with the estimates its snapshot at the run's end shows:
// the counts, and its own estimate.
func TestEstimateTallies(t *testing.T) {
	f := newFixture(t)
	running(f)
	f.do(fac, Command{Type: CmdOpenEstimates})
	f.do(ana, Command{Type: CmdEstimate, Team: "t1", Level: 2})
	before := f.s.Clone()
	from := len(f.log)
	f.do(ana, Command{Type: CmdEstimate, Team: "t1", Level: 3})
	f.do(bob, Command{Type: CmdEstimate, Team: "t1", Level: 4})
	f.do(search, Command{Type: CmdEstimate, Team: "t3", Level: 1})
	f.do(cleo, Command{Type: CmdEstimate, Team: "t2", Level: 2})
	f.do(cleo, Command{Type: CmdRaiseHand})
	run := f.log[from:]
	for _, aud := range append(testAudiences(), AudienceOf(bob)) {
		v := View(before, aud)
		var own []Event
		for _, e := range run {
			if slices.Contains(PersonalIn(e), aud.Participant) {
				own = append(own, e)
			}
		}
		tl := TallyFor(run, f.s.Hands, f.s, ClassAudience(ClassOf(aud)))
		if ClassOf(aud) == ClassPublic {
			tl = tl.Personal(own, f.s, aud)
		}
		ApplyTally(v, tl, aud.Participant)
		got, want := mustJSON(t, v.Estimates), mustJSON(t, View(f.s, aud).Estimates)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: estimates after the tally: got %s, want the snapshot's %s", audName(aud), got, want)
		}
	}
	// Ana's ack carries her own estimate and the count.
	res := Result(CmdEstimate, f.log[from:from+1])
	if res["level"] != 3 || res["count"] != 1 || res["team"] != "t1" || res["aspect"] != "investment" {
		t.Errorf("result of estimate: got %v, want level 3, count 1 for t1 on investment", res)
	}
}
