package hub

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// recordingConn records what reaches the socket, and how much the frame's
// writer had been handed when each write came.
type recordingConn struct {
	net.Conn
	got     bytes.Buffer
	handed  *int  // bytes given to the bufio.Writer so far
	writeAt []int // *handed at each write
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.writeAt = append(r.writeAt, *r.handed)
	return r.got.Write(p)
}

// TestGatherWriterHoldsUntilFrameComplete: whatever the frame's size, the
// socket sees nothing until the whole frame was handed over, then all of
// it, in order, once.
func TestGatherWriterHoldsUntilFrameComplete(t *testing.T) {
	for _, n := range []int{0, 1, 13, 14, 15, 100, 125, 126, 2000, 65535, 65536, 70000} {
		handed := 0
		rec := &recordingConn{handed: &handed}
		g := &gatherWriter{conn: rec}
		bw := bufio.NewWriterSize(g, connWriteBuffer)
		frame := make([]byte, frameHeaderLen(n)+n)
		for i := range frame {
			frame[i] = byte(i)
		}
		g.expect(n)
		// As coder/websocket writes a frame: the header, the payload, a flush.
		h := frameHeaderLen(n)
		for _, piece := range [][]byte{frame[:h], frame[h:]} {
			handed += len(piece)
			if _, err := bw.Write(piece); err != nil {
				t.Fatal(err)
			}
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		g.done()
		if !bytes.Equal(rec.got.Bytes(), frame) {
			t.Errorf("payload %d: the socket got %d bytes, want the %d of the frame in order", n, rec.got.Len(), len(frame))
		}
		for _, at := range rec.writeAt {
			if at != len(frame) {
				t.Errorf("payload %d: a write reached the socket after %d of %d bytes", n, at, len(frame))
			}
		}
	}
}

// TestGatherWriterForeignFrame: a frame of the library written while one
// of the hub's is expected (the echo of a client's close) is neither lost
// nor reordered, and done sends what an unfinished frame left held.
func TestGatherWriterForeignFrame(t *testing.T) {
	handed := 0
	rec := &recordingConn{handed: &handed}
	g := &gatherWriter{conn: rec}
	bw := bufio.NewWriterSize(g, connWriteBuffer)
	closeFrame := []byte{0x88, 2, 0x03, 0xe8}
	frame := bytes.Repeat([]byte{'x'}, 2+100)
	g.expect(100)
	for _, b := range [][]byte{closeFrame, frame} {
		if _, err := bw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	g.done()
	if want := append(append([]byte{}, closeFrame...), frame...); !bytes.Equal(rec.got.Bytes(), want) {
		t.Errorf("the socket got %q, want the close frame then the frame", rec.got.Bytes())
	}

	rec.got.Reset()
	g.expect(100)
	if _, err := bw.Write(frame[:40]); err != nil { // the write fails halfway, say
		t.Fatal(err)
	}
	if rec.got.Len() != 0 {
		t.Fatalf("%d bytes reached the socket before the frame was complete", rec.got.Len())
	}
	g.done()
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.got.Bytes(), frame[:40]) {
		t.Errorf("after done the socket got %d bytes, want the 40 handed over", rec.got.Len())
	}
}
