package room

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPEMMIsValid(t *testing.T) {
	m := PEMM()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got, want := len(m.Aspects), 5; got != want {
		t.Errorf("aspects: got %v, want %v", got, want)
	}
	if got, want := m.NumLevels(), 4; got != want {
		t.Errorf("levels: got %v, want %v", got, want)
	}
	// Each call is a fresh copy: changing one does not change the next.
	m.Aspects[0].Cells[0].Label = "changed"
	if PEMM().Aspects[0].Cells[0].Label == "changed" {
		t.Errorf("PEMM shares its slices between calls")
	}
}

func TestCreate(t *testing.T) {
	valid := func() CreateParams {
		return CreateParams{ID: "r1", Code: "ABCDEFGH", Title: "Q3", Model: PEMM(),
			TeamNames: []string{"Payments", "Search"}, Secrets: testSecrets(2), Now: t0}
	}
	teams := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("Team %d", i+1)
		}
		return out
	}
	badModel := PEMM()
	badModel.Levels = badModel.Levels[:1]
	tests := []struct {
		name   string
		change func(p *CreateParams)
		want   string // error code
		msg    string // a substring of the error message
	}{
		{name: "valid", change: func(p *CreateParams) {}},
		{name: "one team", change: func(p *CreateParams) { p.TeamNames = teams(1) }},
		{name: "thirty teams", change: func(p *CreateParams) { p.TeamNames = teams(MaxTeams) }},
		{name: "title at the limit", change: func(p *CreateParams) { p.Title = strings.Repeat("à", MaxTitleLen) }},
		{name: "no id", change: func(p *CreateParams) { p.ID = "" }, want: EINVALID},
		{name: "no code", change: func(p *CreateParams) { p.Code = "" }, want: EINVALID},
		{name: "no title", change: func(p *CreateParams) { p.Title = "" }, want: EINVALID, msg: "title"},
		{name: "blank title", change: func(p *CreateParams) { p.Title = "  \t " }, want: EINVALID, msg: "title"},
		{name: "title too long", change: func(p *CreateParams) { p.Title = strings.Repeat("à", MaxTitleLen+1) }, want: EINVALID, msg: "title"},
		{name: "title with a control character", change: func(p *CreateParams) { p.Title = "Q\x003" }, want: EINVALID, msg: "title"},
		{name: "no teams", change: func(p *CreateParams) { p.TeamNames = nil }, want: EINVALID, msg: "teams"},
		{name: "thirty-one teams", change: func(p *CreateParams) { p.TeamNames = teams(MaxTeams + 1) }, want: EINVALID, msg: "teams"},
		{name: "duplicate team", change: func(p *CreateParams) { p.TeamNames = []string{"Payments", "Search", " payments "} }, want: EINVALID, msg: "teams[2]"},
		{name: "blank team", change: func(p *CreateParams) { p.TeamNames = []string{"Payments", " "} }, want: EINVALID, msg: "teams[1]"},
		{name: "team name too long", change: func(p *CreateParams) { p.TeamNames = []string{strings.Repeat("x", MaxTeamNameLen+1)} }, want: EINVALID, msg: "teams[0]"},
		{name: "bad model", change: func(p *CreateParams) { p.Model = badModel }, want: EINVALID, msg: "levels"},
		{name: "no model", change: func(p *CreateParams) { p.Model = Model{} }, want: EINVALID, msg: "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.change(&p)
			evs, err := Create(p)
			if got := ErrorCode(err); got != tc.want {
				t.Fatalf("code: got %q (%v), want %q", got, err, tc.want)
			}
			if !strings.Contains(ErrorMessage(err), tc.msg) {
				t.Errorf("message: got %q, want it to mention %q", ErrorMessage(err), tc.msg)
			}
			if err != nil {
				return
			}
			if len(evs) != 1 || evs[0].Seq != 1 || evs[0].Type != EvRoomCreated {
				t.Fatalf("events: got %v, want one room_created at seq 1", types(evs))
			}
			s, err := Replay(evs)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if got, want := len(s.Teams), len(p.TeamNames); got != want {
				t.Errorf("teams: got %v, want %v", got, want)
			}
			if s.Phase != PhaseLobby || s.Seq != 1 || s.Aspect != "" || s.ReportLimit != DefaultReportLimit {
				t.Errorf("state: got phase %v seq %d aspect %q reportLimit %d, want a fresh lobby", s.Phase, s.Seq, s.Aspect, s.ReportLimit)
			}
			if got, want := s.Agenda, []string{"investment", "adoption", "interfaces", "operations", "measurement"}; !slices.Equal(got, want) {
				t.Errorf("agenda: got %v, want %v", got, want)
			}
			if got, want := s.Queues["adoption"], teamIDs(s.Teams); !slices.Equal(got, want) {
				t.Errorf("queue: got %v, want %v", got, want)
			}
		})
	}
}

func TestCreateTrimsAndUsesUTC(t *testing.T) {
	local := time.FixedZone("CET", 3600)
	evs, err := Create(CreateParams{ID: "r", Code: "C", Title: "  Q3  ", Model: PEMM(),
		TeamNames: []string{" Payments "}, Now: t0.In(local)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Replay(evs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Title != "Q3" || s.Teams[0].Name != "Payments" || s.Teams[0].ID != "t1" {
		t.Errorf("title, team: got %q %+v, want trimmed", s.Title, s.Teams[0])
	}
	if s.CreatedAt.Location() != time.UTC || !s.CreatedAt.Equal(t0) {
		t.Errorf("createdAt: got %v, want %v in UTC", s.CreatedAt, t0)
	}
	// A room made without key hashes still takes team_added's hash.
	f := &fixture{t: t, s: s, log: evs, now: t0}
	f.do(fac, Command{Type: CmdAddTeam, Name: "Search", NewSecrets: newTeamSecrets("h2")})
	if got, want := f.s.Secrets.TeamKeyHashes["t2"], "h2"; got != want {
		t.Errorf("team key hash: got %v, want %v", got, want)
	}
}

// modelJSON is a valid two-aspect custom model; tests change it.
func modelJSON() map[string]any {
	return map[string]any{
		"name": "Our model",
		"levels": []any{
			map[string]any{"name": "Low", "description": "Not much"},
			map[string]any{"name": "High"},
		},
		"aspects": []any{
			map[string]any{"name": "Continuous Integration", "question": "How do you build?",
				"cells": []any{map[string]any{"label": "Manual"}, map[string]any{"label": "Automated", "description": "On every push"}}},
			map[string]any{"id": "deploy", "name": "Deploy",
				"cells": []any{map[string]any{"label": "By hand"}, map[string]any{"label": "Pipelines"}}},
		},
	}
}

func aspectsOf(m map[string]any) []any { return m["aspects"].([]any) }
func aspectAt(m map[string]any, i int) map[string]any {
	return aspectsOf(m)[i].(map[string]any)
}

func TestParseModel(t *testing.T) {
	cells := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"label": fmt.Sprintf("L%d", i+1)}
		}
		return out
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
		raw    string // used instead of the (changed) model when set
		field  string // "" for a valid model; else a substring of the error
		check  func(t *testing.T, m Model)
	}{
		{name: "valid", change: func(m map[string]any) {}, check: func(t *testing.T, m Model) {
			if m.ID != "custom" || m.Aspects[0].ID != "continuous-integration" || m.Aspects[1].ID != "deploy" || m.NumLevels() != 2 {
				t.Errorf("model: got id %q aspects %q %q levels %d, want custom, derived and given ids, 2 levels",
					m.ID, m.Aspects[0].ID, m.Aspects[1].ID, m.NumLevels())
			}
		}},
		{name: "same names get distinct ids", change: func(m map[string]any) {
			delete(aspectAt(m, 1), "id")
			aspectAt(m, 1)["name"] = "Continuous  integration!"
		}, check: func(t *testing.T, m Model) {
			if got, want := m.Aspects[1].ID, "continuous-integration-2"; got != want {
				t.Errorf("id: got %v, want %v", got, want)
			}
		}},
		{name: "derived id yields to a given one", change: func(m map[string]any) {
			aspectAt(m, 1)["id"] = "continuous-integration"
		}, check: func(t *testing.T, m Model) {
			if a, b := m.Aspects[0].ID, m.Aspects[1].ID; a == b || b != "continuous-integration" {
				t.Errorf("ids: got %q %q, want distinct, the given one kept", a, b)
			}
		}},
		{name: "name without letters", change: func(m map[string]any) { aspectAt(m, 0)["name"] = "ÄÖÜ ???" }, check: func(t *testing.T, m Model) {
			if !idPattern.MatchString(m.Aspects[0].ID) {
				t.Errorf("id: got %q, want a valid id", m.Aspects[0].ID)
			}
		}},
		{name: "long name gives a short id", change: func(m map[string]any) { aspectAt(m, 0)["name"] = strings.Repeat("abc ", 15) }, check: func(t *testing.T, m Model) {
			if !idPattern.MatchString(m.Aspects[0].ID) {
				t.Errorf("id: got %q, want a valid id", m.Aspects[0].ID)
			}
		}},
		{name: "ten levels", change: func(m map[string]any) {
			lv := make([]any, MaxLevels)
			for i := range lv {
				lv[i] = map[string]any{"name": fmt.Sprint(i)}
			}
			m["levels"] = lv
			aspectAt(m, 0)["cells"], aspectAt(m, 1)["cells"] = cells(MaxLevels), cells(MaxLevels)
		}},
		{name: "unknown top-level field", change: func(m map[string]any) { m["colour"] = "red" }, field: `"colour"`},
		{name: "unknown cell field", change: func(m map[string]any) {
			aspectAt(m, 0)["cells"].([]any)[0].(map[string]any)["score"] = 3
		}, field: `"score"`},
		{name: "no name", change: func(m map[string]any) { delete(m, "name") }, field: "name: required"},
		{name: "name too long", change: func(m map[string]any) { m["name"] = strings.Repeat("n", MaxModelNameLen+1) }, field: "name: at most"},
		{name: "one level", change: func(m map[string]any) { m["levels"] = m["levels"].([]any)[:1] }, field: "levels:"},
		{name: "eleven levels", change: func(m map[string]any) {
			lv := make([]any, MaxLevels+1)
			for i := range lv {
				lv[i] = map[string]any{"name": fmt.Sprint(i)}
			}
			m["levels"] = lv
		}, field: "levels:"},
		{name: "level name too long", change: func(m map[string]any) {
			m["levels"].([]any)[1].(map[string]any)["name"] = strings.Repeat("x", MaxLabelLen+1)
		}, field: "levels[1].name"},
		{name: "level description too long", change: func(m map[string]any) {
			m["levels"].([]any)[0].(map[string]any)["description"] = strings.Repeat("x", MaxDescriptionLen+1)
		}, field: "levels[0].description"},
		{name: "no aspects", change: func(m map[string]any) { m["aspects"] = []any{} }, field: "aspects:"},
		{name: "thirteen aspects", change: func(m map[string]any) {
			as := make([]any, MaxAspects+1)
			for i := range as {
				as[i] = map[string]any{"name": fmt.Sprintf("A%d", i), "cells": cells(2)}
			}
			m["aspects"] = as
		}, field: "aspects:"},
		{name: "too few cells", change: func(m map[string]any) { aspectAt(m, 1)["cells"] = cells(1) }, field: "aspects[1].cells:"},
		{name: "too many cells", change: func(m map[string]any) { aspectAt(m, 0)["cells"] = cells(3) }, field: "aspects[0].cells:"},
		{name: "label too long", change: func(m map[string]any) {
			aspectAt(m, 0)["cells"].([]any)[1].(map[string]any)["label"] = strings.Repeat("ł", MaxLabelLen+1)
		}, field: "aspects[0].cells[1].label"},
		{name: "empty label", change: func(m map[string]any) {
			aspectAt(m, 1)["cells"].([]any)[0].(map[string]any)["label"] = " "
		}, field: "aspects[1].cells[0].label"},
		{name: "cell description too long", change: func(m map[string]any) {
			aspectAt(m, 1)["cells"].([]any)[0].(map[string]any)["description"] = strings.Repeat("d", MaxDescriptionLen+1)
		}, field: "aspects[1].cells[0].description"},
		{name: "aspect name too long", change: func(m map[string]any) { aspectAt(m, 1)["name"] = strings.Repeat("x", MaxLabelLen+1) }, field: "aspects[1].name"},
		{name: "question too long", change: func(m map[string]any) { aspectAt(m, 0)["question"] = strings.Repeat("?", MaxDescriptionLen+1) }, field: "aspects[0].question"},
		{name: "bad aspect id", change: func(m map[string]any) { aspectAt(m, 1)["id"] = "Deploy Now" }, field: "aspects[1].id"},
		{name: "duplicate aspect id", change: func(m map[string]any) { aspectAt(m, 0)["id"] = "deploy" }, field: "aspects[1].id"},
		{name: "wrong type", change: func(m map[string]any) { m["levels"] = "two" }, field: "levels"},
		{name: "truncated JSON", raw: `{"name": "x",`, field: "model: unexpected EOF"},
		{name: "malformed JSON", raw: `{"name": "x",,}`, field: "malformed JSON"},
		{name: "not JSON", raw: `name: x`, field: "malformed JSON"},
		{name: "empty input", raw: ``, field: "model"},
		{name: "null", raw: `null`, field: "name: required"},
		{name: "trailing object", raw: `{"name":"x"} {}`, field: "trailing"},
		{name: "trailing bracket", raw: mustString(modelJSON()) + `]`, field: "model"},
		{name: "trailing brace", raw: mustString(modelJSON()) + `}`, field: "model"},
		{name: "too large", raw: `{"name":"` + strings.Repeat("x", MaxModelJSONBytes) + `"}`, field: "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" && tc.change != nil {
				m := modelJSON()
				tc.change(m)
				data = []byte(mustString(m))
			}
			m, err := ParseModel(data)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ParseModel: %v", err)
				}
				if err := m.Validate(); err != nil {
					t.Errorf("Validate after ParseModel: %v", err)
				}
				if tc.check != nil {
					tc.check(t, m)
				}
				return
			}
			if got := ErrorCode(err); got != EINVALID {
				t.Fatalf("code: got %q (%v), want %q", got, err, EINVALID)
			}
			if !strings.Contains(ErrorMessage(err), tc.field) {
				t.Errorf("message: got %q, want it to name %q", ErrorMessage(err), tc.field)
			}
		})
	}
}

func mustString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestParseModelRoundTrip: a parsed model encodes to JSON that parses to
// the same model, and PEMM's JSON parses as a custom model.
func TestParseModelRoundTrip(t *testing.T) {
	for _, data := range [][]byte{[]byte(mustString(modelJSON())), []byte(mustString(PEMM()))} {
		m1, err := ParseModel(data)
		if err != nil {
			t.Fatalf("ParseModel: %v", err)
		}
		m2, err := ParseModel([]byte(mustString(m1)))
		if err != nil {
			t.Fatalf("ParseModel again: %v", err)
		}
		if a, b := mustString(m1), mustString(m2); a != b {
			t.Errorf("round trip: got %s, want %s", b, a)
		}
	}
}

// FuzzParseModel: any input either parses to a valid model or is refused
// with an "invalid" error; never a panic.
func FuzzParseModel(f *testing.F) {
	f.Add([]byte(mustString(modelJSON())))
	f.Add([]byte(mustString(PEMM())))
	f.Add([]byte(`{"name":"x","levels":[{"name":"a"},{"name":"b"}],"aspects":[{"name":"A","cells":[{"label":"1"},{"label":"2"}]}]}`))
	f.Add([]byte(`{"name": "x",`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModel(data)
		if err != nil {
			if got := ErrorCode(err); got != EINVALID {
				t.Fatalf("code: got %q (%v), want %q", got, err, EINVALID)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed model does not validate: %v", err)
		}
		if _, err := ParseModel([]byte(mustString(m))); err != nil {
			t.Fatalf("re-parse of %s: %v", mustString(m), err)
		}
	})
}
