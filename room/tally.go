package room

import "slices"

// Tallies: what an audience receives of a run of high-volume audience
// actions (votes, reports, hands, estimates). The log keeps every action; a client
// that is not the facilitator gets the totals they changed, as the state at
// the end of the run shows them, so a storm of votes costs one message per
// client per tick instead of one per vote.

// Tallied reports whether e is audience traffic that clients other than the
// facilitator receive as totals in a Tally rather than one by one.
func Tallied(e Event) bool {
	switch e.Type {
	case EvUpvoted, EvUnvoted, EvReported, EvHandRaised, EvHandLowered, EvEstimated:
		return true
	}
	return false
}

// Tally stands for the events From..Seq, all of them Tallied: it carries
// the totals those events changed, cut to one audience. Applying it to a
// client's copy at any sequence from From-1 to Seq-1 gives what a snapshot
// at Seq shows that audience of those totals.
type Tally struct {
	From  uint64          `json:"from"`
	Seq   uint64          `json:"seq"`
	Votes []QuestionVotes `json:"votes,omitempty"`
	// Hands is the whole hand queue at Seq when the run raised or lowered
	// a hand, nil otherwise.
	Hands []Hand `json:"hands,omitempty"`
	// HandsChanged tells an empty queue (every hand lowered) from no change.
	HandsChanged bool `json:"handsChanged,omitempty"`
	// Estimates are the counts of estimates the run changed.
	Estimates []EstimateCount `json:"estimates,omitempty"`
}

// EstimateCount is how many have estimated a team on an aspect at the end
// of a tally. Level is the audience's own estimate, set only where the
// audience itself estimated in the run: nobody else's level, and no
// distribution, is in a tally.
type EstimateCount struct {
	Aspect string `json:"aspect"`
	Team   string `json:"team"`
	Count  int    `json:"count"`
	Level  int    `json:"level,omitempty"`
}

// QuestionVotes is one question's vote count at the end of a tally. Voted
// and Reported are the audience's own vote and report, set only where the
// audience itself voted, took its vote back or reported in the run. Hidden
// marks a question the audience voted on that it no longer sees: the
// entry tells its own vote and nothing else (Votes is 0), so that its page
// shows the vote again if the question comes back, as a snapshot would.
type QuestionVotes struct {
	Question string `json:"question"`
	Votes    int    `json:"votes"`
	Voted    *bool  `json:"voted,omitempty"`
	Reported bool   `json:"reported,omitempty"`
	Hidden   bool   `json:"hidden,omitempty"`
}

// TallyFor cuts events, a contiguous run of Tallied events, to aud: the
// vote counts the run left on the questions it touched (each upvoted and
// unvoted event carries its new total), aud's own vote and report on them,
// and hands, the queue at the run's end, if the run moved it. end is the
// room's state at or after the run's end: a question aud does not see
// there is left out, as Redact leaves out what a range takes back. It
// names no voter and no reporter other than aud itself.
func TallyFor(events []Event, hands []Hand, end *State, aud Audience) Tally {
	t := Tally{}
	if len(events) == 0 {
		return t
	}
	t.From, t.Seq = events[0].Seq, events[len(events)-1].Seq
	at := map[string]int{} // question id -> index in t.Votes
	estAt := map[[2]string]int{}
	for _, e := range events {
		switch e.Type {
		case EvHandRaised, EvHandLowered:
			t.HandsChanged = true
			continue
		case EvEstimated:
			c := t.estimateEntry(estAt, e)
			c.Count = e.Count
			if aud.isSelf(e.Participant) {
				c.Level = e.Level
			}
			continue
		case EvUpvoted, EvUnvoted, EvReported:
		default:
			continue
		}
		self := aud.isSelf(e.Participant)
		if e.Type == EvReported && !self {
			continue // a report is the reporter's and the facilitator's business
		}
		q, ok := end.Question(e.QuestionID)
		if !ok {
			continue
		}
		hidden := !aud.sees(q)
		if hidden && !self {
			continue
		}
		v := t.entry(at, q, hidden)
		if self {
			v.own(e)
		}
		if e.Type != EvReported && !hidden {
			v.Votes = e.Count
		}
	}
	if t.HandsChanged {
		t.Hands = append([]Hand{}, hands...)
	}
	return t
}

// Personal is t, the tally of a class, as one member sees it: own are the
// run's events by aud.Participant (its votes and reports). It equals
// TallyFor(run, hands, end, aud) at the cost of own alone, so a storm's
// many voters each get their own tally without the whole run being cut
// again for each of them.
func (t Tally) Personal(own []Event, end *State, aud Audience) Tally {
	if len(own) == 0 {
		return t
	}
	out := t
	out.Votes = slices.Clone(t.Votes)
	at := make(map[string]int, len(out.Votes))
	for i, v := range out.Votes {
		at[v.Question] = i
	}
	var estAt map[[2]string]int
	for _, e := range own {
		if e.Type == EvEstimated && aud.isSelf(e.Participant) {
			if estAt == nil {
				out.Estimates = slices.Clone(t.Estimates)
				estAt = make(map[[2]string]int, len(out.Estimates))
				for i, c := range out.Estimates {
					estAt[[2]string{c.Aspect, c.Team}] = i
				}
			}
			out.estimateEntry(estAt, e).Level = e.Level
		}
	}
	for _, e := range own {
		if !aud.isSelf(e.Participant) || (e.Type != EvUpvoted && e.Type != EvUnvoted && e.Type != EvReported) {
			continue
		}
		// The class's entry carries the count; a question the class does
		// not see gets the member's own entry, as TallyFor makes it.
		if q, ok := end.Question(e.QuestionID); ok {
			out.entry(at, q, !aud.sees(q)).own(e)
		}
	}
	return out
}

// entry is q's entry in t.Votes (at indexes them by question), added with
// q's count at the end of the run when there is none; a hidden one tells
// no count.
func (t *Tally) entry(at map[string]int, q *Question, hidden bool) *QuestionVotes {
	i, ok := at[q.ID]
	if !ok {
		i = len(t.Votes)
		at[q.ID] = i
		v := QuestionVotes{Question: q.ID, Votes: q.Votes, Hidden: hidden}
		if hidden {
			v.Votes = 0
		}
		t.Votes = append(t.Votes, v)
	}
	return &t.Votes[i]
}

// estimateEntry is the entry of e's team and aspect in t.Estimates (at
// indexes them), added with e's count when there is none.
func (t *Tally) estimateEntry(at map[[2]string]int, e Event) *EstimateCount {
	k := [2]string{e.Aspect, e.Team}
	i, ok := at[k]
	if !ok {
		i = len(t.Estimates)
		at[k] = i
		t.Estimates = append(t.Estimates, EstimateCount{Aspect: e.Aspect, Team: e.Team, Count: e.Count})
	}
	return &t.Estimates[i]
}

// own records e, the audience's own vote, unvote or report, in v.
func (v *QuestionVotes) own(e Event) {
	if e.Type == EvReported {
		v.Reported = true
		return
	}
	voted := e.Type == EvUpvoted
	v.Voted = &voted
}

// ApplyTally applies t to v, a view of the room for the audience of
// participant at a sequence from t.From-1 on, as a client does: the counts,
// participant's own vote, report and estimates, the hand queue, the
// sequence.
func ApplyTally(v *State, t Tally, participant string) {
	v.Seq = t.Seq
	for _, qv := range t.Votes {
		q, ok := v.Question(qv.Question)
		if !ok {
			continue
		}
		if participant != "" && qv.Voted != nil {
			if *qv.Voted {
				if q.Voters == nil {
					q.Voters = map[string]bool{}
				}
				q.Voters[participant] = true
			} else {
				delete(q.Voters, participant)
			}
		}
		if qv.Hidden {
			continue
		}
		q.Votes = qv.Votes
		if participant != "" && qv.Reported {
			if q.Reporters == nil {
				q.Reporters = map[string]bool{}
			}
			q.Reporters[participant] = true
		}
	}
	if t.HandsChanged {
		v.Hands = append([]Hand{}, t.Hands...)
	}
	for _, c := range t.Estimates {
		if v.Estimates == nil {
			v.Estimates = map[string]map[string]*Estimation{}
		}
		est := v.estimation(c.Team, c.Aspect)
		est.Count = c.Count
		if participant != "" && c.Level > 0 {
			if est.Levels == nil {
				est.Levels = map[string]int{}
			}
			est.Levels[participant] = c.Level
		}
	}
}
