package room

import (
	"encoding/json"
	"maps"
	"slices"
)

// Evolve applies one event to s in place and returns s. Events come from
// Decide or Create (or the log they were stored in) and are trusted: Evolve
// makes no judgement and never fails. An event for the wrong sequence is a
// bug of the caller; Apply checks that.
func Evolve(s *State, e Event) *State {
	if e.Type == EvRoomCreated {
		*s = *e.Room.Clone()
		s.Seq = e.Seq
		return s
	}
	s.Seq = e.Seq
	if e.Cmd != "" {
		s.remember(e.Cmd, e.Seq)
	}
	if s.evolveEstimate(e) {
		return s
	}
	switch e.Type {
	case EvStarted:
		s.Phase, s.Aspect = PhaseRunning, e.Aspect
	case EvAspectChanged:
		s.Phase, s.Aspect = PhaseRunning, e.Aspect
	case EvAgendaSet:
		s.Agenda = slices.Clone(e.Order)
	case EvTeamAdded:
		s.Teams = append(s.Teams, Team{ID: e.Team, Name: e.Name})
		for _, a := range s.Model.Aspects {
			s.Queues[a.ID] = append(s.Queues[a.ID], e.Team)
		}
		if e.Secrets != nil {
			maps.Copy(s.Secrets.TeamKeyHashes, e.Secrets.TeamKeyHashes)
		}
	case EvQueueSet:
		s.Queues[e.Aspect] = slices.Clone(e.Order)
	case EvTurnStarted:
		t := *e.Turn
		s.Turn = &t
		if t.Team != "" && !slices.Contains(s.Spoken[t.Aspect], t.Team) {
			s.Spoken[t.Aspect] = append(s.Spoken[t.Aspect], t.Team)
		}
	case EvTurnChanged:
		t := *e.Turn
		s.Turn = &t
	case EvTurnEnded:
		s.Turn = nil
	case EvDraftSaved:
		a := s.assessment(e.Team, e.Aspect)
		a.DraftLevel, a.DraftRationale = e.Level, e.Rationale
	case EvSubmitted:
		a := s.assessment(e.Team, e.Aspect)
		a.Level, a.Rationale, a.Submitted, a.SubmittedAt = e.Level, e.Rationale, true, e.At
		a.DraftLevel, a.DraftRationale = e.Level, e.Rationale
	case EvRevealed:
		// The scores are copied too, so a client that applies the event to
		// a public view (without the levels) ends with the same cells.
		for _, r := range e.Scores {
			a := s.assessment(r.Team, e.Aspect)
			a.Revealed, a.Submitted = true, r.Submitted
			if r.Submitted {
				a.Level, a.Rationale = r.Level, r.Rationale
			}
		}
		s.revealEstimates(e)
	case EvRevealHidden:
		for _, id := range e.Order {
			s.assessment(id, e.Aspect).Revealed = false
		}
		s.hideEstimates(e)
	case EvQuestionPosted:
		s.Questions = append(s.Questions, e.Question.Clone())
	case EvQuestionApproved, EvQuestionRestored:
		if q, ok := s.Question(e.QuestionID); ok {
			votes, voters := q.Votes, q.Voters
			*q = *e.Question.Clone()
			q.Votes, q.Voters = votes, voters
		}
	case EvUpvoted:
		// Count is the new total; a client's twin of someone else's vote
		// has no participant, only the count.
		if q, ok := s.Question(e.QuestionID); ok {
			if e.Participant != "" {
				if q.Voters == nil {
					q.Voters = map[string]bool{}
				}
				q.Voters[e.Participant] = true
			}
			q.Votes = e.Count
		}
	case EvUnvoted:
		if q, ok := s.Question(e.QuestionID); ok {
			if e.Participant != "" {
				delete(q.Voters, e.Participant)
			}
			q.Votes = e.Count
		}
	case EvReported:
		if q, ok := s.Question(e.QuestionID); ok {
			if q.Reporters == nil {
				q.Reporters = map[string]bool{}
			}
			q.Reporters[e.Participant] = true
		}
	case EvHighlighted:
		s.Highlighted = e.QuestionID
	case EvAnswered:
		if q, ok := s.Question(e.QuestionID); ok {
			q.Answered = e.On
		}
	case EvQuestionHidden:
		if q, ok := s.Question(e.QuestionID); ok {
			q.Hidden, q.HiddenBy = true, e.Name
		}
		if s.Highlighted == e.QuestionID {
			s.Highlighted = ""
		}
	case EvApproveFirstSet:
		s.ApproveFirst = e.On
	case EvHandRaised:
		s.Hands = append(s.Hands, Hand{Participant: e.Participant, Name: e.Name, At: e.At})
	case EvHandLowered:
		s.Hands = slices.DeleteFunc(s.Hands, func(h Hand) bool { return h.Participant == e.Participant })
	case EvNoteSet:
		s.Notes[e.Aspect] = e.Text
	case EvActionAdded:
		s.Actions[e.Aspect] = append(s.Actions[e.Aspect], *e.Action)
	case EvActionDone:
		for i := range s.Actions[e.Aspect] {
			if s.Actions[e.Aspect][i].ID == e.Action.ID {
				s.Actions[e.Aspect][i].Done = e.Action.Done
			}
		}
	case EvActionRemoved:
		s.Actions[e.Aspect] = slices.DeleteFunc(s.Actions[e.Aspect], func(x Action) bool { return x.ID == e.Action.ID })
	case EvWrappedUp:
		s.Phase = PhaseWrapUp
	case EvClosed:
		s.Phase, s.ClosedAt = PhaseClosed, e.At
	case EvParticipantRemoved:
		s.Removed[e.Participant] = true
	case EvKeysRotated:
		// A client's twin of the event has no secrets, only the generation.
		if e.Secrets != nil {
			s.Secrets = *e.Secrets.clone()
		}
		s.Secrets.Generation = e.Count
	}
	return s
}

// Apply evolves s by events, checking that their sequence numbers continue
// s.Seq without a hole. It stops at the first event out of order.
func Apply(s *State, events []Event) error {
	for _, e := range events {
		if e.Seq != s.Seq+1 {
			return Errorf(EINTERNAL, "event %d does not follow %d", e.Seq, s.Seq)
		}
		Evolve(s, e)
	}
	return nil
}

// Replay builds a state from a room's log starting with room_created.
func Replay(events []Event) (*State, error) {
	s := &State{}
	if err := Apply(s, events); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *State) assessment(team, aspect string) *Assessment {
	if s.Scores[team] == nil {
		s.Scores[team] = map[string]*Assessment{}
	}
	a := s.Scores[team][aspect]
	if a == nil {
		a = &Assessment{}
		s.Scores[team][aspect] = a
	}
	return a
}

func (s *State) remember(key string, seq uint64) {
	if s.Done == nil {
		s.Done = map[string]uint64{}
	}
	if _, ok := s.Done[key]; !ok {
		s.DoneOrder = append(s.DoneOrder, key)
	}
	s.Done[key] = seq
	if n := len(s.DoneOrder) - MaxRememberedCommands; n > 0 {
		for _, k := range s.DoneOrder[:n] {
			delete(s.Done, k)
		}
		// Reslice rather than shift: shifting moved all 20,000 keys on
		// every command of a busy room. append reallocates (and drops
		// the forgotten keys) once the capacity runs out.
		s.DoneOrder = s.DoneOrder[n:]
	}
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	// A JSON round trip is simple and exact for this plain-data type; it is
	// only used for room creation, tests and snapshots, not per event.
	b, err := json.Marshal(s)
	if err != nil {
		panic("room: clone state: " + err.Error())
	}
	var out State
	if err := json.Unmarshal(b, &out); err != nil {
		panic("room: clone state: " + err.Error())
	}
	out.ensureMaps()
	return &out
}

// ensureMaps makes the maps that Evolve writes to non-nil, so a state
// decoded from JSON with empty maps can be evolved.
func (s *State) ensureMaps() {
	if s.Queues == nil {
		s.Queues = map[string][]string{}
	}
	if s.Spoken == nil {
		s.Spoken = map[string][]string{}
	}
	if s.Scores == nil {
		s.Scores = map[string]map[string]*Assessment{}
	}
	if s.Estimates == nil {
		s.Estimates = map[string]map[string]*Estimation{}
	}
	if s.Notes == nil {
		s.Notes = map[string]string{}
	}
	if s.Actions == nil {
		s.Actions = map[string][]Action{}
	}
	if s.Removed == nil {
		s.Removed = map[string]bool{}
	}
	if s.Secrets.TeamKeyHashes == nil {
		s.Secrets.TeamKeyHashes = map[string]string{}
	}
	if s.Done == nil {
		s.Done = map[string]uint64{}
	}
}

// UnmarshalJSON decodes a state and makes its maps ready for Evolve.
func (s *State) UnmarshalJSON(b []byte) error {
	type plain State
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	s.ensureMaps()
	return nil
}

// Clone returns a deep copy of q.
func (q *Question) Clone() *Question {
	c := *q
	c.Voters = maps.Clone(q.Voters)
	c.Reporters = maps.Clone(q.Reporters)
	return &c
}

func (s *Secrets) clone() *Secrets {
	c := *s
	c.TeamKeyHashes = maps.Clone(s.TeamKeyHashes)
	return &c
}
