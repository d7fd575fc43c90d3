package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/leveling/workshop/room"
)

// Client message types other than commands (PROTOCOL.md).
const (
	msgHello  = "hello"
	msgResume = "resume"
	msgPing   = "ping"
)

// Server message types (PROTOCOL.md).
const (
	msgWelcome  = "welcome"
	msgSnapshot = "snapshot"
	msgEvents   = "events"
	msgPresence = "presence"
	msgAck      = "ack"
	msgError    = "error"
	msgPong     = "pong"
)

// ClientMessageTypes and ServerMessageTypes list the envelope types for the
// documentation check; commands are room.CommandTypes.
var (
	ClientMessageTypes = []string{msgHello, msgResume, msgPing}
	ServerMessageTypes = []string{msgWelcome, msgSnapshot, msgEvents, msgPresence, msgAck, msgError, msgPong}
)

// Limits of client messages.
const (
	maxMessageBytes = 64 << 10 // one client frame; larger closes with 1009
	maxCommandIDLen = 64
)

// clientMessage is any message a client sends: hello, resume, ping or a
// command. The command's fields are inline, as PROTOCOL.md shows them.
type clientMessage struct {
	ID string `json:"id"`
	room.Command
	// hello
	Key   string `json:"key"`
	Token string `json:"token"`
	// hello, resume
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// ping: the client's clock, Unix ms
	T int64 `json:"t"`
}

// decodeClientMessage parses one client frame. Errors are *room.Error with
// code invalid and a message fit for the client.
func decodeClientMessage(data []byte) (clientMessage, error) {
	var m clientMessage
	if len(data) > maxMessageBytes {
		return m, room.Errorf(room.EINVALID, "message over %d bytes", maxMessageBytes)
	}
	if !utf8.Valid(data) {
		return m, room.Errorf(room.EINVALID, "message is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return clientMessage{ID: m.ID}, room.Errorf(room.EINVALID, "malformed message: %s", shortJSONError(err))
	}
	if dec.More() {
		return clientMessage{ID: m.ID}, room.Errorf(room.EINVALID, "malformed message: one JSON object per frame")
	}
	if m.Type == "" {
		return m, room.Errorf(room.EINVALID, "type: required")
	}
	switch m.Type {
	case msgHello, msgResume, msgPing:
		if len(m.ID) > maxCommandIDLen {
			return m, room.Errorf(room.EINVALID, "id: at most %d characters", maxCommandIDLen)
		}
		return m, nil
	}
	if m.ID == "" || len(m.ID) > maxCommandIDLen {
		return clientMessage{Command: room.Command{Type: m.Type}}, room.Errorf(room.EINVALID, "id: a command needs an id of 1 to %d characters", maxCommandIDLen)
	}
	if !isCommandType(m.Type) {
		return m, room.Errorf(room.EINVALID, "unknown message type %q", truncate(m.Type, 40))
	}
	return m, nil
}

func shortJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return te.Field + ": wrong type " + te.Value
	}
	return truncate(err.Error(), 120)
}

var commandTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range room.CommandTypes {
		m[t] = true
	}
	return m
}()

func isCommandType(t string) bool { return commandTypes[t] }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server messages. Each is encoded once and the bytes are shared.

type welcomeMsg struct {
	Type        string    `json:"type"`
	Role        room.Role `json:"role"`
	Participant string    `json:"participant"`
	Token       string    `json:"token,omitempty"`
	Name        string    `json:"name,omitempty"`
	Team        string    `json:"team,omitempty"`
	Epoch       string    `json:"epoch"`
	Now         int64     `json:"now"`
	// Keys are the presenter and team keys, for a facilitator only.
	Keys *roomKeys `json:"keys,omitempty"`
}

// roomKeys are the keys derived from the facilitator key.
type roomKeys struct {
	Presenter string            `json:"presenter,omitempty"`
	Teams     map[string]string `json:"teams"`
}

type ackMsg struct {
	Type   string         `json:"type"`
	ID     string         `json:"id"`
	Seq    uint64         `json:"seq"`
	Result map[string]any `json:"result,omitempty"`
}

type errorMsg struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int64  `json:"retryAfter,omitempty"`
}

type pongMsg struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	T    int64  `json:"t"`
	Now  int64  `json:"now"`
	Seq  uint64 `json:"seq"`
}

type presenceMsg struct {
	Type     string        `json:"type"`
	Presence room.Presence `json:"presence"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encode: " + err.Error()) // only our own plain types are encoded
	}
	return b
}

// snapshotFrame encodes a snapshot around an already encoded room view.
func snapshotFrame(epoch string, seq uint64, now int64, view, presence []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(view) + len(presence) + 128)
	b.WriteString(`{"type":"snapshot","epoch":`)
	b.Write(mustJSON(epoch))
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatUint(seq, 10))
	b.WriteString(`,"now":`)
	b.WriteString(strconv.FormatInt(now, 10))
	b.WriteString(`,"room":`)
	b.Write(view)
	if presence != nil {
		b.WriteString(`,"presence":`)
		b.Write(presence)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

// eventsFrame encodes an events message from already encoded events.
func eventsFrame(epoch string, events [][]byte) []byte {
	n := 64
	for _, e := range events {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"events","epoch":`...)
	b = append(b, mustJSON(epoch)...)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}

// jsonDecoder is a strict decoder for request bodies: unknown fields are
// errors, so a typo in a field name is not silently ignored.
func jsonDecoder(r io.Reader) *json.Decoder {
	d := json.NewDecoder(r)
	d.DisallowUnknownFields()
	return d
}
