package room

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

const (
	benchTeams     = MaxTeams
	benchQuestions = 5000
)

// bigRoom is a running room with 30 teams that submitted every aspect and
// 5,000 questions from 5,000 attendees, each with one vote, built through
// Decide and Apply like the hub builds it.
func bigRoom(b *testing.B) *fixture {
	b.Helper()
	names := make([]string, benchTeams)
	for i := range names {
		names[i] = fmt.Sprintf("Team %02d", i+1)
	}
	f := newFixture(b, names...)
	running(f)
	for _, tm := range f.s.Teams {
		for i, a := range f.s.Model.Aspects {
			f.do(TeamActor(tm), Command{Type: CmdSubmit, Aspect: a.ID, Level: 1 + i%4,
				Rationale: "Because " + tm.Name + " has built a platform team with a roadmap and a budget."})
		}
	}
	for i := range benchQuestions {
		f.tick(time.Second)
		f.do(benchAttendee(i), Command{Type: CmdAsk, Text: fmt.Sprintf("Question %d: how did you fund the platform team?", i+1)})
	}
	for i := range benchQuestions {
		f.do(benchAttendee((i+1)%benchQuestions), Command{Type: CmdUpvote, Question: fmt.Sprintf("q%d", i+1)})
	}
	return f
}

func benchAttendee(i int) Actor {
	return Actor{Role: RoleAttendee, Participant: fmt.Sprintf("p_%05d", i), Name: fmt.Sprintf("Attendee %d", i)}
}

// BenchmarkUpvote is the hub's work for one vote in a storm: Decide and
// Evolve (Apply) of an upvote in the big room, each by a new voter.
func BenchmarkUpvote(b *testing.B) {
	f := bigRoom(b)
	qids := make([]string, benchQuestions)
	for i := range qids {
		qids[i] = fmt.Sprintf("q%d", i+1)
	}
	var voter Actor
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := i % benchQuestions
		if q == 0 {
			voter = benchAttendee(benchQuestions + i/benchQuestions)
		}
		evs, err := Decide(f.s, voter, Command{Type: CmdUpvote, Question: qids[q], Key: voter.Participant + "/" + qids[q]}, f.now)
		if err != nil {
			b.Fatal(err)
		}
		if err := Apply(f.s, evs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRevealAll is Decide and Evolve of a reveal of every team's score
// for the current aspect in the big room. Hiding it again between
// iterations is not timed.
func BenchmarkRevealAll(b *testing.B) {
	f := bigRoom(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		evs, err := Decide(f.s, fac, Command{Type: CmdReveal, Key: fmt.Sprintf("facilitator/r%d", i)}, f.now)
		if err != nil {
			b.Fatal(err)
		}
		if err := Apply(f.s, evs); err != nil {
			b.Fatal(err)
		}
		if got := len(evs[0].Scores); got != benchTeams {
			b.Fatalf("scores: got %d, want %d", got, benchTeams)
		}
		b.StopTimer()
		evs, err = Decide(f.s, fac, Command{Type: CmdHideReveal, Key: fmt.Sprintf("facilitator/h%d", i)}, f.now)
		if err != nil {
			b.Fatal(err)
		}
		if err := Apply(f.s, evs); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()
	}
}

// BenchmarkViewPublic is the public view of the big room (a snapshot for an
// attendee, GET /api/rooms/{id}); the JSON case adds its encoding.
func BenchmarkViewPublic(b *testing.B) {
	f := bigRoom(b)
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			View(f.s, Audience{})
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			data, err := json.Marshal(View(f.s, Audience{}))
			if err != nil {
				b.Fatal(err)
			}
			n = len(data)
		}
		b.ReportMetric(float64(n), "bytes")
	})
}

// BenchmarkRedactUpvote is the per-audience work of fan-out for a vote:
// one VariantKey and one Redact.
func BenchmarkRedactUpvote(b *testing.B) {
	e := Event{Seq: 42, Type: EvUpvoted, At: t0, QuestionID: "q17", Participant: "p_00001", Count: 3, Cmd: "p_00001/c9"}
	aud := AudienceOf(ana)
	b.ReportAllocs()
	for b.Loop() {
		_ = VariantKey(e, aud)
		_ = Redact(e, aud, nil)
	}
}
