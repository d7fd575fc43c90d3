package hub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// TestSecrecyOverTheWire sends random command sequences from random roles
// through real connections, with a marker in every rationale, draft and
// pending question, and checks every raw frame each client received: no
// frame reaches a client that may not see what it carries, not even
// inside an event the client ignores. Ground truth comes from the store's
// log afterwards.
func TestSecrecyOverTheWire(t *testing.T) {
	checkNoLeaks(t)
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { secrecyRun(t, seed, 300) })
	}
}

func secrecyRun(t *testing.T, seed uint64, steps int) {
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) {
		c.Limits.Commands = hub.Rate{Per: time.Microsecond, Burst: 100000}
		c.Limits.Questions = hub.Rate{Per: time.Microsecond, Burst: 100000}
		c.Limits.Votes = hub.Rate{Per: time.Microsecond, Burst: 100000}
		c.Limits.Hands = hub.Rate{Per: time.Microsecond, Burst: 100000}
	})
	rm := createRoom(t, srv.URL, map[string]any{"title": "Secrets", "teams": []string{"Red", "Blue"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	leads := []*hubtest.Client{
		dial(t, ctx, url, map[string]any{"key": rm.Teams[0].Key}),
		dial(t, ctx, url, map[string]any{"key": rm.Teams[1].Key}),
	}
	atts := []*hubtest.Client{
		dial(t, ctx, url, map[string]any{"name": "Ann"}),
		dial(t, ctx, url, map[string]any{"name": "Bob"}),
	}
	pres := dial(t, ctx, url, map[string]any{"key": rm.PresenterKey})
	aspects := []string{"investment", "adoption", "interfaces"}
	rng := rand.New(rand.NewPCG(seed, 99))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	question := func() string { return fmt.Sprintf("q%d", 1+rng.IntN(6)) }
	n := 0
	for range steps {
		n++
		var c *hubtest.Client
		var cmd map[string]any
		switch r := rng.IntN(10); {
		case r < 3: // a team lead drafts or submits
			i := rng.IntN(2)
			c = leads[i]
			kind := "S"
			typ := "submit"
			if rng.IntN(2) == 0 {
				kind, typ = "D", "save_draft"
			}
			cmd = map[string]any{"type": typ, "aspect": pick(aspects), "level": 1 + rng.IntN(4),
				"rationale": fmt.Sprintf("MK-%s-%d-%s", rm.Teams[i].ID, n, kind)}
		case r < 6: // the facilitator runs the room
			c = fac
			switch rng.IntN(9) {
			case 0:
				cmd = map[string]any{"type": "start"}
			case 1:
				cmd = map[string]any{"type": "goto_aspect", "aspect": pick(aspects)}
			case 2:
				cmd = map[string]any{"type": "call_turn"}
			case 3:
				cmd = map[string]any{"type": "reveal", "aspect": pick(aspects), "team": pick([]string{"", "t1", "t2"})}
			case 4:
				cmd = map[string]any{"type": "hide_reveal", "aspect": pick(aspects)}
			case 5:
				cmd = map[string]any{"type": "set_approve_first", "on": rng.IntN(2) == 0}
			case 6:
				cmd = map[string]any{"type": "approve_question", "question": question()}
			case 7:
				cmd = map[string]any{"type": "hide_question", "question": question()}
			case 8:
				cmd = map[string]any{"type": "restore_question", "question": question()}
			}
		default: // the audience
			c = atts[rng.IntN(2)]
			switch rng.IntN(4) {
			case 0, 1:
				cmd = map[string]any{"type": "ask", "text": fmt.Sprintf("MQ-%d question", n), "anonymous": rng.IntN(2) == 0}
			case 2:
				cmd = map[string]any{"type": "upvote", "question": question()}
			case 3:
				cmd = map[string]any{"type": "report", "question": question()}
			}
		}
		if _, err := c.Do(ctx, cmd); err != nil {
			t.Fatalf("step %d %v: %v", n, cmd, err)
		}
	}
	// Everyone has everything.
	head := fac.Seq()
	all := append([]*hubtest.Client{fac, pres}, append(leads, atts...)...)
	for _, c := range all {
		if err := c.WaitSeq(ctx, head); err != nil {
			t.Fatal(err)
		}
	}

	// Ground truth from the log.
	log, err := srv.store.Since(context.Background(), rm.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := srv.hub.LoadRoom(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	revealed := map[string]bool{} // rationales that were revealed at some point
	approved := map[string]bool{} // questions that were ever visible to everyone
	pending := 0
	for _, e := range log {
		for _, sc := range e.Scores {
			revealed[sc.Rationale] = true
		}
		if e.Question != nil {
			if !e.Question.Pending {
				approved[e.Question.Text] = true
			} else {
				pending++
			}
		}
	}
	secrets := []string{rm.FacilitatorKey, rm.PresenterKey, rm.Teams[0].Key, rm.Teams[1].Key,
		st.Secrets.ParticipantSecret, st.Secrets.FacilitatorKeyHash, st.Secrets.PresenterKeyHash,
		st.Secrets.TeamKeyHashes["t1"], st.Secrets.TeamKeyHashes["t2"]}
	type viewer struct {
		name   string
		c      *hubtest.Client
		team   string // the team whose markers it may see
		facil  bool
		pid    string
		hidden bool // may see pending questions of others
	}
	viewers := []viewer{
		{name: "facilitator", c: fac, facil: true, pid: "facilitator", hidden: true},
		{name: "presenter", c: pres},
		{name: "lead t1", c: leads[0], team: "t1", pid: "team:t1"},
		{name: "lead t2", c: leads[1], team: "t2", pid: "team:t2"},
		{name: "Ann", c: atts[0], pid: atts[0].Welcome().Participant},
		{name: "Bob", c: atts[1], pid: atts[1].Welcome().Participant},
	}
	mk := regexpMarkers()
	checked := 0
	for _, v := range viewers {
		for _, f := range v.c.Frames() {
			frame := string(f)
			for i, s := range secrets {
				// The facilitator's welcome hands it the presenter and
				// team keys (derived from its own); nothing else may.
				derived := i >= 1 && i <= 3
				if v.facil && derived && strings.HasPrefix(frame, `{"type":"welcome"`) {
					continue
				}
				if s != "" && strings.Contains(frame, s) {
					t.Fatalf("%s received a key or secret: %.300s", v.name, frame)
				}
			}
			for _, m := range mk.rationale.FindAllString(frame, -1) {
				checked++
				team := strings.Split(m, "-")[1]
				if team == v.team {
					continue
				}
				if strings.HasSuffix(m, "-D") {
					t.Fatalf("%s received a draft of team %s: %s", v.name, team, m)
				}
				if !revealed[m] {
					t.Fatalf("%s received an unrevealed rationale %s", v.name, m)
				}
			}
			for _, m := range mk.question.FindAllString(frame, -1) {
				checked++
				if v.hidden || approved[m] {
					continue
				}
				if !authoredBy(log, m, v.pid) {
					t.Fatalf("%s received a pending question of someone else: %s", v.name, m)
				}
			}
		}
	}
	if checked == 0 || len(revealed) == 0 {
		t.Fatalf("markers seen %d, reveals %d: the run exercised nothing", checked, len(revealed))
	}
	t.Logf("%d events, %d markers checked in frames, %d rationales revealed, %d questions posted pending", len(log), checked, len(revealed), pending)
}

type markers struct {
	rationale, question interface{ FindAllString(string, int) []string }
}

func regexpMarkers() markers {
	return markers{rationale: mustRegexp(`MK-t\d-\d+-[DS]`), question: mustRegexp(`MQ-\d+ question`)}
}

func authoredBy(log []room.Event, text, pid string) bool {
	for _, e := range log {
		if e.Question != nil && e.Question.Text == text {
			return e.Question.Author == pid
		}
	}
	return false
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }
