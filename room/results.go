package room

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Results is the outcome of a workshop as the facilitator exports it: the
// teams x aspects matrix of revealed scores, the spread per aspect, notes and
// action items. Unrevealed scores are left out: an export is shown on
// screens and shared, and the reveal is what makes a score public.
type Results struct {
	Room    string          `json:"room"`
	Title   string          `json:"title"`
	Model   string          `json:"model"`
	Levels  []string        `json:"levels"`
	Teams   []Team          `json:"teams"`
	Aspects []AspectResults `json:"aspects"`
}

// AspectResults is one column of the results matrix.
type AspectResults struct {
	ID      string      `json:"id"`
	Name    string      `json:"name"`
	Scores  []TeamScore `json:"scores"` // in team order
	Min     int         `json:"min,omitempty"`
	Max     int         `json:"max,omitempty"`
	Spread  int         `json:"spread"` // max - min over revealed submitted scores
	Mean    float64     `json:"mean,omitempty"`
	Note    string      `json:"note,omitempty"`
	Actions []Action    `json:"actions,omitempty"`
}

// TeamScore is one cell of the results matrix. Status is "revealed",
// "not_submitted" (revealed without a submission) or "hidden" (not yet
// revealed).
type TeamScore struct {
	Team      string `json:"team"`
	Status    string `json:"status"`
	Level     int    `json:"level,omitempty"`
	LevelName string `json:"levelName,omitempty"`
	Rationale string `json:"rationale,omitempty"`
}

// ComputeResults builds the results of s from what has been revealed.
func ComputeResults(s *State) Results {
	r := Results{Room: s.ID, Title: s.Title, Model: s.Model.Name, Teams: append([]Team(nil), s.Teams...)}
	for _, l := range s.Model.Levels {
		r.Levels = append(r.Levels, l.Name)
	}
	for _, id := range s.Agenda {
		a, _ := s.Model.Aspect(id)
		ar := AspectResults{ID: a.ID, Name: a.Name, Note: s.Notes[a.ID], Actions: append([]Action(nil), s.Actions[a.ID]...)}
		sum, n := 0, 0
		for _, t := range s.Teams {
			ts := TeamScore{Team: t.ID, Status: "hidden"}
			if sc := s.Score(t.ID, a.ID); sc != nil && sc.Revealed {
				if sc.Submitted {
					ts.Status, ts.Level, ts.Rationale = "revealed", sc.Level, sc.Rationale
					ts.LevelName = s.Model.Levels[sc.Level-1].Name
					if n == 0 || sc.Level < ar.Min {
						ar.Min = sc.Level
					}
					ar.Max = max(ar.Max, sc.Level)
					sum += sc.Level
					n++
				} else {
					ts.Status = "not_submitted"
				}
			}
			ar.Scores = append(ar.Scores, ts)
		}
		if n > 0 {
			ar.Spread = ar.Max - ar.Min
			ar.Mean = float64(sum) / float64(n)
		}
		r.Aspects = append(r.Aspects, ar)
	}
	return r
}

// JSON encodes the results as indented JSON.
func (r Results) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// CSV encodes the results one row per team and aspect.
func (r Results) CSV() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"team", "aspect", "status", "level", "level_name", "rationale"})
	names := teamNames(r.Teams)
	for _, a := range r.Aspects {
		for _, sc := range a.Scores {
			level := ""
			if sc.Level > 0 {
				level = strconv.Itoa(sc.Level)
			}
			// Level names come from the model, which a facilitator may bring
			// as JSON: they are user text like the rest.
			_ = w.Write([]string{csvSafe(names[sc.Team]), csvSafe(a.Name), sc.Status, level, csvSafe(sc.LevelName), csvSafe(sc.Rationale)})
		}
	}
	w.Flush()
	return buf.Bytes()
}

// csvSafe defuses cells that a spreadsheet would run as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Markdown encodes the results as a report: the matrix, then notes and
// actions per aspect.
func (r Results) Markdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\nModel: %s\n\n", mdText(r.Title), mdText(r.Model))
	b.WriteString("| Team |")
	for _, a := range r.Aspects {
		fmt.Fprintf(&b, " %s |", mdText(a.Name))
	}
	b.WriteString("\n|---|")
	for range r.Aspects {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for i, t := range r.Teams {
		fmt.Fprintf(&b, "| %s |", mdText(t.Name))
		for _, a := range r.Aspects {
			fmt.Fprintf(&b, " %s |", mdCell(a.Scores[i]))
		}
		b.WriteString("\n")
	}
	b.WriteString("| Spread |")
	for _, a := range r.Aspects {
		fmt.Fprintf(&b, " %d |", a.Spread)
	}
	b.WriteString("\n")
	names := teamNames(r.Teams)
	for _, a := range r.Aspects {
		fmt.Fprintf(&b, "\n## %s\n\n", mdText(a.Name))
		for _, sc := range a.Scores {
			if sc.Status == "revealed" && sc.Rationale != "" {
				fmt.Fprintf(&b, "- **%s** (%d %s): %s\n", mdText(names[sc.Team]), sc.Level, mdText(sc.LevelName), mdText(sc.Rationale))
			}
		}
		if a.Note != "" {
			fmt.Fprintf(&b, "\nNotes: %s\n", mdText(a.Note))
		}
		if len(a.Actions) > 0 {
			b.WriteString("\nActions:\n")
			for _, x := range a.Actions {
				box := " "
				if x.Done {
					box = "x"
				}
				fmt.Fprintf(&b, "- [%s] %s\n", box, mdText(x.Text))
			}
		}
	}
	return []byte(b.String())
}

func mdCell(sc TeamScore) string {
	switch sc.Status {
	case "revealed":
		return fmt.Sprintf("%d %s", sc.Level, mdText(sc.LevelName))
	case "not_submitted":
		return "not submitted"
	}
	return "–"
}

// mdEscaper keeps user text on one line and from adding Markdown structure.
// A backslash is escaped too, or "\\|" would end a table cell; a lone
// carriage return is a line ending in CommonMark.
var mdEscaper = strings.NewReplacer(
	"\\", "\\\\", "|", "\\|", "\r\n", " ", "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;",
	"*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]", "#", "\\#")

// mdText keeps user text from breaking the Markdown structure.
func mdText(s string) string { return mdEscaper.Replace(s) }

func teamNames(ts []Team) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[t.ID] = t.Name
	}
	return m
}
