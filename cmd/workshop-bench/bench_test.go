package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
)

// TestMain lets the test binary serve as the bench's worker process: the
// coordinator under test re-executes its own executable, which is this one.
func TestMain(m *testing.M) {
	if lifetime, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(workerMain(lifetime, os.Stdin, os.Stdout, os.Stderr))
	}
	code := m.Run()
	if serverBuild.dir != "" {
		os.RemoveAll(serverBuild.dir)
	}
	os.Exit(code)
}

// startServer runs a real hub on the embedded store in this process,
// served on listeners loopback listeners (several listeners stand for
// several instances of one room). The attendees are in worker processes.
func startServer(t *testing.T, listeners int) []string {
	t.Helper()
	bus := hub.NewLocalBus()
	store, err := hub.OpenBoltStore(t.TempDir(), bus)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{Store: store, Bus: bus, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := hub.NewServer(h, hub.HTTPConfig{})
	var urls []string
	var servers []*http.Server
	for range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		servers = append(servers, srv)
		urls = append(urls, "http://"+ln.Addr().String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(ctx)
		}
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		_ = store.Close()
		_ = bus.Close()
	})
	return urls
}

// runBench runs the tool with args and decodes its JSON report.
func runBench(t *testing.T, args ...string) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append(args, "-json"), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	return rep
}

// TestAllScenarios runs every scenario with a few attendees spread over
// three workers and two listeners, and checks the counts (never timings).
func TestAllScenarios(t *testing.T) {
	const clients, broadcasts = 20, 6
	urls := startServer(t, 2)
	rep := runBench(t,
		"-url", strings.Join(urls, ","), "-scenario", "all", "-clients", strconv.Itoa(clients), "-per-worker", "8",
		"-broadcasts", strconv.Itoa(broadcasts), "-rate", "50", "-join-window", "200ms", "-vote-window", "200ms",
		"-idle-settle", "0s", "-server-pids", strconv.Itoa(os.Getpid()))

	if len(rep.Errors) > 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	if x := rep.Idle; x == nil || x.Joined != clients || x.RSSAfter <= 0 || x.Note != "" {
		t.Errorf("idle: got %+v, want %d joined and a memory reading", x, clients)
	}
	if x := rep.Joins; x == nil || x.Joined != clients || x.Failed != 0 || x.Join.N != clients {
		t.Errorf("joins: got %+v, want %d joined, none failed", x, clients)
	}
	if x := rep.Reveal; x == nil || x.Joined != clients || x.Broadcasts != broadcasts ||
		x.Deliveries != clients*broadcasts || x.Missed != 0 || x.Latency.N != clients*broadcasts {
		t.Errorf("reveal: got %+v, want %d deliveries, none missed", x, clients*broadcasts)
	}
	if x := rep.Votes; x == nil || x.Joined != clients || x.Acked != clients || x.Rejected != 0 ||
		x.Counted != clients || !x.ExactlyOnce || x.NotConverged != 0 || x.FramesMin < 1 {
		t.Errorf("votes: got %+v, want %d votes counted once and shown everywhere", x, clients)
	}
}

// TestHighlights runs the fan-out with highlights instead of reveals.
func TestHighlights(t *testing.T) {
	const clients, broadcasts = 5, 4
	urls := startServer(t, 1)
	rep := runBench(t, "-url", urls[0], "-scenario", "reveal", "-event", "highlight",
		"-clients", strconv.Itoa(clients), "-broadcasts", strconv.Itoa(broadcasts), "-rate", "50")
	if x := rep.Reveal; x == nil || x.Event != "highlight" || x.Deliveries != clients*broadcasts || x.Missed != 0 {
		t.Errorf("reveal: got %+v, want %d highlight deliveries, none missed", x, clients*broadcasts)
	}
}

// TestHostileResume runs the reveal beside one attendee flooding resumes:
// every attendee still gets every reveal, and the flood is refused past
// its burst (counts, never timings).
func TestHostileResume(t *testing.T) {
	const clients, broadcasts = 5, 4
	urls := startServer(t, 1)
	rep := runBench(t, "-url", urls[0], "-scenario", "hostile-resume",
		"-clients", strconv.Itoa(clients), "-broadcasts", strconv.Itoa(broadcasts), "-rate", "50")
	x := rep.HostileResume
	if x == nil || x.Deliveries != clients*broadcasts || x.Missed != 0 || x.Dropped != 0 {
		t.Fatalf("hostile-resume: got %+v, want %d deliveries, none missed or dropped", x, clients*broadcasts)
	}
	h := x.Hostile
	if h == nil || h.Err != "" || h.Answers["error rate_limited"] < 1 || h.Answers["snapshot"] < 1 ||
		h.Sent < int64(h.Answers["error rate_limited"]+h.Answers["snapshot"]) {
		t.Fatalf("hostile: got %+v, want resumes sent, some served with a snapshot and some refused", h)
	}
	var out bytes.Buffer
	if err := rep.writeTable(&out); err != nil || !strings.Contains(out.String(), "hostile resumes written") {
		t.Errorf("table: %v\n%s", err, out.String())
	}
}

// TestMixed runs the Q&A over two listeners: the broadcast stream alone
// and during the storm must each reach every attendee, every vote must be
// counted once and every question acked (counts, never timings).
func TestMixed(t *testing.T) {
	const clients, askers, broadcasts = 20, 5, 4
	urls := startServer(t, 2)
	rep := runBench(t, "-url", strings.Join(urls, ","), "-scenario", "mixed", "-clients", strconv.Itoa(clients),
		"-per-worker", "8", "-askers", strconv.Itoa(askers), "-broadcasts", strconv.Itoa(broadcasts), "-rate", "50",
		"-vote-window", "300ms")
	x := rep.Mixed
	if x == nil {
		t.Fatalf("mixed: no result; errors %v", rep.Errors)
	}
	for name, pass := range map[string]*RevealResult{"quiet": x.Quiet, "storm": x.Storm} {
		if pass.Broadcasts != broadcasts || pass.Deliveries != clients*broadcasts || pass.Missed != 0 {
			t.Errorf("%s: got %+v, want %d deliveries, none missed", name, pass, clients*broadcasts)
		}
	}
	if want := x.Storm.Latency.P99Ms / x.Quiet.Latency.P99Ms; x.P99Ratio != want {
		t.Errorf("p99 ratio: got %v, want %v", x.P99Ratio, want)
	}
	if x.Askers != askers || x.Asked != askers {
		t.Errorf("questions: got %d of %d asked, want %d", x.Asked, x.Askers, askers)
	}
	if v := x.Votes; v.Acked != clients || v.Rejected != 0 || v.Counted != clients || !v.ExactlyOnce || v.NotConverged != 0 || v.FramesMin < 1 || v.BytesMean <= 0 {
		t.Errorf("votes: got %+v, want %d votes counted once, shown everywhere, frames and bytes counted", v, clients)
	}
	var out bytes.Buffer
	if err := rep.writeTable(&out); err != nil || !strings.Contains(out.String(), "storm p99 / quiet p99") {
		t.Errorf("table: %v\n%s", err, out.String())
	}
}

// TestEstimates runs the room's estimate over two listeners: every
// estimate counted once at its level, the count shown everywhere, the
// reveal with the expected histogram at every attendee and no histogram
// before it (counts, never timings).
func TestEstimates(t *testing.T) {
	const clients = 20
	urls := startServer(t, 2)
	rep := runBench(t, "-url", strings.Join(urls, ","), "-scenario", "estimates", "-clients", strconv.Itoa(clients),
		"-per-worker", "8", "-estimate-window", "300ms")
	checkEstimates(t, rep, clients)
	var out bytes.Buffer
	if err := rep.writeTable(&out); err != nil || !strings.Contains(out.String(), "[2 4 8 6] / [2 4 8 6]") {
		t.Errorf("table: %v\n%s", err, out.String())
	}
}

// TestEstimatesRedis runs the room's estimate over two real instances
// on one real redis-server, as bench.sh -redis does, so that half the
// estimates and the reveal reach half the attendees through Redis.
func TestEstimatesRedis(t *testing.T) {
	const clients = 20
	redis := hubtest.StartRedis(t) // first: without redis-server the test skips (fails under CI=true) before building
	bin := serverBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a := startInstance(t, ctx, bin, redis.URL(), "a")
	b := startInstance(t, ctx, bin, redis.URL(), "b")
	rep := runBench(t, "-url", a.base+","+b.base, "-scenario", "estimates", "-clients", strconv.Itoa(clients),
		"-per-worker", "8", "-estimate-window", "500ms")
	checkEstimates(t, rep, clients)
}

// checkEstimates checks an estimates run of clients attendees: every
// estimate acked and counted once at its level, every client showing the
// count, every attendee given the reveal with the expected histogram, and
// no histogram before it.
func checkEstimates(t *testing.T, rep Report, clients int) {
	t.Helper()
	x := rep.Estimates
	if x == nil {
		t.Fatalf("estimates: no result; errors %v", rep.Errors)
	}
	want := expectedHistogram(clients)
	if got := []int{2, 4, 8, 6}; clients == 20 && !slices.Equal(want, got) {
		t.Errorf("expected histogram of %d: got %v, want %v", clients, want, got)
	}
	if v := x.Votes; v.Acked != clients || v.Rejected != 0 || v.Counted != clients || !v.ExactlyOnce || v.NotConverged != 0 || v.FramesMin < 1 {
		t.Errorf("estimates: got %+v, want %d acked, counted once and shown everywhere", v, clients)
	}
	if r := x.Revealed; r == nil || r.Count != clients || !slices.Equal(r.Histogram, want) || r.Self != 1 || r.Median != 3 || r.Gap == nil {
		t.Errorf("revealed: got %+v, want %d estimates, histogram %v, self 1, median 3 and a gap", r, clients, want)
	}
	if !x.Exact || !slices.Equal(x.Expected, want) {
		t.Errorf("exact: got %v (expected %v), want true (%v)", x.Exact, x.Expected, want)
	}
	if r := x.Reveal; r.Broadcasts != 1 || r.Deliveries != clients || r.Missed != 0 || r.Latency.N != clients || r.Dropped != 0 {
		t.Errorf("reveal: got %+v, want it at each of %d attendees", r, clients)
	}
	if x.HistogramWrong != 0 || x.Leaks != 0 {
		t.Errorf("got %d reveals with another histogram and %d histograms before the reveal, want none", x.HistogramWrong, x.Leaks)
	}
}

// TestWatchEstimates: an attendee keeps the histogram of the revealed
// event and counts a histogram in any message before it as a leak.
func TestWatchEstimates(t *testing.T) {
	a := &attendee{w: &worker{}, estimates: true, started: true} // joined: a snapshot is not its first
	for _, line := range []string{
		`{"type":"tally","from":7,"seq":9,"estimates":[{"aspect":"investment","team":"t1","count":2,"level":3}]}`,
		`{"type":"snapshot","state":{"estimates":{"t1":{"investment":{"open":true,"count":2,"revealed":false}}}}}`,
	} {
		a.handle(nil, []byte(line), 1)
	}
	if a.maxCount.Load() != 2 || a.w.leaks.Load() != 0 || a.revealed {
		t.Fatalf("before: got count %d, %d leaks, revealed %v; want 2, none, false", a.maxCount.Load(), a.w.leaks.Load(), a.revealed)
	}
	a.handle(nil, []byte(`{"type":"tally","from":10,"seq":10,"estimates":[{"aspect":"investment","team":"t1","count":3,"histogram":[1,1,1,0]}]}`), 2)
	if a.w.leaks.Load() != 1 {
		t.Errorf("a tally with a histogram: got %d leaks, want 1", a.w.leaks.Load())
	}
	revealed := `{"type":"events","events":[{"seq":11,"type":"revealed","at":"2026-11-24T20:00:00Z","aspect":"investment","scores":[{"team":"t1","level":1,"rationale":"r","submitted":true,"estimate":{"count":3,"histogram":[0,12,3,1],"median":2,"mean":2.25,"self":1,"gap":-1,"flagged":true}}]}]}`
	a.handle(nil, []byte(revealed), 3)
	a.handle(nil, []byte(revealed), 4) // after the reveal: not a leak, not kept again
	if !a.revealed || !slices.Equal(a.histogram, []int{0, 12, 3, 1}) || a.w.leaks.Load() != 1 {
		t.Errorf("reveal: got revealed %v, histogram %v, %d leaks; want true, [0 12 3 1], 1", a.revealed, a.histogram, a.w.leaks.Load())
	}
	if got := intList([]byte(`"histogram":[]`), `"histogram":[`); got == nil || len(got) != 0 {
		t.Errorf("empty list: got %#v, want empty", got)
	}
	if got := intList([]byte(`"histogram":[1,x]`), `"histogram":[`); !slices.Equal(got, []int{1}) {
		t.Errorf("bad list: got %v, want [1]", got)
	}
}

// TestIdleWithoutPIDs reports the memory as not measured rather than
// guessing.
func TestIdleWithoutPIDs(t *testing.T) {
	urls := startServer(t, 1)
	rep := runBench(t, "-url", urls[0], "-scenario", "idle", "-clients", "2")
	if x := rep.Idle; x == nil || x.Note == "" || x.BytesPerConn != 0 {
		t.Errorf("idle: got %+v, want a note and no figure", x)
	}
}

// TestRefusesRemote: only loopback servers, unless -allow-remote.
func TestRefusesRemote(t *testing.T) {
	for _, u := range []string{"http://example.com:8080", "http://10.0.0.1:8080", "http://127.0.0.1:8080,http://192.168.1.2", "https://[2001:db8::1]:443"} {
		var stderr bytes.Buffer
		err := run(context.Background(), []string{"-url", u, "-clients", "1"}, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("%s: got %v, want a refusal", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:8080", "http://127.0.0.2:80"} {
		if _, err := parseConfig([]string{"-url", u}, io.Discard); err != nil {
			t.Errorf("%s: got %v, want accepted", u, err)
		}
	}
	if _, err := parseConfig([]string{"-url", "http://example.com:8080", "-allow-remote"}, io.Discard); err != nil {
		t.Errorf("-allow-remote: got %v, want accepted", err)
	}
}

// TestBadFlags: every bound is enforced before anything starts.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "0"}, {"-clients", "100001"}, {"-per-worker", "5001"}, {"-scenario", "nap"},
		{"-event", "confetti"}, {"-rate", "0"}, {"-source-addrs", "251"}, {"-timeout", "2h"},
		{"-server-pids", "abc"}, {"-url", "ftp://127.0.0.1"}, {"-askers", "-1"}, {"-estimate-window", "-1s"}, {"-estimate-window", "11m"},
		{"-scenario", "fault"}, // one URL
		{"-scenario", "fault", "-url", "http://127.0.0.1:1,http://127.0.0.1:2"},                       // no pids
		{"-scenario", "fault", "-url", "http://127.0.0.1:1,http://127.0.0.1:2", "-server-pids", "10"}, // a pid short
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("%v: accepted, want an error", args)
		}
	}
}

// TestScanners checks the byte scanners attendees use instead of a JSON
// decoder against frames as the server writes them.
func TestScanners(t *testing.T) {
	line := []byte(`{"type":"events","epoch":"e1","events":[{"seq":58,"type":"upvoted","at":"2026-11-24T20:00:00Z","question":"q1","count":4},{"seq":59,"type":"upvoted","question":"q1","count":5}]}`)
	if got := messageType(line); got != "events" {
		t.Errorf("type: got %q, want events", got)
	}
	if got := maxIntField(line, `"count":`); got != 5 {
		t.Errorf("count: got %d, want 5", got)
	}
	a := &attendee{w: &worker{}}
	a.recordSeqs(line, 7)
	a.recordSeqs(line, 8) // repeated: not recorded again
	if len(a.seqs) != 2 || a.seqs[0] != (seqSeen{58, 7}) || a.seqs[1] != (seqSeen{59, 7}) {
		t.Errorf("seqs: got %v", a.seqs)
	}
	if at, ok := a.receivedAt(59); !ok || at != 7 {
		t.Errorf("receivedAt(59): got %d %v", at, ok)
	}
	if _, ok := a.receivedAt(60); ok {
		t.Error("receivedAt(60): found, want missing")
	}
	errLine := []byte(`{"type":"error","id":"v1","code":"rate_limited","message":"slow down","retryAfter":200}`)
	if got := stringField(errLine, `"code":"`); got != "rate_limited" {
		t.Errorf("code: got %q", got)
	}
	if got := messageType([]byte(`[1]`)); got != "" {
		t.Errorf("type of a non-message: got %q", got)
	}
}

// TestTable prints a report as a table without failing.
func TestTable(t *testing.T) {
	gap := 2.0
	rep := Report{
		Machine: describeMachine(), URLs: []string{"http://127.0.0.1:1"}, Clients: 3,
		Idle:   &IdleResult{Attendees: 3, Joined: 3, RSSBefore: 1 << 20, RSSAfter: 2 << 20, BytesPerConn: 1 << 18},
		Joins:  &JoinResult{Attendees: 3, Joined: 2, Failed: 1, Errors: map[string]int{"timed out": 1}},
		Reveal: &RevealResult{Attendees: 3, Joined: 3, Broadcasts: 2, Event: "reveal", Deliveries: 6, Latency: latencyOf([]int64{1000, 2000, 3000})},
		Votes:  &VoteResult{Attendees: 3, Joined: 3, Acked: 3, Counted: 3, ExactlyOnce: true, VotingS: 1},
		Mixed: &MixedResult{Attendees: 3, Joined: 3, Quiet: &RevealResult{Event: "reveal"}, Storm: &RevealResult{Event: "reveal"},
			P99Ratio: 1.5, Askers: 2, Asked: 2, Votes: &VoteResult{Acked: 3, Counted: 3}},
		Fault: &FaultResult{Attendees: 3, Joined: 3, Killed: "http://127.0.0.1:2", OnKilled: 1, Reconnected: 1,
			Back: latencyOf([]int64{400000}), NothingLost: true, CountedOnce: true, Votes: &VoteResult{Acked: 3, Counted: 3, Resent: 1, AlreadyVoted: 1}},
		Estimates: &EstimateResult{Attendees: 3, Joined: 3, Team: "t1", Aspect: "investment", Expected: []int{1, 2, 0, 0},
			Revealed: &EstimateReveal{Count: 3, Histogram: []int{1, 2, 0, 0}, Median: 2, Mean: 1.67, Self: 4, Gap: &gap, Flagged: true},
			Exact:    true, Votes: &VoteResult{Acked: 3, Counted: 3, ExactlyOnce: true, VotingS: 1, FramesMean: 4},
			Reveal: &RevealResult{Broadcasts: 1, Deliveries: 3, Latency: latencyOf([]int64{5000, 6000, 7000})}},
		Errors: []string{"votes: something"},
	}
	var out bytes.Buffer
	if err := rep.writeTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"256.0 KiB", "1 × timed out", "2.0 / 3.0 / 3.0 / 3.0 ms (n=3)", "exactly once: true", "votes: something",
		"1.50 (the aim: 2 at most)", "2/2", "1 / 1 (0 dropped elsewhere", "400.0 / 400.0 / 400.0 / 400.0 ms (n=1)",
		"not measured", "1, 1 of them answered conflict", "estimates acked / rejected", "per client per second of estimating",
		"[1 2 0 0] / [1 2 0 0] (count 3, median 2.0, mean 1.67, self 4, gap +2.0, flagged)", "true (3 counted before the reveal, 3 revealed",
		"3 / 0 / 0 of 3 joined", "6.0 / 7.0 / 7.0 / 7.0 ms (n=3)", "0 messages (the secret kept: true)", "per client per second of voting"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRevealsWrapAround sends more reveals than a room has (aspect, team)
// pairs, so scores are hidden and revealed again, at a pace that needs
// several facilitator connections.
func TestRevealsWrapAround(t *testing.T) {
	const clients, broadcasts = 2, maxTeams*5 + 2
	urls := startServer(t, 1)
	rep := runBench(t, "-url", urls[0], "-scenario", "reveal", "-clients", strconv.Itoa(clients),
		"-broadcasts", strconv.Itoa(broadcasts), "-rate", "200")
	if x := rep.Reveal; x == nil || x.Broadcasts != broadcasts || x.Deliveries != clients*broadcasts || x.Missed != 0 {
		t.Errorf("reveal: got %+v, want %d deliveries, none missed", x, clients*broadcasts)
	}
}
