package room

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

// TeamActor is the actor for a team lead of the given team.
func TeamActor(t Team) Actor {
	return Actor{Role: RoleTeam, Team: t.ID, Participant: "team:" + t.ID, Name: t.Name}
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
)

// CommandTypes lists every command type, for documentation checks.
var CommandTypes = []string{
	CmdStart, CmdGotoAspect, CmdSetAgenda, CmdAddTeam, CmdSetQueue, CmdCallTurn,
	CmdExtendTurn, CmdEndTurn, CmdReveal, CmdHideReveal, CmdHighlight, CmdAnswer,
	CmdHideQuestion, CmdRestoreQuestion, CmdApproveQuestion, CmdSetApproveFirst,
	CmdSetNote, CmdAddAction, CmdSetActionDone, CmdRemoveAction, CmdWrapUp,
	CmdClose, CmdRemove, CmdRotateKeys, CmdSaveDraft, CmdSubmit, CmdAsk,
	CmdUpvote, CmdUnvote, CmdReport, CmdRaiseHand, CmdLowerHand,
}

// Command is a request to change a room. It is flat: each type uses the
// fields its comment above names and ignores the rest. The JSON form is what
// clients send (inside the hub's envelope).
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
}
