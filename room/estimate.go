package room

import (
	"maps"
	"math"
	"slices"
	"sort"
)

// The room's estimate: before a team's score on an aspect is revealed,
// everyone else (attendees and the other teams' leads) says where they
// think the team stands. Until the reveal only the count of estimates is
// public; an individual estimate is its author's alone, and the
// distribution exists nowhere but in the server's state. The reveal
// carries the histogram, median and mean beside the team's own level, and
// the gap between them is what the Q&A is about.

// Estimation is the room's estimate of one team on one aspect.
type Estimation struct {
	// Open is whether estimates are taken now.
	Open bool `json:"open"`
	// Count is how many participants have estimated: public, for the
	// progress bar.
	Count int `json:"count"`
	// Levels maps each estimating participant to its level. Secret: a
	// view keeps only the audience's own entry (the facilitator's
	// included, which is none).
	Levels map[string]int `json:"levels,omitempty"`
	// Revealed is whether Result is public: set by the reveal of the
	// team's score, cleared when the reveal is hidden again.
	Revealed bool            `json:"revealed"`
	Result   *EstimateResult `json:"result,omitempty"`
}

// EstimateResult is what the reveal shows of an estimation.
type EstimateResult struct {
	Count int `json:"count"`
	// Histogram[i] is how many estimated level i+1; one entry per level
	// of the model.
	Histogram []int   `json:"histogram"`
	Median    float64 `json:"median,omitempty"`
	Mean      float64 `json:"mean,omitempty"`
	// Self is the team's own revealed level, 0 when it did not submit.
	Self int `json:"self,omitempty"`
	// Gap is Self minus Median, when both exist: positive when the team
	// sees itself higher than the room does.
	Gap *float64 `json:"gap,omitempty"`
	// Flagged marks a gap of a level or more: worth the Q&A's time first.
	Flagged bool `json:"flagged,omitempty"`
}

// FlagGap is the size of a gap, in levels, that flags an estimate.
const FlagGap = 1.0

// Estimation returns the estimation of a team on an aspect, or nil.
func (s *State) Estimation(team, aspect string) *Estimation {
	return s.Estimates[team][aspect]
}

func (s *State) estimation(team, aspect string) *Estimation {
	if s.Estimates[team] == nil {
		s.Estimates[team] = map[string]*Estimation{}
	}
	e := s.Estimates[team][aspect]
	if e == nil {
		e = &Estimation{}
		s.Estimates[team][aspect] = e
	}
	return e
}

// computeEstimate is the result of levels, estimates on a scale of
// numLevels, for a team whose own level is self (0: none).
func computeEstimate(levels map[string]int, numLevels, self int) *EstimateResult {
	r := &EstimateResult{Count: len(levels), Histogram: make([]int, numLevels), Self: self}
	if len(levels) == 0 {
		return r
	}
	sorted := slices.Sorted(maps.Values(levels))
	sum := 0
	for _, l := range sorted {
		r.Histogram[l-1]++
		sum += l
	}
	n := len(sorted)
	if n%2 == 1 {
		r.Median = float64(sorted[n/2])
	} else {
		r.Median = float64(sorted[n/2-1]+sorted[n/2]) / 2
	}
	r.Mean = math.Round(float64(sum)/float64(n)*100) / 100
	if self > 0 {
		gap := float64(self) - r.Median
		r.Gap = &gap
		r.Flagged = math.Abs(gap) >= FlagGap
	}
	return r
}

func (r *EstimateResult) clone() *EstimateResult {
	if r == nil {
		return nil
	}
	c := *r
	c.Histogram = slices.Clone(r.Histogram)
	if r.Gap != nil {
		g := *r.Gap
		c.Gap = &g
	}
	return &c
}

// equal reports whether r and o show the same.
func (r *EstimateResult) equal(o *EstimateResult) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Count == o.Count && slices.Equal(r.Histogram, o.Histogram) && r.Median == o.Median &&
		r.Mean == o.Mean && r.Self == o.Self && r.Flagged == o.Flagged &&
		(r.Gap == nil) == (o.Gap == nil) && (r.Gap == nil || *r.Gap == *o.Gap)
}

// viewEstimation is e as aud may see it: the count, whether it is open,
// the result once revealed, and aud's own estimate.
func viewEstimation(e *Estimation, aud Audience) *Estimation {
	c := &Estimation{Open: e.Open, Count: e.Count, Revealed: e.Revealed}
	if e.Revealed {
		c.Result = e.Result.clone()
	}
	if l, ok := e.Levels[aud.Participant]; ok && aud.Participant != "" {
		c.Levels = map[string]int{aud.Participant: l}
	}
	return c
}

// estimatedBy reports whether participant has an estimate in s.
func estimatedBy(s *State, participant string) bool {
	for _, byAspect := range s.Estimates {
		for _, e := range byAspect {
			if _, ok := e.Levels[participant]; ok {
				return true
			}
		}
	}
	return false
}

// --- commands ---

// estimateAspect resolves the aspect of an estimate command: the one
// under discussion, which is also the default.
func (d *decision) estimateAspect() (*Aspect, error) {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return nil, err
	}
	if a.ID != d.s.Aspect {
		return nil, Errorf(ECONFLICT, "estimates are taken on the aspect under discussion, not on %s", a.Name)
	}
	return a, nil
}

func decideOpenEstimates(d *decision) error {
	if err := d.needPhase(PhaseRunning); err != nil {
		return err
	}
	a, err := d.estimateAspect()
	if err != nil {
		return err
	}
	var order []string
	if d.cmd.Team != "" {
		t, err := d.team(d.cmd.Team)
		if err != nil {
			return err
		}
		if sc := d.s.Score(t.ID, a.ID); sc != nil && sc.Revealed {
			return Errorf(ECONFLICT, "%s's score for %s is already revealed: the room estimates before the reveal", t.Name, a.Name)
		}
		if e := d.s.Estimation(t.ID, a.ID); e != nil && e.Open {
			return Errorf(ECONFLICT, "estimating %s on %s is already open", t.Name, a.Name)
		}
		order = []string{t.ID}
	} else {
		order = d.estimable(a.ID)
		if len(order) == 0 {
			return Errorf(ECONFLICT, "no team is left to estimate on %s: each one is open or revealed", a.Name)
		}
	}
	d.emit(Event{Type: EvEstimatesOpened, Aspect: a.ID, Order: order})
	return nil
}

// estimable lists the teams that estimating can open for on aspect: not
// revealed, not open.
func (d *decision) estimable(aspect string) []string {
	var out []string
	for _, t := range d.s.Teams {
		if sc := d.s.Score(t.ID, aspect); sc != nil && sc.Revealed {
			continue
		}
		if e := d.s.Estimation(t.ID, aspect); e != nil && e.Open {
			continue
		}
		out = append(out, t.ID)
	}
	return out
}

// openEstimations lists the teams whose estimation on aspect is open.
func openEstimations(s *State, aspect string) []string {
	var out []string
	for _, t := range s.Teams {
		if e := s.Estimation(t.ID, aspect); e != nil && e.Open {
			out = append(out, t.ID)
		}
	}
	return out
}

func decideCloseEstimates(d *decision) error {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	var order []string
	if d.cmd.Team != "" {
		t, err := d.team(d.cmd.Team)
		if err != nil {
			return err
		}
		if e := d.s.Estimation(t.ID, a.ID); e == nil || !e.Open {
			return Errorf(ECONFLICT, "estimating %s on %s is not open", t.Name, a.Name)
		}
		order = []string{t.ID}
	} else if order = openEstimations(d.s, a.ID); len(order) == 0 {
		return Errorf(ECONFLICT, "no estimating is open on %s", a.Name)
	}
	d.emit(Event{Type: EvEstimatesClosed, Aspect: a.ID, Order: order})
	return nil
}

// closeAllEstimates closes every open estimation: the aspect changes or
// the workshop wraps up.
func (d *decision) closeAllEstimates() {
	for _, id := range d.s.Agenda {
		if open := openEstimations(d.s, id); len(open) > 0 {
			d.emit(Event{Type: EvEstimatesClosed, Aspect: id, Order: open})
		}
	}
}

func decideEstimate(d *decision) error {
	if err := d.needPhase(PhaseRunning); err != nil {
		return err
	}
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	t, err := d.team(d.cmd.Team)
	if err != nil {
		return err
	}
	if d.actor.Role == RoleTeam && d.actor.Team == t.ID {
		return Errorf(EFORBIDDEN, "a team does not estimate itself")
	}
	if n := d.s.Model.NumLevels(); d.cmd.Level < 1 || d.cmd.Level > n {
		return Errorf(EINVALID, "level: choose a level from 1 to %d, got %d", n, d.cmd.Level)
	}
	e := d.s.Estimation(t.ID, a.ID)
	if e == nil || !e.Open {
		return Errorf(ECONFLICT, "estimating %s on %s is not open", t.Name, a.Name)
	}
	count := e.Count
	if prev, ok := e.Levels[d.actor.Participant]; !ok {
		count++
	} else if prev == d.cmd.Level {
		return Errorf(ECONFLICT, "your estimate of %s on %s is already level %d", t.Name, a.Name, prev)
	}
	d.emit(Event{Type: EvEstimated, Aspect: a.ID, Team: t.ID, Participant: d.actor.Participant, Level: d.cmd.Level, Count: count})
	return nil
}

func decideSetEstimateEachTurn(d *decision) error {
	if d.s.EstimateEachTurn == d.cmd.On {
		return Errorf(ECONFLICT, "estimating on every turn is already %s", onOff(d.cmd.On))
	}
	d.emit(Event{Type: EvEstimateEachTurnSet, On: d.cmd.On})
	return nil
}

// openOnTurn opens estimating for a team called to speak, when the room
// estimates on every turn and the team is not revealed or open yet.
func (d *decision) openOnTurn(team string) {
	if !d.s.EstimateEachTurn || team == "" {
		return
	}
	if sc := d.s.Score(team, d.s.Aspect); sc != nil && sc.Revealed {
		return
	}
	if e := d.s.Estimation(team, d.s.Aspect); e != nil && e.Open {
		return
	}
	d.emit(Event{Type: EvEstimatesOpened, Aspect: d.s.Aspect, Order: []string{team}})
}

// revealEstimate is the estimate a reveal of team on aspect carries, with
// the team's own level self (0: not submitted): nil when the room never
// estimated it.
func (d *decision) revealEstimate(team, aspect string, self int) *EstimateResult {
	e := d.s.Estimation(team, aspect)
	if e == nil {
		return nil
	}
	return computeEstimate(e.Levels, d.s.Model.NumLevels(), self)
}

// --- events ---

// evolveEstimate applies the estimate events to s, and reports whether e
// was one.
func (s *State) evolveEstimate(e Event) bool {
	switch e.Type {
	case EvEstimatesOpened, EvEstimatesClosed:
		for _, team := range e.Order {
			s.estimation(team, e.Aspect).Open = e.Type == EvEstimatesOpened
		}
	case EvEstimated:
		// A client's twin of someone else's estimate has no participant,
		// only the count.
		est := s.estimation(e.Team, e.Aspect)
		est.Count = e.Count
		if e.Participant != "" {
			if est.Levels == nil {
				est.Levels = map[string]int{}
			}
			est.Levels[e.Participant] = e.Level
		}
	case EvEstimateEachTurnSet:
		s.EstimateEachTurn = e.On
	default:
		return false
	}
	return true
}

// revealEstimates applies the estimates of a revealed event: the reveal
// closes estimating for the teams it reveals, and shows the result it
// carries. A twin cut against a later take-back carries no result, and
// closes all the same.
func (s *State) revealEstimates(e Event) {
	for _, r := range e.Scores {
		est := s.Estimates[r.Team][e.Aspect]
		if est == nil && r.Estimate == nil {
			continue
		}
		if est == nil {
			est = s.estimation(r.Team, e.Aspect)
		}
		est.Open = false
		if r.Estimate != nil {
			est.Revealed, est.Result = true, r.Estimate.clone()
		}
	}
}

// hideEstimates takes back the result of the teams a reveal_hidden hides.
func (s *State) hideEstimates(e Event) {
	for _, team := range e.Order {
		if est := s.Estimates[team][e.Aspect]; est != nil {
			est.Revealed, est.Result = false, nil
		}
	}
}

// estimateShownAtEnd reports whether end shows r as the revealed estimate
// of team on aspect (true when end is nil).
func estimateShownAtEnd(end *State, team, aspect string, r *EstimateResult) bool {
	if end == nil {
		return true
	}
	est := end.Estimation(team, aspect)
	return est != nil && est.Revealed && est.Result.equal(r)
}

// --- calibration in the results ---

// AspectCalibration summarises, for one aspect, how the teams' own levels
// compare with the room's estimates of them.
type AspectCalibration struct {
	// Estimated is how many revealed teams the room estimated.
	Estimated int `json:"estimated"`
	// MeanAbsGap is the mean size of the gaps, in levels.
	MeanAbsGap float64 `json:"meanAbsGap"`
	// Higher and Lower count the teams that see themselves at least
	// FlagGap above or below the room's median.
	Higher int `json:"higher"`
	Lower  int `json:"lower"`
	// QAFirst lists the flagged teams, the largest gap first: the order
	// to take them in the Q&A.
	QAFirst []string `json:"qaFirst,omitempty"`
}

// calibrate summarises the revealed estimates of scores.
func calibrate(scores []TeamScore) *AspectCalibration {
	c := &AspectCalibration{}
	sum, withGap := 0.0, 0
	type flagged struct {
		team string
		gap  float64
	}
	var fl []flagged
	for _, sc := range scores {
		r := sc.Estimate
		if r == nil {
			continue
		}
		c.Estimated++
		if r.Gap == nil {
			continue
		}
		sum += math.Abs(*r.Gap)
		withGap++
		if r.Flagged {
			fl = append(fl, flagged{sc.Team, *r.Gap})
			if *r.Gap > 0 {
				c.Higher++
			} else {
				c.Lower++
			}
		}
	}
	if c.Estimated == 0 {
		return nil
	}
	if withGap > 0 {
		c.MeanAbsGap = math.Round(sum/float64(withGap)*100) / 100
	}
	sort.SliceStable(fl, func(i, j int) bool { return math.Abs(fl[i].gap) > math.Abs(fl[j].gap) })
	for _, f := range fl {
		c.QAFirst = append(c.QAFirst, f.team)
	}
	return c
}
