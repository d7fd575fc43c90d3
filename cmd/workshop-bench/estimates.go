package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// estimateTeams is how many teams the estimates scenario's room has: a
// few, as a workshop would, of which the first is estimated.
const estimateTeams = 3

// estimateLevels is the top level attendees estimate at, 1 to it: the
// built-in PEMM model's four.
const estimateLevels = 4

// estimateLevel is the level attendee i estimates at: of every ten
// attendees by index, one at level 1, two at 2, four at 3 and three at 4,
// so that each level's count differs from the others' and the histogram
// the reveal must show is known exactly (expectedHistogram).
func estimateLevel(i int) int {
	switch r := i % 10; {
	case r < 1:
		return 1
	case r < 3:
		return 2
	case r < 7:
		return 3
	}
	return 4
}

// expectedHistogram is the histogram n attendees' estimates make:
// [i] estimates of level i+1.
func expectedHistogram(n int) []int {
	h := make([]int, estimateLevels)
	for i := range n {
		h[estimateLevel(i)-1]++
	}
	return h
}

// estimates runs the room's estimate at scale: a team lead has submitted
// a level, the facilitator opens estimating for that team, and every
// attendee estimates it once at the level of its index, spread over the
// estimate window and resent as the votes are. The count must be exact
// and reach every client; then the facilitator reveals, and every
// attendee must get the reveal with exactly the histogram the acks make,
// having seen no histogram before it. The acks' own histogram
// (AckedLevels) must be the expected one too, so that a refused estimate
// shows as such and not only as a wrong reveal.
func (b *bench) estimates(ctx context.Context) (*EstimateResult, error) {
	cfg := b.cfg
	base := cfg.urls[0]
	er, err := estimateRoom(ctx, base, "bench estimates")
	if err != nil {
		return nil, err
	}
	defer er.fac.close()

	at, err := b.join(ctx, "estimates", er.rm.ID, cfg.clients, 0, joinMode{record: true, estimates: true})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res := &EstimateResult{
		Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, JoinErrors: at.errors,
		Team: er.team, Aspect: er.aspect, Expected: expectedHistogram(cfg.clients),
		Votes:  &VoteResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, WindowS: cfg.estimateWindow.Seconds()},
		Reveal: &RevealResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, Event: "reveal"},
	}
	time.Sleep(settleAfter)

	o := order{
		Op: opVote, Team: er.team, Aspect: er.aspect, Total: cfg.clients,
		Start: time.Now().Add(spreadLead).UnixNano(), Window: int64(cfg.estimateWindow), Timeout: int64(cfg.deliveryWait),
	}
	voted, err := b.castVotes(ctx, "estimates", at, o, res.Votes)
	if err != nil {
		return res, err
	}
	acked := make([]int, estimateLevels)
	for _, r := range voted {
		for i, n := range r.AckedLevels {
			acked[i] += n
		}
	}
	counted, _, err := roomEstimate(ctx, base, er.rm.ID, er.team, er.aspect)
	if err != nil {
		return res, err
	}
	if _, err := b.awaitFinal(ctx, "estimates", at, counted, res.Votes); err != nil {
		return res, err
	}

	// The reveal: timed from its send to each attendee's revealed event,
	// whose histogram each worker checks.
	stop := b.progress("reveal", func() string {
		f := at.pool.figures()
		return fmt.Sprintf("%d/%d got the reveal, %d connected, %d dropped", f.Received, at.joined, f.Connected, f.Closed)
	})
	p, err := er.fac.send(ctx, map[string]any{"type": "reveal", "aspect": er.aspect, "team": er.team})
	var replies []reply
	if err == nil {
		var a answer
		if a, err = p.wait(ctx); err == nil {
			res.Reveal.Broadcasts = 1
			replies, err = b.latencies(ctx, at, order{Op: opLatency, Sends: map[uint64]int64{a.Seq: p.sent}, Histogram: res.Expected}, res.Reveal)
		}
	}
	stop()
	for _, r := range replies {
		res.HistogramWrong += r.HistogramWrong
		res.Leaks += r.Leaks
	}
	if err != nil {
		return res, fmt.Errorf("reveal: %w", err)
	}

	// The server's result after the reveal is the truth the clients got.
	_, res.Revealed, err = roomEstimate(ctx, base, er.rm.ID, er.team, er.aspect)
	if err != nil {
		return res, err
	}
	n := res.Attendees
	res.Exact = res.Votes.Counted == n && res.Votes.Acked == n && slices.Equal(acked, res.Expected) &&
		res.Revealed != nil && res.Revealed.Count == n && slices.Equal(res.Revealed.Histogram, res.Expected)
	return res, nil
}

// estimateSetup is the estimates scenario's room: its facilitator (the
// caller closes it) and the team and aspect open for estimates.
type estimateSetup struct {
	rm     createdRoom
	fac    *controller
	team   string
	aspect string
}

// estimateRoom creates a room at base with a few teams, starts it, has
// every team lead submit a level for the aspect under discussion (so
// that the reveal has the team's own level beside the room's estimate)
// and opens estimating for the first team.
func estimateRoom(ctx context.Context, base, title string) (estimateSetup, error) {
	var es estimateSetup
	teams := make([]string, estimateTeams)
	for i := range teams {
		teams[i] = "Team " + strconv.Itoa(i+1)
	}
	rm, err := createRoom(ctx, base, title, teams)
	if err != nil {
		return es, err
	}
	es.rm, es.team = rm, rm.Teams[0].ID
	fac, err := dialController(ctx, base, rm.ID, map[string]any{"key": rm.FacilitatorKey})
	if err != nil {
		return es, fmt.Errorf("facilitator: %w", err)
	}
	fail := func(err error) (estimateSetup, error) {
		fac.close()
		return es, err
	}
	if _, err := fac.do(ctx, map[string]any{"type": "start"}); err != nil {
		return fail(err)
	}
	pub, err := getRoom(ctx, base, rm.ID)
	if err != nil {
		return fail(err)
	}
	if n := len(pub.Model.Levels); n < estimateLevels {
		return fail(fmt.Errorf("the room's model has %d levels; the scenario estimates at 1 to %d", n, estimateLevels))
	}
	if pub.Aspect == "" {
		return fail(errors.New("no aspect under discussion after the start"))
	}
	es.aspect = pub.Aspect
	if err := submitScores(ctx, base, rm, []string{es.aspect}); err != nil {
		return fail(err)
	}
	if _, err := fac.do(ctx, map[string]any{"type": "open_estimates", "team": es.team}); err != nil {
		return fail(err)
	}
	es.fac = fac
	return es, nil
}

// roomEstimate reads the room's estimate of team on aspect from the
// server at base: its count, and its result once revealed (else nil).
func roomEstimate(ctx context.Context, base, roomID, team, aspect string) (int, *EstimateReveal, error) {
	pub, err := getRoom(ctx, base, roomID)
	if err != nil {
		return 0, nil, err
	}
	e := pub.Estimates[team][aspect]
	return e.Count, e.Result, nil
}
