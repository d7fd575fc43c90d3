package room

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// resultsRoom: investment revealed for every team (Payments 2, Search 4,
// Identity not submitted), adoption submitted by Payments but not revealed,
// a note and two actions on investment.
func resultsRoom(t *testing.T) *fixture {
	f := newFixture(t)
	running(f)
	f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 2, Rationale: "A dedicated team"})
	f.do(search, Command{Type: CmdSubmit, Aspect: "investment", Level: 4, Rationale: "An ecosystem"})
	f.do(identity, Command{Type: CmdSaveDraft, Aspect: "investment", Level: 3, Rationale: "RATDRAFTX"})
	f.do(payments, Command{Type: CmdSubmit, Aspect: "adoption", Level: 3, Rationale: "RATUNREVEALEDX"})
	f.do(fac, Command{Type: CmdReveal, Aspect: "investment"})
	f.do(fac, Command{Type: CmdSetNote, Aspect: "investment", Text: "Wide spread"})
	f.do(fac, Command{Type: CmdAddAction, Aspect: "investment", Text: "Fund Search's model"})
	f.do(fac, Command{Type: CmdAddAction, Aspect: "investment", Text: "Review in Q4"})
	f.do(fac, Command{Type: CmdSetActionDone, Aspect: "investment", Action: 2, On: true})
	return f
}

func TestComputeResults(t *testing.T) {
	f := resultsRoom(t)
	r := ComputeResults(f.s)
	if r.Room != "room-1" || r.Title != "Platform maturity Q3" || r.Model != PEMM().Name {
		t.Errorf("header: got %q %q %q, want the room's", r.Room, r.Title, r.Model)
	}
	if got, want := r.Levels, []string{"Provisional", "Operational", "Scalable", "Optimizing"}; !slices.Equal(got, want) {
		t.Errorf("levels: got %v, want %v", got, want)
	}
	if got, want := len(r.Aspects), 5; got != want {
		t.Fatalf("aspects: got %v, want %v", got, want)
	}
	tests := []struct {
		name string
		got  AspectResults
		want AspectResults
	}{
		{"investment", r.Aspects[0], AspectResults{
			ID: "investment", Name: "Investment", Min: 2, Max: 4, Spread: 2, Mean: 3, Note: "Wide spread",
			Actions: []Action{{ID: 1, Text: "Fund Search's model"}, {ID: 2, Text: "Review in Q4", Done: true}},
			Scores: []TeamScore{
				{Team: "t1", Status: "revealed", Level: 2, LevelName: "Operational", Rationale: "A dedicated team"},
				{Team: "t2", Status: "revealed", Level: 4, LevelName: "Optimizing", Rationale: "An ecosystem"},
				{Team: "t3", Status: "not_submitted"},
			}}},
		{"adoption: submitted, not revealed", r.Aspects[1], AspectResults{
			ID: "adoption", Name: "Adoption",
			Scores: []TeamScore{{Team: "t1", Status: "hidden"}, {Team: "t2", Status: "hidden"}, {Team: "t3", Status: "hidden"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %+v, want %+v", tc.got, tc.want)
			}
		})
	}
	for _, out := range [][]byte{r.JSON(), r.CSV(), r.Markdown()} {
		if l := leaks(out, []string{"RATDRAFTX", "RATUNREVEALEDX", secretFacHash, cmdKeyMarker}); len(l) > 0 {
			t.Errorf("export: got %v in it, want none", l)
		}
	}
}

func TestComputeResultsSpread(t *testing.T) {
	reveal := func(levels ...int) func(f *fixture) {
		return func(f *fixture) {
			running(f)
			for i, l := range levels {
				if l > 0 {
					f.do([]Actor{payments, search, identity}[i], Command{Type: CmdSubmit, Aspect: "investment", Level: l})
				}
			}
			f.do(fac, Command{Type: CmdReveal, Aspect: "investment"})
		}
	}
	tests := []struct {
		name                  string
		setup                 func(*fixture)
		min, max, spread      int
		mean                  float64
		notSubmitted, hidden_ int
	}{
		{"nothing revealed", running, 0, 0, 0, 0, 0, 3},
		{"nobody submitted", reveal(0, 0, 0), 0, 0, 0, 0, 3, 0},
		{"one team", reveal(3, 0, 0), 3, 3, 0, 3, 2, 0},
		{"all agree", reveal(2, 2, 2), 2, 2, 0, 2, 0, 0},
		{"full range", reveal(1, 4, 2), 1, 4, 3, 7.0 / 3, 0, 0},
		{"one revealed of three", func(f *fixture) {
			running(f)
			f.do(payments, Command{Type: CmdSubmit, Aspect: "investment", Level: 1})
			f.do(search, Command{Type: CmdSubmit, Aspect: "investment", Level: 4})
			f.do(fac, Command{Type: CmdReveal, Aspect: "investment", Team: "t2"})
		}, 4, 4, 0, 4, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			a := ComputeResults(f.s).Aspects[0]
			if a.Min != tc.min || a.Max != tc.max || a.Spread != tc.spread || a.Mean != tc.mean {
				t.Errorf("min, max, spread, mean: got %d %d %d %v, want %d %d %d %v", a.Min, a.Max, a.Spread, a.Mean, tc.min, tc.max, tc.spread, tc.mean)
			}
			var ns, hidden int
			for _, sc := range a.Scores {
				switch sc.Status {
				case "not_submitted":
					ns++
				case "hidden":
					hidden++
					if sc.Level != 0 || sc.Rationale != "" || sc.LevelName != "" {
						t.Errorf("hidden score: got %+v, want no level", sc)
					}
				}
			}
			if ns != tc.notSubmitted || hidden != tc.hidden_ {
				t.Errorf("not submitted, hidden: got %d %d, want %d %d", ns, hidden, tc.notSubmitted, tc.hidden_)
			}
		})
	}
}

func TestComputeResultsFollowsTheAgenda(t *testing.T) {
	f := newFixture(t)
	order := []string{"measurement", "operations", "interfaces", "adoption", "investment"}
	f.do(fac, Command{Type: CmdSetAgenda, Order: order})
	var got []string
	for _, a := range ComputeResults(f.s).Aspects {
		got = append(got, a.ID)
	}
	if !slices.Equal(got, order) {
		t.Errorf("aspects: got %v, want %v", got, order)
	}
}

func TestResultsJSON(t *testing.T) {
	r := ComputeResults(resultsRoom(t).s)
	var back Results
	if err := json.Unmarshal(r.JSON(), &back); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip: got %+v, want %+v", back, r)
	}
}

func TestResultsCSV(t *testing.T) {
	r := ComputeResults(resultsRoom(t).s)
	rows, err := csv.NewReader(bytes.NewReader(r.CSV())).ReadAll()
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got, want := len(rows), 1+3*5; got != want {
		t.Fatalf("rows: got %d, want %d", got, want)
	}
	want := [][]string{
		{"team", "aspect", "status", "level", "level_name", "rationale", "room_estimates", "room_median", "room_mean", "gap", "room_histogram"},
		{"Payments", "Investment", "revealed", "2", "Operational", "A dedicated team", "", "", "", "", ""},
		{"Search", "Investment", "revealed", "4", "Optimizing", "An ecosystem", "", "", "", "", ""},
		{"Identity", "Investment", "not_submitted", "", "", "", "", "", "", "", ""},
		{"Payments", "Adoption", "hidden", "", "", "", "", "", "", "", ""},
	}
	for i, w := range want {
		if !slices.Equal(rows[i], w) {
			t.Errorf("row %d: got %q, want %q", i, rows[i], w)
		}
	}
}

// injectionRoom is a room whose every user-chosen text starts with a
// spreadsheet formula or holds Markdown structure.
func injectionRoom(t *testing.T, teamName, rationale, levelName, aspectName, title string) *State {
	t.Helper()
	m := Model{ID: "m", Name: "Model | # *x*", Levels: []Level{{Name: "Low"}, {Name: levelName}},
		Aspects: []Aspect{{ID: "ci", Name: aspectName, Cells: []Cell{{Label: "1"}, {Label: "2"}}}}}
	evs, err := Create(CreateParams{ID: "r", Code: "C", Title: title, Model: m, TeamNames: []string{teamName, "Plain"}, Now: t0})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	s, err := Replay(evs)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, s: s, log: evs, now: t0}
	running(f)
	f.do(TeamActor(s.Teams[0]), Command{Type: CmdSubmit, Aspect: "ci", Level: 2, Rationale: rationale})
	f.do(TeamActor(s.Teams[1]), Command{Type: CmdSubmit, Aspect: "ci", Level: 1, Rationale: "plain"})
	f.do(fac, Command{Type: CmdReveal, Aspect: "ci"})
	f.do(fac, Command{Type: CmdSetNote, Aspect: "ci", Text: rationale})
	f.do(fac, Command{Type: CmdAddAction, Aspect: "ci", Text: strings.ReplaceAll(rationale, "\n", " ")})
	return f.s
}

func TestResultsCSVDefusesFormulas(t *testing.T) {
	tests := []struct{ name, text string }{
		{"equals", "=HYPERLINK(\"http://evil\",\"x\")"},
		{"plus", "+1+cmd|' /C calc'!A0"},
		{"minus", "-2+3"},
		{"at", "@SUM(A1:A2)"},
		{"tab", "\t=1+1"},
		{"carriage return", "\r=1+1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := injectionRoom(t, tc.text, tc.text, tc.text, tc.text, "Title")
			rows, err := csv.NewReader(bytes.NewReader(ComputeResults(s).CSV())).ReadAll()
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			for i, row := range rows[1:] {
				for j, cell := range row {
					if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
						t.Errorf("row %d cell %d: got %q, want it defused", i+1, j, cell)
					}
				}
			}
			if got, want := rows[1][0], "'"+strings.TrimSpace(tc.text); got != want { // team names are trimmed
				t.Errorf("team cell: got %q, want %q", got, want)
			}
		})
	}
}

// mdUnescaped finds a '[' or ']' after an even number of backslashes: the
// start or end of a link.
var mdUnescaped = regexp.MustCompile(`(^|[^\\])(\\\\)*[\[\]]`)

// mdRowCells counts the cells of a Markdown table row: the '|' not escaped
// by a backslash, less one.
func mdRowCells(line string) int {
	n, backslashes := 0, 0
	for _, r := range line {
		switch {
		case r == '\\':
			backslashes++
			continue
		case r == '|' && backslashes%2 == 0:
			n++
		}
		backslashes = 0
	}
	return n - 1
}

func TestResultsMarkdownEscapes(t *testing.T) {
	tests := []struct{ name, text string }{
		{"pipe", "a | b"},
		{"escaped pipe", `a \| b`},
		{"backslash at the end", `a\`},
		{"newline", "a\nb | c"},
		{"carriage return", "a\rb | c"},
		{"crlf", "a\r\nb"},
		{"heading", "# Heading"},
		{"emphasis", "*bold* _it_ `code`"},
		{"link", "[click](http://evil) ![img](http://evil/x.png)"},
		{"html", "<script>alert(1)</script> <img src=x onerror=alert(1)>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := injectionRoom(t, "T "+tc.text, tc.text, "L "+tc.text, "A "+tc.text, "Title "+tc.text)
			md := string(ComputeResults(s).Markdown())
			lines := strings.Split(md, "\n")
			for _, bad := range []string{"<script", "<img", "\r"} {
				if strings.Contains(md, bad) {
					t.Errorf("got %q in the Markdown, want it escaped", bad)
				}
			}
			for _, l := range lines {
				l = strings.TrimPrefix(strings.TrimPrefix(l, "- [ ] "), "- [x] ") // our checkboxes
				if m := mdUnescaped.FindString(l); m != "" {
					t.Errorf("got an unescaped %q in %q, want no links", m, l)
				}
			}
			// The table: header, rule, two teams, spread; each row has one
			// cell per aspect plus the first column.
			start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "| Team |") })
			if start < 0 {
				t.Fatalf("no table in:\n%s", md)
			}
			for i, l := range lines[start : start+5] {
				if got, want := mdRowCells(l), 2; got != want {
					t.Errorf("table row %d %q: got %d cells, want %d", i, l, got, want)
				}
			}
			if !strings.HasPrefix(lines[start+4], "| Spread | 1 |") {
				t.Errorf("spread row: got %q, want | Spread | 1 |", lines[start+4])
			}
			if !strings.HasPrefix(lines[0], "# Title") || lines[1] != "" {
				t.Errorf("title: got %q then %q, want one heading line", lines[0], lines[1])
			}
			// Rationale, note and action lines stay one line each.
			for _, prefix := range []string{"- **", "Notes: ", "- [ ] "} {
				n := 0
				for _, l := range lines {
					if strings.HasPrefix(l, prefix) {
						n++
					}
				}
				if n == 0 {
					t.Errorf("no line starts with %q", prefix)
				}
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "# Title") && !strings.HasPrefix(l, "## A ") {
					t.Errorf("got a stray heading %q", l)
				}
			}
		})
	}
}

func TestResultsMarkdown(t *testing.T) {
	md := string(ComputeResults(resultsRoom(t).s).Markdown())
	for _, want := range []string{
		"# Platform maturity Q3\n",
		"| Team | Investment | Adoption | Interfaces | Operations | Measurement |\n",
		"| Payments | 2 Operational | – | – | – | – |\n",
		"| Identity | not submitted | – | – | – | – |\n",
		"| Spread | 2 | 0 | 0 | 0 | 0 |\n",
		"- **Search** (4 Optimizing): An ecosystem\n",
		"Notes: Wide spread\n",
		"- [ ] Fund Search's model\n",
		"- [x] Review in Q4\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("got no %q in:\n%s", want, md)
		}
	}
}

func TestPresenceFor(t *testing.T) {
	p := Presence{Facilitator: true, Teams: map[string]int{"t1": 2}, Attendees: 2, Presenters: 1,
		Names: []PresentName{{Participant: "p_ana", Name: "Ana"}, {Participant: "p_bob", Name: "Bob"}}}
	tests := []struct {
		name      string
		aud       Audience
		wantNames int
	}{
		{"facilitator", AudienceOf(fac), 2},
		{"team", AudienceOf(payments), 0},
		{"attendee", AudienceOf(ana), 0},
		{"presenter", AudienceOf(presenter), 0},
		{"public", Audience{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.For(tc.aud)
			if len(got.Names) != tc.wantNames {
				t.Errorf("names: got %v, want %d", got.Names, tc.wantNames)
			}
			if got.Attendees != 2 || got.Presenters != 1 || !got.Facilitator || got.Teams["t1"] != 2 {
				t.Errorf("counts: got %+v, want them all", got)
			}
			if tc.wantNames == 0 && strings.Contains(string(mustJSON(t, got)), "p_ana") {
				t.Errorf("JSON: got a participant id, want none")
			}
		})
	}
	if len(p.Names) != 2 {
		t.Errorf("For changed its receiver: names %v", p.Names)
	}
}

func TestPresenceMerge(t *testing.T) {
	a := Presence{Facilitator: false, Teams: map[string]int{"t1": 1}, Attendees: 2, Presenters: 0,
		Names: []PresentName{{"p_cleo", "Cleo"}, {"p_ana", "Ana"}}}
	b := Presence{Facilitator: true, Teams: map[string]int{"t1": 1, "t2": 3}, Attendees: 1, Presenters: 1,
		Names: []PresentName{{"p_bob", "Bob"}}}
	got := a.Merge(b)
	want := Presence{Facilitator: true, Teams: map[string]int{"t1": 2, "t2": 3}, Attendees: 3, Presenters: 1,
		Names: []PresentName{{"p_ana", "Ana"}, {"p_bob", "Bob"}, {"p_cleo", "Cleo"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	got.Teams["t1"] = 99
	got.Names[0].Name = "changed"
	if a.Teams["t1"] != 1 || b.Teams["t1"] != 1 || a.Names[1].Name != "Ana" {
		t.Errorf("Merge aliases its inputs")
	}
	if e := (Presence{}).Merge(Presence{}); e.Teams == nil || e.Names != nil {
		t.Errorf("empty merge: got %+v, want empty teams and no names", e)
	}
}

// TestPresenceMergeIsDeterministic: the hub encodes presence once for many
// clients and compares it to what it sent last; the merge of the same
// instances must give the same bytes whatever their order, even when
// display names repeat.
func TestPresenceMergeIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var names []PresentName
	for i := range 60 {
		names = append(names, PresentName{Participant: fmt.Sprintf("p_%02d", i), Name: []string{"Ana", "Bob", "ana"}[i%3]})
	}
	var want []byte
	for i := range 20 {
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		a := Presence{Names: slices.Clone(names[:30])}
		b := Presence{Names: slices.Clone(names[30:])}
		got := mustJSON(t, a.Merge(b))
		if i == 0 {
			want = got
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("merge %d: got %s, want %s", i, got, want)
		}
	}
}
