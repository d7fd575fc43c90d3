package hub

import (
	"strings"
	"testing"

	"github.com/leveling/workshop/room"
)

// TestDecodeClientMessageLimit: the decoder refuses a message over the
// limit it is given (Limits.MaxClientMessageBytes), not over a constant.
func TestDecodeClientMessageLimit(t *testing.T) {
	// frame is a valid ask of exactly n bytes.
	frame := func(n int) []byte {
		const head, tail = `{"type":"ask","id":"q","text":"`, `"}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	const limit = 1 << 10
	for _, tc := range []struct {
		size, limit int
		ok          bool
	}{
		{900, limit, true},
		{limit, limit, true},
		{limit + 1, limit, false},
		{2 << 10, limit, false},
		{2 << 10, defaultClientMessageBytes, true},
	} {
		m, err := decodeClientMessage(frame(tc.size), tc.limit)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%d bytes, limit %d: %v", tc.size, tc.limit, err)
		case tc.ok && m.Type != room.CmdAsk:
			t.Errorf("%d bytes, limit %d: decoded %+v", tc.size, tc.limit, m)
		case !tc.ok && (room.ErrorCode(err) != room.EINVALID || room.ErrorMessage(err) != "message over 1024 bytes"):
			t.Errorf("%d bytes, limit %d: got %v, want invalid \"message over 1024 bytes\"", tc.size, tc.limit, err)
		}
	}
}
