package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// faultVictim is the index in -url and -server-pids of the instance the
// fault scenario kills: the second, so that the first, where the room is
// created and the facilitator sits, survives.
const faultVictim = 1

// fault runs the vote storm over two instances or more and kills one with
// SIGKILL, as a crash would, in the middle of the vote window. Its
// attendees connect again to the next instance that answers as the pages
// do, resume where they were, and resend a vote whose ack they did not
// get with the same id. No acknowledged vote may be lost, none may count
// twice, and every attendee must come to show the final count.
func (b *bench) fault(ctx context.Context) (*FaultResult, error) {
	cfg := b.cfg
	base := cfg.urls[0]
	rm, fac, question, err := voteRoom(ctx, base, "bench fault")
	if err != nil {
		return nil, err
	}
	defer fac.close()

	at, err := b.join(ctx, "fault", rm.ID, cfg.clients, 0, joinMode{reconnect: true})
	if err != nil {
		return nil, err
	}
	defer at.pool.stop()
	res := &FaultResult{
		Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, JoinErrors: at.errors,
		Killed: cfg.urls[faultVictim], KilledPID: cfg.pids[faultVictim],
		Votes: &VoteResult{Attendees: cfg.clients, Joined: at.joined, JoinFailed: at.failed, WindowS: cfg.voteWindow.Seconds()},
	}
	time.Sleep(settleAfter)

	start := time.Now().Add(spreadLead)
	killCtx, cancelKill := context.WithCancel(ctx)
	defer cancelKill()
	killed := make(chan time.Time, 1) // when the kill was sent; zero if it was not
	var killErr error
	go func() {
		if !sleepUntil(killCtx, start.Add(cfg.voteWindow/2)) {
			killErr = fmt.Errorf("not killed: %w", killCtx.Err())
			killed <- time.Time{}
			return
		}
		now := time.Now()
		if killErr = killProcess(res.KilledPID); killErr != nil {
			now = time.Time{}
		}
		killed <- now
	}()
	_, err = b.castVotes(ctx, "fault", at, b.voteOrder(question, start), res.Votes)
	if err != nil {
		cancelKill() // the storm failed before the kill: do not kill
	}
	killedAt := <-killed
	if err = errors.Join(err, killErr); err != nil {
		return res, err
	}
	res.KillAfterS = killedAt.Sub(start).Seconds()

	// The survivor's count is the truth; every attendee must come to show
	// it, those of the killed instance after their reconnect.
	counted, err := questionVotes(ctx, base, rm.ID, question)
	if err != nil {
		return res, err
	}
	lastReach, err := b.awaitFinal(ctx, "fault", at, counted, res.Votes)
	if lastReach > 0 && res.Votes.NotConverged == 0 {
		res.FinalAfterKillMs = float64(lastReach-killedAt.UnixNano()) / 1e6
	}
	res.NothingLost = res.Votes.Counted >= res.Votes.Acked
	res.CountedOnce = res.Votes.Counted <= at.joined
	replies, rerr := at.pool.ask(ctx, at.pool.each(func(int) order { return order{Op: opRejoins} }), orderMargin)
	var back []int64
	for _, r := range replies {
		res.Gaps += r.Gaps
		for _, j := range r.Rejoins {
			if j.URL != res.Killed {
				res.OtherDrops++
				continue
			}
			res.OnKilled++
			if j.BackAt > 0 {
				res.Reconnected++
				back = append(back, max(j.BackAt-killedAt.UnixNano(), 0)/1e3)
			}
		}
	}
	res.Back = latencyOf(back)
	return res, errors.Join(err, rerr)
}

// killProcess sends SIGKILL to pid.
func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}
