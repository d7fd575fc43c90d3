package room

import (
	"maps"
	"strings"
)

// Audience is who a view or an event is cut for. Participant matters only
// for what belongs to one person: their own pending or anonymous questions
// and their own votes.
type Audience struct {
	Role        Role   `json:"role"`
	Team        string `json:"team,omitempty"`
	Participant string `json:"participant,omitempty"`
}

// AudienceOf is the audience of an actor.
func AudienceOf(a Actor) Audience {
	return Audience{Role: a.Role, Team: a.Team, Participant: a.Participant}
}

func (a Audience) isFacilitator() bool { return a.Role == RoleFacilitator }
func (a Audience) isTeam(id string) bool {
	return a.Role == RoleTeam && a.Team == id && id != ""
}
func (a Audience) isSelf(participant string) bool {
	return participant != "" && a.Participant == participant
}
func (a Audience) isAuthor(q *Question) bool {
	return q != nil && a.Participant != "" && q.Author == a.Participant
}

// Audience classes. Every member of a class gets the same view of a state
// and the same twin of an event, except the participants PersonalIn names
// for an event (HasPersonalView for a state): those get their own, cut for
// their own audience. The hub encodes once per class and once per such
// participant, never once per client.
const (
	ClassFacilitator = "facilitator"
	ClassPublic      = "public" // attendees, presenter screens, anyone without a key
	classTeamPrefix  = "team:"  // + team id: that team's leads
)

// ClassOf is the class of aud.
func ClassOf(aud Audience) string {
	switch aud.Role {
	case RoleFacilitator:
		return ClassFacilitator
	case RoleTeam:
		if aud.Team != "" {
			return classTeamPrefix + aud.Team
		}
	}
	return ClassPublic
}

// ClassAudience is the audience whose cut every member of class shares
// (what is not personal to one of them).
func ClassAudience(class string) Audience {
	switch {
	case class == ClassFacilitator:
		return AudienceOf(FacilitatorActor())
	case strings.HasPrefix(class, classTeamPrefix) && len(class) > len(classTeamPrefix):
		team := strings.TrimPrefix(class, classTeamPrefix)
		return Audience{Role: RoleTeam, Team: team, Participant: teamParticipant(team)}
	}
	return Audience{Role: RoleAttendee}
}

// PersonalIn names the participants whose twin of e may differ from their
// class's: the author of a question (a pending or anonymous one is shown to
// its author as such), the voter of a vote, the reporter of a report, the
// estimator of an estimate.
func PersonalIn(e Event) []string {
	switch e.Type {
	case EvQuestionPosted, EvQuestionApproved, EvQuestionRestored:
		if e.Question != nil && e.Question.Author != "" {
			return []string{e.Question.Author}
		}
	case EvUpvoted, EvUnvoted, EvReported, EvEstimated:
		if e.Participant != "" {
			return []string{e.Participant}
		}
	}
	return nil
}

// HasPersonalView reports whether participant's view of s may differ from
// its class's: it wrote a question, voted, reported or estimated.
func HasPersonalView(s *State, participant string) bool {
	if participant == "" {
		return false
	}
	if estimatedBy(s, participant) {
		return true
	}
	for _, q := range s.Questions {
		if q.Author == participant || q.Voters[participant] || q.Reporters[participant] {
			return true
		}
	}
	return false
}

// View returns a copy of s cut down to what aud may see. It never contains
// key hashes, the participant secret, remembered command keys, another
// team's draft, an unrevealed score, a hidden question, or a pending
// question the audience did not write. Other participants' votes, reports
// and estimates are reduced to counts, and an estimate's distribution is
// left out until its reveal.
func View(s *State, aud Audience) *State {
	v := *s
	v.Secrets = Secrets{Generation: s.Secrets.Generation}
	v.Done, v.DoneOrder = nil, nil
	if !aud.isFacilitator() {
		v.Removed = map[string]bool{}
	} else {
		v.Removed = maps.Clone(s.Removed)
	}
	v.Teams = append([]Team(nil), s.Teams...)
	v.Agenda = append([]string(nil), s.Agenda...)
	v.Hands = append([]Hand{}, s.Hands...)
	v.Queues = cloneLists(s.Queues)
	v.Spoken = cloneLists(s.Spoken)
	v.Notes = maps.Clone(s.Notes)
	v.Actions = make(map[string][]Action, len(s.Actions))
	for k, acts := range s.Actions {
		v.Actions[k] = append([]Action(nil), acts...)
	}
	if s.Turn != nil {
		t := *s.Turn
		v.Turn = &t
	}
	v.Scores = make(map[string]map[string]*Assessment, len(s.Scores))
	for team, byAspect := range s.Scores {
		own := aud.isTeam(team)
		out := make(map[string]*Assessment, len(byAspect))
		for aspect, a := range byAspect {
			// A draft alone is left out entirely: even an empty entry
			// would tell others that the team has started one (which
			// the private draft_saved event does not).
			if !own && !a.Submitted && !a.Revealed {
				continue
			}
			out[aspect] = viewAssessment(a, own)
		}
		if len(out) > 0 {
			v.Scores[team] = out
		}
	}
	v.Estimates = make(map[string]map[string]*Estimation, len(s.Estimates))
	for team, byAspect := range s.Estimates {
		out := make(map[string]*Estimation, len(byAspect))
		for aspect, e := range byAspect {
			out[aspect] = viewEstimation(e, aud)
		}
		v.Estimates[team] = out
	}
	v.Questions = make([]*Question, 0, len(s.Questions))
	for _, q := range s.Questions {
		if vq := viewQuestion(q, aud); vq != nil {
			v.Questions = append(v.Questions, vq)
		}
	}
	return &v
}

func cloneLists(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, l := range m {
		out[k] = append([]string(nil), l...)
	}
	return out
}

func viewAssessment(a *Assessment, own bool) *Assessment {
	if own {
		c := *a
		return &c
	}
	c := Assessment{Submitted: a.Submitted, Revealed: a.Revealed}
	if a.Revealed && a.Submitted {
		c.Level, c.Rationale, c.SubmittedAt = a.Level, a.Rationale, a.SubmittedAt
	}
	return &c
}

// sees reports whether aud sees q at all (viewQuestion is not nil),
// without copying it.
func (a Audience) sees(q *Question) bool {
	return a.isFacilitator() || !q.Hidden && (!q.Pending || a.isAuthor(q))
}

// viewQuestion is q as aud may see it, or nil when aud may not see it.
func viewQuestion(q *Question, aud Audience) *Question {
	if !aud.sees(q) {
		return nil
	}
	fac, own := aud.isFacilitator(), aud.isAuthor(q)
	c := *q
	c.Voters = onlyMine(q.Voters, aud.Participant, fac)
	c.Reporters = onlyMine(q.Reporters, aud.Participant, fac)
	if c.Anonymous && !fac && !own {
		c.Author = ""
	}
	if !fac {
		c.HiddenBy = ""
	}
	return &c
}

// onlyMine keeps the whole set for the facilitator and only the audience's
// own entry for everyone else.
func onlyMine(set map[string]bool, me string, all bool) map[string]bool {
	if all {
		return maps.Clone(set)
	}
	if me != "" && set[me] {
		return map[string]bool{me: true}
	}
	return nil
}

// Redact returns the twin of e that aud may see, cut against end: the
// room's state at the end of the range of events e is sent in (after the
// last of them; nil means the state right after e). An event aud may not
// see at all becomes an EvPrivate event with the same sequence number, so
// every audience sees a contiguous sequence. Cmd and Secrets are always
// stripped.
//
// Cutting against the end of the range is what makes a replay tell no more
// than a snapshot taken at its end: what was taken back inside the range (a
// question hidden after it was posted, a reveal hidden again) is left out
// of the events before the take-back too, so a client that resumes, or gets
// a whole batch at once, learns nothing that View(end, aud) would not show
// it. A client that saw the event live, before the take-back, saw it while
// it was public.
func Redact(e Event, aud Audience, end *State) Event {
	e.Cmd, e.Secrets = "", nil
	private := Event{Seq: e.Seq, Type: EvPrivate, At: e.At}
	switch e.Type {
	case EvRoomCreated:
		e.Room = View(e.Room, aud)
	case EvDraftSaved:
		if !aud.isTeam(e.Team) {
			return private
		}
	case EvSubmitted:
		if !aud.isTeam(e.Team) {
			e.Level, e.Rationale = 0, ""
		}
	case EvQuestionPosted, EvQuestionApproved, EvQuestionRestored:
		q := viewQuestion(e.Question, aud)
		if q == nil || !visibleAtEnd(end, e.QuestionID, aud) {
			return private
		}
		q.Voters, q.Reporters = nil, nil
		e.Question = q
	case EvRevealed:
		e.Scores = revealedAtEnd(end, e.Aspect, e.Scores)
	case EvUpvoted, EvUnvoted:
		// Who voted is the voter's and the facilitator's business: with
		// the names on raised hands, a participant id would tell everyone
		// who voted for what. Others get the new count only.
		if !aud.isFacilitator() && !aud.isSelf(e.Participant) {
			e.Participant = ""
		}
	case EvReported:
		if !aud.isFacilitator() && !aud.isSelf(e.Participant) {
			return private
		}
	case EvEstimated:
		// An estimate is its author's alone, the facilitator's not
		// excepted: everyone else gets the new count.
		if !aud.isSelf(e.Participant) {
			e.Participant, e.Level = "", 0
		}
	case EvParticipantRemoved:
		if !aud.isFacilitator() {
			return private
		}
	}
	return e
}

// visibleAtEnd reports whether aud sees question id in end (true when end
// is nil: the state right after the event shows what the event shows).
func visibleAtEnd(end *State, id string, aud Audience) bool {
	if end == nil {
		return true
	}
	q, ok := end.Question(id)
	return ok && viewQuestion(q, aud) != nil
}

// revealedAtEnd keeps the level and rationale of a revealed score only
// where end still shows that very score revealed; a score hidden again (or
// hidden, changed and revealed anew, which a later event carries) keeps
// only that the team submitted. The room's estimate is kept on the same
// terms. The same for every audience: a team's own score reaches it
// through its own submitted event.
func revealedAtEnd(end *State, aspect string, scores []RevealedScore) []RevealedScore {
	if end == nil {
		return scores
	}
	var out []RevealedScore
	for i, sc := range scores {
		a := end.Score(sc.Team, aspect)
		keepScore := sc.Level == 0 && sc.Rationale == "" || a != nil && a.Revealed && a.Submitted && a.Level == sc.Level && a.Rationale == sc.Rationale
		keepEstimate := sc.Estimate == nil || estimateShownAtEnd(end, sc.Team, aspect, sc.Estimate)
		if keepScore && keepEstimate {
			if out != nil {
				out = append(out, sc)
			}
			continue
		}
		if out == nil {
			out = append(make([]RevealedScore, 0, len(scores)), scores[:i]...)
		}
		cut := RevealedScore{Team: sc.Team, Submitted: sc.Submitted}
		if keepScore {
			cut.Level, cut.Rationale = sc.Level, sc.Rationale
		}
		if keepEstimate {
			cut.Estimate = sc.Estimate
		}
		out = append(out, cut)
	}
	if out == nil {
		return scores
	}
	return out
}

// VariantKey names the class of audiences that get identical bytes from
// Redact(e, aud, end) for any one end: the hub encodes e once per distinct
// key. Audiences with the same key must get the same twin (what end takes
// away depends on the same classes: who authored a question, who is the
// facilitator; a revealed score is cut alike for everyone).
func VariantKey(e Event, aud Audience) string {
	switch e.Type {
	case EvRoomCreated:
		switch aud.Role {
		case RoleFacilitator:
			return "facilitator"
		case RoleTeam:
			return classTeamPrefix + aud.Team
		}
		return ClassPublic
	case EvDraftSaved, EvSubmitted:
		if aud.isTeam(e.Team) {
			return "team"
		}
		return "other"
	case EvQuestionPosted, EvQuestionApproved, EvQuestionRestored:
		switch {
		case aud.isFacilitator():
			return "facilitator"
		case aud.isAuthor(e.Question):
			return "author"
		}
		return "other"
	case EvUpvoted, EvUnvoted, EvReported:
		switch {
		case aud.isFacilitator():
			return "facilitator"
		case aud.isSelf(e.Participant):
			return "self"
		}
		return "other"
	case EvEstimated:
		if aud.isSelf(e.Participant) {
			return "self"
		}
		return "other"
	case EvParticipantRemoved:
		if aud.isFacilitator() {
			return "facilitator"
		}
		return "other"
	}
	return "all"
}
