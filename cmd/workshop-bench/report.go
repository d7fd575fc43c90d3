package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one run measured. Durations are in the unit their
// name ends with; a scenario that did not run is absent.
type Report struct {
	Machine Machine       `json:"machine"`
	URLs    []string      `json:"urls"`
	Clients int           `json:"clients"`
	Started time.Time     `json:"started"`
	Seconds float64       `json:"seconds"`
	Idle    *IdleResult   `json:"idle,omitempty"`
	Joins   *JoinResult   `json:"joins,omitempty"`
	Reveal  *RevealResult `json:"reveal,omitempty"`
	// HostileResume is the reveal scenario with one hostile attendee
	// flooding resumes beside the others (its Hostile says what it did).
	HostileResume *RevealResult   `json:"hostileResume,omitempty"`
	Votes         *VoteResult     `json:"votes,omitempty"`
	Mixed         *MixedResult    `json:"mixed,omitempty"`
	Fault         *FaultResult    `json:"fault,omitempty"`
	Estimates     *EstimateResult `json:"estimates,omitempty"`
	Errors        []string        `json:"errors,omitempty"`
}

// Machine names the machine a run measured, and how busy it was: others
// may be using it at the same time.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	GoVersion  string `json:"goVersion"`
	LoadBefore string `json:"loadBefore"` // /proc/loadavg: 1, 5 and 15 minutes
	LoadAfter  string `json:"loadAfter"`
}

// Latency summarizes a set of durations.
type Latency struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50Ms"`
	P90Ms float64 `json:"p90Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// RevealResult is the fan-out scenario's outcome. Deliveries and Missed
// count (attendee, broadcast) pairs among the attendees that joined.
type RevealResult struct {
	Attendees  int            `json:"attendees"`
	Joined     int            `json:"joined"`
	JoinFailed int            `json:"joinFailed"`
	JoinErrors map[string]int `json:"joinErrors,omitempty"`
	Event      string         `json:"event"`
	Broadcasts int            `json:"broadcasts"`
	RatePerS   float64        `json:"ratePerS"` // achieved
	Deliveries int            `json:"deliveries"`
	Missed     int            `json:"missed"`
	Dropped    int            `json:"dropped"`    // connections the server closed during the run
	Latency    Latency        `json:"latency"`    // facilitator's send to attendee's receipt
	ServerCPUS float64        `json:"serverCpuS"` // CPU the servers (-server-pids) used from the first broadcast to the last answer
	Errors     map[string]int `json:"errors,omitempty"`
	Hostile    *HostileResult `json:"hostile,omitempty"` // hostile-resume only
}

// VoteResult is the vote storm's outcome.
type VoteResult struct {
	Attendees          int            `json:"attendees"`
	Joined             int            `json:"joined"`
	JoinFailed         int            `json:"joinFailed"`
	JoinErrors         map[string]int `json:"joinErrors,omitempty"`
	WindowS            float64        `json:"windowS"`
	VotingS            float64        `json:"votingS"` // first vote due to last vote sent
	Acked              int            `json:"acked"`
	Rejected           int            `json:"rejected"`
	Unanswered         int            `json:"unanswered"`             // of the rejected: no answer from the server (not sent, connection closed, timed out)
	Retries            int            `json:"retries"`                // resends with the same id, as the web client does
	Resent             int            `json:"resent,omitempty"`       // resends with the same id after a reconnect (fault)
	AlreadyVoted       int            `json:"alreadyVoted,omitempty"` // of the acked: a resend answered conflict, already voted (an earlier send counted)
	Counted            int            `json:"counted"`                // the question's votes on the server afterwards
	Lost               int            `json:"lost"`                   // acknowledged votes missing from the count
	ExactlyOnce        bool           `json:"exactlyOnce"`            // every acknowledged vote counted, nothing counted twice
	ConvergeMs         float64        `json:"convergeMs"`             // last vote sent to every client showing the final count
	ConvergeAfterAckMs float64        `json:"convergeAfterAckMs"`     // last ack to the same
	NotConverged       int            `json:"notConverged"`
	Dropped            int            `json:"dropped"`
	FramesMean         float64        `json:"framesMean"` // WebSocket messages per client during the storm
	FramesMin          int64          `json:"framesMin"`
	FramesMax          int64          `json:"framesMax"`
	BytesMean          float64        `json:"bytesMean"` // their bytes per client
	Errors             map[string]int `json:"errors,omitempty"`

	lastSend, lastAck int64 // Unix ns of the last vote written and the last ack, from castVotes for awaitFinal
}

// MixedResult is the Q&A scenario's outcome: the same broadcast stream
// alone and under a storm of votes and questions, in one room, and what
// the storm did. Votes holds the storm's votes, its frames and bytes.
type MixedResult struct {
	Attendees  int            `json:"attendees"`
	Joined     int            `json:"joined"`
	JoinFailed int            `json:"joinFailed"`
	JoinErrors map[string]int `json:"joinErrors,omitempty"`
	Quiet      *RevealResult  `json:"quiet"`    // the stream alone, before the storm
	Storm      *RevealResult  `json:"storm"`    // the same stream during the storm
	P99Ratio   float64        `json:"p99Ratio"` // storm p99 / quiet p99; the aim is 2 at most
	Askers     int            `json:"askers"`   // attendees who asked a question during the storm
	Asked      int            `json:"asked"`    // their questions acknowledged
	Votes      *VoteResult    `json:"votes"`
}

// FaultResult is the outcome of killing one instance during a vote
// storm. Votes holds the storm's votes and the survivor's count.
type FaultResult struct {
	Attendees        int            `json:"attendees"`
	Joined           int            `json:"joined"`
	JoinFailed       int            `json:"joinFailed"`
	JoinErrors       map[string]int `json:"joinErrors,omitempty"`
	Killed           string         `json:"killed"`           // the URL of the instance killed
	KilledPID        int            `json:"killedPid"`        // its process, from -server-pids
	KillAfterS       float64        `json:"killAfterS"`       // from the first vote due to the kill
	OnKilled         int            `json:"onKilled"`         // attendees whose connection to it the kill ended
	Reconnected      int            `json:"reconnected"`      // of those, welcomed again by another instance
	Back             Latency        `json:"back"`             // kill to welcomed again, per reconnected attendee
	FinalAfterKillMs float64        `json:"finalAfterKillMs"` // kill to every attendee showing the final count (the rest of the window included: the count is final after the last vote); 0 if some never did
	OtherDrops       int            `json:"otherDrops"`       // attendees that lost a connection to another instance
	Gaps             int            `json:"gaps"`             // attendees that saw a gap in the room's sequence
	NothingLost      bool           `json:"nothingLost"`      // counted >= acked
	CountedOnce      bool           `json:"countedOnce"`      // counted <= attendees
	Votes            *VoteResult    `json:"votes"`
}

// EstimateResult is the outcome of the room's estimate at scale: every
// attendee estimates one team once, then the facilitator reveals it.
// Votes holds the estimates' answers, the server's count before the
// reveal, how it reached the clients and the storm's frames and bytes;
// Reveal the revealed event's deliveries to the attendees, timed from the
// facilitator's send.
type EstimateResult struct {
	Attendees  int            `json:"attendees"`
	Joined     int            `json:"joined"`
	JoinFailed int            `json:"joinFailed"`
	JoinErrors map[string]int `json:"joinErrors,omitempty"`
	Aspect     string         `json:"aspect"` // estimated on
	Team       string         `json:"team"`   // estimated
	// Expected is the histogram the attendees' levels make
	// (estimateLevel): Expected[i] estimates of level i+1.
	Expected []int           `json:"expected"`
	Revealed *EstimateReveal `json:"revealed"` // the server's, after the reveal (GET /api/rooms/{id}); nil if none
	// Exact: counted before the reveal and revealed, every attendee once,
	// and the revealed histogram the expected one.
	Exact          bool          `json:"exact"`
	Votes          *VoteResult   `json:"votes"`
	Reveal         *RevealResult `json:"reveal"`
	HistogramWrong int           `json:"histogramWrong"` // attendees whose revealed event carried another histogram (or none)
	Leaks          int           `json:"leaks"`          // messages to attendees that carried a histogram before their reveal
}

// EstimateReveal is the room's estimate as the reveal shows it
// (PROTOCOL.md "revealed").
type EstimateReveal struct {
	Count     int      `json:"count"`
	Histogram []int    `json:"histogram"`
	Median    float64  `json:"median,omitempty"`
	Mean      float64  `json:"mean,omitempty"`
	Self      int      `json:"self,omitempty"`
	Gap       *float64 `json:"gap,omitempty"`
	Flagged   bool     `json:"flagged,omitempty"`
}

// JoinResult is the join storm's outcome.
type JoinResult struct {
	Attendees int            `json:"attendees"`
	Joined    int            `json:"joined"`
	Failed    int            `json:"failed"`
	WindowS   float64        `json:"windowS"`
	ElapsedS  float64        `json:"elapsedS"` // first join due to the last snapshot received
	Join      Latency        `json:"join"`     // dial to snapshot
	Errors    map[string]int `json:"errors,omitempty"`
}

// IdleResult is the idle memory scenario's outcome.
type IdleResult struct {
	Attendees    int     `json:"attendees"`
	Joined       int     `json:"joined"`
	PIDs         []int   `json:"pids,omitempty"`
	SettleS      float64 `json:"settleS"`
	RSSBefore    int64   `json:"rssBefore"` // bytes, summed over the pids
	RSSAfter     int64   `json:"rssAfter"`
	BytesPerConn int64   `json:"bytesPerConn"`
	Note         string  `json:"note,omitempty"`
}

// latencyOf summarizes microsecond durations.
func latencyOf(micros []int64) Latency {
	if len(micros) == 0 {
		return Latency{}
	}
	s := slices.Clone(micros)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return float64(s[max(i, 0)]) / 1e3
	}
	return Latency{N: len(s), P50Ms: q(0.50), P90Ms: q(0.90), P99Ms: q(0.99), MaxMs: float64(s[len(s)-1]) / 1e3}
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report as a table, one measured figure a line.
func (r *Report) writeTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, load %s before, %s after; servers %s; %.1f s\n",
		m.CPUs, m.CPUModel, m.GoVersion, m.LoadBefore, m.LoadAfter, strings.Join(r.URLs, " "), r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(scenario, metric string, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", scenario, metric, fmt.Sprintf(format, args...))
	}
	fmt.Fprintln(tw, "scenario\tmetric\tvalue")
	if x := r.Idle; x != nil {
		if x.Note != "" {
			row("idle", "memory", "%s", x.Note)
		} else {
			row("idle", "attendees joined", "%d/%d", x.Joined, x.Attendees)
			row("idle", "server RSS before / after", "%s / %s (pids %v, %.0f s settle)", mib(x.RSSBefore), mib(x.RSSAfter), x.PIDs, x.SettleS)
			row("idle", "memory per connection", "%.1f KiB", float64(x.BytesPerConn)/1024)
		}
	}
	if x := r.Joins; x != nil {
		row("joins", "attendees joined", "%d/%d, %d failed", x.Joined, x.Attendees, x.Failed)
		row("joins", "window / all joined after", "%.1f s / %.2f s", x.WindowS, x.ElapsedS)
		row("joins", "join time p50 / p90 / p99 / max", "%s", x.Join)
		errorRows(row, "joins", x.Errors)
	}
	if x := r.Reveal; x != nil {
		joinRows(row, "reveal", x.Joined, x.Attendees, x.JoinErrors)
		revealRows(row, "reveal", x)
	}
	if x := r.HostileResume; x != nil {
		joinRows(row, "hostile-resume", x.Joined, x.Attendees, x.JoinErrors)
		revealRows(row, "hostile-resume", x)
	}
	if x := r.Votes; x != nil {
		joinRows(row, "votes", x.Joined, x.Attendees, x.JoinErrors)
		voteRows(row, "votes", voteStorm, x)
	}
	if x := r.Mixed; x != nil {
		joinRows(row, "mixed", x.Joined, x.Attendees, x.JoinErrors)
		revealRows(row, "mixed quiet", x.Quiet)
		revealRows(row, "mixed storm", x.Storm)
		row("mixed", "storm p99 / quiet p99", "%.2f (the aim: 2 at most)", x.P99Ratio)
		row("mixed", "questions asked acked", "%d/%d", x.Asked, x.Askers)
		voteRows(row, "mixed storm", voteStorm, x.Votes)
	}
	if x := r.Fault; x != nil {
		joinRows(row, "fault", x.Joined, x.Attendees, x.JoinErrors)
		row("fault", "killed", "%s (pid %d), %.1f s into the vote window", x.Killed, x.KilledPID, x.KillAfterS)
		row("fault", "on the killed instance / reconnected", "%d / %d (%d dropped elsewhere, %d saw a gap)", x.OnKilled, x.Reconnected, x.OtherDrops, x.Gaps)
		row("fault", "kill to welcomed again p50 / p90 / p99 / max", "%s", x.Back)
		switch {
		case x.FinalAfterKillMs > 0:
			row("fault", "kill to every client showing the final count", "%.0f ms (the votes went on for %.1f s after the kill)", x.FinalAfterKillMs, x.Votes.VotingS-x.KillAfterS)
		case x.Votes.NotConverged > 0:
			row("fault", "kill to every client showing the final count", "never: %d clients do not show it", x.Votes.NotConverged)
		default:
			row("fault", "kill to every client showing the final count", "not measured")
		}
		row("fault", "nothing acknowledged lost / counted once", "%v (counted %d >= acked %d) / %v (counted <= %d joined)",
			x.NothingLost, x.Votes.Counted, x.Votes.Acked, x.CountedOnce, x.Joined)
		voteRows(row, "fault", voteStorm, x.Votes)
	}
	if x := r.Estimates; x != nil {
		joinRows(row, "estimates", x.Joined, x.Attendees, x.JoinErrors)
		row("estimates", "estimated", "team %s on aspect %s", x.Team, x.Aspect)
		voteRows(row, "estimates", estimateStorm, x.Votes)
		estimateRows(row, "estimates", x)
	}
	for _, e := range r.Errors {
		row("error", "", "%s", e)
	}
	return tw.Flush()
}

func revealRows(row func(string, string, string, ...any), scenario string, x *RevealResult) {
	if x == nil {
		return
	}
	row(scenario, "broadcasts", "%d %ss at %.1f/s", x.Broadcasts, x.Event, x.RatePerS)
	row(scenario, "deliveries / missed / dropped", "%d / %d / %d", x.Deliveries, x.Missed, x.Dropped)
	row(scenario, "latency p50 / p90 / p99 / max", "%s", x.Latency)
	if x.ServerCPUS > 0 && x.Deliveries > 0 {
		row(scenario, "server CPU", "%.2f s over the broadcasts, %.1f us per delivery", x.ServerCPUS, x.ServerCPUS*1e6/float64(x.Deliveries))
	}
	errorRows(row, scenario, x.Errors)
	if h := x.Hostile; h != nil {
		rate := 0.0
		if h.Seconds > 0 {
			rate = float64(h.Sent) / h.Seconds
		}
		refused := "never refused"
		if h.FirstLimitMs > 0 {
			refused = fmt.Sprintf("first refused after %.1f ms", h.FirstLimitMs)
		}
		row(scenario, "hostile resumes written", "%d in %.1f s (%.0f/s; the server reads only what it answers), %s, %d reconnects", h.Sent, h.Seconds, rate, refused, h.Reconnects)
		keys := make([]string, 0, len(h.Answers))
		for k := range h.Answers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row(scenario, "hostile answered", "%d × %s", h.Answers[k], k)
		}
		errorRows(row, scenario+" hostile", h.Closes)
		if h.Err != "" {
			row(scenario, "hostile failed", "%s", h.Err)
		}
	}
}

// joinRows are a scenario's first rows: who joined, and why others did not.
func joinRows(row func(string, string, string, ...any), scenario string, joined, attendees int, errs map[string]int) {
	row(scenario, "attendees joined", "%d/%d", joined, attendees)
	errorRows(row, scenario, errs)
}

// storm names what a storm's attendees send, in its rows.
type storm struct{ one, many, doing string }

var (
	voteStorm     = storm{"vote", "votes", "voting"}
	estimateStorm = storm{"estimate", "estimates", "estimating"}
)

// voteRows are the rows of a vote storm (or of estimates, what s names):
// its answers, the server's count and how the count reached the clients.
func voteRows(row func(string, string, string, ...any), scenario string, s storm, x *VoteResult) {
	row(scenario, s.many+" acked / rejected", "%d / %d (%d of them unanswered) in %.1f s (window %.0f s), %d resent", x.Acked, x.Rejected, x.Unanswered, x.VotingS, x.WindowS, x.Retries)
	if x.Resent > 0 || x.AlreadyVoted > 0 {
		row(scenario, s.many+" resent after a reconnect", "%d, %d of them answered conflict (refused as a second %s: an earlier send counted, its ack was lost)", x.Resent, x.AlreadyVoted, s.one)
	}
	row(scenario, "counted by the server", "%d, %d acknowledged lost (exactly once: %v)", x.Counted, x.Lost, x.ExactlyOnce)
	row(scenario, "all clients show the final count", "%.0f ms after the last %s (%.0f ms after its ack); %d never", x.ConvergeMs, s.one, x.ConvergeAfterAckMs, x.NotConverged)
	row(scenario, "frames per client mean / min / max", "%.0f / %d / %d", x.FramesMean, x.FramesMin, x.FramesMax)
	if x.VotingS > 0 {
		row(scenario, "per client per second of "+s.doing, "%.1f frames, %.0f bytes", x.FramesMean/x.VotingS, x.BytesMean/x.VotingS)
	}
	row(scenario, "connections dropped", "%d", x.Dropped)
	errorRows(row, scenario, x.Errors)
}

// estimateRows are the rows of the room's estimate after its storm: the
// histogram against the expected one, and the reveal's deliveries.
func estimateRows(row func(string, string, string, ...any), scenario string, x *EstimateResult) {
	if v := x.Revealed; v != nil {
		gap := "no gap"
		if v.Gap != nil {
			gap = fmt.Sprintf("gap %+.1f", *v.Gap)
			if v.Flagged {
				gap += ", flagged"
			}
		}
		row(scenario, "histogram expected / revealed", "%v / %v (count %d, median %.1f, mean %.2f, self %d, %s)", x.Expected, v.Histogram, v.Count, v.Median, v.Mean, v.Self, gap)
	} else {
		row(scenario, "histogram expected / revealed", "%v / none", x.Expected)
	}
	counted := "none"
	if x.Revealed != nil {
		counted = fmt.Sprint(x.Revealed.Count)
	}
	row(scenario, "each estimate counted once, at its level", "%v (%d counted before the reveal, %s revealed, %d attendees)", x.Exact, x.Votes.Counted, counted, x.Attendees)
	if r := x.Reveal; r != nil {
		row(scenario, "reveal received / missed / dropped", "%d / %d / %d of %d joined", r.Deliveries, r.Missed, r.Dropped, x.Joined)
		row(scenario, "reveal latency p50 / p90 / p99 / max", "%s", r.Latency)
		errorRows(row, scenario+" reveal", r.Errors)
	}
	row(scenario, "reveal with another histogram", "%d clients", x.HistogramWrong)
	row(scenario, "histogram before the reveal", "%d messages (the secret kept: %v)", x.Leaks, x.Leaks == 0)
}

func errorRows(row func(string, string, string, ...any), scenario string, errs map[string]int) {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(scenario, "failure", "%d × %s", errs[k], k)
	}
}

func (l Latency) String() string {
	if l.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f ms (n=%d)", l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs, l.N)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
