package hub

import (
	"context"
	"errors"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/room"
)

// Close codes (PROTOCOL.md).
const (
	statusNormal        = websocket.StatusNormalClosure // 1000
	statusGoingAway     = websocket.StatusGoingAway     // 1001: shutdown or drain; reconnect
	statusTooBig        = websocket.StatusMessageTooBig // 1009
	statusInternal      = websocket.StatusInternalError // 1011
	statusTryAgainLater = websocket.StatusTryAgainLater // 1013: store unavailable
	statusProtocol      = websocket.StatusCode(4000)    // bad or missing hello
	statusUnauthorized  = websocket.StatusCode(4001)    // wrong key or token
	statusRemoved       = websocket.StatusCode(4003)    // removed, or keys rotated
	statusNotFound      = websocket.StatusCode(4004)    // no such room
	statusTooSlow       = websocket.StatusCode(4008)    // fell too far behind
	statusTooMany       = websocket.StatusCode(4029)    // connection limits
)

// CloseCodes lists every close code the server sends, for the
// documentation check.
var CloseCodes = []websocket.StatusCode{
	statusNormal, statusGoingAway, statusTooBig, statusInternal,
	statusTryAgainLater, statusProtocol, statusUnauthorized, statusRemoved, statusNotFound,
	statusTooSlow, statusTooMany,
}

// transport is what a Client needs of its connection: a
// *websocket.Conn in production, an in-memory pipe in tests
// (transport_test.go), so that fan-out, eviction and shutdown can be
// tested without kernel socket buffers. It has the library's semantics:
// Read and Write may run at the same time as each other and as Close or
// CloseNow; the first Close or CloseNow ends the connection and unblocks
// both, and a later one does nothing. A read of a message over the read
// limit fails with an error wrapping websocket.ErrMessageTooBig and the
// connection is closed with 1009.
type transport interface {
	Read(ctx context.Context) (websocket.MessageType, []byte, error)
	Write(ctx context.Context, typ websocket.MessageType, p []byte) error
	// Close sends a close frame with code and reason and ends the
	// connection.
	Close(code websocket.StatusCode, reason string) error
	// CloseNow ends the connection without a close frame.
	CloseNow() error
	// SetReadLimit bounds one message read, in bytes.
	SetReadLimit(n int64)
}

var _ transport = (*websocket.Conn)(nil)

// Client is one WebSocket connection. Its read loop runs on a goroutine
// of its own once the client has joined (serve), and the HTTP handler
// returns; its write loop runs on another goroutine only while there is
// something to write, so an idle connection costs one goroutine. Only the
// write loop writes to conn. The room actor sets the identity fields once,
// in join, before the client is visible to anyone else.
type Client struct {
	h    *Hub
	conn transport // an interface, not a pointer: 8 bytes more, the same 320-byte size class
	ra   *roomActor
	addr string // the client's address, for per-address limits

	// limits are the per-connection token buckets of commands, made on
	// the first command; only the read loop uses them.
	limits *connLimiters
	// pings is the per-connection ping bucket: one word in the client,
	// since every live connection pings. Only the read loop uses it.
	pings bucket
	// resume serves this client's resumes one actor call at a time; made
	// on the first resume, so an idle connection holds none.
	resume *resumer

	actor  room.Actor
	aud    room.Audience
	class  string
	keyGen int // key generation for key-based roles, -1 for attendees

	// The send queue: frames for the write loop, at most SendQueue of
	// them. A slice that grows with the backlog rather than a channel
	// sized for the worst case: an idle client holds no queue (a channel
	// of 512 frames took 12 KiB per connection), and the write loop takes
	// the whole backlog at once instead of one receive per frame.
	qmu     sync.Mutex
	queue   [][]byte       // guarded by qmu
	writing bool           // guarded by qmu: a write loop runs (stays true once closed)
	writers sync.WaitGroup // the write loop, for the handler to wait on
	// deadline bounds each write (see writeLoop); only the running write
	// loop uses it.
	deadline *time.Timer

	done      chan struct{} // closed by close: the write loop stops
	isClosed  atomic.Bool   // set by close just before done is closed
	closeOnce sync.Once
	// closeCode and closeReason are set once, before done is closed; the
	// write loop sends them when it stops.
	closeCode   websocket.StatusCode
	closeReason string
}

// enqueue queues a frame without blocking. A full queue means the client
// fell too far behind: it is closed with 4008 and reconnects to resume.
func (c *Client) enqueue(b []byte) {
	if c.closed() {
		return
	}
	c.qmu.Lock()
	if len(c.queue) >= c.h.cfg.SendQueue {
		c.qmu.Unlock()
		c.h.m.slowCloses.Inc()
		c.close(statusTooSlow, "too slow")
		return
	}
	c.queue = append(c.queue, b)
	c.startWriterLocked()
}

// startWriterLocked starts a write loop unless one runs, and unlocks qmu.
func (c *Client) startWriterLocked() {
	start := !c.writing
	if start {
		c.writing = true
		c.writers.Add(1)
	}
	c.qmu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// giveBack offers a written batch's slice as the next queue, so a steady
// stream of frames does not allocate a queue per batch; a large one is
// left to the collector, since an idle client should hold no backlog.
func (c *Client) giveBack(q [][]byte) {
	if cap(q) > 16 {
		return
	}
	clear(q)
	c.qmu.Lock()
	if c.queue == nil {
		c.queue = q[:0]
	}
	c.qmu.Unlock()
}

func (c *Client) sendError(id string, err error) {
	c.enqueue(errorFrame(id, err))
}

func errorFrame(id string, err error) []byte {
	return mustJSON(errorMsg{Type: msgError, ID: id, Code: errorCode(err), Message: errorMessage(err), RetryAfter: retryAfter(err).Milliseconds()})
}

// close asks for the connection to end with a code and reason, from any
// goroutine, without waiting. The write loop finishes the write in progress
// and then runs the close handshake, so the close frame follows the data
// instead of racing it (a slow client that catches up still reads why it
// was closed).
func (c *Client) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		c.isClosed.Store(true)
		close(c.done)
		c.qmu.Lock()
		c.startWriterLocked() // the write loop sends the close frame
	})
}

// closed reports whether close was called. It reads a flag next to the
// queue rather than polling done: a fan-out asks it of every client, and
// ten thousand channels are ten thousand cache misses.
func (c *Client) closed() bool { return c.isClosed.Load() }

// writeLoop writes queued frames, joining whatever is queued into one
// WebSocket message (frames separated by newlines) up to maxWriteBatchBytes
// (writeFrames), and returns when the queue is empty; enqueue starts it
// again. When the client is closed it flushes what is queued (unless the
// client is too slow), sends the close frame and returns for good.
func (c *Client) writeLoop() {
	defer c.writers.Done()
	if c.deadline == nil {
		// The write deadline is one timer per client, armed around each
		// write: when a write outlasts WriteTimeout the timer drops the
		// connection, which ends the write with an error. A context per
		// write cost an allocation, a timer and a registration on the
		// hub's context (shared by every client, behind one mutex) for
		// every frame.
		c.deadline = time.AfterFunc(c.h.cfg.WriteTimeout, func() { c.conn.CloseNow() })
		c.deadline.Stop()
	}
	for {
		c.qmu.Lock()
		closing := c.closed()
		if len(c.queue) == 0 && !closing {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		frames := c.queue
		c.queue = nil
		c.qmu.Unlock()
		if closing {
			// Deliver what is queued (acks of commands that just
			// committed, the events that explain the close) before the
			// close frame; a client closed as too slow gets nothing more.
			if c.closeCode != statusTooSlow {
				_ = c.writeFrames(frames, c.deadline)
			}
			c.conn.Close(c.closeCode, c.closeReason)
			return
		}
		if err := c.writeFrames(frames, c.deadline); err != nil {
			c.close(statusInternal, "write failed")
			continue // to the close
		}
		c.giveBack(frames)
	}
}

// batchBuffers join several queued frames into one message. Pooled: only
// a client with a backlog needs one, and only while it writes.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBatch is the largest batch buffer kept for reuse; a burst's
// bigger one is left to the collector.
const maxPooledBatch = 64 << 10

// writeFrames writes frames in as few WebSocket messages as it can: a
// lone frame as it is (the bytes shared by every client, never copied),
// several joined by newlines until a message reaches maxWriteBatchBytes. Each
// write is bounded by the deadline timer.
func (c *Client) writeFrames(frames [][]byte, deadline *time.Timer) error {
	for len(frames) > 0 {
		msg, n := frames[0], 1
		var bp *[]byte
		if len(frames) > 1 && len(msg) < maxWriteBatchBytes {
			bp = batchBuffers.Get().(*[]byte)
			buf := append((*bp)[:0], msg...)
			for ; n < len(frames) && len(buf) < maxWriteBatchBytes; n++ {
				buf = append(buf, '\n')
				buf = append(buf, frames[n]...)
			}
			msg, *bp = buf, buf
		}
		deadline.Reset(c.h.cfg.WriteTimeout)
		err := c.conn.Write(context.Background(), websocket.MessageText, msg)
		deadline.Stop()
		if bp != nil && cap(*bp) <= maxPooledBatch {
			batchBuffers.Put(bp)
		}
		if err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

// serveWS runs one WebSocket connection from upgrade to close.
func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request, roomID, addr string, opts *websocket.AcceptOptions) {
	if ok, retry := h.addrConnects.allow(addr, time.Now()); !ok {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		writeAPIError(w, rateLimitedError("connection attempts from your address", retry))
		return
	}
	if !h.enter() {
		writeAPIError(w, room.Errorf(room.EUNAVAILABLE, "server going away"))
		return
	}
	defer h.conns.Done()

	sb := &smallBuffers{ResponseWriter: w}
	conn, err := websocket.Accept(sb, r, opts)
	if err != nil {
		h.log.Debug("hub: websocket accept", "err", err)
		return // Accept has answered the request
	}
	h.serveConn(gatheredConn{conn, sb.out}, roomID, addr)
}

// enter counts a connection handler in conns, for Shutdown to wait on,
// unless the hub is draining. The caller calls conns.Done when it is done.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.conns.Add(1)
	return true
}

// serveConn runs an accepted connection: it reads the hello, joins the
// client to its room and hands the connection on to serve. The caller
// holds a count in conns (enter) until serveConn returns.
func (h *Hub) serveConn(conn transport, roomID, addr string) {
	conn.SetReadLimit(int64(h.cfg.Limits.MaxClientMessageBytes))
	c := &Client{h: h, conn: conn, addr: addr, done: make(chan struct{})}
	closeNow := c.closeAndWait

	hi, code, reason := c.readHello()
	if code != 0 {
		closeNow(code, reason)
		return
	}
	ra, err := h.acquire(h.ctx, roomID)
	if err != nil {
		switch {
		case errorCode(err) == room.ENOTFOUND:
			closeNow(statusNotFound, "room not found")
		case h.Draining():
			// Upgraded before the drain began, hello after: go elsewhere.
			closeNow(statusGoingAway, "server going away")
		default:
			closeNow(statusTryAgainLater, "room unavailable")
		}
		return
	}
	c.ra = ra
	err = ra.call(h.ctx, func() { code, reason = ra.join(c, hi) })
	if err != nil {
		h.release(ra)
		closeNow(statusGoingAway, "server going away")
		return
	}
	if code != 0 {
		h.release(ra)
		closeNow(code, reason)
		return
	}
	// The connection goes on on a goroutine of its own and the HTTP
	// handler returns, so that net/http and Echo let go of the request,
	// its headers and net/http's buffers (see smallBuffers), which an
	// idle connection kept for its whole life. The handler's count in
	// conns is still held here, so this Add cannot race Shutdown's Wait.
	h.conns.Add(1)
	go c.serve()
}

// serve reads the client's messages until the connection ends, then
// unregisters the client, closes it and releases its room.
func (c *Client) serve() {
	defer c.h.conns.Done()
	defer c.h.release(c.ra)
	defer func() {
		_ = c.ra.call(context.Background(), func() { c.ra.leave(c) })
		c.closeAndWait(statusNormal, "")
	}()
	defer c.recoverPanic()
	c.readLoop()
}

// closeAndWait closes the client and waits for its write loop to send
// the close frame.
func (c *Client) closeAndWait(code websocket.StatusCode, reason string) {
	c.close(code, reason)
	c.writers.Wait()
}

// readHello reads and checks the first message. A non-zero code means the
// connection must close with it.
//
// The wait is bounded by a timer that closes the connection with 4000 and
// a close frame, not by the read's context: when a read's context ends,
// coder/websocket drops the connection without a close frame, and the
// client would see 1006 instead of the documented 4000. A hub shutting
// down closes a connection still waiting for its hello with 1001 the same
// way. The read runs while Close sends its frame; the library allows that
// and the read then ends with the close handshake.
func (c *Client) readHello() (hello, websocket.StatusCode, string) {
	noHello := "protocol error: no hello within " + c.h.cfg.HelloTimeout.String()
	timer := time.AfterFunc(c.h.cfg.HelloTimeout, func() { c.conn.Close(statusProtocol, noHello) })
	stopShutdown := context.AfterFunc(c.h.leaving, func() { c.conn.Close(statusGoingAway, "server going away") })
	typ, data, err := c.conn.Read(context.Background())
	timedOut, shutdown := !timer.Stop(), !stopShutdown()
	switch {
	case shutdown:
		return hello{}, statusGoingAway, "server going away"
	case timedOut:
		return hello{}, statusProtocol, noHello
	case err != nil:
		if websocket.CloseStatus(err) == statusTooBig || errors.Is(err, websocket.ErrMessageTooBig) {
			return hello{}, statusTooBig, "message too big"
		}
		return hello{}, statusProtocol, "protocol error: no hello"
	case typ != websocket.MessageText:
		return hello{}, statusProtocol, "protocol error: text frames only"
	}
	m, err := decodeClientMessage(data, c.h.cfg.Limits.MaxClientMessageBytes)
	switch {
	case err != nil:
		return hello{}, statusProtocol, closeReason("protocol error: " + errorMessage(err))
	case m.Type != msgHello:
		return hello{}, statusProtocol, "protocol error: the first message must be a hello"
	}
	return hello{key: m.Key, name: m.Name, participant: m.Participant, token: m.Token, epoch: m.Epoch, seq: m.Seq}, 0, ""
}

// readLoop reads client messages until the connection ends. It never does
// I/O beyond queueing: commands go to the room actor's bounded queue.
func (c *Client) readLoop() {
	// A client silent for ReadTimeout is dropped by one timer per client,
	// pushed back by every message, as writes are bounded (writeLoop): a
	// context per read kept a timer, a channel and registrations alive
	// for every idle connection and took the hub context's lock twice per
	// message.
	silence := time.AfterFunc(c.h.cfg.ReadTimeout, func() { c.conn.CloseNow() })
	defer silence.Stop()
	for {
		typ, data, err := c.conn.Read(context.Background())
		silence.Reset(c.h.cfg.ReadTimeout)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.close(statusTooBig, "message too big")
			}
			return
		}
		if c.closed() {
			return
		}
		// Each message is handled on a goroutine of its own, which the
		// loop waits for, so their order holds: decoding takes a deep
		// stack, which the read loop would otherwise keep, idle, for the
		// whole life of the connection. Messages are rare (a ping every
		// 25 s, a few commands); idle connections are many.
		handled := make(chan struct{})
		go func() {
			defer close(handled)
			defer c.recoverPanic()
			c.handle(typ, data)
		}()
		<-handled
	}
}

// recoverPanic, deferred, turns a panic into the end of this connection
// (1011), not of the server: Echo's Recover middleware does not cover the
// goroutines of a connection.
func (c *Client) recoverPanic() {
	if p := recover(); p != nil {
		c.h.log.Error("hub: connection panic", "room", c.ra.id, "panic", p, "stack", string(debug.Stack()))
		c.close(statusInternal, "internal error")
	}
}

// roomBusyRetry is the retryAfter of a command refused because its room's
// queue (commandQueue) is full: a few appends of maxBatch drain it.
const roomBusyRetry = 200 * time.Millisecond

// handle acts on one client message: ping, resume or a command.
func (c *Client) handle(typ websocket.MessageType, data []byte) {
	if typ != websocket.MessageText {
		c.sendError("", room.Errorf(room.EINVALID, "text frames only"))
		return
	}
	m, err := decodeClientMessage(data, c.h.cfg.Limits.MaxClientMessageBytes)
	if err != nil {
		c.sendError(m.ID, err)
		return
	}
	switch m.Type {
	case msgHello:
		c.sendError(m.ID, room.Errorf(room.EINVALID, "hello was already received"))
	case msgPing:
		if err := c.h.checkPing(c, time.Now()); err != nil {
			c.h.m.clientMessages.WithLabelValues(msgPing, room.ERATELIMITED).Inc()
			c.sendError(m.ID, err)
			c.h.refused(c)
			return
		}
		c.h.m.clientMessages.WithLabelValues(msgPing, "ok").Inc()
		c.enqueue(mustJSON(pongMsg{Type: msgPong, ID: m.ID, T: m.T, Now: c.h.cfg.Now().UnixMilli(), Seq: c.pongSeq()}))
	case msgResume:
		if c.resume == nil {
			c.resume = &resumer{}
		}
		if err := c.h.checkResume(c, c.resume, time.Now()); err != nil {
			c.h.m.clientMessages.WithLabelValues(msgResume, room.ERATELIMITED).Inc()
			c.sendError(m.ID, err)
			c.h.refused(c)
			return
		}
		// Served off the read loop, by at most one actor call at a time:
		// a catch-up may read the store.
		c.resume.request(c, m.Epoch, m.Seq)
	default:
		if c.limits == nil {
			c.limits = newConnLimiters(c.h.cfg.Limits)
		}
		if err := c.h.checkCommand(c.limits, c.addr, m.Type, time.Now()); err != nil {
			c.h.m.commands.WithLabelValues(m.Type, room.ERATELIMITED).Inc()
			c.sendError(m.ID, err)
			return
		}
		if !c.ra.submit(cmdReq{c: c, id: m.ID, cmd: m.Command}) {
			c.sendError(m.ID, rateLimitedError("commands waiting in this room", roomBusyRetry))
		}
	}
}

// writeAPIError answers a plain HTTP request (before any upgrade, outside
// Echo's error handler) with the status and JSON body of err.
func writeAPIError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(statusOf(err))
	_, _ = w.Write(mustJSON(newAPIError(err)))
}

// retryAfterSeconds is a Retry-After header value: whole seconds, at
// least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(int(d.Seconds()+0.999), 1))
}
