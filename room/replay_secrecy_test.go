package room

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"testing"
)

// The rule these tests hold the domain to: a replay (the events after a
// client's sequence k, cut for its audience against the head, as a resume
// or a catch-up sends them) carries no secret that the audience's snapshot
// at the head does not show, for every k. A secret here is a marker the
// audience did not write itself: key hashes, command keys, rationales and
// drafts of other teams, question texts. A team's own earlier drafts are
// its own words, and a replay may carry them.

// markerUniverse is every marker a log holds, with the team that wrote each
// rationale.
type markerUniverse struct {
	all     []string
	authors map[string]string // rationale -> team
}

var cmdKeyPattern = regexp.MustCompile(cmdKeyMarker + `[0-9]+X`)

func markersOf(log []Event) markerUniverse {
	c := newSecrecyChecker()
	texts := map[string]bool{}
	for _, e := range log {
		c.learn(e)
		if e.Question != nil && len(e.Question.Text) > 3 {
			texts[e.Question.Text] = true
		}
	}
	u := markerUniverse{authors: c.rationales}
	u.all = slices.Concat(slices.Collect(maps.Keys(c.secrets)), slices.Collect(maps.Keys(c.rationales)), slices.Collect(maps.Keys(texts)))
	return u
}

// secretsIn are the markers found in b that aud did not write.
func (u markerUniverse) secretsIn(b []byte, aud Audience) map[string]bool {
	out := map[string]bool{}
	for _, m := range u.all {
		if team, ok := u.authors[m]; ok && aud.isTeam(team) {
			continue
		}
		if bytes.Contains(b, []byte(m)) {
			out[m] = true
		}
	}
	for _, m := range cmdKeyPattern.FindAll(b, -1) {
		out[string(m)] = true
	}
	return out
}

// checkReplays checks, for aud and the head state end (the room after
// log), the replay from every k in [1, len(log)]: its secrets are a subset
// of those of View(end, aud), every question it shows the snapshot shows
// (with no author the snapshot hides), and every level it shows is one
// the snapshot shows. It answers how many replays it checked.
func checkReplays(t testing.TB, log []Event, end *State, aud Audience, u markerUniverse) int {
	t.Helper()
	view := View(end, aud)
	snap := mustJSON(t, view)
	allowed := u.secretsIn(snap, aud)
	shown := map[string]*Question{}
	for _, q := range view.Questions {
		shown[q.ID] = q
	}
	// The replay from k is the suffix log[k:]; walking k down from the
	// head grows it by one event at a time, so every k costs one event.
	var leaked []string
	for k := len(log) - 1; k >= 1; k-- {
		e := log[k]
		r := Redact(e, aud, end)
		b := mustJSON(t, r)
		for m := range u.secretsIn(b, aud) {
			if !allowed[m] {
				leaked = append(leaked, fmt.Sprintf("%s (in %s #%d)", m, e.Type, e.Seq))
			}
		}
		if q := r.Question; q != nil {
			sq := shown[q.ID]
			switch {
			case sq == nil:
				t.Errorf("replay for %s from %d: %s #%d shows question %s, the snapshot does not", audName(aud), k, e.Type, e.Seq, q.ID)
			case q.Author != "" && sq.Author == "":
				t.Errorf("replay for %s from %d: %s #%d shows the author of %s, the snapshot does not", audName(aud), k, e.Type, e.Seq, q.ID)
			}
		}
		for _, sc := range r.Scores {
			if sc.Estimate != nil {
				if est := view.Estimation(sc.Team, r.Aspect); est == nil || !est.Revealed || !est.Result.equal(sc.Estimate) {
					t.Errorf("replay for %s from %d: revealed #%d shows the estimate of %s/%s, the snapshot shows %+v", audName(aud), k, e.Seq, sc.Team, r.Aspect, est)
				}
			}
			if sc.Level == 0 && sc.Rationale == "" {
				continue
			}
			a := view.Scores[sc.Team][r.Aspect]
			if a == nil || !a.Revealed || a.Level != sc.Level || a.Rationale != sc.Rationale {
				t.Errorf("replay for %s from %d: revealed #%d shows %s/%s at level %d, the snapshot shows %+v", audName(aud), k, e.Seq, sc.Team, r.Aspect, sc.Level, a)
			}
		}
		if r.Type == EvEstimated && !aud.isSelf(e.Participant) && (r.Level != 0 || r.Participant != "") {
			t.Errorf("replay for %s from %d: estimated #%d shows %s's estimate", audName(aud), k, e.Seq, e.Participant)
		}
		if (r.Type == EvSubmitted || r.Type == EvDraftSaved) && !aud.isTeam(r.Team) && (r.Level != 0 || r.Rationale != "") {
			t.Errorf("replay for %s from %d: %s #%d shows team %s's level", audName(aud), k, e.Type, e.Seq, r.Team)
		}
	}
	if len(leaked) > 0 {
		slices.Sort(leaked)
		leaked = slices.Compact(leaked)
		t.Errorf("replay for %s up to #%d: got %v, which its snapshot does not show", audName(aud), end.Seq, leaked)
	}
	return len(log) - 1
}

// TestReplayTellsNoMoreThanSnapshot: the two cases found by hand, then the
// room with every kind of secret.
func TestReplayTellsNoMoreThanSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*fixture) int // answers the seq the client resumes from
		aud    Audience
		absent []string // must not be in the replay
	}{
		{"a question posted and hidden while the attendee was away", func(f *fixture) int {
			running(f)
			k := int(f.s.Seq)
			f.do(ana, Command{Type: CmdAsk, Text: "QHIDDENWHILEAWAYX"})
			f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
			return k
		}, AudienceOf(bob), []string{"QHIDDENWHILEAWAYX", "p_ana"}},
		{"the author's own question hidden while away", func(f *fixture) int {
			running(f)
			k := int(f.s.Seq)
			f.do(ana, Command{Type: CmdAsk, Text: "QOWNHIDDENX"})
			f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
			return k
		}, AudienceOf(ana), []string{"QOWNHIDDENX"}},
		{"a question hidden by reports while away", func(f *fixture) int {
			running(f)
			k := int(f.s.Seq)
			f.do(ana, Command{Type: CmdAsk, Text: "QREPORTEDAWAYX"})
			for _, a := range []Actor{bob, cleo, search} {
				f.do(a, Command{Type: CmdReport, Question: "q1"})
			}
			return k
		}, Audience{Role: RoleAttendee, Participant: "p_dan"}, []string{"QREPORTEDAWAYX"}},
		{"a score revealed and hidden again while away", func(f *fixture) int {
			running(f)
			f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 3, Rationale: "RATREVEALEDHIDDENX"})
			k := int(f.s.Seq)
			f.do(fac, Command{Type: CmdReveal, Team: "t1"})
			f.do(fac, Command{Type: CmdHideReveal, Team: "t1"})
			return k
		}, AudienceOf(ana), []string{"RATREVEALEDHIDDENX", `"level":3`}},
		{"a score revealed, hidden, changed and revealed anew", func(f *fixture) int {
			running(f)
			f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 3, Rationale: "RATFIRSTX"})
			k := int(f.s.Seq)
			f.do(fac, Command{Type: CmdReveal, Team: "t1"})
			f.do(fac, Command{Type: CmdHideReveal, Team: "t1"})
			f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "RATSECONDX"})
			f.do(fac, Command{Type: CmdReveal, Team: "t1"})
			return k
		}, AudienceOf(search), []string{"RATFIRSTX", `"level":3`}},
		{"every team revealed and hidden, seen by the facilitator", func(f *fixture) int {
			running(f)
			f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 4, Rationale: "RATFACX"})
			k := int(f.s.Seq)
			f.do(fac, Command{Type: CmdReveal})
			f.do(fac, Command{Type: CmdHideReveal})
			return k
		}, AudienceOf(fac), []string{"RATFACX", `"level":4`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			k := tc.setup(f)
			var replay []byte
			for _, e := range f.log[k:] {
				replay = append(replay, mustJSON(t, Redact(e, tc.aud, f.s))...)
			}
			for _, s := range tc.absent {
				if bytes.Contains(replay, []byte(s)) {
					t.Errorf("replay from %d: got %s in %s, want it left out", k, s, replay)
				}
			}
			// The events still arrive, each with its sequence.
			if n := bytes.Count(replay, []byte(`"seq":`)); n != len(f.log)-k {
				t.Errorf("replay from %d: got %d events, want %d", k, n, len(f.log)-k)
			}
			u := markersOf(f.log)
			for _, aud := range append(testAudiences(), tc.aud) {
				checkReplays(t, f.log, f.s, aud, u)
			}
		})
	}
	t.Run("the room with every secret", func(t *testing.T) {
		f := secretRoom(t)
		u := markersOf(f.log)
		for _, aud := range testAudiences() {
			checkReplays(t, f.log, f.s, aud, u)
		}
	})
}

// TestReplayProperty runs random rooms and checks every audience's replay
// from every k against heads all along the log, not only the last one.
func TestReplayProperty(t *testing.T) {
	runs := 60
	if testing.Short() || raceEnabled {
		runs = 15
	}
	checked := 0
	takeBacks := 0
	for seed := range uint64(runs) {
		data := randomScenario(seed+1000, 120)
		sc := newScenario(t, 2+int(data[0]%2))
		data = data[1:]
		for i := 0; i+stepBytes <= len(data); i += stepBytes {
			sc.step([stepBytes]byte(data[i : i+stepBytes]))
		}
		u := markersOf(sc.log)
		for h := len(sc.log); h >= 2; h -= 1 + len(sc.log)/8 {
			end, err := Replay(sc.log[:h])
			if err != nil {
				t.Fatalf("seed %d: Replay: %v", seed, err)
			}
			for _, aud := range sc.auds {
				checked += checkReplays(t, sc.log[:h], end, aud, u)
			}
		}
		for _, e := range sc.log {
			if e.Type == EvQuestionHidden || e.Type == EvRevealHidden {
				takeBacks++
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
	if takeBacks == 0 {
		t.Errorf("no run hid a question or a reveal: the property was not tried where it matters")
	}
	t.Logf("%d replays checked, %d take-backs in the logs", checked, takeBacks)
}
