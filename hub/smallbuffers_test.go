package hub

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHelloBehindUpgrade: a client may send its hello in the same packet
// as the upgrade request; those bytes, read by net/http before the
// hijack, must reach the WebSocket through smallBuffers.
func TestHelloBehindUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, srv, rm := benchServer(ctx, t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	var req bytes.Buffer
	req.WriteString("GET /api/rooms/" + rm.ID + "/ws HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	req.Write(maskedTextFrame([]byte(`{"type":"hello","name":"Early"}`)))
	if _, err := conn.Write(req.Bytes()); err != nil { // one write: the hello rides behind the request
		t.Fatal(err)
	}

	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: got %s, want 101", resp.Status)
	}
	// Read raw frames until the snapshot shows up: the hello was received.
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(`{"type":"snapshot"`)) {
		n, err := br.Read(buf)
		if err != nil {
			t.Fatalf("no snapshot after an early hello (%v); read %q", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, []byte(`"name":"Early"`)) {
		t.Errorf("welcome does not carry the name: %q", got)
	}
}

// maskedTextFrame is one client text frame (payload under 126 bytes).
func maskedTextFrame(payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	out := []byte{0x81, 0x80 | byte(len(payload))}
	out = append(out, key[:]...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}
