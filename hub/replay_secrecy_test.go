package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// The rule these tests hold the server to, on raw frames: what a client
// gets when it resumes from any sequence k (on the instance that committed
// the events or on another, from memory or from the store) carries no
// secret that a fresh snapshot at the head would not show it. room's
// TestReplayProperty holds the domain to the same rule.

// replayMarkers are the markers of this test: rationales (RK-team-n-kind,
// kind D for a draft, S for a submission) and question texts (RQ-n-X).
var replayMarkers = regexp.MustCompile(`RK-t\d+-\d+-[DS]|RQ-\d+-X`)

var replayRationale = regexp.MustCompile(`^RK-(t\d+)-`)

// replayTarget is where the test runs its workshop and where it resumes.
type replayTarget struct {
	create  string   // base URL rooms are created and commands sent on
	resumes []string // base URLs resumes are tried on
	log     func(ctx context.Context, id string) ([]room.Event, error)
	restart func() []string // optional: restart and answer the new resume URLs
}

// TestResumeSecrecyEmbedded: one instance on the embedded store, resumes
// from memory (the actor's recent events) and, after a restart, from the
// store.
func TestResumeSecrecyEmbedded(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "", unlimited)
	tg := &replayTarget{create: srv.URL, resumes: []string{srv.URL},
		log: func(ctx context.Context, id string) ([]room.Event, error) { return srv.store.Since(ctx, id, 0) }}
	tg.restart = func() []string {
		addr := srv.addr
		srv.Stop()
		srv = startServer(t, dir, addr, unlimited)
		return []string{srv.URL}
	}
	for seed := uint64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { resumeSecrecyRun(t, tg, seed) })
	}
}

// TestResumeSecrecyRedis: two instances on one Redis; the workshop runs on
// the first, and clients resume on both (the second has no memory of the
// events: it reads them from the store).
func TestResumeSecrecyRedis(t *testing.T) {
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{hub: unlimited})
	tg := &replayTarget{create: nodes[0].URL, resumes: []string{nodes[0].URL, nodes[1].URL},
		log: func(ctx context.Context, id string) ([]room.Event, error) { return nodes[0].store.Since(ctx, id, 0) }}
	for seed := uint64(3); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { resumeSecrecyRun(t, tg, seed) })
	}
}

func unlimited(c *hub.Config) {
	r := hub.Rate{Per: time.Microsecond, Burst: 100000}
	c.Limits.Commands, c.Limits.Questions, c.Limits.Votes, c.Limits.Hands = r, r, r, r
}

// replayViewer is one audience that resumes: its hello without epoch and
// seq, and the team whose rationales it wrote.
type replayViewer struct {
	name  string
	hello map[string]any
	team  string
}

func resumeSecrecyRun(t *testing.T, tg *replayTarget, seed uint64) {
	ctx := testContext(t, 3*time.Minute)
	rm := createRoom(t, tg.create, map[string]any{"title": "Replays", "teams": []string{"Red", "Blue"}})
	url := wsURLOf(tg.create, rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	leads := []*hubtest.Client{
		dial(t, ctx, url, map[string]any{"key": rm.Teams[0].Key}),
		dial(t, ctx, url, map[string]any{"key": rm.Teams[1].Key}),
	}
	atts := []*hubtest.Client{
		dial(t, ctx, url, map[string]any{"name": "Ann"}),
		dial(t, ctx, url, map[string]any{"name": "Bob"}),
		dial(t, ctx, url, map[string]any{"name": "Cat"}),
		dial(t, ctx, url, map[string]any{"name": "Dan"}),
	}
	if _, err := fac.MustDo(ctx, map[string]any{"type": "start"}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	aspects := []string{"investment", "adoption"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	asked := 0
	question := func() string { return fmt.Sprintf("q%d", 1+rng.IntN(asked+1)) }
	n := 0
	for range 40 {
		// A round is a few commands from different clients sent at once,
		// so the actor commits several in one batch and a resume point can
		// fall in the middle of one.
		type job struct {
			c   *hubtest.Client
			cmd map[string]any
		}
		var round []job
		used := map[*hubtest.Client]bool{}
		for range 1 + rng.IntN(4) {
			n++
			var j job
			switch r := rng.IntN(12); {
			case r < 3:
				i := rng.IntN(2)
				kind, typ := "S", "submit"
				if rng.IntN(3) == 0 {
					kind, typ = "D", "save_draft"
				}
				j = job{leads[i], map[string]any{"type": typ, "aspect": pick(aspects), "level": 1 + rng.IntN(4),
					"rationale": fmt.Sprintf("RK-%s-%d-%s", rm.Teams[i].ID, n, kind)}}
			case r < 7:
				var cmd map[string]any
				switch rng.IntN(7) {
				case 0, 1:
					cmd = map[string]any{"type": "reveal", "aspect": pick(aspects), "team": pick([]string{"", "t1", "t2"})}
				case 2, 3:
					cmd = map[string]any{"type": "hide_reveal", "aspect": pick(aspects)}
				case 4:
					cmd = map[string]any{"type": "hide_question", "question": question()}
				case 5:
					cmd = map[string]any{"type": "restore_question", "question": question()}
				case 6:
					cmd = map[string]any{"type": "set_approve_first", "on": rng.IntN(3) == 0}
				}
				j = job{fac, cmd}
			default:
				c := atts[rng.IntN(len(atts))]
				switch rng.IntN(4) {
				case 0, 1:
					asked++
					j = job{c, map[string]any{"type": "ask", "text": fmt.Sprintf("RQ-%d-X", n), "anonymous": rng.IntN(2) == 0}}
				case 2:
					j = job{c, map[string]any{"type": "upvote", "question": question()}}
				case 3:
					j = job{c, map[string]any{"type": "report", "question": question()}}
				}
			}
			if !used[j.c] {
				used[j.c] = true
				round = append(round, j)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(round))
		for i, j := range round {
			wg.Go(func() { _, errs[i] = j.c.Do(ctx, j.cmd) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%v: %v", round[i].cmd, err)
			}
		}
	}
	head := fac.Seq()
	for _, c := range append([]*hubtest.Client{fac}, append(leads, atts...)...) {
		if err := c.WaitSeq(ctx, head); err != nil {
			t.Fatal(err)
		}
	}
	log, err := tg.log(ctx, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	takeBacks := 0
	for _, e := range log {
		if e.Type == room.EvQuestionHidden || e.Type == room.EvRevealHidden {
			takeBacks++
		}
	}
	if takeBacks == 0 {
		t.Fatalf("no question or reveal was hidden in %d events: the run tried nothing that matters", len(log))
	}
	epoch := fac.Epoch()
	keys := []string{rm.FacilitatorKey, rm.PresenterKey, rm.Teams[0].Key, rm.Teams[1].Key}
	viewers := []replayViewer{
		{name: "facilitator", hello: map[string]any{"key": rm.FacilitatorKey}},
		{name: "presenter", hello: map[string]any{"key": rm.PresenterKey}},
		{name: "lead t1", hello: map[string]any{"key": rm.Teams[0].Key}, team: "t1"},
		{name: "lead t2", hello: map[string]any{"key": rm.Teams[1].Key}, team: "t2"},
	}
	for _, a := range atts {
		w := a.Welcome()
		viewers = append(viewers, replayViewer{name: w.Name, hello: map[string]any{"participant": w.Participant, "token": w.Token, "name": w.Name}})
	}
	resumes := tg.resumes
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			if tg.restart == nil {
				break
			}
			resumes = tg.restart()
		}
		for _, base := range resumes {
			replays := 0
			wurl := wsURLOf(base, rm.ID)
			for _, v := range viewers {
				snapMsg := catchUp(t, ctx, wurl, v.hello)
				if snapMsg.Type != "snapshot" {
					t.Fatalf("%s: fresh hello answered %s, want a snapshot", v.name, snapMsg.Type)
				}
				allowed := markerSet(snapMsg.raw, v.team)
				var view room.State
				if err := json.Unmarshal(snapMsg.Room, &view); err != nil {
					t.Fatal(err)
				}
				for k := uint64(1); k < head; k++ {
					hello := map[string]any{"epoch": epoch, "seq": k}
					for key, val := range v.hello {
						hello[key] = val
					}
					m := catchUp(t, ctx, wurl, hello)
					for _, key := range keys {
						if bytes.Contains(m.raw, []byte(key)) {
							t.Fatalf("%s resuming from %d on %s: a key in %.300s", v.name, k, base, m.raw)
						}
					}
					for mk := range markerSet(m.raw, v.team) {
						if !allowed[mk] {
							t.Errorf("%s resuming from %d on %s: got %s, which its snapshot at %d does not show", v.name, k, base, mk, head)
						}
					}
					if m.Type != "events" {
						continue
					}
					replays++
					checkReplayLevels(t, v.name, k, m.Events, &view)
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			if replays == 0 {
				t.Fatalf("on %s every resume was answered with a snapshot: no replay was checked", base)
			}
			t.Logf("%s (pass %d): %d replays of up to %d events checked for %d viewers, %d take-backs", base, pass, replays, head, len(viewers), takeBacks)
		}
	}
}

// checkReplayLevels: every level a replay shows in a revealed event is the
// level the snapshot shows revealed.
func checkReplayLevels(t *testing.T, who string, k uint64, events []room.Event, view *room.State) {
	t.Helper()
	for _, e := range events {
		for _, sc := range e.Scores {
			if sc.Level == 0 {
				continue
			}
			a := view.Score(sc.Team, e.Aspect)
			if a == nil || !a.Revealed || a.Level != sc.Level {
				t.Errorf("%s resuming from %d: revealed #%d shows %s/%s at level %d, the snapshot shows %+v", who, k, e.Seq, sc.Team, e.Aspect, sc.Level, a)
			}
		}
	}
}

// markerSet are the markers in b that a viewer of team (or none) did not
// write.
func markerSet(b []byte, team string) map[string]bool {
	out := map[string]bool{}
	for _, m := range replayMarkers.FindAll(b, -1) {
		if sm := replayRationale.FindSubmatch(m); sm != nil && string(sm[1]) == team {
			continue
		}
		out[string(m)] = true
	}
	return out
}

// catchUpMsg is the message that answers a hello's epoch and seq: events
// or a snapshot, with its raw bytes.
type catchUpMsg struct {
	Type   string          `json:"type"`
	Room   json.RawMessage `json:"room"`
	Events []room.Event    `json:"events"`
	raw    []byte
}

// catchUp connects with hello and answers the first events or snapshot
// message, read from the raw frames.
func catchUp(t *testing.T, ctx context.Context, url string, hello map[string]any) catchUpMsg {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(32 << 20)
	h := map[string]any{"type": "hello"}
	for k, v := range hello {
		h[k] = v
	}
	b, _ := json.Marshal(h)
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("hello %v: read: %v", slices.Collect(mapKeys(hello)), err)
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			var m catchUpMsg
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("decode %.200s: %v", line, err)
			}
			if m.Type == "events" || m.Type == "snapshot" {
				m.raw = line
				conn.Close(websocket.StatusNormalClosure, "")
				return m
			}
		}
	}
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func wsURLOf(base, id string) string {
	return "ws" + base[len("http"):] + "/api/rooms/" + id + "/ws"
}
