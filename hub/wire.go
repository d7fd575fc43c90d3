package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
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
	msgTally    = "tally"
)

// ClientMessageTypes and ServerMessageTypes list the envelope types for the
// documentation check; commands are room.CommandTypes.
var (
	ClientMessageTypes = []string{msgHello, msgResume, msgPing}
	ServerMessageTypes = []string{msgWelcome, msgSnapshot, msgEvents, msgPresence, msgAck, msgError, msgPong, msgTally}
)

// Limits of client messages.
const (
	defaultClientMessageBytes = 64 << 10 // bytes: the default of Limits.MaxClientMessageBytes
	maxCommandIDLen           = 64
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

// envelopeFields are the fields each message other than a command takes,
// besides type and id. A command takes none of them: its own fields are
// room.Command's, which the room checks (room.Decide). A field a message
// does not take is refused, never silently ignored.
var envelopeFields = map[string][]string{
	msgHello:  {"key", "name", "participant", "token", "epoch", "seq"},
	msgResume: {"epoch", "seq"},
	msgPing:   {"t"},
}

// fields answers the JSON names of the fields m sets (at a non-zero
// value), other than type and id.
func (m clientMessage) fields() []string {
	out := m.Command.Fields()
	for _, f := range []struct {
		set  bool
		name string
	}{{m.Key != "", "key"}, {m.Token != "", "token"}, {m.Epoch != "", "epoch"}, {m.Seq != 0, "seq"}, {m.T != 0, "t"}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// decodeClientMessage parses one client frame of at most limit bytes
// (Limits.MaxClientMessageBytes; the connection's read limit refuses a
// larger one first). Errors are *room.Error with code invalid and a
// message fit for the client: it names the field in the protocol's words
// and says what was wanted.
func decodeClientMessage(data []byte, limit int) (clientMessage, error) {
	var m clientMessage
	if len(data) > limit {
		return m, room.Errorf(room.EINVALID, "message over %d bytes", limit)
	}
	if !utf8.Valid(data) {
		return m, room.Errorf(room.EINVALID, "message is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return clientMessage{ID: m.ID}, room.Errorf(room.EINVALID, "%s", jsonProblem(err, data))
	}
	if dec.More() {
		return clientMessage{ID: m.ID}, room.Errorf(room.EINVALID, "malformed message: one JSON object per frame")
	}
	if m.Type == "" {
		return m, room.Errorf(room.EINVALID, "type: required")
	}
	// An empty order says what a missing one does; one form keeps a
	// command the same however a client spells it.
	if len(m.Order) == 0 {
		m.Order = nil
	}
	if takes, ok := envelopeFields[m.Type]; ok {
		if len(m.ID) > maxCommandIDLen {
			return m, room.Errorf(room.EINVALID, "id: at most %d characters", maxCommandIDLen)
		}
		for _, f := range m.fields() {
			if !slices.Contains(takes, f) {
				return m, room.Errorf(room.EINVALID, "%s: not a field of %s", f, m.Type)
			}
		}
		return m, nil
	}
	if m.ID == "" || len(m.ID) > maxCommandIDLen {
		return clientMessage{Command: room.Command{Type: m.Type}}, room.Errorf(room.EINVALID, "id: a command needs an id of 1 to %d characters", maxCommandIDLen)
	}
	if !isCommandType(m.Type) {
		return m, room.Errorf(room.EINVALID, "unknown message type %q", truncate(m.Type, 40))
	}
	// The command's own fields are the room's to check (room.Decide);
	// none of the envelope's belongs to a command.
	if f := m.fields()[len(m.Command.Fields()):]; len(f) > 0 {
		return m, room.Errorf(room.EINVALID, "%s: not a field of %s", f[0], m.Type)
	}
	return m, nil
}

// fieldWants says what a field of a client message holds where its Go
// type alone does not say it in the protocol's words (kindWant).
var fieldWants = map[string]string{
	"seq":   "a whole number of 0 or more",
	"t":     "a whole number (Unix ms)",
	"order": "a list of ids (strings)",
}

// jsonProblem says what is wrong with a client frame that does not
// decode: a field's problem starts with the field ("level: want a whole
// number, got a string"), anything else with "malformed message".
func jsonProblem(err error, data []byte) string {
	if errors.Is(err, io.EOF) {
		return "malformed message: empty"
	}
	if name, ok := unknownField(err); ok {
		var typ struct{ Type string }
		if json.Unmarshal(data, &typ) == nil && (isCommandType(typ.Type) || envelopeFields[typ.Type] != nil) {
			return name + ": not a field of " + typ.Type
		}
	}
	msg := shortJSONError(err)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		if field := jsonPath(te.Field); field == "order" && te.Type.Kind() == reflect.String {
			msg += " in the list"
		}
		return msg
	}
	if _, ok := unknownField(err); ok {
		return msg
	}
	return "malformed message: " + msg
}

// shortJSONError says what is wrong with JSON that does not decode (a
// client frame or a request body), in a person's words and the JSON's
// field names, never Go's field paths or type names: "not valid JSON at
// byte 12", "teams: want a list, got a string", "admin: unknown field".
func shortJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends too soon"
	case errors.As(err, &se):
		return "not valid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		field := jsonPath(te.Field)
		if field == "" {
			return "want a JSON object, got " + jsonKind(te.Value)
		}
		want, ok := fieldWants[field]
		if !ok {
			want = kindWant(te.Type)
		}
		return field + ": want " + want + ", got " + jsonKind(te.Value)
	}
	if name, ok := unknownField(err); ok {
		return name + ": unknown field"
	}
	return "not valid JSON"
}

// unknownField is the field name of encoding/json's unknown-field error.
func unknownField(err error) (string, bool) {
	name, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	if n, err := strconv.Unquote(name); err == nil {
		name = n
	}
	return truncate(name, 40), true
}

// jsonPath is encoding/json's path to a field without the Go names of
// embedded structs (clientMessage embeds room.Command): JSON names here
// start with a lower-case letter, Go's exported names with a capital.
func jsonPath(p string) string {
	parts := strings.Split(p, ".")
	for len(parts) > 1 && parts[0] != "" && unicode.IsUpper(rune(parts[0][0])) {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// kindWant says what a Go type takes, in JSON's words.
func kindWant(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number of 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// jsonKind names a JSON value as encoding/json's UnmarshalTypeError.Value
// gives it ("string", "number", "number -1", "bool", "array", "object").
func jsonKind(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return truncate(n, 40)
	}
	switch v {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "a boolean"
	case "array":
		return "a list"
	case "object":
		return "an object"
	}
	return v
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

// eventsFrame encodes an events message from already encoded events. It
// names no epoch: every frame on a connection belongs to the epoch of the
// last snapshot or welcome it carried, because a new epoch always reaches
// a client as a snapshot first (resnapshotAll, sendCatchUp).
func eventsFrame(events [][]byte) []byte {
	n := len(`{"type":"events","events":[]}`)
	for _, e := range events {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"events","events":[`...)
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

// maxCloseReason is the longest close reason a close frame carries
// (RFC 6455: 123 bytes of the 125 of a control frame's payload).
const maxCloseReason = 123

// closeReason cuts a close reason to what a close frame carries.
func closeReason(s string) string { return truncate(s, maxCloseReason-len("…")) }
