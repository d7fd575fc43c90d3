package room

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Limits of a maturity model. A custom model outside them is refused.
const (
	MinAspects        = 1
	MaxAspects        = 12
	MinLevels         = 2
	MaxLevels         = 10
	MaxModelNameLen   = 80  // characters
	MaxLabelLen       = 60  // characters, aspect and level labels
	MaxDescriptionLen = 300 // characters, every description and question
	MaxModelJSONBytes = 64 << 10
)

// Model is a maturity model: aspects, each rated on the same ordered list of
// levels. Cells holds, per aspect, one short description per level.
type Model struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Levels  []Level  `json:"levels"`
	Aspects []Aspect `json:"aspects"`
}

// Level is one rung of the model's scale; levels are numbered from 1 in the
// order given.
type Level struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Aspect is one dimension that every team rates itself on.
type Aspect struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Question string `json:"question,omitempty"`
	Cells    []Cell `json:"cells"`
}

// Cell is the label and description of one level of one aspect.
type Cell struct {
	Label       string `json:"label"`
	Description string `json:"description,omitempty"`
}

// NumLevels is the number of levels of the model's scale.
func (m *Model) NumLevels() int { return len(m.Levels) }

// Aspect returns the aspect with the given id.
func (m *Model) Aspect(id string) (*Aspect, bool) {
	for i := range m.Aspects {
		if m.Aspects[i].ID == id {
			return &m.Aspects[i], true
		}
	}
	return nil, false
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks the model against the limits above; the error names the
// offending field, for example "aspects[2].cells[1].label".
func (m *Model) Validate() error {
	if err := checkText("name", m.Name, 1, MaxModelNameLen); err != nil {
		return err
	}
	if n := len(m.Levels); n < MinLevels || n > MaxLevels {
		return Errorf(EINVALID, "levels: a model has %d to %d levels, got %d", MinLevels, MaxLevels, n)
	}
	for i, l := range m.Levels {
		if err := checkText(fmt.Sprintf("levels[%d].name", i), l.Name, 1, MaxLabelLen); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("levels[%d].description", i), l.Description, 0, MaxDescriptionLen); err != nil {
			return err
		}
	}
	if n := len(m.Aspects); n < MinAspects || n > MaxAspects {
		return Errorf(EINVALID, "aspects: a model has %d to %d aspects, got %d", MinAspects, MaxAspects, n)
	}
	seen := map[string]bool{}
	for i, a := range m.Aspects {
		field := fmt.Sprintf("aspects[%d]", i)
		if !idPattern.MatchString(a.ID) {
			return Errorf(EINVALID, "%s.id: use 1 to 32 lowercase letters, digits, '-' or '_', got %q", field, a.ID)
		}
		if seen[a.ID] {
			return Errorf(EINVALID, "%s.id: %q is used twice", field, a.ID)
		}
		seen[a.ID] = true
		if err := checkText(field+".name", a.Name, 1, MaxLabelLen); err != nil {
			return err
		}
		if err := checkText(field+".question", a.Question, 0, MaxDescriptionLen); err != nil {
			return err
		}
		if len(a.Cells) != len(m.Levels) {
			return Errorf(EINVALID, "%s.cells: want one cell per level (%d), got %d", field, len(m.Levels), len(a.Cells))
		}
		for j, c := range a.Cells {
			if err := checkText(fmt.Sprintf("%s.cells[%d].label", field, j), c.Label, 1, MaxLabelLen); err != nil {
				return err
			}
			if err := checkText(fmt.Sprintf("%s.cells[%d].description", field, j), c.Description, 0, MaxDescriptionLen); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkText checks that s is valid UTF-8 without control characters other
// than newlines and tabs, and that its trimmed length in characters lies in
// [minLen, maxLen].
func checkText(field, s string, minLen, maxLen int) error {
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s: not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f {
			return Errorf(EINVALID, "%s: control characters are not allowed", field)
		}
	}
	n := utf8.RuneCountInString(strings.TrimSpace(s))
	if n < minLen {
		if minLen == 1 {
			return Errorf(EINVALID, "%s: required", field)
		}
		return Errorf(EINVALID, "%s: at least %d characters", field, minLen)
	}
	if utf8.RuneCountInString(s) > maxLen {
		return Errorf(EINVALID, "%s: at most %d characters, got %d", field, maxLen, utf8.RuneCountInString(s))
	}
	return nil
}

// ParseModel decodes a custom model from JSON, refusing unknown fields and
// anything outside the limits. Aspect ids may be left out: they are derived
// from the names.
func ParseModel(data []byte) (Model, error) {
	var m Model
	if len(data) > MaxModelJSONBytes {
		return m, Errorf(EINVALID, "model: at most %d bytes of JSON", MaxModelJSONBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, Errorf(EINVALID, "model: %s", jsonProblem(err))
	}
	// More would miss a stray ']' or '}' after the object: only the end of
	// the input may follow it.
	if _, err := dec.Token(); err != io.EOF {
		return m, Errorf(EINVALID, "model: trailing data after the JSON object")
	}
	if m.ID == "" {
		m.ID = "custom"
	}
	// Reserve the given ids first, so a derived id never takes one that a
	// later aspect names explicitly.
	used := map[string]bool{}
	for _, a := range m.Aspects {
		used[a.ID] = a.ID != ""
	}
	for i := range m.Aspects {
		if m.Aspects[i].ID == "" {
			m.Aspects[i].ID = uniqueSlug(m.Aspects[i].Name, i, used)
		}
		used[m.Aspects[i].ID] = true
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	return m, nil
}

// jsonProblem turns a decoding error into a short client-facing text.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%s: want a %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Sprintf("want a %s, got %s", te.Type, te.Value)
	default:
		return strings.TrimPrefix(err.Error(), "json: ")
	}
}

var slugStrip = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueSlug derives an aspect id from its name.
func uniqueSlug(name string, index int, used map[string]bool) string {
	s := strings.Trim(slugStrip.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 24 {
		s = strings.Trim(s[:24], "-")
	}
	if s == "" {
		s = "aspect"
	}
	base := s
	for n := 2; used[s]; n++ {
		s = fmt.Sprintf("%s-%d", base, n)
	}
	_ = index
	return s
}
