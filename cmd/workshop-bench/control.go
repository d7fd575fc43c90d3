package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// restTimeout bounds one REST call.
const restTimeout = 30 * time.Second

// restClient talks to the servers' REST API; never through a proxy, since
// the servers are on this machine.
var restClient = &http.Client{Timeout: restTimeout, Transport: &http.Transport{Proxy: nil}}

// controller is a facilitator or team lead connection in the coordinator:
// it sends commands and waits for their answers. It decodes every message
// in full, unlike an attendee, because there are only a few of them.
type controller struct {
	conn   *websocket.Conn
	prefix string // command ids are prefix + counter
	next   atomic.Int64

	mu      sync.Mutex
	waiting map[string]chan answer // guarded by mu

	started   chan struct{} // closed at the first snapshot
	dead      chan struct{} // closed when the read loop ends
	err       error         // why; set before dead is closed
	stopPings chan struct{}
	closeOnce sync.Once
}

// answer is the server's ack or error for one command.
type answer struct {
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Seq     uint64         `json:"seq"`
	Result  map[string]any `json:"result"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
}

// dialController connects to roomID on base with hello and returns once
// the snapshot has arrived.
func dialController(ctx context.Context, base, roomID string, hello map[string]any) (*controller, error) {
	conn, _, err := websocket.Dial(ctx, wsURL(base, roomID), &websocket.DialOptions{
		HTTPClient:      restClient,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	conn.SetReadLimit(readLimit)
	c := &controller{
		conn: conn, prefix: fmt.Sprintf("b%x-", rand.Uint32()), waiting: map[string]chan answer{},
		started: make(chan struct{}), dead: make(chan struct{}), stopPings: make(chan struct{}),
	}
	msg := map[string]any{"type": "hello"}
	for k, v := range hello {
		msg[k] = v
	}
	if err := c.writeJSON(ctx, msg); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("hello: %w", err)
	}
	go c.readLoop()
	go c.pingLoop()
	select {
	case <-c.started:
		return c, nil
	case <-c.dead:
		c.close()
		return nil, fmt.Errorf("closed before the snapshot: %w", c.err)
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("no snapshot: %w", ctx.Err())
	}
}

func (c *controller) writeJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// do sends a command and waits for its answer. An error answer is
// returned as an error naming its code.
func (c *controller) do(ctx context.Context, cmd map[string]any) (answer, error) {
	p, err := c.send(ctx, cmd)
	if err != nil {
		return answer{}, err
	}
	return p.wait(ctx)
}

// pending is a command sent and not yet answered.
type pending struct {
	c    *controller
	typ  any
	id   string
	ch   chan answer
	sent int64 // Unix ns when the command was handed to the connection: where every latency starts
}

// send sends a command without waiting for its answer, so that a
// facilitator keeps its pace while answers are slow (as a person clicking
// would).
func (c *controller) send(ctx context.Context, cmd map[string]any) (*pending, error) {
	p := &pending{c: c, typ: cmd["type"], id: c.prefix + strconv.FormatInt(c.next.Add(1), 10), ch: make(chan answer, 1)}
	msg := map[string]any{"id": p.id}
	for k, v := range cmd {
		msg[k] = v
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.waiting[p.id] = p.ch
	c.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	p.sent = time.Now().UnixNano()
	if err := c.conn.Write(wctx, websocket.MessageText, b); err != nil {
		p.forget()
		return nil, fmt.Errorf("%v: send: %w", p.typ, err)
	}
	return p, nil
}

// wait returns the command's answer; an error answer as an error.
func (p *pending) wait(ctx context.Context) (a answer, err error) {
	defer p.forget()
	select {
	case a = <-p.ch:
	case <-p.c.dead:
		return a, fmt.Errorf("%v: connection closed: %w", p.typ, p.c.err)
	case <-ctx.Done():
		return a, fmt.Errorf("%v: no answer: %w", p.typ, ctx.Err())
	}
	if a.Type != "ack" {
		return a, fmt.Errorf("%v: %s: %s", p.typ, a.Code, a.Message)
	}
	return a, nil
}

func (p *pending) forget() {
	p.c.mu.Lock()
	delete(p.c.waiting, p.id)
	p.c.mu.Unlock()
}

func (c *controller) readLoop() {
	defer close(c.dead)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			switch messageType(line) {
			case "snapshot":
				select {
				case <-c.started:
				default:
					close(c.started)
				}
			case "ack", "error":
				var a answer
				if json.Unmarshal(line, &a) != nil {
					continue
				}
				c.mu.Lock()
				ch := c.waiting[a.ID]
				c.mu.Unlock()
				if ch != nil {
					select {
					case ch <- a: // buffered: one answer per id
					default:
					}
				}
			}
		}
	}
}

func (c *controller) pingLoop() {
	t := time.NewTicker(pingPeriod)
	defer t.Stop()
	for {
		select {
		case <-c.stopPings:
			return
		case <-c.dead:
			return
		case <-t.C:
			_ = c.writeJSON(context.Background(), map[string]any{"type": "ping", "id": "p", "t": time.Now().UnixMilli()})
		}
	}
}

// close ends the connection normally and waits for the read loop.
func (c *controller) close() {
	c.closeOnce.Do(func() {
		close(c.stopPings)
		_ = c.conn.Close(websocket.StatusNormalClosure, "bench done")
		<-c.dead
	})
}

// createdRoom is the part of POST /api/rooms's answer the bench uses.
type createdRoom struct {
	ID             string `json:"id"`
	FacilitatorKey string `json:"facilitatorKey"`
	Teams          []struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	} `json:"teams"`
}

// createRoom creates a room with the built-in model and the given teams.
func createRoom(ctx context.Context, base, title string, teams []string) (createdRoom, error) {
	var out createdRoom
	body, _ := json.Marshal(map[string]any{"title": title, "teams": teams})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/rooms", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := doJSON(req, http.StatusCreated, &out); err != nil {
		return out, fmt.Errorf("create room: %w", err)
	}
	return out, nil
}

// publicRoom is the part of GET /api/rooms/{id} the bench uses.
type publicRoom struct {
	Model struct {
		Levels []struct {
			Name string `json:"name"`
		} `json:"levels"`
		Aspects []struct {
			ID string `json:"id"`
		} `json:"aspects"`
	} `json:"model"`
	Aspect    string `json:"aspect"` // under discussion
	Questions []struct {
		ID    string `json:"id"`
		Votes int    `json:"votes"`
	} `json:"questions"`
	// Estimates is team id -> aspect id -> the room's estimate: its count
	// always, its result once revealed.
	Estimates map[string]map[string]struct {
		Open     bool            `json:"open"`
		Count    int             `json:"count"`
		Revealed bool            `json:"revealed"`
		Result   *EstimateReveal `json:"result"`
	} `json:"estimates"`
}

func getRoom(ctx context.Context, base, roomID string) (publicRoom, error) {
	var out publicRoom
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/rooms/"+roomID, nil)
	if err != nil {
		return out, err
	}
	if err := doJSON(req, http.StatusOK, &out); err != nil {
		return out, fmt.Errorf("get room: %w", err)
	}
	return out, nil
}

func doJSON(req *http.Request, want int, out any) error {
	resp, err := restClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		if len(body) > 300 {
			body = body[:300]
		}
		msg := fmt.Sprintf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(body))
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			msg += " (retry after " + ra + " s; a server started with a larger -limit-scale allows more)"
		}
		return errors.New(msg)
	}
	return json.Unmarshal(body, out)
}
