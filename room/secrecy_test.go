package room

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cmdKeyMarker starts every idempotency key the tests use; keys never leave
// the server.
const cmdKeyMarker = "CMDKEY"

// secrecyChecker checks views and redacted events against what a room has
// seen: every key hash and participant secret, and every rationale (draft or
// submitted) with the team that wrote it. Markers are unique strings, so a
// marker found in the JSON bytes sent to an audience is a leak unless the
// rules allow that audience to see it.
type secrecyChecker struct {
	secrets    map[string]bool   // every key hash and participant secret ever used
	rationales map[string]string // rationale marker -> team id
}

func newSecrecyChecker() *secrecyChecker {
	return &secrecyChecker{secrets: map[string]bool{}, rationales: map[string]string{}}
}

func (c *secrecyChecker) addSecrets(s *Secrets) {
	if s == nil {
		return
	}
	for _, v := range []string{s.FacilitatorKeyHash, s.PresenterKeyHash, s.ParticipantSecret} {
		if v != "" {
			c.secrets[v] = true
		}
	}
	for _, v := range s.TeamKeyHashes {
		if v != "" {
			c.secrets[v] = true
		}
	}
}

func (c *secrecyChecker) addRationale(team, r string) {
	if r != "" {
		c.rationales[r] = team
	}
}

// learn registers the secrets and rationales an event carries.
func (c *secrecyChecker) learn(e Event) {
	c.addSecrets(e.Secrets)
	if e.Room != nil {
		c.addSecrets(&e.Room.Secrets)
	}
	if e.Type == EvDraftSaved || e.Type == EvSubmitted {
		c.addRationale(e.Team, e.Rationale)
	}
}

// forbidden lists the strings that must not appear in what aud gets from
// s (the state after the event, for Redact), allowing the rationales in
// allowed (revealed ones).
func (c *secrecyChecker) forbidden(s *State, aud Audience, allowed map[string]bool) []string {
	out := []string{cmdKeyMarker}
	for v := range c.secrets {
		out = append(out, v)
	}
	for r, team := range c.rationales {
		if !aud.isTeam(team) && !allowed[r] {
			out = append(out, r)
		}
	}
	if !aud.isFacilitator() {
		for _, q := range s.Questions {
			if q.Hidden || q.Pending && !aud.isAuthor(q) {
				out = append(out, q.Text)
			}
		}
	}
	return out
}

// revealedRationales are the rationales s shows to everyone.
func revealedRationales(s *State) map[string]bool {
	out := map[string]bool{}
	for _, byAspect := range s.Scores {
		for _, a := range byAspect {
			if a.Revealed && a.Submitted && a.Rationale != "" {
				out[a.Rationale] = true
			}
		}
	}
	return out
}

func leaks(b []byte, forbidden []string) []string {
	var out []string
	for _, m := range forbidden {
		if m != "" && bytes.Contains(b, []byte(m)) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

func audName(a Audience) string {
	return fmt.Sprintf("%s/%s/%s", a.Role, a.Team, a.Participant)
}

// checkView checks View(s, aud) by its bytes and its structure.
func (c *secrecyChecker) checkView(t testing.TB, s *State, aud Audience) []byte {
	t.Helper()
	v := View(s, aud)
	b := mustJSON(t, v)
	if l := leaks(b, c.forbidden(s, aud, revealedRationales(s))); len(l) > 0 {
		t.Errorf("View for %s: got %v in it, want none", audName(aud), l)
	}
	if v.Secrets.FacilitatorKeyHash != "" || v.Secrets.PresenterKeyHash != "" || v.Secrets.ParticipantSecret != "" || len(v.Secrets.TeamKeyHashes) > 0 {
		t.Errorf("View for %s: got secrets %+v, want the generation only", audName(aud), v.Secrets)
	}
	if v.Done != nil || v.DoneOrder != nil {
		t.Errorf("View for %s: got command keys, want none", audName(aud))
	}
	if !aud.isFacilitator() && len(v.Removed) > 0 {
		t.Errorf("View for %s: got removed %v, want none", audName(aud), v.Removed)
	}
	for team, byAspect := range v.Scores {
		if aud.isTeam(team) {
			continue
		}
		for aspect, a := range byAspect {
			if !a.Submitted && !a.Revealed {
				t.Errorf("View for %s: score %s/%s: got an entry for a draft, want none", audName(aud), team, aspect)
			}
			open := a.Revealed && a.Submitted
			if a.DraftLevel != 0 || a.DraftRationale != "" || !open && (a.Level != 0 || a.Rationale != "" || !a.SubmittedAt.IsZero()) {
				t.Errorf("View for %s: score %s/%s: got %+v, want no draft and no unrevealed level", audName(aud), team, aspect, a)
			}
		}
	}
	checkEstimations(t, "View for "+audName(aud), v, aud)
	for _, q := range v.Questions {
		if aud.isFacilitator() {
			continue
		}
		if q.Hidden || q.Pending && !aud.isAuthor(q) {
			t.Errorf("View for %s: got question %s (hidden %v, pending %v), want it left out", audName(aud), q.ID, q.Hidden, q.Pending)
		}
		if q.Anonymous && !aud.isAuthor(q) && q.Author != "" {
			t.Errorf("View for %s: anonymous question %s: got author %q, want none", audName(aud), q.ID, q.Author)
		}
		for _, set := range []map[string]bool{q.Voters, q.Reporters} {
			for p := range set {
				if p != aud.Participant {
					t.Errorf("View for %s: question %s: got voter or reporter %q, want only the audience's own", audName(aud), q.ID, p)
				}
			}
		}
		if q.HiddenBy != "" {
			t.Errorf("View for %s: question %s: got hiddenBy %q, want none", audName(aud), q.ID, q.HiddenBy)
		}
	}
	return b
}

// checkEvent checks Redact(e, aud) for every audience given the state after
// e: no marker the audience may not see in its bytes, the twin's shape, and
// identical bytes for audiences with the same VariantKey. It answers how
// many VariantKeys two or more audiences shared. Each class is encoded
// once; another member is encoded too only when its twin is not
// reflect.DeepEqual to the first (equal values encode equally).
func (c *secrecyChecker) checkEvent(t testing.TB, e Event, after *State, auds []Audience) int {
	t.Helper()
	type variant struct {
		first Audience
		r     Event
		b     []byte
	}
	classes := map[string]*variant{}
	shared := map[string]bool{}
	for _, aud := range auds {
		r := Redact(e, aud, after)
		k := VariantKey(e, aud)
		v, ok := classes[k]
		if !ok {
			v = &variant{first: aud, r: r, b: mustJSON(t, r)}
			classes[k] = v
		} else {
			shared[k] = true
			if !reflect.DeepEqual(v.r, r) {
				if b := mustJSON(t, r); !bytes.Equal(b, v.b) {
					t.Errorf("%s #%d: variant %q: %s got %s, %s got %s, want the same", e.Type, e.Seq, k, audName(v.first), v.b, audName(aud), b)
					continue
				}
			}
		}
		c.checkTwin(t, e, r, v.b, after, aud)
	}
	return len(shared)
}

// checkTwin checks r, the twin of e for aud, and b, its JSON, given the
// state after e.
func (c *secrecyChecker) checkTwin(t testing.TB, e, r Event, b []byte, after *State, aud Audience) {
	t.Helper()
	allowed := map[string]bool{}
	if e.Type == EvRevealed {
		for _, sc := range e.Scores {
			allowed[sc.Rationale] = true
		}
	}
	if l := leaks(b, c.forbidden(after, aud, allowed)); len(l) > 0 {
		t.Errorf("Redact(%s #%d) for %s: got %v in it, want none", e.Type, e.Seq, audName(aud), l)
	}
	if r.Seq != e.Seq || !r.At.Equal(e.At) || r.Cmd != "" || r.Secrets != nil {
		t.Errorf("Redact(%s #%d) for %s: got seq %d cmd %q secrets %v, want the same seq and no cmd or secrets", e.Type, e.Seq, audName(aud), r.Seq, r.Cmd, r.Secrets)
	}
	if r.Type == EvPrivate {
		if want := mustJSON(t, Event{Seq: e.Seq, Type: EvPrivate, At: e.At}); !bytes.Equal(b, want) {
			t.Errorf("Redact(%s #%d) for %s: got %s, want only %s", e.Type, e.Seq, audName(aud), b, want)
		}
	}
	if r.Type == EvEstimated && !aud.isSelf(e.Participant) && (r.Level != 0 || r.Participant != "") {
		t.Errorf("Redact(estimated #%d) for %s: got %s's level %d, want the count only", e.Seq, audName(aud), r.Participant, r.Level)
	}
	for _, sc := range r.Scores {
		if sc.Estimate != nil && !estimateShownAtEnd(after, sc.Team, e.Aspect, sc.Estimate) {
			t.Errorf("Redact(revealed #%d) for %s: got the estimate of %s, which the state after it does not show", e.Seq, audName(aud), sc.Team)
		}
	}
	if r.Type == EvSubmitted && !aud.isTeam(e.Team) && (r.Level != 0 || r.Rationale != "") {
		t.Errorf("Redact(submitted #%d) for %s: got level %d, want none", e.Seq, audName(aud), r.Level)
	}
	if q := r.Question; q != nil && (q.Voters != nil || q.Reporters != nil) {
		t.Errorf("Redact(%s #%d) for %s: got voters or reporters, want counts only", e.Type, e.Seq, audName(aud))
	}
	if q := r.Question; q != nil && q.Anonymous && q.Author != "" && !aud.isFacilitator() && !aud.isAuthor(q) {
		t.Errorf("Redact(%s #%d) for %s: got the author of an anonymous question", e.Type, e.Seq, audName(aud))
	}
}

// secretRoom is a room holding one of each secret, each a unique marker.
func secretRoom(t *testing.T) *fixture {
	f := newFixture(t)
	running(f)
	// Scores: an unrevealed submission, a draft after it, a draft alone, a
	// revealed one, and one revealed then hidden again.
	f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 3, Rationale: "RATUNREVEALEDt1X"})
	f.do(payments, Command{Type: CmdSaveDraft, Aspect: "investment", Level: 4, Rationale: "RATDRAFTAFTERt1X"})
	f.do(search, Command{Type: CmdSaveDraft, Aspect: "adoption", Level: 2, Rationale: "RATDRAFTONLYt2X"})
	f.do(search, Command{Type: CmdSubmit, Aspect: "investment", Level: 1, Rationale: "RATREVEALEDt2X"})
	f.do(identity, Command{Type: CmdSubmit, Aspect: "investment", Level: 4, Rationale: "RATHIDDENAGAINt3X"})
	f.do(fac, Command{Type: CmdReveal, Team: "t3"})
	f.do(fac, Command{Type: CmdHideReveal, Team: "t3"})
	f.do(fac, Command{Type: CmdReveal, Team: "t2"})
	f.do(identity, Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "RATRESUBMITTEDt3X"})
	// Estimates: of t1 open and unrevealed, of t3 revealed (with the
	// score resubmitted above), of t2 revealed, hidden and revealed anew
	// with one more estimate.
	f.do(fac, Command{Type: CmdOpenEstimates})
	for _, a := range []Actor{ana, bob, search} {
		f.do(a, Command{Type: CmdEstimate, Team: "t1", Level: 4})
	}
	f.do(cleo, Command{Type: CmdEstimate, Team: "t1", Level: 1})
	f.do(ana, Command{Type: CmdEstimate, Team: "t3", Level: 3})
	f.do(payments, Command{Type: CmdEstimate, Team: "t3", Level: 2})
	f.do(fac, Command{Type: CmdReveal, Team: "t3"})
	f.do(fac, Command{Type: CmdHideReveal, Team: "t2"})
	f.do(fac, Command{Type: CmdOpenEstimates, Team: "t2"})
	f.do(bob, Command{Type: CmdEstimate, Team: "t2", Level: 2})
	f.do(fac, Command{Type: CmdReveal, Team: "t2"})
	f.do(fac, Command{Type: CmdHideReveal, Team: "t2"})
	f.do(fac, Command{Type: CmdOpenEstimates, Team: "t2"})
	f.do(ana, Command{Type: CmdEstimate, Team: "t2", Level: 1})
	f.do(fac, Command{Type: CmdReveal, Team: "t2"})
	f.do(cleo, Command{Type: CmdEstimate, Team: "t1", Level: 2})
	// Questions: public, hidden, pending, anonymous, hidden by reports,
	// pending and hidden then restored (still pending).
	f.do(ana, Command{Type: CmdAsk, Text: "QTEXTPUBLICX"}) // q1
	f.do(ana, Command{Type: CmdAsk, Text: "QTEXTHIDDENX"}) // q2
	f.do(fac, Command{Type: CmdHideQuestion, Question: "q2"})
	f.do(cleo, Command{Type: CmdAsk, Text: "QTEXTANONX", Anonymous: true}) // q3
	f.do(ana, Command{Type: CmdAsk, Text: "QTEXTREPORTEDX"})               // q4
	for _, a := range []Actor{bob, cleo, search} {
		f.do(a, Command{Type: CmdReport, Question: "q4"})
	}
	f.do(fac, Command{Type: CmdSetApproveFirst, On: true})
	f.do(bob, Command{Type: CmdAsk, Text: "QTEXTPENDINGX"})    // q5
	f.do(bob, Command{Type: CmdAsk, Text: "QTEXTPENDHIDDENX"}) // q6
	f.do(fac, Command{Type: CmdHideQuestion, Question: "q6"})
	f.do(fac, Command{Type: CmdRestoreQuestion, Question: "q6"})
	f.do(identity, Command{Type: CmdAsk, Text: "QTEXTTEAMPENDINGX"}) // q7
	f.do(bob, Command{Type: CmdUpvote, Question: "q1"})              //
	f.do(ana, Command{Type: CmdUpvote, Question: "q3"})              //
	f.do(bob, Command{Type: CmdReport, Question: "q1"})              //
	f.do(Actor{Role: RoleAttendee, Participant: "p_evil", Name: "Evil"}, Command{Type: CmdRaiseHand})
	f.do(fac, Command{Type: CmdRemove, Participant: "p_evil"})
	f.do(fac, Command{Type: CmdAddTeam, Name: "Data", NewSecrets: newTeamSecrets("SECRETaddedteamhash")})
	f.do(fac, Command{Type: CmdRotateKeys, NewSecrets: &Secrets{FacilitatorKeyHash: "SECRETrotatedfac", PresenterKeyHash: "SECRETrotatedpres",
		TeamKeyHashes: map[string]string{"t1": "SECRETr1", "t2": "SECRETr2", "t3": "SECRETr3", "t4": "SECRETr4"}}})
	return f
}

// testAudiences is every kind of audience of the standard room.
func testAudiences() []Audience {
	return []Audience{
		{},                    // the public (GET /api/rooms/{id}, results page)
		{Role: RoleAttendee},  // an attendee before it has an id
		AudienceOf(presenter), // the presenter screen
		AudienceOf(ana),       // author of public and hidden questions
		AudienceOf(bob),       // author of pending questions
		AudienceOf(cleo),      // author of the anonymous question
		AudienceOf(payments),  // t1
		AudienceOf(search),    // t2
		AudienceOf(identity),  // t3, author of a pending question
		AudienceOf(fac),       // the facilitator
		{Role: RoleTeam},      // a team audience without a team
		{Role: RolePresenter}, // a presenter without an id
		{Role: RoleAttendee, Participant: "p_evil"},
	}
}

func TestSecrecyOfViews(t *testing.T) {
	f := secretRoom(t)
	c := newSecrecyChecker()
	for _, e := range f.log {
		c.learn(e)
	}
	if got, want := len(c.rationales), 6; got != want {
		t.Fatalf("rationales: got %d, want %d", got, want)
	}
	views := map[string]string{}
	for _, aud := range testAudiences() {
		views[audName(aud)] = string(c.checkView(t, f.s, aud))
	}
	// What each audience must see, so the test cannot pass by showing
	// nothing.
	mustSee := []struct {
		aud  Audience
		want []string
	}{
		{Audience{}, []string{"RATREVEALEDt2X", "QTEXTPUBLICX", "QTEXTANONX"}},
		{AudienceOf(payments), []string{"RATUNREVEALEDt1X", "RATDRAFTAFTERt1X", "RATREVEALEDt2X"}},
		{AudienceOf(search), []string{"RATDRAFTONLYt2X", "RATREVEALEDt2X"}},
		{AudienceOf(identity), []string{"RATRESUBMITTEDt3X", "QTEXTTEAMPENDINGX"}},
		{AudienceOf(bob), []string{"QTEXTPENDINGX", "QTEXTPENDHIDDENX"}},
		{AudienceOf(fac), []string{"QTEXTHIDDENX", "QTEXTPENDINGX", "QTEXTREPORTEDX", "QTEXTTEAMPENDINGX", "RATREVEALEDt2X", `"p_evil":true`}},
	}
	for _, m := range mustSee {
		for _, w := range m.want {
			if !strings.Contains(views[audName(m.aud)], w) {
				t.Errorf("View for %s: got no %q, want it", audName(m.aud), w)
			}
		}
	}
	// The facilitator sees who voted; an attendee only their own vote.
	if q := findQ(View(f.s, AudienceOf(fac)), "q3"); q == nil || !q.Voters["p_ana"] || q.Author != "p_cleo" {
		t.Errorf("facilitator's q3: got %+v, want p_ana's vote and p_cleo as author", q)
	}
	if q := findQ(View(f.s, AudienceOf(ana)), "q1"); q == nil || len(q.Voters) != 0 || q.Votes != 1 {
		t.Errorf("Ana's q1: got %+v, want 1 vote and no voters", q)
	}
	if q := findQ(View(f.s, AudienceOf(bob)), "q1"); q == nil || !q.Voters["p_bob"] || !q.Reporters["p_bob"] {
		t.Errorf("Bob's q1: got %+v, want his own vote and report", q)
	}
	if q := findQ(View(f.s, AudienceOf(cleo)), "q3"); q == nil || q.Author != "p_cleo" {
		t.Errorf("Cleo's q3: got %+v, want her as the author", q)
	}
	if got, want := View(f.s, Audience{}).Secrets.Generation, 1; got != want {
		t.Errorf("generation: got %v, want %v", got, want)
	}
}

func findQ(s *State, id string) *Question {
	for _, q := range s.Questions {
		if q.ID == id {
			return q
		}
	}
	return nil
}

func TestSecrecyOfEvents(t *testing.T) {
	f := secretRoom(t)
	c := newSecrecyChecker()
	s := &State{}
	shared := 0
	for _, e := range f.log {
		c.learn(e)
		Evolve(s, e)
		shared += c.checkEvent(t, e, s, testAudiences())
	}
	if shared == 0 {
		t.Errorf("no two audiences shared a variant: the VariantKey check did not run")
	}
	// Spot checks of the twins.
	for _, tc := range []struct {
		name string
		typ  string
		aud  Audience
		want string // the type the audience gets
	}{
		{"own draft", EvDraftSaved, AudienceOf(payments), EvDraftSaved},
		{"another team's draft", EvDraftSaved, AudienceOf(search), EvPrivate},
		{"a draft to the facilitator", EvDraftSaved, AudienceOf(fac), EvPrivate},
		{"a report to an attendee", EvReported, AudienceOf(ana), EvPrivate},
		{"a report to the facilitator", EvReported, AudienceOf(fac), EvReported},
		{"a removal to the public", EvParticipantRemoved, Audience{}, EvPrivate},
		{"keys rotated", EvKeysRotated, Audience{}, EvKeysRotated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range f.log {
				if e.Type == tc.typ && (tc.typ != EvDraftSaved || e.Team == "t1") {
					if got := Redact(e, tc.aud, nil).Type; got != tc.want {
						t.Errorf("type: got %v, want %v", got, tc.want)
					}
					return
				}
			}
			t.Fatalf("no %s event in the log", tc.typ)
		})
	}
}

// TestViewDoesNotAlias: changing a view, or the state after taking a view,
// leaves the other alone (the hub encodes views while the room evolves).
func TestViewDoesNotAlias(t *testing.T) {
	f := secretRoom(t)
	before := mustJSON(t, f.s)
	for _, aud := range testAudiences() {
		v := View(f.s, aud)
		for _, q := range v.Questions {
			q.Text, q.Votes = "changed", 99
			maps.DeleteFunc(q.Voters, func(string, bool) bool { return true })
		}
		for _, byAspect := range v.Scores {
			for _, a := range byAspect {
				a.Level, a.Revealed = 9, true
			}
		}
		v.Teams[0].Name, v.Agenda[0], v.Queues["investment"][0] = "x", "x", "x"
		v.Notes["investment"] = "x"
		v.Removed["p_new"] = true
		v.Secrets.TeamKeyHashes = map[string]string{"t1": "x"}
	}
	if after := mustJSON(t, f.s); !bytes.Equal(before, after) {
		t.Errorf("changing views changed the state")
	}
	v := View(f.s, AudienceOf(fac))
	vb := mustJSON(t, v)
	f.do(bob, Command{Type: CmdUpvote, Question: "q3"})
	f.do(payments, Command{Type: CmdSubmit, Aspect: "adoption", Level: 1})
	if after := mustJSON(t, v); !bytes.Equal(vb, after) {
		t.Errorf("changing the state changed an earlier view")
	}
}

// TestRedactDoesNotAlias: Redact leaves the event it was given unchanged,
// so one stored event can be redacted for every audience.
func TestRedactDoesNotAlias(t *testing.T) {
	f := secretRoom(t)
	for _, e := range f.log {
		before := mustJSON(t, e)
		for _, aud := range testAudiences() {
			r := Redact(e, aud, nil)
			if r.Question != nil {
				r.Question.Text = "changed"
			}
		}
		if after := mustJSON(t, e); !bytes.Equal(before, after) {
			t.Errorf("Redact changed %s #%d", e.Type, e.Seq)
		}
	}
}

// TestViewJSONRoundTrip: a view decodes back to a state that evolves (a
// client's snapshot), and the stored state survives its own JSON.
func TestViewJSONRoundTrip(t *testing.T) {
	f := secretRoom(t)
	var s State
	if err := json.Unmarshal(mustJSON(t, f.s), &s); err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, f.s), mustJSON(t, &s); !bytes.Equal(a, b) {
		t.Errorf("state round trip:\n got %s\nwant %s", b, a)
	}
	var v State
	if err := json.Unmarshal(mustJSON(t, View(f.s, Audience{})), &v); err != nil {
		t.Fatal(err)
	}
	if v.Secrets.TeamKeyHashes == nil || v.Done == nil {
		t.Errorf("decoded view: maps not ready for Evolve")
	}
}
