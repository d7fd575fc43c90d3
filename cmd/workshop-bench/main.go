// Command workshop-bench is the load generator of the workshop server: it
// drives real WebSocket attendees against one or more running servers and
// measures what DESIGN.md section 6 asks for.
//
// Scenarios (-scenario):
//
//   - reveal: N attendees in one room and a facilitator who sends M reveals
//     (or highlights) at a fixed rate; latency from the facilitator's send
//     to each attendee's receipt, and how many deliveries were missed.
//   - hostile-resume: reveal, with one more attendee beside the N, in a
//     worker of its own, who writes resumes for a full snapshot as fast
//     as the server reads them and ignores rate_limited errors; what it
//     sent and what it was answered are reported next to the N attendees'
//     latency, to compare with a reveal run of the same flags.
//   - votes: N attendees each upvote one question once within a window;
//     every vote must be counted once and every client must show the final
//     count soon after the last vote.
//   - mixed: a Q&A. The reveal's broadcast stream in a room of N
//     attendees, first alone, then during a storm in which every attendee
//     upvotes once and -askers of them ask a question, spread over the vote
//     window; the stream's latency in both, the ratio of their p99s, and the
//     storm's votes, questions, frames and bytes per client.
//   - fault: votes over two instances or more (-redis in bench.sh), and
//     the instance of the second -url killed (SIGKILL, its pid from
//     -server-pids) in the middle of the vote window. Its attendees connect
//     again to the next instance that answers, as the pages do, resume with
//     their epoch and sequence and resend an unacknowledged vote with its
//     id; how many came back and how soon, and whether every acknowledged
//     vote was counted once. Only this scenario's attendees reconnect.
//   - estimates: the room's estimate. N attendees each estimate one team
//     on the aspect under discussion once, at a level given by their index
//     (so the histogram is known), spread over -estimate-window; every
//     estimate must be counted once and every client must show the final
//     count soon after the last one. Then the facilitator reveals the
//     team: how soon every attendee has the revealed event, whether its
//     histogram is the expected one, and whether any message carried a
//     histogram before it. Not in all: its window alone is 30 s.
//   - joins: N attendees connect within a window and must each receive
//     their snapshot.
//   - idle: the resident memory of the server processes before and after N
//     idle attendees connect.
//   - all: idle, joins, reveal and votes, in that order, each in a room of
//     its own.
//
// Attendees live in worker processes (this binary, re-executed with
// WORKSHOP_BENCH_WORKER set), at most 5,000 per worker, because a process
// here may hold at most 20,000 open files and because clients and server
// must not share one process. Every timestamp is the wall clock of this
// machine, which all workers share. Only loopback servers are accepted
// unless -allow-remote is given: this tool opens thousands of connections.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if lifetime, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(workerMain(lifetime, os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "workshop-bench:", err)
		os.Exit(1)
	}
}

// Bounds of the flags, so that every run is bounded in count and time.
const (
	maxClients     = 100_000          // attendees in one scenario
	maxPerWorker   = 5_000            // connections per worker process (20,000 open files per process)
	maxBroadcasts  = 10_000           // reveals or highlights in one reveal run
	maxSourceAddrs = 250              // loopback source addresses 127.0.0.1 to 127.0.0.250
	maxRunTime     = time.Hour        // -timeout
	defaultRunTime = 10 * time.Minute // -timeout
)

// config is what the flags say.
type config struct {
	urls           []string
	scenario       string
	clients        int
	broadcasts     int
	rate           float64
	event          string
	askers         int
	voteWindow     time.Duration
	estimateWindow time.Duration
	joinWindow     time.Duration
	joinTimeout    time.Duration
	deliveryWait   time.Duration
	idleSettle     time.Duration
	pids           []int
	perWorker      int
	sourceAddrs    int
	timeout        time.Duration
	json           bool
	allowRemote    bool
	workerProf     string
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("workshop-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls := fs.String("url", "http://127.0.0.1:8080", "comma-separated server base URLs; attendees are spread over them round-robin")
	pids := fs.String("server-pids", "", "comma-separated pids of the server processes, in the order of -url: the idle scenario reads their memory, reveal their CPU, fault kills the second")
	fs.StringVar(&c.scenario, "scenario", "reveal", "reveal, hostile-resume (reveal beside one attendee flooding resumes), votes, mixed (the reveal's stream alone, then during votes and questions), fault (votes while an instance is killed), estimates (everyone estimates a team, then its reveal), joins, idle or all (idle, joins, reveal, votes)")
	fs.IntVar(&c.clients, "clients", 1000, "attendees per scenario")
	fs.IntVar(&c.broadcasts, "broadcasts", 50, "reveal and mixed scenarios: reveals (or highlights) the facilitator sends (mixed: in each pass)")
	fs.Float64Var(&c.rate, "rate", 10, "reveal and mixed scenarios: broadcasts per second")
	fs.StringVar(&c.event, "event", "reveal", "reveal and mixed scenarios: what the facilitator sends, reveal or highlight")
	fs.IntVar(&c.askers, "askers", 100, "mixed scenario: attendees (of -clients) who ask a question during the storm")
	fs.DurationVar(&c.voteWindow, "vote-window", 10*time.Second, "votes, mixed and fault scenarios: the votes are spread evenly over this window")
	fs.DurationVar(&c.estimateWindow, "estimate-window", 30*time.Second, "estimates scenario: the estimates are spread evenly over this window")
	fs.DurationVar(&c.joinWindow, "join-window", 10*time.Second, "joins scenario: the joins are spread evenly over this window")
	fs.DurationVar(&c.joinTimeout, "join-timeout", 30*time.Second, "one attendee's dial, hello and snapshot must take less than this")
	fs.DurationVar(&c.deliveryWait, "delivery-timeout", 10*time.Second, "after the last broadcast or vote, how long to wait before what has not arrived counts as missed")
	fs.DurationVar(&c.idleSettle, "idle-settle", 5*time.Second, "idle scenario: wait this long after the joins before reading memory")
	fs.IntVar(&c.perWorker, "per-worker", 2500, "attendees per worker process (at most 5,000)")
	fs.IntVar(&c.sourceAddrs, "source-addrs", 50, "spread attendees over this many loopback source addresses (127.0.0.1 to .N), so that per-address limits and ephemeral ports do not cap a run; 1 = all from 127.0.0.1")
	fs.DurationVar(&c.timeout, "timeout", defaultRunTime, "the whole run stops after this")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON instead of a table")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "accept server URLs that are not loopback addresses")
	fs.StringVar(&c.workerProf, "worker-cpuprofile", "", "write each worker's CPU profile into this directory (what the load generator costs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, u := range strings.Split(*urls, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			c.urls = append(c.urls, u)
		}
	}
	if len(c.urls) == 0 {
		return c, errors.New("-url: at least one server URL is needed")
	}
	for _, u := range c.urls {
		if err := checkURL(u, c.allowRemote); err != nil {
			return c, err
		}
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return c, fmt.Errorf("-server-pids: %q is not a pid", p)
		}
		c.pids = append(c.pids, pid)
	}
	switch c.scenario {
	case "reveal", "hostile-resume", "votes", "mixed", "fault", "estimates", "joins", "idle", "all":
	default:
		return c, fmt.Errorf("-scenario: want reveal, hostile-resume, votes, mixed, fault, estimates, joins, idle or all, got %q", c.scenario)
	}
	if c.scenario == "fault" {
		if len(c.urls) < 2 {
			return c, fmt.Errorf("-scenario fault: kills one of two instances or more, so it needs two -url values or more, got %d (bench.sh -redis starts two)", len(c.urls))
		}
		if len(c.pids) != len(c.urls) {
			return c, fmt.Errorf("-scenario fault: needs -server-pids, one pid per -url in the same order (it kills the second), got %d pids for %d URLs", len(c.pids), len(c.urls))
		}
	}
	switch c.event {
	case "reveal", "highlight":
	default:
		return c, fmt.Errorf("-event: want reveal or highlight, got %q", c.event)
	}
	switch {
	case c.clients < 1 || c.clients > maxClients:
		return c, fmt.Errorf("-clients: want 1 to %d, got %d", maxClients, c.clients)
	case c.askers < 0 || c.askers > maxClients:
		return c, fmt.Errorf("-askers: want 0 to %d, got %d", maxClients, c.askers)
	case c.broadcasts < 1 || c.broadcasts > maxBroadcasts:
		return c, fmt.Errorf("-broadcasts: want 1 to %d, got %d", maxBroadcasts, c.broadcasts)
	case c.rate <= 0 || c.rate > 1000:
		return c, fmt.Errorf("-rate: want more than 0 and at most 1000 per second, got %v", c.rate)
	case c.perWorker < 1 || c.perWorker > maxPerWorker:
		return c, fmt.Errorf("-per-worker: want 1 to %d, got %d", maxPerWorker, c.perWorker)
	case c.sourceAddrs < 1 || c.sourceAddrs > maxSourceAddrs:
		return c, fmt.Errorf("-source-addrs: want 1 to %d, got %d", maxSourceAddrs, c.sourceAddrs)
	case c.timeout <= 0 || c.timeout > maxRunTime:
		return c, fmt.Errorf("-timeout: want more than 0 and at most %s, got %s", maxRunTime, c.timeout)
	case c.voteWindow < 0 || c.voteWindow > 10*time.Minute:
		return c, fmt.Errorf("-vote-window: want 0 to 10m, got %s", c.voteWindow)
	case c.estimateWindow < 0 || c.estimateWindow > 10*time.Minute:
		return c, fmt.Errorf("-estimate-window: want 0 to 10m, got %s", c.estimateWindow)
	case c.joinWindow < 0 || c.joinWindow > 10*time.Minute:
		return c, fmt.Errorf("-join-window: want 0 to 10m, got %s", c.joinWindow)
	case c.joinTimeout <= 0 || c.joinTimeout > 10*time.Minute:
		return c, fmt.Errorf("-join-timeout: want more than 0 and at most 10m, got %s", c.joinTimeout)
	case c.deliveryWait <= 0 || c.deliveryWait > 10*time.Minute:
		return c, fmt.Errorf("-delivery-timeout: want more than 0 and at most 10m, got %s", c.deliveryWait)
	case c.idleSettle < 0 || c.idleSettle > 10*time.Minute:
		return c, fmt.Errorf("-idle-settle: want 0 to 10m, got %s", c.idleSettle)
	}
	return c, nil
}

// checkURL accepts http(s) URLs whose host is a loopback address (or
// localhost); others only with allowRemote, because a load test against
// someone else's server is an attack.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: want an http:// or https:// base URL", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("-url %q: no host", raw)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("-url %q: %s is not a loopback address; this tool opens thousands of connections, so pass -allow-remote to aim it at another machine you run", raw, host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run parses the flags, runs the chosen scenarios and prints the report.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if _, ok := stderr.(*os.File); !ok {
		// Workers' stderr and the progress line are written from several
		// goroutines; a file takes care of that itself, a buffer does not.
		stderr = &lockedWriter{w: stderr}
	}
	b := &bench{cfg: cfg, log: stderr}
	rep := Report{Machine: describeMachine(), URLs: cfg.urls, Clients: cfg.clients, Started: time.Now().UTC()}
	scenarios := []string{cfg.scenario}
	if cfg.scenario == "all" {
		scenarios = []string{"idle", "joins", "reveal", "votes"}
	}
	var errs []error
	for _, s := range scenarios {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: not run: %w", s, ctx.Err()))
			continue
		}
		var err error
		switch s {
		case "reveal":
			rep.Reveal, err = b.reveal(ctx, false)
		case "hostile-resume":
			rep.HostileResume, err = b.reveal(ctx, true)
		case "votes":
			rep.Votes, err = b.votes(ctx)
		case "mixed":
			rep.Mixed, err = b.mixed(ctx)
		case "fault":
			rep.Fault, err = b.fault(ctx)
		case "estimates":
			rep.Estimates, err = b.estimates(ctx)
		case "joins":
			rep.Joins, err = b.joins(ctx)
		case "idle":
			rep.Idle, err = b.idle(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", s, err))
		}
	}
	rep.Machine.LoadAfter = loadAverage()
	rep.Seconds = time.Since(rep.Started).Seconds()
	if cfg.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	return errors.Join(append(errs, err)...)
}
