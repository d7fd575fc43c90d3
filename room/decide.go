package room

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateParams are the inputs of a new room. The hub generates the id, the
// join code and the secrets; the title, model and team names come from the
// facilitator and are validated here.
type CreateParams struct {
	ID        string
	Code      string
	Title     string
	Model     Model
	TeamNames []string
	Secrets   Secrets
	Now       time.Time
}

// Create validates the parameters and answers the room_created event that
// starts the room's log at sequence 1.
func Create(p CreateParams) ([]Event, error) {
	if p.ID == "" || p.Code == "" {
		return nil, Errorf(EINVALID, "room: id and code are required")
	}
	if err := checkText("title", p.Title, 1, MaxTitleLen); err != nil {
		return nil, err
	}
	if err := p.Model.Validate(); err != nil {
		return nil, err
	}
	if n := len(p.TeamNames); n < MinTeams || n > MaxTeams {
		return nil, Errorf(EINVALID, "teams: a room has %d to %d teams, got %d", MinTeams, MaxTeams, n)
	}
	now := p.Now.UTC().Truncate(time.Millisecond) // as Decide's
	s := &State{
		ID: p.ID, Code: p.Code, Title: strings.TrimSpace(p.Title), Model: p.Model,
		Phase: PhaseLobby, CreatedAt: now, ReportLimit: DefaultReportLimit,
		Queues: map[string][]string{}, Scores: map[string]map[string]*Assessment{},
		Spoken: map[string][]string{}, Estimates: map[string]map[string]*Estimation{}, Notes: map[string]string{}, Actions: map[string][]Action{}, Removed: map[string]bool{},
		Secrets: p.Secrets, Hands: []Hand{}, Questions: []*Question{}, Teams: []Team{},
	}
	for i, name := range p.TeamNames {
		name = strings.TrimSpace(name)
		if err := checkText(fmt.Sprintf("teams[%d]", i), name, 1, MaxTeamNameLen); err != nil {
			return nil, err
		}
		for _, t := range s.Teams {
			if strings.EqualFold(t.Name, name) {
				return nil, Errorf(EINVALID, "teams[%d]: %q is used twice", i, name)
			}
		}
		s.Teams = append(s.Teams, Team{ID: TeamID(i + 1), Name: name})
	}
	for _, a := range p.Model.Aspects {
		s.Agenda = append(s.Agenda, a.ID)
		s.Queues[a.ID] = teamIDs(s.Teams)
	}
	if s.Secrets.TeamKeyHashes == nil {
		s.Secrets.TeamKeyHashes = map[string]string{}
	}
	return []Event{{Seq: 1, Type: EvRoomCreated, At: now, Room: s}}, nil
}

func teamIDs(ts []Team) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// Decide validates cmd from actor against s at time now and answers the
// events that carry it out, numbered from s.Seq+1, or an *Error. It does not
// change s.
func Decide(s *State, actor Actor, cmd Command, now time.Time) ([]Event, error) {
	if s == nil || s.Seq == 0 {
		return nil, Errorf(ENOTFOUND, "room not found")
	}
	h, ok := handlers[cmd.Type]
	if !ok {
		return nil, Errorf(EINVALID, "unknown command type %q", cmd.Type)
	}
	if !h.roles[actor.Role] {
		return nil, Errorf(EFORBIDDEN, "%s may not %s", roleName(actor.Role), strings.ReplaceAll(cmd.Type, "_", " "))
	}
	if s.Phase == PhaseClosed {
		return nil, Errorf(ECONFLICT, "the room is closed")
	}
	if actor.Participant != "" && s.Removed[actor.Participant] {
		return nil, Errorf(EFORBIDDEN, "you were removed from this room")
	}
	if err := checkFields(cmd); err != nil {
		return nil, err
	}
	// Milliseconds are all a person or a client needs of a time, and the
	// shorter stamp is what every event carries to every client.
	d := &decision{s: s, actor: actor, cmd: cmd, now: now.UTC().Truncate(time.Millisecond)}
	if err := h.fn(d); err != nil {
		return nil, err
	}
	for i := range d.events {
		d.events[i].Seq = s.Seq + uint64(i) + 1
		d.events[i].At = d.now
		d.events[i].Cmd = cmd.Key
	}
	return d.events, nil
}

func roleName(r Role) string {
	switch r {
	case RoleTeam:
		return "a team lead"
	case RoleFacilitator:
		return "the facilitator"
	case RolePresenter:
		return "a presenter screen"
	case RoleAttendee:
		return "an attendee"
	}
	return "an unknown role"
}

// decision is the working set of one Decide call.
type decision struct {
	s      *State
	actor  Actor
	cmd    Command
	now    time.Time
	events []Event
}

func (d *decision) emit(e Event) { d.events = append(d.events, e) }

type handler struct {
	roles map[Role]bool
	fn    func(*decision) error
}

func roles(rs ...Role) map[Role]bool {
	m := map[Role]bool{}
	for _, r := range rs {
		m[r] = true
	}
	return m
}

var (
	facilitatorOnly = roles(RoleFacilitator)
	teamOnly        = roles(RoleTeam)
	speakers        = roles(RoleFacilitator, RoleTeam, RoleAttendee)
	audience        = roles(RoleTeam, RoleAttendee)
)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		CmdStart:           {facilitatorOnly, decideStart},
		CmdGotoAspect:      {facilitatorOnly, decideGotoAspect},
		CmdSetAgenda:       {facilitatorOnly, decideSetAgenda},
		CmdAddTeam:         {facilitatorOnly, decideAddTeam},
		CmdSetQueue:        {facilitatorOnly, decideSetQueue},
		CmdCallTurn:        {facilitatorOnly, decideCallTurn},
		CmdExtendTurn:      {facilitatorOnly, decideExtendTurn},
		CmdEndTurn:         {facilitatorOnly, decideEndTurn},
		CmdReveal:          {facilitatorOnly, decideReveal},
		CmdHideReveal:      {facilitatorOnly, decideHideReveal},
		CmdHighlight:       {facilitatorOnly, decideHighlight},
		CmdAnswer:          {facilitatorOnly, decideAnswer},
		CmdHideQuestion:    {facilitatorOnly, decideHideQuestion},
		CmdRestoreQuestion: {facilitatorOnly, decideRestoreQuestion},
		CmdApproveQuestion: {facilitatorOnly, decideApproveQuestion},
		CmdSetApproveFirst: {facilitatorOnly, decideSetApproveFirst},
		CmdSetNote:         {facilitatorOnly, decideSetNote},
		CmdAddAction:       {facilitatorOnly, decideAddAction},
		CmdSetActionDone:   {facilitatorOnly, decideSetActionDone},
		CmdRemoveAction:    {facilitatorOnly, decideRemoveAction},
		CmdWrapUp:          {facilitatorOnly, decideWrapUp},
		CmdClose:           {facilitatorOnly, decideClose},
		CmdRemove:          {facilitatorOnly, decideRemove},
		CmdRotateKeys:      {facilitatorOnly, decideRotateKeys},
		CmdSaveDraft:       {teamOnly, decideSaveDraft},
		CmdSubmit:          {teamOnly, decideSubmit},
		CmdAsk:             {speakers, decideAsk},
		CmdUpvote:          {speakers, decideUpvote},
		CmdUnvote:          {speakers, decideUnvote},
		CmdReport:          {audience, decideReport},
		CmdRaiseHand:       {audience, decideRaiseHand},
		CmdLowerHand:       {speakers, decideLowerHand},

		CmdOpenEstimates:       {facilitatorOnly, decideOpenEstimates},
		CmdCloseEstimates:      {facilitatorOnly, decideCloseEstimates},
		CmdEstimate:            {audience, decideEstimate},
		CmdSetEstimateEachTurn: {facilitatorOnly, decideSetEstimateEachTurn},
	}
}

// --- helpers shared by the handlers ---

func (d *decision) needPhase(ps ...Phase) error {
	if slices.Contains(ps, d.s.Phase) {
		return nil
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = string(p)
	}
	return Errorf(ECONFLICT, "not possible while the room is %s (needs %s)", d.s.Phase, strings.Join(names, " or "))
}

func (d *decision) aspect(id string) (*Aspect, error) {
	if id == "" {
		return nil, Errorf(EINVALID, "aspect: required")
	}
	a, ok := d.s.Model.Aspect(id)
	if !ok {
		return nil, Errorf(ENOTFOUND, "aspect %q not found", truncate(id, 40))
	}
	return a, nil
}

// aspectOrCurrent resolves an aspect that defaults to the current one.
func (d *decision) aspectOrCurrent(id string) (*Aspect, error) {
	if id == "" {
		id = d.s.Aspect
		if id == "" {
			return nil, Errorf(EINVALID, "aspect: required (no aspect is under discussion)")
		}
	}
	return d.aspect(id)
}

func (d *decision) team(id string) (Team, error) {
	if id == "" {
		return Team{}, Errorf(EINVALID, "team: required")
	}
	t, ok := d.s.Team(id)
	if !ok {
		return Team{}, Errorf(ENOTFOUND, "team %q not found", truncate(id, 40))
	}
	return t, nil
}

func (d *decision) question(id string) (*Question, error) {
	if id == "" {
		return nil, Errorf(EINVALID, "question: required")
	}
	q, ok := d.s.Question(id)
	if !ok {
		return nil, Errorf(ENOTFOUND, "question %q not found", truncate(id, 40))
	}
	return q, nil
}

// visibleQuestion is a question the actor may see and act on.
func (d *decision) visibleQuestion(id string) (*Question, error) {
	q, err := d.question(id)
	if err != nil {
		return nil, err
	}
	if d.actor.Role != RoleFacilitator && (q.Hidden || q.Pending && q.Author != d.actor.Participant) {
		// Answer as if it did not exist, so hidden questions cannot be probed.
		return nil, Errorf(ENOTFOUND, "question %q not found", truncate(id, 40))
	}
	return q, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func checkOrder(field string, got, want []string) error {
	if len(got) != len(want) {
		return Errorf(EINVALID, "%s: list each of the %d entries exactly once, got %d", field, len(want), len(got))
	}
	seen := map[string]bool{}
	for _, id := range got {
		if !slices.Contains(want, id) {
			return Errorf(ENOTFOUND, "%s: %q not found", field, truncate(id, 40))
		}
		if seen[id] {
			return Errorf(EINVALID, "%s: %q is listed twice", field, truncate(id, 40))
		}
		seen[id] = true
	}
	return nil
}

func turnLength(seconds int) (time.Duration, error) {
	if seconds == 0 {
		return DefaultTurn, nil
	}
	d := time.Duration(seconds) * time.Second
	if d < MinTurn || d > MaxTurn {
		return 0, Errorf(EINVALID, "seconds: a turn lasts %d to %d seconds, got %d", int(MinTurn.Seconds()), int(MaxTurn.Seconds()), seconds)
	}
	return d, nil
}

// --- agenda and phase ---

func decideStart(d *decision) error {
	if err := d.needPhase(PhaseLobby); err != nil {
		return err
	}
	d.emit(Event{Type: EvStarted, Aspect: d.s.Agenda[0]})
	return nil
}

func decideGotoAspect(d *decision) error {
	if err := d.needPhase(PhaseRunning, PhaseWrapUp); err != nil {
		return err
	}
	a, err := d.aspect(d.cmd.Aspect)
	if err != nil {
		return err
	}
	if a.ID == d.s.Aspect && d.s.Phase == PhaseRunning {
		return Errorf(ECONFLICT, "aspect %q is already under discussion", a.ID)
	}
	if d.s.Turn != nil {
		d.emit(Event{Type: EvTurnEnded})
	}
	d.closeAllEstimates()
	d.emit(Event{Type: EvAspectChanged, Aspect: a.ID})
	return nil
}

func decideSetAgenda(d *decision) error {
	if err := d.needPhase(PhaseLobby, PhaseRunning, PhaseWrapUp); err != nil {
		return err
	}
	if err := checkOrder("order", d.cmd.Order, d.s.Agenda); err != nil {
		return err
	}
	d.emit(Event{Type: EvAgendaSet, Order: slices.Clone(d.cmd.Order)})
	return nil
}

func decideAddTeam(d *decision) error {
	if len(d.s.Teams) >= MaxTeams {
		return Errorf(ECONFLICT, "a room has at most %d teams", MaxTeams)
	}
	name := strings.TrimSpace(d.cmd.Name)
	if err := checkText("name", name, 1, MaxTeamNameLen); err != nil {
		return err
	}
	for _, t := range d.s.Teams {
		if strings.EqualFold(t.Name, name) {
			return Errorf(ECONFLICT, "a team named %q already exists", name)
		}
	}
	id := d.s.NextTeamID()
	if d.cmd.NewSecrets == nil || d.cmd.NewSecrets.TeamKeyHashes[id] == "" {
		return Errorf(EINTERNAL, "add_team needs the key hash of team %s from the server", id)
	}
	d.emit(Event{Type: EvTeamAdded, Team: id, Name: name,
		Secrets: &Secrets{TeamKeyHashes: map[string]string{id: d.cmd.NewSecrets.TeamKeyHashes[id]}}})
	return nil
}

func decideSetQueue(d *decision) error {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	if err := checkOrder("order", d.cmd.Order, d.s.Queues[a.ID]); err != nil {
		return err
	}
	d.emit(Event{Type: EvQueueSet, Aspect: a.ID, Order: slices.Clone(d.cmd.Order)})
	return nil
}

func decideWrapUp(d *decision) error {
	if err := d.needPhase(PhaseRunning); err != nil {
		return err
	}
	if d.s.Turn != nil {
		d.emit(Event{Type: EvTurnEnded})
	}
	d.closeAllEstimates()
	d.emit(Event{Type: EvWrappedUp})
	return nil
}

func decideClose(d *decision) error {
	if d.s.Turn != nil {
		d.emit(Event{Type: EvTurnEnded})
	}
	d.closeAllEstimates()
	d.emit(Event{Type: EvClosed})
	return nil
}

// --- speaking turns and hands ---

func decideCallTurn(d *decision) error {
	if err := d.needPhase(PhaseRunning); err != nil {
		return err
	}
	length, err := turnLength(d.cmd.Seconds)
	if err != nil {
		return err
	}
	turn := &Turn{Aspect: d.s.Aspect, StartedAt: d.now, EndsAt: d.now.Add(length)}
	switch {
	case d.cmd.Team != "" && d.cmd.Participant != "":
		return Errorf(EINVALID, "participant: give the turn to a team or to a participant, not both")
	case d.cmd.Participant != "":
		i := slices.IndexFunc(d.s.Hands, func(h Hand) bool { return h.Participant == d.cmd.Participant })
		if i < 0 {
			return Errorf(ENOTFOUND, "participant %q has no raised hand", truncate(d.cmd.Participant, 40))
		}
		turn.Participant, turn.Name = d.s.Hands[i].Participant, d.s.Hands[i].Name
		d.emit(Event{Type: EvHandLowered, Participant: turn.Participant})
	case d.cmd.Team != "":
		t, err := d.team(d.cmd.Team)
		if err != nil {
			return err
		}
		turn.Team, turn.Name = t.ID, t.Name
	default:
		t, ok := d.nextTeam()
		if !ok {
			return Errorf(ECONFLICT, "every team has had its turn on this aspect; name a team to call it again")
		}
		turn.Team, turn.Name = t.ID, t.Name
	}
	d.emit(Event{Type: EvTurnStarted, Turn: turn})
	d.openOnTurn(turn.Team)
	return nil
}

// nextTeam is the first team in the current aspect's queue that has not yet
// had a turn on this aspect.
func (d *decision) nextTeam() (Team, bool) {
	spoken := d.s.Spoken[d.s.Aspect]
	for _, id := range d.s.Queues[d.s.Aspect] {
		if !slices.Contains(spoken, id) {
			return d.s.Team(id)
		}
	}
	return Team{}, false
}

func decideExtendTurn(d *decision) error {
	if d.s.Turn == nil {
		return Errorf(ECONFLICT, "nobody has the floor")
	}
	if d.cmd.Seconds < 1 || d.cmd.Seconds > int(MaxTurn.Seconds()) {
		return Errorf(EINVALID, "seconds: extend by 1 to %d seconds, got %d", int(MaxTurn.Seconds()), d.cmd.Seconds)
	}
	t := *d.s.Turn
	base := t.EndsAt
	if base.Before(d.now) {
		base = d.now // extending an overrun turn counts from now
	}
	t.EndsAt = base.Add(time.Duration(d.cmd.Seconds) * time.Second)
	if t.EndsAt.Sub(d.now) > MaxTurn {
		return Errorf(EINVALID, "seconds: a turn ends at most %d minutes from now", int(MaxTurn.Minutes()))
	}
	d.emit(Event{Type: EvTurnChanged, Turn: &t})
	return nil
}

func decideEndTurn(d *decision) error {
	if d.s.Turn == nil {
		return Errorf(ECONFLICT, "nobody has the floor")
	}
	d.emit(Event{Type: EvTurnEnded})
	return nil
}

func decideRaiseHand(d *decision) error {
	if err := d.needPhase(PhaseRunning); err != nil {
		return err
	}
	if slices.ContainsFunc(d.s.Hands, func(h Hand) bool { return h.Participant == d.actor.Participant }) {
		return Errorf(ECONFLICT, "your hand is already raised")
	}
	if len(d.s.Hands) >= MaxHands {
		return Errorf(ECONFLICT, "too many raised hands; wait for the facilitator")
	}
	d.emit(Event{Type: EvHandRaised, Participant: d.actor.Participant, Name: d.actor.Name})
	return nil
}

func decideLowerHand(d *decision) error {
	who := d.actor.Participant
	if d.cmd.Participant != "" && d.cmd.Participant != who {
		if d.actor.Role != RoleFacilitator {
			// The role may send lower_hand but not set this field to
			// another participant: invalid, like any field it may not set.
			return Errorf(EINVALID, "participant: only the facilitator may lower another participant's hand")
		}
		who = d.cmd.Participant
	}
	if !slices.ContainsFunc(d.s.Hands, func(h Hand) bool { return h.Participant == who }) {
		return Errorf(ENOTFOUND, "no raised hand for %q", truncate(who, 40))
	}
	d.emit(Event{Type: EvHandLowered, Participant: who})
	return nil
}

// --- assessments ---

func (d *decision) checkScoreInput(requireLevel bool) (*Aspect, error) {
	if err := d.needPhase(PhaseLobby, PhaseRunning, PhaseWrapUp); err != nil {
		return nil, err
	}
	a, err := d.aspect(d.cmd.Aspect)
	if err != nil {
		return nil, err
	}
	n := d.s.Model.NumLevels()
	if requireLevel && (d.cmd.Level < 1 || d.cmd.Level > n) || d.cmd.Level < 0 || d.cmd.Level > n {
		return nil, Errorf(EINVALID, "level: choose a level from 1 to %d, got %d", n, d.cmd.Level)
	}
	if err := checkText("rationale", d.cmd.Rationale, 0, MaxRationaleLen); err != nil {
		return nil, err
	}
	if sc := d.s.Score(d.actor.Team, a.ID); sc != nil && sc.Revealed {
		return nil, Errorf(ECONFLICT, "the score for %s is revealed and can no longer change", a.Name)
	}
	return a, nil
}

func decideSaveDraft(d *decision) error {
	a, err := d.checkScoreInput(false)
	if err != nil {
		return err
	}
	d.emit(Event{Type: EvDraftSaved, Team: d.actor.Team, Aspect: a.ID, Level: d.cmd.Level, Rationale: d.cmd.Rationale})
	return nil
}

func decideSubmit(d *decision) error {
	a, err := d.checkScoreInput(true)
	if err != nil {
		return err
	}
	count := d.s.SubmittedCount(a.ID)
	if sc := d.s.Score(d.actor.Team, a.ID); sc == nil || !sc.Submitted {
		count++
	}
	d.emit(Event{Type: EvSubmitted, Team: d.actor.Team, Aspect: a.ID, Level: d.cmd.Level, Rationale: d.cmd.Rationale, Count: count})
	return nil
}

func decideReveal(d *decision) error {
	if err := d.needPhase(PhaseRunning, PhaseWrapUp); err != nil {
		return err
	}
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	var teams []Team
	if d.cmd.Team != "" {
		t, err := d.team(d.cmd.Team)
		if err != nil {
			return err
		}
		if sc := d.s.Score(t.ID, a.ID); sc != nil && sc.Revealed {
			return Errorf(ECONFLICT, "%s's score for %s is already revealed", t.Name, a.Name)
		}
		teams = []Team{t}
	} else {
		for _, t := range d.s.Teams {
			if sc := d.s.Score(t.ID, a.ID); sc == nil || !sc.Revealed {
				teams = append(teams, t)
			}
		}
		if len(teams) == 0 {
			return Errorf(ECONFLICT, "every team's score for %s is already revealed", a.Name)
		}
	}
	e := Event{Type: EvRevealed, Aspect: a.ID}
	for _, t := range teams {
		rs := RevealedScore{Team: t.ID}
		if sc := d.s.Score(t.ID, a.ID); sc != nil && sc.Submitted {
			rs.Level, rs.Rationale, rs.Submitted = sc.Level, sc.Rationale, true
		}
		rs.Estimate = d.revealEstimate(t.ID, a.ID, rs.Level)
		e.Scores = append(e.Scores, rs)
	}
	d.emit(e)
	return nil
}

func decideHideReveal(d *decision) error {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	var order []string
	for _, t := range d.s.Teams {
		if d.cmd.Team != "" && t.ID != d.cmd.Team {
			continue
		}
		if sc := d.s.Score(t.ID, a.ID); sc != nil && sc.Revealed {
			order = append(order, t.ID)
		}
	}
	if d.cmd.Team != "" {
		if _, err := d.team(d.cmd.Team); err != nil {
			return err
		}
	}
	if len(order) == 0 {
		return Errorf(ECONFLICT, "nothing revealed to hide for %s", a.Name)
	}
	d.emit(Event{Type: EvRevealHidden, Aspect: a.ID, Order: order})
	return nil
}

// --- questions ---

func decideAsk(d *decision) error {
	if err := d.needPhase(PhaseRunning, PhaseWrapUp); err != nil {
		return err
	}
	text := strings.TrimSpace(d.cmd.Text)
	if err := checkText("text", text, 1, MaxQuestionLen); err != nil {
		return err
	}
	if len(d.s.Questions) >= MaxQuestions {
		return Errorf(ECONFLICT, "this room has reached its limit of %d questions", MaxQuestions)
	}
	q := &Question{
		ID: fmt.Sprintf("q%d", len(d.s.Questions)+1), Text: text,
		Author: d.actor.Participant, AuthorName: d.actor.Name, Anonymous: d.cmd.Anonymous,
		Aspect: d.s.Aspect, At: d.now,
		Pending: d.s.ApproveFirst && d.actor.Role != RoleFacilitator,
	}
	if d.s.Turn != nil {
		q.Team = d.s.Turn.Team
	}
	if q.Anonymous {
		q.AuthorName = ""
	}
	d.emit(Event{Type: EvQuestionPosted, QuestionID: q.ID, Question: q})
	return nil
}

func decideUpvote(d *decision) error {
	q, err := d.visibleQuestion(d.cmd.Question)
	if err != nil {
		return err
	}
	if q.Pending {
		return Errorf(ECONFLICT, "the question waits for approval")
	}
	if q.Voters[d.actor.Participant] {
		return Errorf(ECONFLICT, "you already upvoted this question")
	}
	d.emit(Event{Type: EvUpvoted, QuestionID: q.ID, Participant: d.actor.Participant, Count: q.Votes + 1})
	return nil
}

func decideUnvote(d *decision) error {
	q, err := d.visibleQuestion(d.cmd.Question)
	if err != nil {
		return err
	}
	if !q.Voters[d.actor.Participant] {
		return Errorf(ECONFLICT, "you have not upvoted this question")
	}
	d.emit(Event{Type: EvUnvoted, QuestionID: q.ID, Participant: d.actor.Participant, Count: q.Votes - 1})
	return nil
}

func decideReport(d *decision) error {
	q, err := d.visibleQuestion(d.cmd.Question)
	if err != nil {
		return err
	}
	if q.Author == d.actor.Participant {
		return Errorf(ECONFLICT, "you cannot report your own question")
	}
	if q.Reporters[d.actor.Participant] {
		return Errorf(ECONFLICT, "you already reported this question")
	}
	n := len(q.Reporters) + 1
	d.emit(Event{Type: EvReported, QuestionID: q.ID, Participant: d.actor.Participant, Count: n})
	if n >= d.s.ReportLimit && !q.Hidden {
		d.emit(Event{Type: EvQuestionHidden, QuestionID: q.ID, Name: "reports"})
	}
	return nil
}

func decideHighlight(d *decision) error {
	if d.cmd.Question == "" {
		if d.s.Highlighted == "" {
			return Errorf(ECONFLICT, "no question is highlighted")
		}
		d.emit(Event{Type: EvHighlighted})
		return nil
	}
	q, err := d.question(d.cmd.Question)
	if err != nil {
		return err
	}
	if q.Hidden || q.Pending {
		return Errorf(ECONFLICT, "approve or restore the question before highlighting it")
	}
	d.emit(Event{Type: EvHighlighted, QuestionID: q.ID})
	return nil
}

func decideAnswer(d *decision) error {
	q, err := d.question(d.cmd.Question)
	if err != nil {
		return err
	}
	if q.Answered == d.cmd.On {
		return Errorf(ECONFLICT, "the question is already marked so")
	}
	d.emit(Event{Type: EvAnswered, QuestionID: q.ID, On: d.cmd.On})
	return nil
}

func decideHideQuestion(d *decision) error {
	q, err := d.question(d.cmd.Question)
	if err != nil {
		return err
	}
	if q.Hidden {
		return Errorf(ECONFLICT, "the question is already hidden")
	}
	d.emit(Event{Type: EvQuestionHidden, QuestionID: q.ID, Name: "facilitator"})
	return nil
}

func decideRestoreQuestion(d *decision) error {
	q, err := d.question(d.cmd.Question)
	if err != nil {
		return err
	}
	if !q.Hidden {
		return Errorf(ECONFLICT, "the question is not hidden")
	}
	restored := q.Clone()
	restored.Hidden, restored.HiddenBy, restored.Reporters = false, "", nil
	d.emit(Event{Type: EvQuestionRestored, QuestionID: q.ID, Question: restored})
	return nil
}

func decideApproveQuestion(d *decision) error {
	q, err := d.question(d.cmd.Question)
	if err != nil {
		return err
	}
	if !q.Pending {
		return Errorf(ECONFLICT, "the question does not wait for approval")
	}
	approved := q.Clone()
	approved.Pending = false
	d.emit(Event{Type: EvQuestionApproved, QuestionID: q.ID, Question: approved})
	return nil
}

func decideSetApproveFirst(d *decision) error {
	if d.s.ApproveFirst == d.cmd.On {
		return Errorf(ECONFLICT, "approve-first is already %s", onOff(d.cmd.On))
	}
	d.emit(Event{Type: EvApproveFirstSet, On: d.cmd.On})
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// --- notes and actions ---

func decideSetNote(d *decision) error {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	if err := checkText("text", d.cmd.Text, 0, MaxNoteLen); err != nil {
		return err
	}
	d.emit(Event{Type: EvNoteSet, Aspect: a.ID, Text: d.cmd.Text})
	return nil
}

func decideAddAction(d *decision) error {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return err
	}
	text := strings.TrimSpace(d.cmd.Text)
	if err := checkText("text", text, 1, MaxActionLen); err != nil {
		return err
	}
	acts := d.s.Actions[a.ID]
	if len(acts) >= MaxActionsPerAspect {
		return Errorf(ECONFLICT, "at most %d action items per aspect", MaxActionsPerAspect)
	}
	id := 1
	for _, x := range acts {
		id = max(id, x.ID+1)
	}
	d.emit(Event{Type: EvActionAdded, Aspect: a.ID, Action: &Action{ID: id, Text: text}})
	return nil
}

func (d *decision) action() (*Aspect, error) {
	a, err := d.aspectOrCurrent(d.cmd.Aspect)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(d.s.Actions[a.ID], func(x Action) bool { return x.ID == d.cmd.Action }) {
		return nil, Errorf(ENOTFOUND, "action %d not found in %s", d.cmd.Action, a.Name)
	}
	return a, nil
}

func decideSetActionDone(d *decision) error {
	a, err := d.action()
	if err != nil {
		return err
	}
	d.emit(Event{Type: EvActionDone, Aspect: a.ID, Action: &Action{ID: d.cmd.Action, Done: d.cmd.On}})
	return nil
}

func decideRemoveAction(d *decision) error {
	a, err := d.action()
	if err != nil {
		return err
	}
	d.emit(Event{Type: EvActionRemoved, Aspect: a.ID, Action: &Action{ID: d.cmd.Action}})
	return nil
}

// --- participants and keys ---

// maxParticipantLen bounds a participant id named in a command. The hub
// mints ids of 14 characters; anything this long is not one of them.
const maxParticipantLen = 64

// decideRemove removes an attendee the room knows: one it has a trace of
// (knownParticipant), or one the hub vouches is connected (cmd.Present),
// since the facilitator's console lists connected attendees from presence
// and an attendee who only listens leaves no trace in the state. Anyone
// else never existed here, or left without a trace: not_found, so a typo
// or a stale id is not answered as a removal that did something.
func decideRemove(d *decision) error {
	p := d.cmd.Participant
	if err := checkText("participant", p, 1, maxParticipantLen); err != nil {
		return err
	}
	if p == "facilitator" || p == "presenter" || strings.HasPrefix(p, teamParticipantPrefix) {
		return Errorf(EINVALID, "participant: remove attendees only; rotate keys to lock out a team lead or a presenter screen")
	}
	if d.s.Removed[p] {
		return Errorf(ECONFLICT, "participant %q is already removed", truncate(p, 40))
	}
	if !d.cmd.Present && !knownParticipant(d.s, p) {
		return Errorf(ENOTFOUND, "participant %q not found: not connected and never active in this room", truncate(p, 40))
	}
	if slices.ContainsFunc(d.s.Hands, func(h Hand) bool { return h.Participant == p }) {
		d.emit(Event{Type: EvHandLowered, Participant: p})
	}
	d.emit(Event{Type: EvParticipantRemoved, Participant: p})
	return nil
}

// knownParticipant reports whether the state holds a trace of participant
// p: a raised hand, the floor, a question, a vote, a report or an
// estimate.
func knownParticipant(s *State, p string) bool {
	if slices.ContainsFunc(s.Hands, func(h Hand) bool { return h.Participant == p }) ||
		s.Turn != nil && s.Turn.Participant == p || estimatedBy(s, p) {
		return true
	}
	return slices.ContainsFunc(s.Questions, func(q *Question) bool {
		return q.Author == p || q.Voters[p] || q.Reporters[p]
	})
}

func decideRotateKeys(d *decision) error {
	ns := d.cmd.NewSecrets
	if ns == nil || ns.FacilitatorKeyHash == "" || len(ns.TeamKeyHashes) != len(d.s.Teams) ||
		slices.ContainsFunc(d.s.Teams, func(t Team) bool { return ns.TeamKeyHashes[t.ID] == "" }) {
		return Errorf(EINTERNAL, "rotate_keys needs new key hashes from the server")
	}
	next := *ns
	next.Generation = d.s.Secrets.Generation + 1
	if next.ParticipantSecret == "" {
		next.ParticipantSecret = d.s.Secrets.ParticipantSecret
	}
	d.emit(Event{Type: EvKeysRotated, Count: next.Generation, Secrets: &next})
	return nil
}
