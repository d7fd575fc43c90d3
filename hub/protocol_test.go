package hub_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/room"
)

// TestProtocolDocumented keeps PROTOCOL.md true: every message type,
// command, event, error code and close code in the code is documented in
// its section, and nothing documented there is missing from the code.
func TestProtocolDocumented(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := splitSections(string(doc))
	heading := regexp.MustCompile("(?m)^#### `([a-z_]+)`")
	firstCell := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	closeCell := regexp.MustCompile(`(?m)^\| (\d{4}) \|`)
	all := func(re *regexp.Regexp, text string) []string {
		var out []string
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
		return out
	}
	var closeCodes []string
	for _, c := range hub.CloseCodes {
		closeCodes = append(closeCodes, strconv.Itoa(int(c)))
	}
	checks := []struct {
		name    string
		section string
		re      *regexp.Regexp
		code    []string
	}{
		{"client messages", "### Client to server", heading, hub.ClientMessageTypes},
		{"commands", "#### Commands", firstCell, room.CommandTypes},
		{"server messages", "### Server to client", heading, hub.ServerMessageTypes},
		{"events", "### Events", firstCell, room.EventTypes},
		{"error codes", "## Error codes", firstCell, hub.ErrorCodes},
		{"close codes", "## Close codes", closeCell, closeCodes},
	}
	for _, c := range checks {
		text, ok := sections[c.section]
		if !ok {
			t.Errorf("%s: PROTOCOL.md has no section %q", c.name, c.section)
			continue
		}
		documented := all(c.re, text)
		if len(documented) == 0 {
			t.Errorf("%s: nothing documented under %q", c.name, c.section)
		}
		for _, x := range c.code {
			if !slices.Contains(documented, x) {
				t.Errorf("%s: %q is in the code but not documented under %q", c.name, x, c.section)
			}
		}
		for _, x := range documented {
			if !slices.Contains(c.code, x) {
				t.Errorf("%s: %q is documented under %q but not in the code", c.name, x, c.section)
			}
		}
	}
}

// splitSections maps each heading line to the text up to the next heading
// of the same or a higher level.
func splitSections(doc string) map[string]string {
	lines := strings.Split(doc, "\n")
	out := map[string]string{}
	level := func(l string) int { return len(l) - len(strings.TrimLeft(l, "#")) }
	for i, l := range lines {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		n := level(l)
		var body []string
		for _, m := range lines[i+1:] {
			if strings.HasPrefix(m, "#") && level(m) <= n {
				break
			}
			body = append(body, m)
		}
		out[strings.TrimSpace(l)] = strings.Join(body, "\n")
	}
	return out
}
