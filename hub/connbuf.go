package hub

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// Buffer sizes of a WebSocket connection, which keeps its buffers for its
// whole life, idle or not. net/http hands a hijacked connection 4 KiB for
// each. Client messages are small (pings, commands) and a larger one is
// read straight into the message, so a small read buffer costs nothing.
// The write buffer only has to hold a frame header: gatherWriter sends
// header and payload in one system call however small it is, and 2 KiB
// of write buffer was a fifth of an idle connection's heap.
const (
	connReadBuffer  = 512 // bytes
	connWriteBuffer = 16  // bytes; bufio's smallest
)

// smallBuffers is the ResponseWriter websocket.Accept gets: its Hijack
// returns the connection with a connReadBuffer-byte reader and a
// connWriteBuffer-byte writer over a gatherWriter (out) instead of
// net/http's buffers.
type smallBuffers struct {
	http.ResponseWriter
	out *gatherWriter
}

func (s *smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, connReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right behind its upgrade request: they
		// must stay buffered, where Accept looks for them.
		b, _ := brw.Reader.Peek(n)
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(connReadBuffer, n))
		if _, err := r.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	s.out = &gatherWriter{conn: conn}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(s.out, connWriteBuffer)), nil
}

// gatherWriter is what a connection's tiny write buffer flushes into. While
// a message of the hub is being written (expect), it holds the pieces the
// buffer hands it until the frame is complete and sends them with one
// writev: the buffer flushes the header with the first bytes of the
// payload, then the rest of the payload comes straight from the frame. A
// frame written at any other time (the library's close and pong frames)
// goes straight through.
type gatherWriter struct {
	conn net.Conn

	mu   sync.Mutex
	want int    // bytes still to come of the expected frame; 0: none expected
	held []byte // what has come of it (a copy: the buffer is reused), backed by room
	room [2 * connWriteBuffer]byte
}

// expect says the next frame written is payload bytes long.
func (g *gatherWriter) expect(payload int) {
	g.mu.Lock()
	g.want = frameHeaderLen(payload) + payload
	g.mu.Unlock()
}

// done ends the expectation and sends what is held: the write ended
// before the frame was complete (an error), or a frame of the library
// took part of the expected bytes.
func (g *gatherWriter) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want = 0
	if len(g.held) > 0 {
		_, _ = g.conn.Write(g.held) // the write's own error is already the caller's
		g.held = g.room[:0]
	}
}

func (g *gatherWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.want == 0 {
		return g.conn.Write(p)
	}
	if len(p) < g.want {
		if g.held == nil {
			g.held = g.room[:0]
		}
		g.held = append(g.held, p...)
		g.want -= len(p)
		return len(p), nil
	}
	g.want = 0
	if len(g.held) == 0 {
		return g.conn.Write(p)
	}
	bufs := net.Buffers{g.held, p}
	_, err := bufs.WriteTo(g.conn)
	g.held = g.room[:0]
	return len(p), err
}

// frameHeaderLen is the length of an unmasked WebSocket frame header for
// a payload of n bytes (RFC 6455, 5.2).
func frameHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 65535:
		return 4
	default:
		return 10
	}
}

// gatheredConn is a WebSocket connection whose writes of whole messages
// tell its gatherWriter what frame to expect.
type gatheredConn struct {
	*websocket.Conn
	out *gatherWriter
}

func (c gatheredConn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	c.out.expect(len(p))
	defer c.out.done()
	return c.Conn.Write(ctx, typ, p)
}
