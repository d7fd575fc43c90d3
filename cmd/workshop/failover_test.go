//go:build linux

// Linux only: the instances are killed with their test (Pdeathsig), so a
// crashed test leaves no server behind.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/room"
)

// failoverProc is one workshop process of the failover test.
type failoverProc struct {
	t      *testing.T
	name   string
	addr   string
	base   string
	logf   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited is closed
}

// failoverStopTimeout bounds the wait for an instance to exit after
// SIGTERM. The server allows itself its shutdown grace (15 s by default)
// and then exits; this only catches one that hangs, so it is generous.
const failoverStopTimeout = time.Minute

// startFailoverProc runs the binary on a free port against Redis and waits
// until /readyz answers 200, within ctx. The process is stopped (SIGTERM,
// then SIGKILL) when the test ends.
func startFailoverProc(t *testing.T, ctx context.Context, bin, redisURL, name string) *failoverProc {
	t.Helper()
	var lastErr error
	for range 3 { // another process may take the free port first
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := &failoverProc{t: t, name: name, addr: addr, base: "http://" + addr,
			logf: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
		logFile, err := os.Create(p.logf)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "-redis-url", redisURL, "-addr", addr, "-instance", name, "-log-level", "debug")
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			logFile.Close()
			t.Fatal(err)
		}
		go func() {
			p.err = p.cmd.Wait()
			logFile.Close()
			close(p.exited)
		}()
		if lastErr = p.waitReady(ctx); lastErr == nil {
			t.Cleanup(p.stop)
			return p
		}
		p.kill()
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("instance %s did not start: %v", name, lastErr)
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits (its
// port may have been taken) or ctx ends.
func (p *failoverProc) waitReady(ctx context.Context) error {
	for failoverStatus(ctx, p.base+"/readyz") != http.StatusOK {
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v\n%s", p.err, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w\n%s", ctx.Err(), p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// kill sends SIGKILL, as a crash would, and waits for the process to end.
func (p *failoverProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop ends the process gracefully (SIGTERM) and fails the test if it does
// not stop cleanly; a killed process is only waited for.
func (p *failoverProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Errorf("instance %s: %v\n%s", p.name, p.err, p.logTail())
		}
	case <-time.After(failoverStopTimeout):
		p.t.Errorf("instance %s did not stop within %s of SIGTERM\n%s", p.name, failoverStopTimeout, p.logTail())
		p.kill()
	}
}

func (p *failoverProc) logTail() string {
	b, _ := os.ReadFile(p.logf)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (p *failoverProc) wsURL(id string) string { return "ws://" + p.addr + "/api/rooms/" + id + "/ws" }

func failoverStatus(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// failoverPeer is a test client with what it needs to reconnect elsewhere.
type failoverPeer struct {
	*hubtest.Client
	hello map[string]any // the credentials of the first hello
	onB   bool
}

// failoverTimeout only catches a hang: the scenario, build excluded,
// takes under a second, on a loaded 2-core machine too.
const failoverTimeout = 3 * time.Minute

// TestFailoverKillInstance runs a session on two workshop processes sharing
// Redis and kills one with SIGKILL in the middle of a burst of commands.
// Its clients reconnect to the survivor with their last state, epoch and
// sequence and get the missed events; nothing acknowledged is lost, every
// command whose answer was lost, retried with its id, is applied exactly
// once (an acknowledged one answers the same ack), and every client
// converges on the same state.
func TestFailoverKillInstance(t *testing.T) {
	bin := workshopBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), failoverTimeout)
	defer cancel()
	r := hubtest.StartRedis(t)
	a := startFailoverProc(t, ctx, bin, r.URL(), "a")
	b := startFailoverProc(t, ctx, bin, r.URL(), "b")

	body, _ := json.Marshal(map[string]any{"title": "Failover", "teams": []string{"Payments", "Search"}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/api/rooms", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rm hub.CreatedRoom
	err = json.NewDecoder(resp.Body).Decode(&rm)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create room: %d %v", resp.StatusCode, err)
	}

	var peers []*failoverPeer
	connect := func(onB bool, hello map[string]any) *failoverPeer {
		t.Helper()
		p := a
		if onB {
			p = b
		}
		c, err := hubtest.Dial(ctx, p.wsURL(rm.ID), hello)
		if err != nil {
			t.Fatalf("dial %s: %v", p.name, err)
		}
		t.Cleanup(c.Close)
		peer := &failoverPeer{Client: c, hello: hello, onB: onB}
		peers = append(peers, peer)
		return peer
	}
	fac := connect(false, map[string]any{"key": rm.FacilitatorKey})
	lead1 := connect(true, map[string]any{"key": rm.Teams[0].Key})
	lead2 := connect(false, map[string]any{"key": rm.Teams[1].Key})
	var atts []*failoverPeer
	for i := range 6 {
		atts = append(atts, connect(i%2 == 1, map[string]any{"name": fmt.Sprintf("Att%d", i)}))
	}
	for _, p := range atts {
		w := p.Welcome()
		p.hello = map[string]any{"participant": w.Participant, "token": w.Token, "name": w.Name}
	}
	waitSeq := func(seq uint64) {
		t.Helper()
		for i, p := range peers {
			if err := p.WaitSeq(ctx, seq); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
	}
	step := func(p *failoverPeer, cmd map[string]any) hubtest.Reply {
		t.Helper()
		rep, err := p.MustDo(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		waitSeq(rep.Seq)
		return rep
	}
	step(lead1, map[string]any{"type": "submit", "aspect": "investment", "level": 3, "rationale": "dedicated team"})
	step(lead2, map[string]any{"type": "submit", "aspect": "investment", "level": 2, "rationale": "as product"})
	step(fac, map[string]any{"type": "start"})
	step(fac, map[string]any{"type": "call_turn"})
	step(fac, map[string]any{"type": "reveal", "team": "t1"})
	// An ask acknowledged by b, to be retried on a after the kill.
	acked, err := atts[1].DoID(ctx, "acked-ask", map[string]any{"type": "ask", "text": "acknowledged by b"})
	if err != nil || !acked.OK() {
		t.Fatalf("ask on b: %+v %v", acked, err)
	}
	waitSeq(acked.Seq)
	qid, _ := acked.Result["question"].(string)

	// The burst: clients on both instances upvote, ask and save drafts, a
	// few milliseconds apart; b is killed once three of its clients'
	// commands are acknowledged.
	type sent struct {
		p   *failoverPeer
		id  string
		cmd map[string]any
	}
	var burst []sent
	for i, p := range atts {
		burst = append(burst, sent{p, "up", map[string]any{"type": "upvote", "question": qid}})
		burst = append(burst, sent{p, "ask", map[string]any{"type": "ask", "text": fmt.Sprintf("burst question %d", i)}})
	}
	for _, aspect := range []string{"adoption", "interfaces", "operations", "measurement"} {
		burst = append(burst, sent{lead1, "draft-" + aspect, map[string]any{"type": "save_draft", "aspect": aspect, "level": 2, "rationale": "burst draft"}})
	}
	var mu sync.Mutex
	answered := map[int]hubtest.Reply{}
	onB := 0 // b's answers
	enough, killed := make(chan struct{}), make(chan struct{})
	var enoughOnce sync.Once
	// The last command of one of b's clients goes out at the kill: its
	// ack is lost with b, or never written.
	lostHand := map[string]any{"type": "raise_hand"}
	go func() {
		defer close(killed)
		select {
		case <-enough:
		case <-ctx.Done():
		}
		if err := atts[3].SendRaw(ctx, map[string]any{"id": "lost-hand", "type": "raise_hand"}); err != nil {
			t.Errorf("send at the kill: %v", err)
		}
		b.kill()
	}()
	var wg sync.WaitGroup
	for i, s := range burst {
		if s.p == atts[1] && s.id == "up" {
			continue // its author; the others vote
		}
		wg.Go(func() {
			rep, err := s.p.DoID(ctx, s.id, s.cmd)
			if err != nil {
				return // the connection died with b: answer unknown
			}
			mu.Lock()
			answered[i] = rep
			if s.p.onB {
				onB++
			}
			n := onB
			mu.Unlock()
			if !rep.OK() {
				t.Errorf("burst %s %v: %s %s", s.id, s.cmd, rep.Code, rep.Message)
			}
			if n >= 3 {
				enoughOnce.Do(func() { close(enough) })
			}
		})
		time.Sleep(3 * time.Millisecond)
	}
	enoughOnce.Do(func() { close(enough) })
	wg.Wait()
	<-killed
	t.Logf("%d of %d burst commands answered, %d of them by b before its kill", len(answered), len(burst)-1, onB)

	// b's clients lose their connection; a's keep theirs.
	var moved []*failoverPeer
	for i, p := range peers {
		if !p.onB {
			if err := p.CloseErr(); err != nil {
				t.Fatalf("client %d on a lost its connection: %v", i, err)
			}
			continue
		}
		// The kernel closes a killed process's sockets at once.
		if err := p.WaitClosed(ctx); ctx.Err() != nil {
			t.Fatalf("client %d on b still connected after the kill: %v", i, err)
		}
		moved = append(moved, p)
	}
	// They reconnect to a with what they had.
	for _, p := range moved {
		st, epoch := p.State(), p.Epoch()
		hello := map[string]any{"epoch": epoch, "seq": st.Seq}
		for k, v := range p.hello {
			hello[k] = v
		}
		c, err := hubtest.Resume(ctx, a.wsURL(rm.ID), hello, st)
		if err != nil {
			t.Fatalf("resume on a: %v", err)
		}
		t.Cleanup(c.Close)
		if c.Snapshots() != 0 || c.Welcome().Participant != p.Welcome().Participant {
			t.Fatalf("resume: %d snapshots (want 0), participant %q (want %q)", c.Snapshots(), c.Welcome().Participant, p.Welcome().Participant)
		}
		p.Client, p.onB = c, false
	}

	// Retries with the same ids: each applied once; answers that were
	// given are given again.
	retry := func(p *failoverPeer, id string, cmd map[string]any) hubtest.Reply {
		t.Helper()
		rep, err := p.DoID(ctx, id, cmd)
		if err != nil || !rep.OK() {
			t.Fatalf("retry %s %v: %+v %v", id, cmd, rep, err)
		}
		return rep
	}
	again := retry(atts[1], "acked-ask", map[string]any{"type": "ask", "text": "acknowledged by b"})
	if again.Seq != acked.Seq || again.Result["question"] != qid {
		t.Errorf("retried ask answered %+v, want %+v", again, acked)
	}
	for i, s := range burst {
		if s.p == atts[1] && s.id == "up" {
			continue
		}
		rep := retry(s.p, s.id, s.cmd)
		if first, ok := answered[i]; ok && (rep.Seq != first.Seq || fmt.Sprint(rep.Result) != fmt.Sprint(first.Result)) {
			t.Errorf("retry of %s %v answered %+v, first %+v", s.id, s.cmd, rep, first)
		}
	}
	hand := retry(atts[3], "lost-hand", lostHand)
	last := step(fac, map[string]any{"type": "add_action", "text": "after the failover"})
	if hand.Seq > last.Seq {
		t.Fatalf("hand at %d after the last ack %d", hand.Seq, last.Seq)
	}

	// Everything once, and everyone agrees.
	st := fac.State()
	q, ok := st.Question(qid)
	if !ok || q.Votes != len(atts)-1 {
		t.Errorf("question %s: %+v, want %d votes", qid, q, len(atts)-1)
	}
	for i := range atts {
		n := 0
		for _, q := range st.Questions {
			if q.Text == fmt.Sprintf("burst question %d", i) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("burst question %d is in the room %d times, want once", i, n)
		}
	}
	if len(st.Questions) != len(atts)+1 {
		t.Errorf("%d questions, want %d", len(st.Questions), len(atts)+1)
	}
	if len(st.Hands) != 1 || st.Hands[0].Participant != atts[3].Welcome().Participant {
		t.Errorf("hands: %+v, want one of %s", st.Hands, atts[3].Welcome().Participant)
	}
	for _, aspect := range []string{"adoption", "interfaces", "operations", "measurement"} {
		if sc := lead1.State().Score("t1", aspect); sc == nil || sc.DraftLevel != 2 {
			t.Errorf("team 1 draft of %s: %+v", aspect, sc)
		}
	}
	want := failoverProjection(st)
	for i, p := range peers {
		if p.Gaps() != 0 {
			t.Errorf("client %d saw %d gaps", i, p.Gaps())
		}
		if got := failoverProjection(p.State()); got != want {
			t.Errorf("client %d diverged:\n got %s\nwant %s", i, got, want)
		}
	}
	// The survivor serves the same room to a newcomer.
	late, err := hubtest.Dial(ctx, a.wsURL(rm.ID), map[string]any{"name": "Late"})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if got := failoverProjection(late.State()); got != want {
		t.Errorf("newcomer:\n got %s\nwant %s", got, want)
	}
}

// failoverProjection is what every audience shares of a room.
func failoverProjection(s *room.State) string {
	type q struct {
		ID, Text string
		Votes    int
	}
	var qs []q
	for _, x := range s.Questions {
		qs = append(qs, q{x.ID, x.Text, x.Votes})
	}
	revealed := map[string]int{}
	for team, by := range s.Scores {
		for aspect, a := range by {
			if a.Revealed {
				revealed[team+"/"+aspect] = a.Level
			}
		}
	}
	b, _ := json.Marshal(map[string]any{"seq": s.Seq, "phase": s.Phase, "turn": s.Turn, "questions": qs,
		"revealed": revealed, "hands": len(s.Hands), "actions": s.Actions})
	return string(b)
}
