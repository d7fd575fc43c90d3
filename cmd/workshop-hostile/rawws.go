package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// rawConn is a WebSocket client made by hand (RFC 6455) on a TCP
// connection, for the client that must not read: a library connection
// reads control frames, bounds writes by closing the connection, and
// spends time per frame; this one writes a whole flood with one write
// and reads nothing until it chooses to.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
)

// rawDial opens a WebSocket on path from src with a receive buffer of
// rcvbuf bytes.
func (w *walker) rawDial(ctx context.Context, path, src string, rcvbuf int) (*rawConn, error) {
	c, err := dialer(src, rcvbuf).DialContext(ctx, "tcp", w.cfg.base.Host)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, w.cfg.base.Host, base64.StdEncoding.EncodeToString(nonce))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: HTTP %d", resp.StatusCode)
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	return &rawConn{c: c, br: br}, nil
}

// maskedFrame appends one final client frame (masked, as a client must).
func maskedFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i%4])
	}
	return b
}

// readFrame reads one server frame (unmasked).
func (r *rawConn) readFrame() (fin bool, opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r.br, h[:]); err != nil {
		return
	}
	fin, opcode = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 != 0 {
		return fin, opcode, nil, errors.New("a masked frame from the server")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(r.br, l[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(r.br, l[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > slowReadLimit {
		return fin, opcode, nil, fmt.Errorf("a %d-byte frame", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return
}

// readUntilClose reads messages until the close frame, or until ctx ends
// (the walk's own bound, not a guess of how fast the server is), and
// answers how many messages came and the close code and reason (-1
// without a close frame).
func (r *rawConn) readUntilClose(ctx context.Context) (msgs int, code int, reason string) {
	stop := context.AfterFunc(ctx, func() { _ = r.c.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		fin, op, p, err := r.readFrame()
		if err != nil {
			return msgs, -1, err.Error()
		}
		switch {
		case op == opClose:
			if len(p) < 2 {
				return msgs, 1005, ""
			}
			return msgs, int(binary.BigEndian.Uint16(p)), string(p[2:])
		case (op == opText || op == opContinuation) && fin:
			msgs++
		}
	}
}
