package room

import "slices"

// Tentative applies events to a state that may have to take them back: a
// batch decided by one instance can lose the race to commit to another,
// and then the state must return to the base it was decided on before the
// winner's events apply. Votes, reports and hands (Tallied) can be taken
// back exactly (estimates too), at the cost of the events themselves; anything else cannot
// (Revert says so) and the caller reloads the room instead. In a vote
// storm over several instances, a lost race then costs the events since
// the base, never a reload of the whole room.
type Tentative struct {
	s     *State
	steps []undoStep
	whole bool // every event applied can be taken back
}

// undoStep is what one event changed, to put back.
type undoStep struct {
	seq      uint64
	order    []string // s.DoneOrder before the event: its elements are never overwritten by remember
	key      string   // the command key the event remembered, if new
	keySeq   uint64   // and its old sequence when it was not new
	hadKey   bool
	evicted  string // the key remember forgot to make room, if any
	evictSeq uint64
	q        *Question
	votes    int
	voter    string // the participant whose vote or report the event added or removed
	hadVote  bool
	reporter bool   // voter's report, not vote
	hands    []Hand // s.Hands before a hand event (a copy: lowering a hand edits in place)
	handsSet bool
	est      *Estimation // the estimation an estimated event changed, with its count and voter's level before
	estCount int
	estLevel int
}

// NewTentative starts taking events applied to s.
func NewTentative(s *State) *Tentative { return &Tentative{s: s, whole: true} }

// Apply is room.Apply, remembering how to take each event back.
func (t *Tentative) Apply(events []Event) error {
	for _, e := range events {
		if e.Seq != t.s.Seq+1 {
			return Errorf(EINTERNAL, "event %d does not follow %d", e.Seq, t.s.Seq)
		}
		if t.whole {
			if Tallied(e) {
				t.steps = append(t.steps, t.before(e))
			} else {
				t.whole, t.steps = false, nil
			}
		}
		Evolve(t.s, e)
	}
	return nil
}

func (t *Tentative) before(e Event) undoStep {
	s := t.s
	st := undoStep{seq: s.Seq, order: s.DoneOrder}
	if e.Cmd != "" {
		st.key = e.Cmd
		st.keySeq, st.hadKey = s.Done[e.Cmd]
		if !st.hadKey && len(s.DoneOrder) >= MaxRememberedCommands {
			st.evicted = s.DoneOrder[0]
			st.evictSeq = s.Done[st.evicted]
		}
	}
	switch e.Type {
	case EvUpvoted, EvUnvoted, EvReported:
		if q, ok := s.Question(e.QuestionID); ok {
			st.q, st.votes, st.voter = q, q.Votes, e.Participant
			st.reporter = e.Type == EvReported
			if st.reporter {
				st.hadVote = q.Reporters[e.Participant]
			} else {
				st.hadVote = q.Voters[e.Participant]
			}
		}
	case EvHandRaised, EvHandLowered:
		st.hands, st.handsSet = slices.Clone(s.Hands), true
	case EvEstimated:
		// Evolve creates the estimation if it is missing; make it here so
		// that the step holds the very one the event changes.
		st.est, st.voter = s.estimation(e.Team, e.Aspect), e.Participant
		st.estCount = st.est.Count
		st.estLevel, st.hadVote = st.est.Levels[e.Participant]
	}
	return st
}

// Revert takes back every event applied, newest first, and reports
// whether the state is back where it started; false means an event could
// not be taken back and the state must be reloaded.
func (t *Tentative) Revert() bool {
	if !t.whole {
		return false
	}
	s := t.s
	for i := len(t.steps) - 1; i >= 0; i-- {
		st := t.steps[i]
		if st.q != nil {
			st.q.Votes = st.votes
			set := &st.q.Voters
			if st.reporter {
				set = &st.q.Reporters
			}
			switch {
			case st.hadVote:
				if *set == nil {
					*set = map[string]bool{}
				}
				(*set)[st.voter] = true
			default:
				delete(*set, st.voter)
			}
		}
		if st.handsSet {
			s.Hands = st.hands
		}
		if st.est != nil {
			st.est.Count = st.estCount
			if st.hadVote {
				st.est.Levels[st.voter] = st.estLevel
			} else {
				delete(st.est.Levels, st.voter)
			}
		}
		if st.key != "" {
			if st.hadKey {
				s.Done[st.key] = st.keySeq
			} else {
				delete(s.Done, st.key)
			}
			if st.evicted != "" {
				s.Done[st.evicted] = st.evictSeq
			}
		}
		s.DoneOrder = st.order
		s.Seq = st.seq
	}
	t.steps = nil
	return true
}
