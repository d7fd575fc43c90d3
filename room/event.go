package room

import "time"

// Event types. Each is produced by Decide and applied by Evolve.
const (
	EvRoomCreated        = "room_created"
	EvStarted            = "started"
	EvAspectChanged      = "aspect_changed"
	EvAgendaSet          = "agenda_set"
	EvTeamAdded          = "team_added"
	EvQueueSet           = "queue_set"
	EvTurnStarted        = "turn_started"
	EvTurnChanged        = "turn_changed" // extended: a new end time
	EvTurnEnded          = "turn_ended"
	EvDraftSaved         = "draft_saved"
	EvSubmitted          = "submitted"
	EvRevealed           = "revealed"
	EvRevealHidden       = "reveal_hidden"
	EvQuestionPosted     = "question_posted"
	EvQuestionApproved   = "question_approved"
	EvUpvoted            = "upvoted"
	EvUnvoted            = "unvoted"
	EvReported           = "reported"
	EvHighlighted        = "highlighted"
	EvAnswered           = "answered"
	EvQuestionHidden     = "question_hidden"
	EvQuestionRestored   = "question_restored"
	EvApproveFirstSet    = "approve_first_set"
	EvHandRaised         = "hand_raised"
	EvHandLowered        = "hand_lowered"
	EvNoteSet            = "note_set"
	EvActionAdded        = "action_added"
	EvActionDone         = "action_done"
	EvActionRemoved      = "action_removed"
	EvWrappedUp          = "wrapped_up"
	EvClosed             = "closed"
	EvParticipantRemoved = "participant_removed"
	EvKeysRotated        = "keys_rotated"

	EvEstimatesOpened     = "estimates_opened"
	EvEstimatesClosed     = "estimates_closed"
	EvEstimated           = "estimated"
	EvEstimateEachTurnSet = "estimate_each_turn_set"

	// EvPrivate is the twin of an event an audience may not see: it keeps
	// the sequence contiguous for that audience and says nothing else.
	EvPrivate = "private"
)

// EventTypes lists every event type a client can receive, for
// documentation checks.
var EventTypes = []string{
	EvRoomCreated, EvStarted, EvAspectChanged, EvAgendaSet, EvTeamAdded,
	EvQueueSet, EvTurnStarted, EvTurnChanged, EvTurnEnded, EvDraftSaved,
	EvSubmitted, EvRevealed, EvRevealHidden, EvQuestionPosted,
	EvQuestionApproved, EvUpvoted, EvUnvoted, EvReported, EvHighlighted,
	EvAnswered, EvQuestionHidden, EvQuestionRestored, EvApproveFirstSet,
	EvHandRaised, EvHandLowered, EvNoteSet, EvActionAdded, EvActionDone,
	EvActionRemoved, EvWrappedUp, EvClosed, EvParticipantRemoved,
	EvKeysRotated, EvEstimatesOpened, EvEstimatesClosed, EvEstimated,
	EvEstimateEachTurnSet, EvPrivate,
}

// Event is one change to a room, numbered by Seq (contiguous from 1 in each
// room). Like Command it is flat; each type fills the fields it needs with
// concrete values resolved by Decide (the called team, the turn's end time),
// so Evolve needs no judgement.
type Event struct {
	Seq  uint64    `json:"seq"`
	Type string    `json:"type"`
	At   time.Time `json:"at"`

	Aspect      string   `json:"aspect,omitempty"`
	Team        string   `json:"team,omitempty"`
	Participant string   `json:"participant,omitempty"`
	Name        string   `json:"name,omitempty"`
	QuestionID  string   `json:"question,omitempty"`
	Level       int      `json:"level,omitempty"`
	Rationale   string   `json:"rationale,omitempty"`
	Text        string   `json:"text,omitempty"`
	On          bool     `json:"on,omitempty"`
	Count       int      `json:"count,omitempty"`
	Order       []string `json:"order,omitempty"`
	Action      *Action  `json:"action,omitempty"`
	Turn        *Turn    `json:"turn,omitempty"`
	// Scores are the revealed scores of a revealed event.
	Scores []RevealedScore `json:"scores,omitempty"`
	// Question is the full question of question_posted, question_approved
	// and question_restored.
	Question *Question `json:"q,omitempty"`
	// Room is the initial state of room_created.
	Room *State `json:"room,omitempty"`
	// Secrets are the new key hashes of keys_rotated and team_added; Redact
	// always strips them.
	Secrets *Secrets `json:"secrets,omitempty"`
	// Cmd is the idempotency key of the command that caused the event;
	// Redact always strips it.
	Cmd string `json:"cmd,omitempty"`
}

// RevealedScore is one team's score as it is revealed. Level 0 with
// Submitted false means the team did not submit.
type RevealedScore struct {
	Team      string `json:"team"`
	Level     int    `json:"level,omitempty"`
	Rationale string `json:"rationale,omitempty"`
	Submitted bool   `json:"submitted"`
	// Estimate is the room's estimate of the team, when it was estimated.
	Estimate *EstimateResult `json:"estimate,omitempty"`
}
