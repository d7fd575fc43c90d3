package room

import "slices"

// Role is what a connection may do, carried by the key or link it used.
type Role string

// The roles. A presenter screen is a read-only facilitator-opened view that
// sees what the public sees.
const (
	RoleFacilitator Role = "facilitator"
	RoleTeam        Role = "team"
	RoleAttendee    Role = "attendee"
	RolePresenter   Role = "presenter"
)

// Actor is who sends a command. Participant is a stable id across
// reconnects: "facilitator", "team:<team id>" for a team lead, or the
// attendee's minted id. Name is the display name.
type Actor struct {
	Role        Role   `json:"role"`
	Team        string `json:"team,omitempty"`
	Participant string `json:"participant"`
	Name        string `json:"name,omitempty"`
}

// FacilitatorActor is the actor for the facilitator's connections.
func FacilitatorActor() Actor {
	return Actor{Role: RoleFacilitator, Participant: "facilitator", Name: "Facilitator"}
}

// PresenterActor is the actor for presenter screens: read-only, the public
// view.
func PresenterActor() Actor {
	return Actor{Role: RolePresenter, Participant: "presenter", Name: "Presenter"}
}

// TeamActor is the actor for a team lead of the given team.
func TeamActor(t Team) Actor {
	return Actor{Role: RoleTeam, Team: t.ID, Participant: teamParticipant(t.ID), Name: t.Name}
}

// teamParticipantPrefix starts the participant id every lead of a team acts
// as (teamParticipant): all leads of one team are one participant.
const teamParticipantPrefix = "team:"

// teamParticipant is the participant id every lead of team id acts as.
func teamParticipant(id string) string { return teamParticipantPrefix + id }

// CarriesResult reports whether Result can answer anything for a command
// of type cmdType, so that a retried command of another type needs no look
// at its events.
func CarriesResult(cmdType string) bool {
	switch cmdType {
	case CmdAsk, CmdAddTeam, CmdUpvote, CmdUnvote, CmdEstimate:
		return true
	}
	return false
}

// Result is what the acknowledgement of a command carries that the domain
// knows, taken from the events the command produced (the last is enough):
// the id of the question an ask posted, the id of the team add_team added,
// the count a vote left and whether the voter now votes for the question
// (attendees get others' votes as tallies, a tick later: the voter's page
// shows its own at once), and an estimate's team, aspect, level and the
// count of estimates it left.
// It is the same whether the command was decided just now or long ago on
// another instance, so a retried command is answered alike. Other commands
// carry none (nil). The hub adds what only it knows: fresh keys.
func Result(cmdType string, events []Event) map[string]any {
	if len(events) == 0 || !CarriesResult(cmdType) {
		return nil
	}
	last := events[len(events)-1]
	switch {
	case cmdType == CmdAsk && last.Type == EvQuestionPosted:
		return map[string]any{"question": last.QuestionID}
	case cmdType == CmdAddTeam && last.Type == EvTeamAdded:
		return map[string]any{"team": last.Team}
	case (cmdType == CmdUpvote || cmdType == CmdUnvote) && (last.Type == EvUpvoted || last.Type == EvUnvoted):
		return map[string]any{"question": last.QuestionID, "votes": last.Count, "voted": last.Type == EvUpvoted}
	case cmdType == CmdEstimate && last.Type == EvEstimated:
		return map[string]any{"aspect": last.Aspect, "team": last.Team, "level": last.Level, "count": last.Count}
	}
	return nil
}

// Command types. The comment says who may send each.
const (
	CmdStart           = "start"              // facilitator: lobby -> running
	CmdGotoAspect      = "goto_aspect"        // facilitator: aspect
	CmdSetAgenda       = "set_agenda"         // facilitator: order (aspect ids)
	CmdAddTeam         = "add_team"           // facilitator: name
	CmdSetQueue        = "set_queue"          // facilitator: aspect, order (team ids)
	CmdCallTurn        = "call_turn"          // facilitator: team, participant (a raised hand) or neither for the next team; seconds
	CmdExtendTurn      = "extend_turn"        // facilitator: seconds
	CmdEndTurn         = "end_turn"           // facilitator
	CmdReveal          = "reveal"             // facilitator: aspect, team ("" reveals every team)
	CmdHideReveal      = "hide_reveal"        // facilitator: aspect, team ("" hides every team)
	CmdHighlight       = "highlight"          // facilitator: question ("" clears)
	CmdAnswer          = "answer"             // facilitator: question, on
	CmdHideQuestion    = "hide_question"      // facilitator: question
	CmdRestoreQuestion = "restore_question"   // facilitator: question
	CmdApproveQuestion = "approve_question"   // facilitator: question
	CmdSetApproveFirst = "set_approve_first"  // facilitator: on
	CmdSetNote         = "set_note"           // facilitator: aspect, text
	CmdAddAction       = "add_action"         // facilitator: aspect, text
	CmdSetActionDone   = "set_action_done"    // facilitator: aspect, action, on
	CmdRemoveAction    = "remove_action"      // facilitator: aspect, action
	CmdWrapUp          = "wrap_up"            // facilitator: running -> wrapup
	CmdClose           = "close"              // facilitator: -> closed
	CmdRemove          = "remove_participant" // facilitator: participant
	CmdRotateKeys      = "rotate_keys"        // facilitator; the hub supplies the new hashes
	CmdSaveDraft       = "save_draft"         // team lead: aspect, level (0 = none yet), rationale
	CmdSubmit          = "submit"             // team lead: aspect, level, rationale
	CmdAsk             = "ask"                // anyone but a presenter: text, anonymous
	CmdUpvote          = "upvote"             // anyone but a presenter: question
	CmdUnvote          = "unvote"             // anyone but a presenter: question
	CmdReport          = "report"             // attendee or team lead: question
	CmdRaiseHand       = "raise_hand"         // attendee or team lead
	CmdLowerHand       = "lower_hand"         // own hand; the facilitator: participant

	CmdOpenEstimates       = "open_estimates"         // facilitator: aspect (the current one), team ("" every team not revealed)
	CmdCloseEstimates      = "close_estimates"        // facilitator: aspect, team ("" every open one)
	CmdEstimate            = "estimate"               // attendee or another team's lead: aspect, team, level
	CmdSetEstimateEachTurn = "set_estimate_each_turn" // facilitator: on
)

// CommandTypes lists every command type, for documentation checks.
var CommandTypes = []string{
	CmdStart, CmdGotoAspect, CmdSetAgenda, CmdAddTeam, CmdSetQueue, CmdCallTurn,
	CmdExtendTurn, CmdEndTurn, CmdReveal, CmdHideReveal, CmdHighlight, CmdAnswer,
	CmdHideQuestion, CmdRestoreQuestion, CmdApproveQuestion, CmdSetApproveFirst,
	CmdSetNote, CmdAddAction, CmdSetActionDone, CmdRemoveAction, CmdWrapUp,
	CmdClose, CmdRemove, CmdRotateKeys, CmdSaveDraft, CmdSubmit, CmdAsk,
	CmdUpvote, CmdUnvote, CmdReport, CmdRaiseHand, CmdLowerHand,
	CmdOpenEstimates, CmdCloseEstimates, CmdEstimate, CmdSetEstimateEachTurn,
}

// commandFields lists, per command type, the client fields (by their JSON
// names) the command takes. Any other field a client sets is refused with
// invalid naming it (Decide): a field silently ignored is a client that
// believes it did something it did not, such as a team lead naming another
// team in submit.
var commandFields = map[string][]string{
	CmdStart:           nil,
	CmdGotoAspect:      {"aspect"},
	CmdSetAgenda:       {"order"},
	CmdAddTeam:         {"name"},
	CmdSetQueue:        {"aspect", "order"},
	CmdCallTurn:        {"team", "participant", "seconds"},
	CmdExtendTurn:      {"seconds"},
	CmdEndTurn:         nil,
	CmdReveal:          {"aspect", "team"},
	CmdHideReveal:      {"aspect", "team"},
	CmdHighlight:       {"question"},
	CmdAnswer:          {"question", "on"},
	CmdHideQuestion:    {"question"},
	CmdRestoreQuestion: {"question"},
	CmdApproveQuestion: {"question"},
	CmdSetApproveFirst: {"on"},
	CmdSetNote:         {"aspect", "text"},
	CmdAddAction:       {"aspect", "text"},
	CmdSetActionDone:   {"aspect", "action", "on"},
	CmdRemoveAction:    {"aspect", "action"},
	CmdWrapUp:          nil,
	CmdClose:           nil,
	CmdRemove:          {"participant"},
	CmdRotateKeys:      nil,
	CmdSaveDraft:       {"aspect", "level", "rationale"},
	CmdSubmit:          {"aspect", "level", "rationale"},
	CmdAsk:             {"text", "anonymous"},
	CmdUpvote:          {"question"},
	CmdUnvote:          {"question"},
	CmdReport:          {"question"},
	CmdRaiseHand:       nil,
	CmdLowerHand:       {"participant"}, // another's: the facilitator only (decideLowerHand)

	CmdOpenEstimates:       {"aspect", "team"},
	CmdCloseEstimates:      {"aspect", "team"},
	CmdEstimate:            {"aspect", "team", "level"},
	CmdSetEstimateEachTurn: {"on"},
}

// fieldReasons say, for a field a command does not take, why, where a
// plain "not a field of" would leave a person guessing.
var fieldReasons = map[string]map[string]string{
	CmdSaveDraft: {"team": "a team lead acts for its own team only"},
	CmdSubmit:    {"team": "a team lead acts for its own team only"},
	CmdRaiseHand: {"participant": "a participant raises its own hand only"},
	CmdAsk:       {"name": "a question carries its author's display name"},
}

// Command is a request to change a room. It is flat: each type takes the
// fields commandFields names, and Decide refuses any other that is set. A
// field at its zero value ("", 0, false, an empty list) counts as absent.
// The JSON form is what clients send (inside the hub's envelope).
type Command struct {
	Type        string   `json:"type"`
	Aspect      string   `json:"aspect,omitempty"`
	Team        string   `json:"team,omitempty"`
	Participant string   `json:"participant,omitempty"`
	Question    string   `json:"question,omitempty"`
	Level       int      `json:"level,omitempty"`
	Rationale   string   `json:"rationale,omitempty"`
	Text        string   `json:"text,omitempty"`
	Name        string   `json:"name,omitempty"`
	Anonymous   bool     `json:"anonymous,omitempty"`
	On          bool     `json:"on,omitempty"`
	Seconds     int      `json:"seconds,omitempty"`
	Action      int      `json:"action,omitempty"`
	Order       []string `json:"order,omitempty"`

	// Key identifies the command for idempotency: the hub sets it from the
	// participant and the client's command id. Clients cannot set it.
	Key string `json:"-"`
	// NewSecrets carries fresh key hashes for rotate_keys and add_team; the
	// hub generates them. Clients cannot set it.
	NewSecrets *Secrets `json:"-"`
	// Present is set by the hub for remove_participant when the participant
	// named is connected to the room (on this instance, or in another
	// instance's presence): the domain keeps no record of an attendee who
	// never acted, and the facilitator removes attendees it sees in
	// presence. Clients cannot set it.
	Present bool `json:"-"`
}

// clientFields names Command's client fields in their order; setFields
// says which of them a command sets.
var clientFields = [...]string{"aspect", "team", "participant", "question", "level", "rationale",
	"text", "name", "anonymous", "on", "seconds", "action", "order"}

// setFields reports, for each of clientFields, whether c sets it (at a
// non-zero value). An array, not a slice: checking a command's fields
// allocates nothing.
func (c Command) setFields() [len(clientFields)]bool {
	return [...]bool{c.Aspect != "", c.Team != "", c.Participant != "", c.Question != "", c.Level != 0,
		c.Rationale != "", c.Text != "", c.Name != "", c.Anonymous, c.On, c.Seconds != 0, c.Action != 0, len(c.Order) > 0}
}

// Fields answers the JSON names of the client fields c sets (at a
// non-zero value), in the order of Command.
func (c Command) Fields() []string {
	var out []string
	for i, set := range c.setFields() {
		if set {
			out = append(out, clientFields[i])
		}
	}
	return out
}

// checkFields refuses a field c sets that its type does not take.
func checkFields(c Command) error {
	for i, set := range c.setFields() {
		if !set {
			continue
		}
		f := clientFields[i]
		if slices.Contains(commandFields[c.Type], f) {
			continue
		}
		if why := fieldReasons[c.Type][f]; why != "" {
			return Errorf(EINVALID, "%s: %s", f, why)
		}
		return Errorf(EINVALID, "%s: not a field of %s", f, c.Type)
	}
	return nil
}
