package room

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTentativeRevert: votes, reports, hands and estimates applied tentatively and
// taken back leave the state exactly as it was (its JSON, remembered
// command keys included, also when remembering forgot the oldest), and
// the same commands then decide and apply as on the untouched state.
func TestTentativeRevert(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			f := newFixture(t)
			running(f)
			f.do(fac, Command{Type: CmdOpenEstimates})
			f.s.ReportLimit = 100 // a report that hides a question is not taken back (TestTentativeRefusesOthers)
			people := []Actor{ana, bob, cleo, payments, search}
			for i := range 4 {
				f.do(people[i%3], Command{Type: CmdAsk, Text: fmt.Sprintf("Question %d", i)})
			}
			for range 30 {
				randomAudienceAct(f, rng, people)
			}
			if seed%2 == 0 { // remembered keys at their bound: the next forgets the oldest
				for i := len(f.s.DoneOrder); i < MaxRememberedCommands; i++ {
					k := fmt.Sprintf("filler/%d", i)
					f.s.Done[k] = 1
					f.s.DoneOrder = append(f.s.DoneOrder, k)
				}
			}
			before := mustJSON(t, f.s)
			tent := NewTentative(f.s)
			var cmds []Command
			var actors []Actor
			for i := range 1 + rng.IntN(12) {
				a, c := randomAudienceCommand(rng, people)
				c.Key = fmt.Sprintf("%s/tentative-%d", a.Participant, i)
				evs, err := Decide(f.s, a, c, f.now)
				if err != nil {
					continue
				}
				if err := tent.Apply(evs); err != nil {
					t.Fatal(err)
				}
				cmds, actors = append(cmds, c), append(actors, a)
			}
			if !tent.Revert() {
				t.Fatalf("votes, reports, hands and estimates could not be taken back")
			}
			if after := mustJSON(t, f.s); !bytes.Equal(before, after) {
				t.Fatalf("state after revert differs:\nbefore %s\nafter  %s", before, after)
			}
			for i, c := range cmds {
				if _, ok := f.s.Applied(c.Key); ok {
					t.Fatalf("command %d still counts as applied", i)
				}
				if _, err := Decide(f.s, actors[i], c, f.now); err != nil && i == 0 {
					t.Fatalf("the first command no longer decides after revert: %v", err)
				}
			}
		})
	}
}

// TestTentativeRefusesOthers: a batch with anything but votes, reports
// and hands cannot be taken back: the caller must reload.
func TestTentativeRefusesOthers(t *testing.T) {
	f := newFixture(t)
	running(f)
	tent := NewTentative(f.s)
	evs, err := Decide(f.s, ana, Command{Type: CmdAsk, Text: "Why?", Key: "p_ana/1"}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := tent.Apply(evs); err != nil {
		t.Fatal(err)
	}
	if tent.Revert() {
		t.Fatal("an ask was taken back")
	}
}

func randomAudienceCommand(rng *rand.Rand, people []Actor) (Actor, Command) {
	a := people[rng.IntN(len(people))]
	q := fmt.Sprintf("q%d", 1+rng.IntN(4))
	switch rng.IntN(8) {
	case 6, 7:
		return a, Command{Type: CmdEstimate, Team: fmt.Sprintf("t%d", 1+rng.IntN(3)), Level: 1 + rng.IntN(4)}
	case 5:
		return a, Command{Type: CmdReport, Question: q}
	case 0, 1:
		return a, Command{Type: CmdUpvote, Question: q}
	case 2:
		return a, Command{Type: CmdUnvote, Question: q}
	case 3:
		return a, Command{Type: CmdRaiseHand}
	default:
		return a, Command{Type: CmdLowerHand}
	}
}

// randomAudienceAct applies one random vote or hand to f, if it decides.
func randomAudienceAct(f *fixture, rng *rand.Rand, people []Actor) {
	a, c := randomAudienceCommand(rng, people)
	if evs, err := f.try(a, c); err == nil { // many refuse: the state is what matters
		f.apply(evs)
	}
}
