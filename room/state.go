package room

import (
	"strconv"
	"time"
)

// Limits of a room. Text limits are in characters (runes).
const (
	MinTeams            = 1
	MaxTeams            = 30
	MaxTitleLen         = 120
	MaxTeamNameLen      = 60
	MaxRationaleLen     = 2000
	MaxQuestionLen      = 500
	MaxDisplayNameLen   = 40
	MaxNoteLen          = 5000
	MaxActionLen        = 300
	MaxActionsPerAspect = 50
	MaxHands            = 500
	MaxQuestions        = 10000 // per room; past it new questions are refused
	DefaultTurn         = 3 * time.Minute
	MinTurn             = 10 * time.Second
	MaxTurn             = 60 * time.Minute
	DefaultReportLimit  = 3 // reports that hide a question until the facilitator decides
)

// Phase is where a room is in its life.
type Phase string

// The phases of a room, in their usual order. Closed rooms are read-only.
const (
	PhaseLobby   Phase = "lobby"
	PhaseRunning Phase = "running"
	PhaseWrapUp  Phase = "wrapup"
	PhaseClosed  Phase = "closed"
)

// State is a room at one sequence number. It is a value built only by
// Evolve; the hub's room actor owns the only mutable copy on an instance.
// Secrets (key hashes, drafts, unrevealed scores, estimates) live here too: use a View
// or Redact before anything leaves the server.
type State struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	Title     string    `json:"title"`
	Code      string    `json:"code"`
	Model     Model     `json:"model"`
	Teams     []Team    `json:"teams"`
	Phase     Phase     `json:"phase"`
	CreatedAt time.Time `json:"createdAt"`
	ClosedAt  time.Time `json:"closedAt,omitzero"`

	// Agenda is the order in which aspects are discussed (aspect ids).
	Agenda []string `json:"agenda"`
	// Aspect is the aspect under discussion while running, "" before.
	Aspect string `json:"aspect"`
	// Queues holds, per aspect, the order in which teams are called.
	Queues map[string][]string `json:"queues"`
	// Turn is the current speaking turn, nil when nobody has the floor.
	Turn *Turn `json:"turn"`
	// Spoken lists, per aspect, the teams that have had a turn, in order.
	Spoken map[string][]string `json:"spoken"`
	// Hands are raised hands in the order they went up.
	Hands []Hand `json:"hands"`

	// Scores holds the teams' assessments: team id -> aspect id -> score.
	Scores map[string]map[string]*Assessment `json:"scores"`

	// Estimates holds the room's estimates of the teams: team id ->
	// aspect id -> estimation. Individual levels are secret (View).
	Estimates map[string]map[string]*Estimation `json:"estimates"`
	// EstimateEachTurn opens estimating for every team called to speak.
	EstimateEachTurn bool `json:"estimateEachTurn"`

	Questions    []*Question `json:"questions"`
	Highlighted  string      `json:"highlighted"`
	ApproveFirst bool        `json:"approveFirst"`
	ReportLimit  int         `json:"reportLimit"`

	Notes   map[string]string   `json:"notes"`
	Actions map[string][]Action `json:"actions"`

	// Removed lists participant ids the facilitator removed; they may not
	// come back.
	Removed map[string]bool `json:"removed,omitempty"`

	Secrets Secrets `json:"secrets"`

	// Done maps the idempotency keys of recent commands to the sequence of
	// their last event, so a retried command is answered, not applied
	// again. DoneOrder bounds it: the oldest keys are forgotten first.
	Done      map[string]uint64 `json:"done,omitempty"`
	DoneOrder []string          `json:"doneOrder,omitempty"`
}

// MaxRememberedCommands is how many command keys a room remembers for
// idempotency; a retry older than that is decided afresh (and refused by
// the domain where a repeat makes no sense, such as a second upvote).
const MaxRememberedCommands = 20000

// Applied reports whether the command with the idempotency key was applied,
// and the sequence of its last event.
func (s *State) Applied(key string) (uint64, bool) {
	seq, ok := s.Done[key]
	return seq, ok
}

// Secrets are the room's credentials as SHA-256 hashes. They never leave
// the server: views drop them and Redact strips them from events.
// Every field but Generation is left out of JSON when empty: a View
// empties them, so a client sees {"generation":N} and nothing else.
type Secrets struct {
	FacilitatorKeyHash string            `json:"facilitatorKeyHash,omitempty"`
	PresenterKeyHash   string            `json:"presenterKeyHash,omitempty"`
	TeamKeyHashes      map[string]string `json:"teamKeyHashes,omitempty"`
	// ParticipantSecret signs attendee identities, so any instance can check
	// an attendee's token without a lookup.
	ParticipantSecret string `json:"participantSecret,omitempty"`
	// Generation counts key rotations; connections made with an older
	// generation are closed.
	Generation int `json:"generation"`
}

// Team is one team taking part in the workshop.
type Team struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Assessment is one team's score for one aspect. The draft and the submitted
// values are separate: a draft may change freely and never shows outside the
// team; a submission is what gets revealed.
type Assessment struct {
	DraftLevel     int       `json:"draftLevel,omitempty"`
	DraftRationale string    `json:"draftRationale,omitempty"`
	Level          int       `json:"level,omitempty"`
	Rationale      string    `json:"rationale,omitempty"`
	Submitted      bool      `json:"submitted"`
	SubmittedAt    time.Time `json:"submittedAt,omitzero"`
	Revealed       bool      `json:"revealed"`
}

// Turn is a speaking turn: a team, or an attendee who raised a hand, has the
// floor until EndsAt. Every client counts down to the same instant.
type Turn struct {
	Aspect      string    `json:"aspect"`
	Team        string    `json:"team,omitempty"`
	Participant string    `json:"participant,omitempty"`
	Name        string    `json:"name"`
	StartedAt   time.Time `json:"startedAt"`
	EndsAt      time.Time `json:"endsAt"`
}

// Hand is an attendee waiting to speak.
type Hand struct {
	Participant string    `json:"participant"`
	Name        string    `json:"name"`
	At          time.Time `json:"at"`
}

// Question is a Q&A entry. Voters and Reporters are keyed by participant id,
// which makes every vote and report count once per participant.
type Question struct {
	ID         string          `json:"id"`
	Text       string          `json:"text"`
	Author     string          `json:"author,omitempty"`
	AuthorName string          `json:"authorName,omitempty"`
	Anonymous  bool            `json:"anonymous"`
	Aspect     string          `json:"aspect,omitempty"`
	Team       string          `json:"team,omitempty"`
	At         time.Time       `json:"at"`
	Votes      int             `json:"votes"`
	Voters     map[string]bool `json:"voters,omitempty"`
	Reporters  map[string]bool `json:"reporters,omitempty"`
	Pending    bool            `json:"pending"`
	Answered   bool            `json:"answered"`
	Hidden     bool            `json:"hidden"`
	HiddenBy   string          `json:"hiddenBy,omitempty"` // "facilitator" or "reports"
}

// Action is an action item the facilitator recorded for an aspect.
type Action struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
	Done bool   `json:"done"`
}

// TeamID is the id of a room's n-th team (n from 1): teams are numbered in
// the order they were created or added, and ids are never reused.
func TeamID(n int) string { return "t" + strconv.Itoa(n) }

// NextTeamID is the id the next team added to s will get; the hub derives
// that team's key from it before add_team is decided.
func (s *State) NextTeamID() string { return TeamID(len(s.Teams) + 1) }

// Team returns the team with the given id.
func (s *State) Team(id string) (Team, bool) {
	for _, t := range s.Teams {
		if t.ID == id {
			return t, true
		}
	}
	return Team{}, false
}

// Question returns the question with the given id.
func (s *State) Question(id string) (*Question, bool) {
	// Ids are "q<n>" with n counting from 1 in posting order, so the index
	// is n-1; fall back to a scan if the shape is unexpected.
	if n, ok := questionIndex(id); ok && n < len(s.Questions) && s.Questions[n].ID == id {
		return s.Questions[n], true
	}
	for _, q := range s.Questions {
		if q.ID == id {
			return q, true
		}
	}
	return nil, false
}

// Score returns the assessment of a team for an aspect, or nil.
func (s *State) Score(team, aspect string) *Assessment {
	return s.Scores[team][aspect]
}

// SubmittedCount is how many teams have submitted a score for the aspect.
func (s *State) SubmittedCount(aspect string) int {
	n := 0
	for _, t := range s.Teams {
		if a := s.Scores[t.ID][aspect]; a != nil && a.Submitted {
			n++
		}
	}
	return n
}

// Missing lists, per team id, the aspects the team has not submitted.
func (s *State) Missing() map[string][]string {
	out := map[string][]string{}
	for _, t := range s.Teams {
		for _, a := range s.Model.Aspects {
			if sc := s.Scores[t.ID][a.ID]; sc == nil || !sc.Submitted {
				out[t.ID] = append(out[t.ID], a.ID)
			}
		}
	}
	return out
}

func questionIndex(id string) (int, bool) {
	if len(id) < 2 || id[0] != 'q' {
		return 0, false
	}
	n := 0
	for _, c := range id[1:] {
		if c < '0' || c > '9' || n > 1<<24 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n - 1, n >= 1
}

// ValidateDisplayName checks an attendee's display name.
func ValidateDisplayName(s string) error {
	return checkText("name", s, 1, MaxDisplayNameLen)
}
