package room

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// t0 is the injected clock of every test: the domain never reads a clock of
// its own, so tests pass fixed instants and need no sleeps.
var t0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

// Secret markers: unique strings put in every key hash and the participant
// secret, searched for in the JSON of views and redacted events.
const (
	secretFacHash     = "SECRETfacilitatorhash"
	secretPresHash    = "SECRETpresenterhash"
	secretPartSecret  = "SECRETparticipantsecret"
	secretTeamHashFmt = "SECRETteamhash%d"
)

func testSecrets(teams int) Secrets {
	s := Secrets{
		FacilitatorKeyHash: secretFacHash,
		PresenterKeyHash:   secretPresHash,
		ParticipantSecret:  secretPartSecret,
		TeamKeyHashes:      map[string]string{},
	}
	for i := 1; i <= teams; i++ {
		s.TeamKeyHashes[fmt.Sprintf("t%d", i)] = fmt.Sprintf(secretTeamHashFmt, i)
	}
	return s
}

// The actors of the standard test room.
var (
	fac       = FacilitatorActor()
	payments  = TeamActor(Team{ID: "t1", Name: "Payments"})
	search    = TeamActor(Team{ID: "t2", Name: "Search"})
	identity  = TeamActor(Team{ID: "t3", Name: "Identity"})
	ana       = Actor{Role: RoleAttendee, Participant: "p_ana", Name: "Ana"}
	bob       = Actor{Role: RoleAttendee, Participant: "p_bob", Name: "Bob"}
	cleo      = Actor{Role: RoleAttendee, Participant: "p_cleo", Name: "Cleo"}
	presenter = Actor{Role: RolePresenter, Participant: "presenter", Name: "Presenter"}
)

// fixture is a room under test with its log and an injected clock.
type fixture struct {
	t   testing.TB
	s   *State
	log []Event
	now time.Time
	n   int // command counter, for idempotency keys
}

// newFixture creates a PEMM room with the given teams (default: Payments,
// Search, Identity) at t0.
func newFixture(t testing.TB, teams ...string) *fixture {
	t.Helper()
	if len(teams) == 0 {
		teams = []string{"Payments", "Search", "Identity"}
	}
	evs, err := Create(CreateParams{
		ID: "room-1", Code: "K7PQM3TX", Title: "Platform maturity Q3",
		Model: PEMM(), TeamNames: teams, Secrets: testSecrets(len(teams)), Now: t0,
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	s, err := Replay(evs)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return &fixture{t: t, s: s, log: evs, now: t0}
}

// tick moves the injected clock forward.
func (f *fixture) tick(d time.Duration) { f.now = f.now.Add(d) }

// try decides cmd without applying it.
func (f *fixture) try(a Actor, c Command) ([]Event, error) {
	if c.Key == "" {
		f.n++
		c.Key = fmt.Sprintf("CMDKEY%06dX", f.n) // a marker: keys never leave the server
	}
	return Decide(f.s, a, c, f.now)
}

// do decides and applies cmd, failing the test on an error.
func (f *fixture) do(a Actor, c Command) []Event {
	f.t.Helper()
	evs, err := f.try(a, c)
	if err != nil {
		f.t.Fatalf("%s by %s: %v", c.Type, a.Participant, err)
	}
	f.apply(evs)
	return evs
}

func (f *fixture) apply(evs []Event) {
	f.t.Helper()
	if err := Apply(f.s, evs); err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
	f.log = append(f.log, evs...)
}

// Setups that bring the standard room into a phase.

func running(f *fixture) { f.do(fac, Command{Type: CmdStart}) }

func wrapup(f *fixture) {
	running(f)
	f.do(fac, Command{Type: CmdWrapUp})
}

func closed(f *fixture) { f.do(fac, Command{Type: CmdClose}) }

// asked is a running room where Ana asked q1.
func asked(f *fixture) {
	running(f)
	f.do(ana, Command{Type: CmdAsk, Text: "How do you fund the platform?"})
}

// pendingQ is a running room with approve-first on where Ana asked q1,
// which waits for approval.
func pendingQ(f *fixture) {
	running(f)
	f.do(fac, Command{Type: CmdSetApproveFirst, On: true})
	f.do(ana, Command{Type: CmdAsk, Text: "A pending question"})
}

// hiddenQ is asked with q1 hidden by the facilitator.
func hiddenQ(f *fixture) {
	asked(f)
	f.do(fac, Command{Type: CmdHideQuestion, Question: "q1"})
}

// withTurn is a running room where Payments has the floor.
func withTurn(f *fixture) {
	running(f)
	f.do(fac, Command{Type: CmdCallTurn})
}

// submitted is a running room where Payments submitted level 2 for
// investment.
func submitted(f *fixture) {
	running(f)
	submitInvestment(f)
}

// submitInvestment: Payments submits level 2 for investment.
func submitInvestment(f *fixture) {
	f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "a dedicated team"})
}

// seq chains setups.
func seq(setups ...func(*fixture)) func(*fixture) {
	return func(f *fixture) {
		for _, s := range setups {
			s(f)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func types(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}
