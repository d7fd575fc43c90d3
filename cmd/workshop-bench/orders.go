package main

// The coordinator and its worker processes talk in JSON lines: orders on
// the worker's stdin, replies on its stdout. A worker serves one scenario:
// join, then vote and converge (votes) or latency (reveal), then close.

// Order operations.
const (
	opJoin     = "join"     // connect Count attendees, answer joined
	opVote     = "vote"     // each attendee upvotes Question once, answer voted
	opConverge = "converge" // wait until every attendee shows Final votes, answer converged
	opLatency  = "latency"  // wait for the broadcasts in Sends, answer latency
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

	// join and vote: attendee i starts at Start + i*Window/Total; a zero
	// Window means as fast as allowed (joinConcurrency dials at a time).
	Start   int64 `json:"start,omitempty"`
	Window  int64 `json:"window,omitempty"`
	Timeout int64 `json:"timeout,omitempty"` // each join, each vote's answer; converge and latency as a whole

	// vote
	Question string `json:"question,omitempty"`
	// converge
	Final int `json:"final,omitempty"`
	// latency: event sequence -> when the facilitator sent its command
	Sends map[uint64]int64 `json:"sends,omitempty"`
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

	// joined
	Joined     int            `json:"joined,omitempty"`
	Failed     int            `json:"failed,omitempty"`
	JoinMicros []int64        `json:"joinMicros,omitempty"` // dial to snapshot, per joined attendee
	LastJoin   int64          `json:"lastJoin,omitempty"`   // when the last snapshot arrived
	Errors     map[string]int `json:"errors,omitempty"`     // failure -> attendees

	// voted
	Acked    int   `json:"acked,omitempty"`
	Rejected int   `json:"rejected,omitempty"`
	Retries  int   `json:"retries,omitempty"`  // resends asked for by rate_limited or unavailable
	LastSend int64 `json:"lastSend,omitempty"` // when the last vote was written
	LastAck  int64 `json:"lastAck,omitempty"`  // when the last ack arrived

	// converged
	NotReached int   `json:"notReached,omitempty"`
	LastReach  int64 `json:"lastReach,omitempty"` // when the last attendee came to show the final count
	FramesMax  int64 `json:"framesMax,omitempty"` // most messages one attendee received since the vote began
	FramesMin  int64 `json:"framesMin,omitempty"`
	FramesSum  int64 `json:"framesSum,omitempty"`

	// latency: microseconds from send to receipt, per attendee and broadcast
	LatencyMicros []int64 `json:"latencyMicros,omitempty"`
	Missed        int     `json:"missed,omitempty"`

	// hostile, hostile-stop
	Hostile *HostileResult `json:"hostile,omitempty"`
}
