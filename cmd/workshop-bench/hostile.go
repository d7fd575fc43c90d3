package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Limits of the hostile attendee, each in its unit.
const (
	hostileStartWait = 10 * time.Second       // its dial and its question must take less than this; then the start waits as long for a first refusal
	hostileRedial    = 100 * time.Millisecond // between reconnects when the server closed it or refused the upgrade
)

// HostileResult is what the hostile attendee of the hostile-resume
// scenario did and what the server answered. Answers counts server
// messages after the flood began: by type, errors by their code
// ("error rate_limited"), so it shows how many resumes were served
// (snapshot, events) and how many refused.
type HostileResult struct {
	Sent         int64          `json:"sent"`             // resumes written
	Seconds      float64        `json:"seconds"`          // from the first resume to the end of the run
	Answers      map[string]int `json:"answers"`          // server messages by type
	Reconnects   int            `json:"reconnects"`       // times it connected again after the server closed it
	Closes       map[string]int `json:"closes,omitempty"` // why the server ended its connections
	FirstLimitMs float64        `json:"firstLimitMs"`     // from the first resume to the first rate_limited answer
	Err          string         `json:"err,omitempty"`
}

// hostile is the attacker of the hostile-resume scenario, in a worker of
// its own: one attendee with a question of its own (so that each of its
// snapshots is a personal view) that writes resumes for a full snapshot
// as fast as its connection takes them, ignores rate_limited errors, and
// connects again as itself when the server closes it. run owns the
// connection; its read loop counts the answers.
type hostile struct {
	w    *worker
	o    order
	stop chan struct{} // closed by hostileStop
	done chan struct{} // closed when run returns

	started   chan struct{} // closed at the flood's first refusal or first close, or when it could not begin
	startOnce sync.Once
	sent      atomic.Int64

	mu          sync.Mutex
	answers     map[string]int // guarded by mu
	closes      map[string]int // guarded by mu
	reconnects  int            // guarded by mu
	err         error          // guarded by mu: why the attack could not start
	floodAt     time.Time      // guarded by mu: the first resume
	firstLimit  time.Duration  // guarded by mu
	participant string         // owned by run
	token       string
	epoch       string
}

// hostileStart starts the attacker and answers once the server refused
// its flood a first time (its limit is engaged), or closed the connection
// during the flood (a server without limits), or hostileStartWait has
// passed; an error only if the flood could not begin.
func (w *worker) hostileStart(o order) reply {
	if w.attacker != nil {
		return reply{Op: opFailed, Err: "hostile: already started"}
	}
	if len(o.URLs) == 0 || o.Room == "" {
		return reply{Op: opFailed, Err: "hostile: urls and room are required"}
	}
	h := &hostile{w: w, o: o, stop: make(chan struct{}), done: make(chan struct{}), started: make(chan struct{}),
		answers: map[string]int{}, closes: map[string]int{}}
	w.attacker = h
	go h.run()
	select {
	case <-h.started:
	case <-time.After(2 * hostileStartWait):
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return reply{Op: opHostile, Hostile: &HostileResult{Err: h.err.Error()}}
	}
	return reply{Op: opHostile}
}

// hostileStop stops the attacker and answers what it did.
func (w *worker) hostileStop() reply {
	h := w.attacker
	if h == nil {
		return reply{Op: opFailed, Err: "hostile: not started"}
	}
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	res := &HostileResult{Sent: h.sent.Load(), Answers: h.answers, Reconnects: h.reconnects, Closes: h.closes,
		FirstLimitMs: float64(h.firstLimit.Microseconds()) / 1e3}
	if !h.floodAt.IsZero() {
		res.Seconds = time.Since(h.floodAt).Seconds()
	}
	if h.err != nil {
		res.Err = h.err.Error()
	}
	return reply{Op: opHostileStop, Hostile: res}
}

func (h *hostile) stopped() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

func (h *hostile) fail(err error) {
	h.mu.Lock()
	if h.err == nil {
		h.err = err
	}
	h.mu.Unlock()
	h.startOnce.Do(func() { close(h.started) })
}

// run connects, asks a question (the first time) and floods, again after
// every close, until stop.
func (h *hostile) run() {
	defer close(h.done)
	for first := true; !h.stopped(); first = false {
		began, err := h.session(first)
		if first && !began {
			h.fail(err)
			return
		}
		h.startOnce.Do(func() { close(h.started) })
		if !h.stopped() {
			h.mu.Lock()
			h.reconnects++
			if err != nil {
				h.closes[errClass(err)]++
			}
			h.mu.Unlock()
			select {
			case <-h.stop:
			case <-time.After(hostileRedial):
			}
		}
	}
}

// session is one connection: hello, the question on the first one, then
// resumes until a write fails or stop. It answers whether the flood
// began and why the connection ended (nil when stopped).
func (h *hostile) session(first bool) (began bool, err error) {
	ctx, cancel := context.WithCancel(h.w.ctx)
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	base := h.o.URLs[0]
	dctx, dcancel := context.WithTimeout(ctx, hostileStartWait)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, wsURL(base, h.o.Room), &websocket.DialOptions{
		HTTPClient: h.w.httpClient(""), CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(readLimit)
	hello := map[string]any{"type": "hello", "name": "hostile"}
	if !first {
		hello = map[string]any{"type": "hello", "participant": h.participant, "token": h.token}
	}
	if err := writeJSON(dctx, conn, hello); err != nil {
		conn.CloseNow()
		return false, fmt.Errorf("hello: %w", err)
	}
	// The read loop hands over the welcome and the ack of the question,
	// then counts what the flood is answered.
	welcomed, acked := make(chan welcomeFields, 1), make(chan string, 1)
	var flooding atomic.Bool
	readErr, readDone := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(readDone)
		readErr <- h.readLoop(conn, welcomed, acked, &flooding)
	}()
	defer func() {
		conn.CloseNow()
		<-readDone // its counts are final before the session ends
	}()
	select {
	case wf := <-welcomed:
		h.participant, h.epoch = wf.Participant, wf.Epoch
		if wf.Token != "" {
			h.token = wf.Token
		}
	case err := <-readErr:
		return false, fmt.Errorf("before the welcome: %w", err)
	case <-dctx.Done():
		return false, fmt.Errorf("no welcome: %w", dctx.Err())
	}
	if first {
		// A question of its own makes every snapshot of it a personal
		// view, the costliest kind.
		if err := writeJSON(dctx, conn, map[string]any{"id": "hostile-ask", "type": "ask", "text": "Hostile attendee's question"}); err != nil {
			return false, fmt.Errorf("ask: %w", err)
		}
		select {
		case code := <-acked:
			if code != "ack" {
				return false, fmt.Errorf("ask: answered %s", code)
			}
		case err := <-readErr:
			return false, fmt.Errorf("ask: %w", err)
		case <-dctx.Done():
			return false, fmt.Errorf("ask: no answer: %w", dctx.Err())
		}
	}
	msg := []byte(`{"type":"resume","epoch":` + strconv.Quote(h.epoch) + `,"seq":0}`)
	h.mu.Lock()
	if h.floodAt.IsZero() {
		h.floodAt = time.Now()
	}
	h.mu.Unlock()
	flooding.Store(true)
	for !h.stopped() {
		// No deadline: the flood goes as fast as the server reads it.
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			if h.stopped() {
				return true, nil
			}
			conn.CloseNow()
			if rerr := <-readErr; rerr != nil {
				return true, rerr
			}
			return true, err
		}
		h.sent.Add(1)
	}
	return true, nil
}

type welcomeFields struct {
	Participant string `json:"participant"`
	Token       string `json:"token"`
	Epoch       string `json:"epoch"`
}

// readLoop reads the hostile connection until it ends: the welcome and
// the question's answer go to the session, every message during the
// flood is counted.
func (h *hostile) readLoop(conn *websocket.Conn, welcomed chan<- welcomeFields, acked chan<- string, flooding *atomic.Bool) error {
	for {
		_, data, err := conn.Read(context.Background())
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			typ := messageType(line)
			switch typ {
			case "welcome":
				var wf welcomeFields
				if json.Unmarshal(line, &wf) == nil {
					select {
					case welcomed <- wf:
					default:
					}
				}
				continue
			case "ack", "error":
				if stringField(line, `"id":"`) == "hostile-ask" {
					code := "ack"
					if typ == "error" {
						code = stringField(line, `"code":"`)
					}
					select {
					case acked <- code:
					default:
					}
					continue
				}
			}
			if !flooding.Load() {
				continue
			}
			key := typ
			if typ == "error" {
				key = "error " + stringField(line, `"code":"`)
			}
			h.mu.Lock()
			h.answers[key]++
			if key == "error rate_limited" && h.firstLimit == 0 {
				h.firstLimit = max(time.Since(h.floodAt), time.Nanosecond)
				h.startOnce.Do(func() { close(h.started) })
			}
			h.mu.Unlock()
		}
	}
}

func writeJSON(ctx context.Context, conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}
