package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// mixed runs a Q&A: the reveal scenario's broadcast stream (-broadcasts
// at -rate) twice in one room, first alone (quiet), then in the middle of
// a storm in which every attendee upvotes the facilitator's question once
// and -askers of them ask a question first, spread over the vote window.
// Both streams are timed the same way; the storm's p99 should stay
// within twice the quiet one's.
//
// The quiet pass runs in the same room just before the storm, on the
// same attendees and connections, so that the storm is the only
// difference between the two: a room of its own would need a second set
// of joins beside the first on this two-core machine, or would measure
// other connections. What the quiet pass leaves behind (revealed scores)
// does not change what a later reveal costs.
func (b *bench) mixed(ctx context.Context) (*MixedResult, error) {
	cfg := b.cfg
	base := cfg.urls[0]
	br, err := b.newBroadcaster(ctx, "bench mixed", 2*cfg.broadcasts)
	if err != nil {
		return nil, err
	}
	defer br.close()
	// The votes go to one question of the facilitator's, so that its
	// count alone says whether each vote was counted once; the asked
	// questions are the storm's other traffic.
	a, err := br.facs[0].do(ctx, map[string]any{"type": "ask", "text": "Which aspect should we invest in next?"})
	if err != nil {
		return nil, err
	}
	question, _ := a.Result["question"].(string)

	at, err := b.join(ctx, "mixed", br.rm.ID, cfg.clients, 0, joinMode{record: true})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	pass := func() *RevealResult {
		return &RevealResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, Event: cfg.event, JoinErrors: at.errors}
	}
	res := &MixedResult{
		Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, JoinErrors: at.errors,
		Askers: min(cfg.askers, cfg.clients), Quiet: pass(), Storm: pass(),
		Votes: &VoteResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, WindowS: cfg.voteWindow.Seconds()},
	}
	time.Sleep(settleAfter)

	stop := b.progress("quiet", br.status(at))
	sends, err := br.stream(ctx, cfg.broadcasts, res.Quiet)
	err = errors.Join(err, b.deliveries(ctx, at, sends, res.Quiet))
	stop()
	if err != nil {
		return res, fmt.Errorf("quiet pass: %w", err)
	}

	// The stream sits in the middle of the vote window, so that each
	// broadcast goes out under the storm (all of them if the stream is
	// shorter than the window).
	start := time.Now().Add(spreadLead)
	streamFor := time.Duration(float64(cfg.broadcasts-1) / cfg.rate * float64(time.Second))
	streamAt := start.Add(max(cfg.voteWindow-streamFor, 0) / 2)
	type streamed struct {
		sends map[uint64]int64
		err   error
	}
	done := make(chan streamed, 1)
	go func() {
		if !sleepUntil(ctx, streamAt) {
			done <- streamed{err: ctx.Err()}
			return
		}
		s, err := br.stream(ctx, cfg.broadcasts, res.Storm)
		done <- streamed{s, err}
	}()
	o := b.voteOrder(question, start)
	o.Askers = res.Askers
	voted, voteErr := b.castVotes(ctx, "storm", at, o, res.Votes)
	st := <-done
	for _, r := range voted {
		res.Asked += r.Asked
	}
	if err := errors.Join(voteErr, st.err); err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	stop = b.progress("storm", br.status(at))
	err = b.deliveries(ctx, at, st.sends, res.Storm)
	stop()
	if err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	if q := res.Quiet.Latency.P99Ms; q > 0 {
		res.P99Ratio = res.Storm.Latency.P99Ms / q
	}
	counted, err := questionVotes(ctx, base, br.rm.ID, question)
	if err != nil {
		return res, err
	}
	_, err = b.awaitFinal(ctx, "storm", at, counted, res.Votes)
	return res, err
}
