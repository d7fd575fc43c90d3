package main

import "strconv"

// The coordinator and its worker processes talk in JSON lines: orders on
// the worker's stdin, replies on its stdout. A worker serves one scenario:
// join, then vote and converge (votes), latency (reveal), latency, vote,
// latency and converge (mixed), vote, converge and rejoins (fault) or
// vote, converge and latency (estimates), then close.

// Order operations.
const (
	opJoin     = "join"     // connect Count attendees, answer joined
	opVote     = "vote"     // each attendee upvotes Question once (or estimates Team), answer voted
	opConverge = "converge" // wait until every attendee shows Final votes, answer converged
	opLatency  = "latency"  // wait for the broadcasts in Sends, answer latency
	opRejoins  = "rejoins"  // answer the attendees' dropped connections and returns (Reconnect)
	// The hostile-resume scenario's attacker, in a worker of its own.
	opHostile     = "hostile"      // connect one attendee to Room on URLs[0] and flood resumes; answer once refused
	opHostileStop = "hostile-stop" // stop the flood, answer what it sent and what came back
	opClose       = "close"        // close every connection, answer closed, exit
)

// Reply operations besides the answers named after their orders.
const (
	opProgress = "progress" // sent every progressPeriod while the worker lives
	opFailed   = "failed"   // an order could not be carried out; Err says why
)

// order is one instruction from the coordinator to a worker. Times are
// Unix nanoseconds of this machine's wall clock; durations nanoseconds.
type order struct {
	Op string `json:"op"`

	// join
	Room        string   `json:"room,omitempty"`
	URLs        []string `json:"urls,omitempty"`        // attendee i dials URLs[i % len]
	First       int      `json:"first,omitempty"`       // global index of this worker's first attendee
	Count       int      `json:"count,omitempty"`       // attendees in this worker
	Total       int      `json:"total,omitempty"`       // attendees over all workers: start times spread by global index
	SourceAddrs int      `json:"sourceAddrs,omitempty"` // loopback source addresses to spread over
	Record      bool     `json:"record,omitempty"`      // keep the receipt time of every event sequence
	Reconnect   bool     `json:"reconnect,omitempty"`   // a dropped connection connects again to the next of URLs and resumes (redial)
	Estimates   bool     `json:"estimates,omitempty"`   // watch the room's estimate: counts from the tallies' estimates, the reveal's histogram, a histogram before it (watchEstimates)

	// join and vote: attendee i starts at Start + i*Window/Total; a zero
	// Window means as fast as allowed (joinConcurrency dials at a time).
	Start   int64 `json:"start,omitempty"`
	Window  int64 `json:"window,omitempty"`
	Timeout int64 `json:"timeout,omitempty"` // each join, each vote's answer; converge and latency as a whole

	// vote: an upvote of Question, or, with Team, an estimate of Team on
	// Aspect at the level of the attendee's index (estimateLevel)
	Question string `json:"question,omitempty"`
	Askers   int    `json:"askers,omitempty"` // this many attendees, spread over the indexes, ask a question before they vote
	Team     string `json:"team,omitempty"`
	Aspect   string `json:"aspect,omitempty"`
	// converge
	Final int `json:"final,omitempty"`
	// latency: event sequence -> when the facilitator sent its command
	Sends map[uint64]int64 `json:"sends,omitempty"`
	// latency, of a reveal of the room's estimate: the histogram every
	// attendee that got the reveal must have got (Estimates)
	Histogram []int `json:"histogram,omitempty"`
}

// voteMsg is the vote attendee i casts: an upvote of the question, or
// its estimate of the team.
func (o order) voteMsg(i int) string {
	if o.Team != "" {
		return `{"id":"v1","type":"estimate","aspect":` + strconv.Quote(o.Aspect) + `,"team":` + strconv.Quote(o.Team) +
			`,"level":` + strconv.Itoa(estimateLevel(i)) + `}`
	}
	return `{"id":"v1","type":"upvote","question":` + strconv.Quote(o.Question) + `}`
}

// rejoin is one attendee's dropped connections and its return, in Unix ns.
type rejoin struct {
	URL    string `json:"url"`              // the server of the first connection that dropped
	Drops  int    `json:"drops"`            // connections that dropped
	DropAt int64  `json:"dropAt"`           // the first drop
	BackAt int64  `json:"backAt,omitempty"` // the welcome after the last drop; absent while away
}

// reply is a worker's answer to an order, or its periodic progress.
type reply struct {
	Op  string `json:"op"`
	Err string `json:"err,omitempty"`

	// progress, and every answer
	Connected int   `json:"connected"` // attendees with a snapshot and an open connection
	Closed    int   `json:"closed"`    // attendees whose connection ended unasked
	Frames    int64 `json:"frames"`    // WebSocket messages received since the last join or vote order
	Bytes     int64 `json:"bytes"`     // their bytes
	Answered  int   `json:"answered"`  // votes answered so far
	Reached   int   `json:"reached"`   // attendees showing the final count (converge)
	Received  int64 `json:"received"`  // broadcasts received (latency)
	Rejoined  int   `json:"rejoined"`  // welcomes after a reconnect

	// joined
	Joined     int            `json:"joined,omitempty"`
	Failed     int            `json:"failed,omitempty"`
	JoinMicros []int64        `json:"joinMicros,omitempty"` // dial to snapshot, per joined attendee
	LastJoin   int64          `json:"lastJoin,omitempty"`   // when the last snapshot arrived
	Errors     map[string]int `json:"errors,omitempty"`     // failure -> attendees

	// voted
	Acked        int   `json:"acked,omitempty"`
	Asked        int   `json:"asked,omitempty"` // questions acknowledged
	Rejected     int   `json:"rejected,omitempty"`
	Unanswered   int   `json:"unanswered,omitempty"`   // of the rejected: no answer from the server (not sent, connection closed, timed out)
	Retries      int   `json:"retries,omitempty"`      // resends asked for by rate_limited or unavailable
	Resent       int   `json:"resent,omitempty"`       // resends after a reconnect
	AlreadyVoted int   `json:"alreadyVoted,omitempty"` // of the acked: a resend answered conflict, already voted
	LastSend     int64 `json:"lastSend,omitempty"`     // when the last vote was written
	LastAck      int64 `json:"lastAck,omitempty"`      // when the last ack arrived
	AckedLevels  []int `json:"ackedLevels,omitempty"`  // estimates: the acknowledged by level (index level-1)

	// converged
	NotReached int   `json:"notReached,omitempty"`
	LastReach  int64 `json:"lastReach,omitempty"` // when the last attendee came to show the final count
	FramesMax  int64 `json:"framesMax,omitempty"` // most messages one attendee received since the vote began
	FramesMin  int64 `json:"framesMin,omitempty"`
	FramesSum  int64 `json:"framesSum,omitempty"`

	// latency: microseconds from send to receipt, per attendee and broadcast
	LatencyMicros []int64 `json:"latencyMicros,omitempty"`
	Missed        int     `json:"missed,omitempty"`
	// latency with a Histogram: attendees whose reveal carried another
	// histogram (or none), and messages that carried one before the
	// attendee's reveal, since the join (Estimates)
	HistogramWrong int `json:"histogramWrong,omitempty"`
	Leaks          int `json:"leaks,omitempty"`

	// rejoins
	Rejoins []rejoin `json:"rejoins,omitempty"`
	Gaps    int      `json:"gaps,omitempty"` // attendees that saw a gap in the room's sequence

	// hostile, hostile-stop
	Hostile *HostileResult `json:"hostile,omitempty"`
}
