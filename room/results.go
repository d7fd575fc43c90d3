package room

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Results is the outcome of a workshop as the facilitator exports it: the
// teams x aspects matrix of revealed scores with the room's estimate of
// each (the calibration layer), the spread per aspect, notes and action
// items. Unrevealed scores are left out: an export is shown on
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
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Scores []TeamScore `json:"scores"` // in team order
	Min    int         `json:"min,omitempty"`
	Max    int         `json:"max,omitempty"`
	Spread int         `json:"spread"` // max - min over revealed submitted scores
	Mean   float64     `json:"mean,omitempty"`
	// Calibration summarises the room's estimates of the revealed teams;
	// nil when none was estimated.
	Calibration *AspectCalibration `json:"calibration,omitempty"`
	Note        string             `json:"note,omitempty"`
	Actions     []Action           `json:"actions,omitempty"`
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
	// Estimate is the room's estimate of the team, once revealed.
	Estimate *EstimateResult `json:"estimate,omitempty"`
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
				if e := s.Estimation(t.ID, a.ID); e != nil && e.Revealed {
					ts.Estimate = e.Result.clone()
				}
			}
			ar.Scores = append(ar.Scores, ts)
		}
		if n > 0 {
			ar.Spread = ar.Max - ar.Min
			ar.Mean = float64(sum) / float64(n)
		}
		ar.Calibration = calibrate(ar.Scores)
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
	_ = w.Write([]string{"team", "aspect", "status", "level", "level_name", "rationale",
		"room_estimates", "room_median", "room_mean", "gap", "room_histogram"})
	names := teamNames(r.Teams)
	for _, a := range r.Aspects {
		for _, sc := range a.Scores {
			level := ""
			if sc.Level > 0 {
				level = strconv.Itoa(sc.Level)
			}
			// Level names come from the model, which a facilitator may bring
			// as JSON: they are user text like the rest.
			row := []string{csvSafe(names[sc.Team]), csvSafe(a.Name), sc.Status, level, csvSafe(sc.LevelName), csvSafe(sc.Rationale), "", "", "", "", ""}
			if e := sc.Estimate; e != nil {
				row[6] = strconv.Itoa(e.Count)
				if e.Count > 0 {
					row[7], row[8] = fmtLevel(e.Median), fmtLevel(e.Mean)
				}
				if e.Gap != nil {
					row[9] = fmtGap(*e.Gap)
				}
				row[10] = histogramText(e.Histogram)
			}
			_ = w.Write(row)
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
	if slices.ContainsFunc(r.Aspects, func(a AspectResults) bool { return a.Calibration != nil }) {
		b.WriteString("\nThe room's estimate of each team (median of everyone else's estimates; gap is the team's own level minus it, flagged ⚑ at a level or more):\n\n| Team |")
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
				fmt.Fprintf(&b, " %s |", mdEstimate(a.Scores[i].Estimate))
			}
			b.WriteString("\n")
		}
	}
	names := teamNames(r.Teams)
	for _, a := range r.Aspects {
		fmt.Fprintf(&b, "\n## %s\n\n", mdText(a.Name))
		for _, sc := range a.Scores {
			if sc.Status == "revealed" && sc.Rationale != "" {
				fmt.Fprintf(&b, "- **%s** (%d %s): %s\n", mdText(names[sc.Team]), sc.Level, mdText(sc.LevelName), mdText(sc.Rationale))
			}
		}
		if c := a.Calibration; c != nil {
			fmt.Fprintf(&b, "\nCalibration: %s\n", calibrationSummary(c, names))
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

// mdEstimate is one cell of the calibration table.
func mdEstimate(e *EstimateResult) string {
	switch {
	case e == nil:
		return "–"
	case e.Count == 0:
		return "no estimates"
	}
	cell := fmt.Sprintf("room %s (%d)", fmtLevel(e.Median), e.Count)
	if e.Gap != nil {
		cell += ", gap " + fmtGap(*e.Gap)
		if e.Flagged {
			cell += " ⚑"
		}
	}
	return cell
}

// calibrationSummary says in a sentence how an aspect's teams compare
// with the room's view of them.
func calibrationSummary(c *AspectCalibration, names map[string]string) string {
	s := fmt.Sprintf("the room estimated %d %s; mean gap %s levels", c.Estimated, plural(c.Estimated, "team", "teams"), fmtLevel(c.MeanAbsGap))
	if c.Higher > 0 {
		s += fmt.Sprintf("; %d %s above the room's view", c.Higher, plural(c.Higher, "team sees itself", "teams see themselves"))
	}
	if c.Lower > 0 {
		s += fmt.Sprintf("; %d %s below it", c.Lower, plural(c.Lower, "team sees itself", "teams see themselves"))
	}
	if len(c.QAFirst) > 0 {
		first := make([]string, len(c.QAFirst))
		for i, id := range c.QAFirst {
			first[i] = mdText(names[id])
		}
		s += "; to discuss first: " + strings.Join(first, ", ")
	}
	return s + "."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// fmtLevel writes a median or mean: at most two decimals, no trailing
// zeros.
func fmtLevel(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// fmtGap writes a gap with its sign.
func fmtGap(g float64) string {
	if g > 0 {
		return "+" + fmtLevel(g)
	}
	return fmtLevel(g)
}

// histogramText writes a histogram as "1:3 2:5 3:0 4:1" (level:count).
func histogramText(h []int) string {
	parts := make([]string, len(h))
	for i, n := range h {
		parts[i] = fmt.Sprintf("%d:%d", i+1, n)
	}
	return strings.Join(parts, " ")
}
