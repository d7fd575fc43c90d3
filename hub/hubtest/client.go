// Package hubtest has helpers for tests that run real servers: a protocol
// client that speaks hub/PROTOCOL.md over a real WebSocket and keeps the
// room state it is shown, and a real redis-server on a free port.
package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/room"
)

// Reply is the server's answer to one command: an ack or an error.
type Reply struct {
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Seq     uint64         `json:"seq"`
	Result  map[string]any `json:"result"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
}

// OK reports whether the reply is an ack.
func (r Reply) OK() bool { return r.Type == "ack" }

// Welcome is the server's welcome message.
type Welcome struct {
	Role        string `json:"role"`
	Participant string `json:"participant"`
	Token       string `json:"token"`
	Name        string `json:"name"`
	Team        string `json:"team"`
	Epoch       string `json:"epoch"`
}

// Client is a test client. It applies snapshots and events to its own copy
// of the room (as its audience sees it) and records every raw frame, so a
// test can check both what it shows and what crossed the wire.
type Client struct {
	conn   *websocket.Conn
	nextID atomic.Int64
	// idPrefix makes command ids unique across connections of the same
	// participant, as real clients must: a reused id is a retry.
	idPrefix string
	Hello    map[string]any

	mu        sync.Mutex
	cond      *sync.Cond
	welcome   Welcome
	state     *room.State
	epoch     string
	seq       uint64
	frames    [][]byte
	eventLog  []room.Event // every event applied, in order
	tallies   int          // tally frames applied
	snapshots int
	presence  room.Presence
	waiting   map[string]chan Reply
	closed    bool
	closeErr  error
	gaps      int
	started   bool // a snapshot or the first events arrived

	done chan struct{}
}

// Dial connects to a room's WebSocket URL (ws://host/api/rooms/ID/ws) and
// sends hello. It returns once the welcome and the first snapshot or
// events have arrived.
func Dial(ctx context.Context, url string, hello map[string]any) (*Client, error) {
	return Resume(ctx, url, hello, nil)
}

// Resume connects like Dial, starting from a state the caller kept (put
// its "epoch" and "seq" in hello): the server answers the missed events
// or a snapshot.
func Resume(ctx context.Context, url string, hello map[string]any, from *room.State) (*Client, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("hubtest: dial %s: %w", url, err)
	}
	conn.SetReadLimit(32 << 20)
	c := &Client{conn: conn, Hello: hello, waiting: map[string]chan Reply{}, done: make(chan struct{})}
	c.idPrefix = fmt.Sprintf("%x-", rand.Uint64())
	c.cond = sync.NewCond(&c.mu)
	if from != nil {
		c.state, c.seq = from.Clone(), from.Seq
		c.epoch, _ = hello["epoch"].(string)
	}
	h := map[string]any{"type": "hello"}
	for k, v := range hello {
		h[k] = v
	}
	if err := c.SendRaw(ctx, h); err != nil {
		conn.CloseNow()
		return nil, err
	}
	go c.readLoop()
	if err := c.waitUntil(ctx, func() bool { return c.started || c.closed }); err != nil {
		c.Close()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return nil, fmt.Errorf("hubtest: closed before snapshot: %w", c.closeErr)
	}
	return c, nil
}

// SendRaw sends one JSON message as is.
func (c *Client) SendRaw(ctx context.Context, msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// SendBytes sends one raw text frame.
func (c *Client) SendBytes(ctx context.Context, b []byte) error {
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// Do sends a command (a map with "type" and its fields) with a fresh id and
// waits for its ack or error.
func (c *Client) Do(ctx context.Context, cmd map[string]any) (Reply, error) {
	id := c.idPrefix + strconv.FormatInt(c.nextID.Add(1), 10)
	return c.DoID(ctx, id, cmd)
}

// DoID is Do with a chosen command id (for retries).
func (c *Client) DoID(ctx context.Context, id string, cmd map[string]any) (Reply, error) {
	ch := make(chan Reply, 1)
	c.mu.Lock()
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id}
	for k, v := range cmd {
		msg[k] = v
	}
	if err := c.SendRaw(ctx, msg); err != nil {
		return Reply{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.done:
		return Reply{}, fmt.Errorf("hubtest: connection closed: %w", c.CloseErr())
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}

// MustDo is Do that fails unless the answer is an ack.
func (c *Client) MustDo(ctx context.Context, cmd map[string]any) (Reply, error) {
	r, err := c.Do(ctx, cmd)
	if err != nil {
		return r, err
	}
	if !r.OK() {
		return r, fmt.Errorf("hubtest: %v: %s: %s", cmd["type"], r.Code, r.Message)
	}
	return r, nil
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.closed, c.closeErr = true, err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.frames = append(c.frames, data)
		c.mu.Unlock()
		for _, line := range bytes.Split(data, []byte("\n")) {
			c.handle(line)
		}
	}
}

type envelope struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Epoch    string          `json:"epoch"`
	Seq      uint64          `json:"seq"`
	Room     json.RawMessage `json:"room"`
	Events   []room.Event    `json:"events"`
	Presence *room.Presence  `json:"presence"`
}

func (c *Client) handle(line []byte) {
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.cond.Broadcast()
	switch env.Type {
	case "welcome":
		_ = json.Unmarshal(line, &c.welcome)
	case "snapshot":
		var st room.State
		if err := json.Unmarshal(env.Room, &st); err == nil {
			c.state, c.epoch, c.seq = &st, env.Epoch, env.Seq
			c.snapshots++
			c.started = true
		}
		if env.Presence != nil {
			c.presence = *env.Presence
		}
	case "events":
		c.started = true
		if c.state == nil {
			return // events before any state: a protocol bug the test will notice
		}
		for _, e := range env.Events {
			if e.Seq <= c.seq {
				continue
			}
			if e.Seq != c.seq+1 {
				c.gaps++
				go c.resume(c.epoch, c.seq)
				break
			}
			room.Evolve(c.state, e)
			c.seq = e.Seq
			c.eventLog = append(c.eventLog, e)
		}
	case "tally":
		var t room.Tally
		if err := json.Unmarshal(line, &t); err != nil || c.state == nil || t.Seq <= c.seq {
			return
		}
		if t.From > c.seq+1 {
			c.gaps++
			go c.resume(c.epoch, c.seq)
			return
		}
		room.ApplyTally(c.state, t, c.welcome.Participant)
		c.seq = t.Seq
		c.tallies++
	case "presence":
		if env.Presence != nil {
			c.presence = *env.Presence
		}
	case "ack", "error":
		var r Reply
		_ = json.Unmarshal(line, &r)
		if ch, ok := c.waiting[r.ID]; ok {
			delete(c.waiting, r.ID)
			ch <- r
		}
	}
}

// resume asks for what follows (epoch, seq): the client saw a gap.
func (c *Client) resume(epoch string, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.SendRaw(ctx, map[string]any{"type": "resume", "epoch": epoch, "seq": seq})
}

func (c *Client) waitUntil(ctx context.Context, cond func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
	return nil
}

// WaitSeq waits until the client has applied seq.
func (c *Client) WaitSeq(ctx context.Context, seq uint64) error {
	err := c.waitUntil(ctx, func() bool { return c.seq >= seq || c.closed })
	if err != nil {
		return fmt.Errorf("hubtest: wait for seq %d (at %d): %w", seq, c.Seq(), err)
	}
	if c.Seq() < seq {
		return fmt.Errorf("hubtest: closed at seq %d waiting for %d: %w", c.Seq(), seq, c.CloseErr())
	}
	return nil
}

// WaitState waits until cond holds for the client's room state. A
// connection that closes first is an error, not success: the state it
// froze at says nothing about what the server did next.
func (c *Client) WaitState(ctx context.Context, cond func(*room.State) bool) error {
	held := func() bool { return c.state != nil && cond(c.state) }
	if err := c.waitUntil(ctx, func() bool { return held() || c.closed }); err != nil {
		return fmt.Errorf("hubtest: wait for state: %w", err)
	}
	return c.closedBefore(held, "state")
}

// WaitPresence waits until cond holds for the last presence received; a
// connection that closes first is an error.
func (c *Client) WaitPresence(ctx context.Context, cond func(room.Presence) bool) error {
	held := func() bool { return cond(c.presence) }
	if err := c.waitUntil(ctx, func() bool { return held() || c.closed }); err != nil {
		return fmt.Errorf("hubtest: wait for presence: %w", err)
	}
	return c.closedBefore(held, "presence")
}

// closedBefore answers an error when held does not hold (the connection
// closed first).
func (c *Client) closedBefore(held func() bool, what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held() {
		return nil
	}
	return fmt.Errorf("hubtest: closed while waiting for %s: %w", what, c.closeErr)
}

// WaitClosed waits for the connection to end and returns its close error.
func (c *Client) WaitClosed(ctx context.Context) error {
	select {
	case <-c.done:
		return c.CloseErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// State returns a deep copy of the client's room state.
func (c *Client) State() *room.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		return nil
	}
	return c.state.Clone()
}

// Seq is the last sequence the client applied.
func (c *Client) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Epoch is the room epoch the client follows.
func (c *Client) Epoch() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// Welcome returns the server's welcome.
func (c *Client) Welcome() Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

// Frames returns every raw frame received so far.
func (c *Client) Frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

// Events returns every event applied so far, in order.
func (c *Client) Events() []room.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]room.Event(nil), c.eventLog...)
}

// Tallies counts the tally frames applied.
func (c *Client) Tallies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tallies
}

// Snapshots counts the snapshots received.
func (c *Client) Snapshots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshots
}

// Gaps counts the gaps the client saw (and asked to fill).
func (c *Client) Gaps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gaps
}

// Presence is the last presence received.
func (c *Client) Presence() room.Presence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.presence
}

// CloseErr is the error that ended the connection (nil while open).
func (c *Client) CloseErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// CloseStatus is the close code the server sent, or -1.
func (c *Client) CloseStatus() websocket.StatusCode {
	return websocket.CloseStatus(c.CloseErr())
}

// Close closes the connection and waits for the read loop.
func (c *Client) Close() {
	c.conn.Close(websocket.StatusNormalClosure, "")
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.conn.CloseNow()
		<-c.done
	}
}

// Kill drops the connection without a close handshake.
func (c *Client) Kill() {
	c.conn.CloseNow()
	<-c.done
}
