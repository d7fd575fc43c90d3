package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// The room's estimate over real WebSockets: estimates reach attendees and
// team leads as tallies of counts, the facilitator as events of counts,
// and nobody (the facilitator included) gets another's estimate or any
// distribution before the reveal, live, on a resume or in a snapshot; the
// reveal brings the same histogram to everyone.

func TestEstimatesOverTheWire(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "", unlimited, func(c *hub.Config) { c.TallyInterval = 50 * time.Millisecond })
	testEstimates(t, ctx, srv.URL, srv.URL)
}

// TestEstimatesOverTheWireRedis: the same over two instances on one Redis,
// estimators on both.
func TestEstimatesOverTheWireRedis(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 90*time.Second)
	r := hubtest.StartRedis(t)
	nodes := startNodes(t, r, 2, nodeOptions{hub: func(c *hub.Config) { unlimited(c); c.TallyInterval = 50 * time.Millisecond }})
	testEstimates(t, ctx, nodes[0].URL, nodes[1].URL)
}

func testEstimates(t *testing.T, ctx context.Context, base1, base2 string) {
	rm := createRoom(t, base1, map[string]any{"title": "Estimates", "teams": []string{"Red", "Blue", "Green"}})
	url1, url2 := wsURLOf(base1, rm.ID), wsURLOf(base2, rm.ID)
	fac := dial(t, ctx, url1, map[string]any{"key": rm.FacilitatorKey})
	pres := dial(t, ctx, url2, map[string]any{"key": rm.PresenterKey})
	red := dial(t, ctx, url1, map[string]any{"key": rm.Teams[0].Key})
	blue := dial(t, ctx, url2, map[string]any{"key": rm.Teams[1].Key})
	green := dial(t, ctx, url1, map[string]any{"key": rm.Teams[2].Key})
	do(t, ctx, red, map[string]any{"type": "submit", "aspect": "investment", "level": 1, "rationale": "Just starting"})
	do(t, ctx, fac, map[string]any{"type": "set_estimate_each_turn", "on": true})
	do(t, ctx, fac, map[string]any{"type": "start"})
	// Red's turn opens estimating for Red.
	turn := do(t, ctx, fac, map[string]any{"type": "call_turn"})
	var atts []*hubtest.Client
	for i := range 8 {
		url := url1
		if i%2 == 1 {
			url = url2
		}
		atts = append(atts, dial(t, ctx, url, map[string]any{"name": fmt.Sprintf("Attendee %d", i)}))
	}
	for _, c := range append([]*hubtest.Client{pres, red, atts[0]}, atts[7]) {
		if err := c.WaitState(ctx, func(s *room.State) bool { e := s.Estimation("t1", "investment"); return e != nil && e.Open }); err != nil {
			t.Fatalf("estimating Red never showed open (turn at %d): %v", turn.Seq, err)
		}
	}
	// Red may not estimate itself; Blue and Green may.
	if r, err := red.Do(ctx, map[string]any{"type": "estimate", "team": "t1", "level": 2}); err != nil || r.Code != room.EFORBIDDEN {
		t.Fatalf("Red estimating itself: got %+v %v, want forbidden", r, err)
	}
	levels := map[string]int{} // participant -> final level
	estimate := func(c *hubtest.Client, level int) {
		t.Helper()
		r := do(t, ctx, c, map[string]any{"type": "estimate", "team": "t1", "level": level})
		if r.Result["level"] != float64(level) || r.Result["team"] != "t1" {
			t.Fatalf("ack of an estimate: got %v, want its own level %d", r.Result, level)
		}
		levels[c.Welcome().Participant] = level
	}
	estimate(blue, 3)
	estimate(green, 4)
	for i, a := range atts[:6] {
		estimate(a, 1+i%4)
	}
	// Attendee 6 leaves before the storm's end and resumes after it;
	// attendee 0 changes its mind; a late attendee joins with a snapshot.
	away := atts[6]
	if err := away.WaitState(ctx, func(s *room.State) bool { return s.Estimation("t1", "investment").Count >= 1 }); err != nil {
		t.Fatal(err)
	}
	awayState, awayEpoch, awayWelcome := away.State(), away.Epoch(), away.Welcome()
	away.Close()
	estimate(atts[0], 4)
	estimate(atts[7], 2)
	last := do(t, ctx, fac, map[string]any{"type": "set_note", "text": "estimating"})
	back, err := hubtest.Resume(ctx, url2, map[string]any{"participant": awayWelcome.Participant, "token": awayWelcome.Token, "epoch": awayEpoch, "seq": awayState.Seq}, awayState)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.Close)
	late := dial(t, ctx, url1, map[string]any{"participant": atts[3].Welcome().Participant, "token": atts[3].Welcome().Token})
	// The other connections of the same participant, whose estimates
	// each may see.
	sameAs := func(c *hubtest.Client) []*hubtest.Client {
		switch c {
		case late:
			return []*hubtest.Client{atts[3]}
		case atts[3]:
			return []*hubtest.Client{late}
		case back:
			return []*hubtest.Client{away}
		case away:
			return []*hubtest.Client{back}
		}
		return nil
	}
	everyone := append([]*hubtest.Client{fac, pres, red, blue, green, back, late}, slices.Delete(slices.Clone(atts), 6, 7)...)
	for i, c := range everyone {
		if err := c.WaitSeq(ctx, last.Seq); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		e := c.State().Estimation("t1", "investment")
		if e == nil || e.Count != len(levels) || e.Result != nil {
			t.Fatalf("client %d before the reveal: got %+v, want %d estimates counted and no result", i, e, len(levels))
		}
		self := c.Welcome().Participant
		if c == red || c == blue || c == green {
			self = "team:" + c.Welcome().Team
		}
		if want, ok := levels[self]; ok && e.Levels[self] != want {
			t.Errorf("client %d before the reveal: got its own estimate %d, want %d", i, e.Levels[self], want)
		}
	}
	if back.Snapshots() != 0 || late.Snapshots() != 1 {
		t.Fatalf("paths: the resumed client got %d snapshots (want 0: a replay of events), the late one %d (want 1)", back.Snapshots(), late.Snapshots())
	}
	// Every frame so far, on every path: no distribution and nobody
	// else's estimate.
	for i, c := range append(everyone, away) {
		checkEstimateFrames(t, fmt.Sprintf("client %d", i), c, true, sameAs(c)...)
	}

	rev := do(t, ctx, fac, map[string]any{"type": "reveal", "team": "t1"})
	want := []int{0, 0, 0, 0}
	for _, l := range levels {
		want[l-1]++
	}
	for i, c := range everyone {
		if err := c.WaitSeq(ctx, rev.Seq); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		e := c.State().Estimation("t1", "investment")
		if e == nil || e.Open || !e.Revealed || e.Result == nil || !slices.Equal(e.Result.Histogram, want) || e.Result.Count != len(levels) || e.Result.Self != 1 {
			t.Fatalf("client %d after the reveal: got %+v (%+v), want histogram %v of %d and Red's own level 1", i, e, e.Result, want, len(levels))
		}
		checkEstimateFrames(t, fmt.Sprintf("client %d after the reveal", i), c, false, sameAs(c)...)
	}
	if r, err := atts[1].Do(ctx, map[string]any{"type": "estimate", "team": "t1", "level": 1}); err != nil || r.Code != room.ECONFLICT {
		t.Fatalf("estimate after the reveal: got %+v %v, want conflict", r, err)
	}
}

// checkEstimateFrames checks every frame c received: no estimate but its
// participant's own (the acks of c and of sameParticipant, its other
// connections, say which) in any snapshot, event, tally or ack, and, when
// beforeReveal, no histogram, median or mean anywhere.
func checkEstimateFrames(t *testing.T, who string, c *hubtest.Client, beforeReveal bool, sameParticipant ...*hubtest.Client) {
	t.Helper()
	self := c.Welcome().Participant
	if c.Welcome().Team != "" {
		self = "team:" + c.Welcome().Team
	}
	fac := c.Welcome().Role == string(room.RoleFacilitator)
	// The estimates c made itself, from its acks: the only levels it may
	// see before the reveal.
	lines := func(c *hubtest.Client) [][]byte {
		var out [][]byte // frames written together are one frame of lines
		for _, f := range c.Frames() {
			for line := range bytes.SplitSeq(f, []byte("\n")) {
				if len(bytes.TrimSpace(line)) > 0 {
					out = append(out, line)
				}
			}
		}
		return out
	}
	msgs := lines(c)
	acks := slices.Clone(msgs)
	for _, o := range sameParticipant {
		acks = append(acks, lines(o)...)
	}
	mine := map[string]map[int]bool{}
	for _, f := range acks {
		var ack struct {
			Type   string `json:"type"`
			Result struct {
				Team  string `json:"team"`
				Level int    `json:"level"`
			} `json:"result"`
		}
		if json.Unmarshal(f, &ack) == nil && ack.Type == "ack" && ack.Result.Level > 0 {
			if mine[ack.Result.Team] == nil {
				mine[ack.Result.Team] = map[int]bool{}
			}
			mine[ack.Result.Team][ack.Result.Level] = true
		}
	}
	for _, f := range msgs {
		if beforeReveal {
			for _, k := range []string{`"histogram"`, `"median"`, `"mean"`, `"gap"`, `"flagged"`} {
				if bytes.Contains(f, []byte(k)) {
					t.Fatalf("%s: got %s before the reveal in %s", who, k, f)
				}
			}
		}
		var msg struct {
			Type      string               `json:"type"`
			Room      *room.State          `json:"room"`
			Events    []room.Event         `json:"events"`
			Estimates []room.EstimateCount `json:"estimates"`
		}
		if err := json.Unmarshal(f, &msg); err != nil {
			t.Fatalf("%s: frame %s: %v", who, f, err)
		}
		if msg.Room != nil {
			for team, byAspect := range msg.Room.Estimates {
				for aspect, e := range byAspect {
					for p, l := range e.Levels {
						if p != self || fac || !mine[team][l] {
							t.Fatalf("%s: snapshot: estimation %s/%s holds %s's estimate %d", who, team, aspect, p, l)
						}
					}
				}
			}
		}
		for _, e := range msg.Events {
			if e.Type == room.EvEstimated && (e.Participant != "" && (e.Participant != self || !mine[e.Team][e.Level]) || e.Participant == "" && e.Level != 0) {
				t.Fatalf("%s: estimated #%d carries %q's level %d", who, e.Seq, e.Participant, e.Level)
			}
		}
		if msg.Type == "tally" {
			for _, e := range msg.Estimates {
				if e.Level != 0 && (fac || !mine[e.Team][e.Level]) {
					t.Fatalf("%s: tally carries a level %d of %s", who, e.Level, e.Team)
				}
			}
		}
	}
}
