package room

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestTallyFor: a tally carries the counts a run of votes left, the
// audience's own vote and report and nobody else's, leaves out questions
// the audience does not see, and carries the hand queue when it moved.
func TestTallyFor(t *testing.T) {
	f := newFixture(t)
	running(f)
	f.do(ana, Command{Type: CmdAsk, Text: "How do we measure adoption?"})
	f.do(bob, Command{Type: CmdAsk, Text: "Who owns the golden paths?", Anonymous: true})
	f.do(fac, Command{Type: CmdSetApproveFirst, On: true})
	f.do(cleo, Command{Type: CmdAsk, Text: "Pending one"})
	from := len(f.log)
	f.do(ana, Command{Type: CmdUpvote, Question: "q1"})
	f.do(bob, Command{Type: CmdUpvote, Question: "q1"})
	f.do(cleo, Command{Type: CmdUpvote, Question: "q2"})
	f.do(bob, Command{Type: CmdUnvote, Question: "q1"})
	f.do(ana, Command{Type: CmdReport, Question: "q2"})
	f.do(bob, Command{Type: CmdRaiseHand})
	run := f.log[from:]
	for _, e := range run {
		if !Tallied(e) {
			t.Fatalf("%s is not tallied", e.Type)
		}
	}

	public := TallyFor(run, f.s.Hands, f.s, Audience{Role: RoleAttendee})
	if public.From != run[0].Seq || public.Seq != run[len(run)-1].Seq {
		t.Errorf("public tally stands for %d..%d, want %d..%d", public.From, public.Seq, run[0].Seq, run[len(run)-1].Seq)
	}
	want := []QuestionVotes{{Question: "q1", Votes: 1}, {Question: "q2", Votes: 1}}
	if !sameVotes(public.Votes, want) {
		t.Errorf("public votes %+v, want %+v", public.Votes, want)
	}
	if !public.HandsChanged || len(public.Hands) != 1 || public.Hands[0].Participant != bob.Participant {
		t.Errorf("public hands %+v, changed %v: want Bob's raised hand", public.Hands, public.HandsChanged)
	}

	yes, no := true, false
	anaT := TallyFor(run, f.s.Hands, f.s, AudienceOf(ana))
	if want := []QuestionVotes{{Question: "q1", Votes: 1, Voted: &yes}, {Question: "q2", Votes: 1, Reported: true}}; !sameVotes(anaT.Votes, want) {
		t.Errorf("Ana's votes %+v, want %+v", anaT.Votes, want)
	}
	bobT := TallyFor(run, f.s.Hands, f.s, AudienceOf(bob))
	if want := []QuestionVotes{{Question: "q1", Votes: 1, Voted: &no}, {Question: "q2", Votes: 1}}; !sameVotes(bobT.Votes, want) {
		t.Errorf("Bob's votes %+v, want %+v", bobT.Votes, want)
	}
	cleoT := TallyFor(run, f.s.Hands, f.s, AudienceOf(cleo))
	if want := []QuestionVotes{{Question: "q1", Votes: 1}, {Question: "q2", Votes: 1, Voted: &yes}}; !sameVotes(cleoT.Votes, want) {
		t.Errorf("Cleo's votes %+v, want %+v", cleoT.Votes, want)
	}

	// Nobody's tally names a voter or a reporter, or the author of the
	// anonymous question.
	for _, tl := range []Tally{public, anaT, bobT, cleoT, TallyFor(run, f.s.Hands, f.s, AudienceOf(payments))} {
		b := mustJSON(t, tl)
		for _, p := range []string{"p_ana", "p_cleo"} {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("a tally names %s: %s", p, b)
			}
		}
		if bytes.Contains(b, []byte("Pending one")) {
			t.Errorf("a tally carries a question's text: %s", b)
		}
	}

	// A question hidden by the end leaves everyone's tally but its voter's,
	// which keeps only the vote.
	f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
	if got := TallyFor(run, f.s.Hands, f.s, Audience{Role: RoleAttendee}); !sameVotes(got.Votes, []QuestionVotes{{Question: "q2", Votes: 1}}) {
		t.Errorf("after the hide the public gets %+v, want q2 only", got.Votes)
	}
	if got := TallyFor(run, f.s.Hands, f.s, AudienceOf(ana)); !sameVotes(got.Votes, []QuestionVotes{{Question: "q1", Voted: &yes, Hidden: true}, {Question: "q2", Votes: 1, Reported: true}}) {
		t.Errorf("after the hide Ana gets %+v", got.Votes)
	}

	// A run without hands says nothing of them.
	if got := TallyFor(run[:1], nil, f.s, Audience{Role: RoleAttendee}); got.HandsChanged || got.Hands != nil {
		t.Errorf("a run of votes changed hands: %+v", got)
	}
}

func sameVotes(got, want []QuestionVotes) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Question != w.Question || g.Votes != w.Votes || g.Reported != w.Reported || g.Hidden != w.Hidden || (g.Voted == nil) != (w.Voted == nil) || g.Voted != nil && *g.Voted != *w.Voted {
			return false
		}
	}
	return true
}

// TestResultOfVotes: the ack of a vote carries the count it left and the
// voter's own vote, so its page shows it before the next tally.
func TestResultOfVotes(t *testing.T) {
	f := newFixture(t)
	running(f)
	f.do(ana, Command{Type: CmdAsk, Text: "Why?"})
	up := Result(CmdUpvote, f.do(bob, Command{Type: CmdUpvote, Question: "q1"}))
	if up["question"] != "q1" || up["votes"] != 1 || up["voted"] != true {
		t.Errorf("upvote result %v", up)
	}
	down := Result(CmdUnvote, f.do(bob, Command{Type: CmdUnvote, Question: "q1"}))
	if down["votes"] != 0 || down["voted"] != false {
		t.Errorf("unvote result %v", down)
	}
}

// TestPersonalTally: a member's tally cut from its class's with its own
// events (Tally.Personal) equals the run cut for it whole (TallyFor), for
// random runs of votes, reports and hands, questions hidden and pending.
func TestPersonalTally(t *testing.T) {
	people := []Actor{ana, bob, cleo}
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		f := newFixture(t)
		running(f)
		f.s.ReportLimit = 100
		for i := range 4 {
			f.do(people[i%3], Command{Type: CmdAsk, Text: fmt.Sprintf("Question %d", i)})
		}
		from := len(f.log)
		for range 40 {
			randomAudienceAct(f, rng, people)
		}
		run := f.log[from:]
		if seed%3 == 0 && len(run) > 0 { // a question hidden after the run
			f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
		}
		public := TallyFor(run, f.s.Hands, f.s, Audience{Role: RoleAttendee})
		for _, p := range people {
			aud := AudienceOf(p)
			var own []Event
			for _, e := range run {
				if e.Participant == p.Participant && (e.Type == EvUpvoted || e.Type == EvUnvoted || e.Type == EvReported) {
					own = append(own, e)
				}
			}
			got, want := public.Personal(own, f.s, aud), TallyFor(run, f.s.Hands, f.s, aud)
			if g, w := byQuestion(got), byQuestion(want); g != w || got.From != want.From || got.Seq != want.Seq || got.HandsChanged != want.HandsChanged {
				t.Fatalf("seed %d, %s: personal tally %s, want %s", seed, p.Name, g, w)
			}
		}
	}
}

// byQuestion prints a tally's votes in question order.
func byQuestion(t Tally) string {
	vs := slices.Clone(t.Votes)
	slices.SortFunc(vs, func(a, b QuestionVotes) int { return strings.Compare(a.Question, b.Question) })
	var b strings.Builder
	for _, v := range vs {
		voted := "-"
		if v.Voted != nil {
			voted = fmt.Sprint(*v.Voted)
		}
		fmt.Fprintf(&b, "[%s votes=%d voted=%s reported=%v hidden=%v]", v.Question, v.Votes, voted, v.Reported, v.Hidden)
	}
	return b.String()
}
