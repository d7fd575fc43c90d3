package redis

import (
	"encoding/json"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/room"
)

// sink is a subscriber that drops what it is handed, or decodes it at once
// when decode is set (what the receive loop did before decoding moved to
// the room actors).
type sink struct{ decode bool }

func (s sink) Handle(d hub.Delivery) {
	if s.decode {
		_, _ = d.Decode()
	}
}
func (sink) Resync() {}

// BenchmarkBusReceive is the receive loop's cost for one commit of ten
// votes: its own (dropped by origin), another instance's (handed on
// undecoded), and another's decoded on the loop.
func BenchmarkBusReceive(b *testing.B) {
	events := make([]room.Event, 10)
	for i := range events {
		events[i] = room.Event{Seq: uint64(100 + i), Type: room.EvUpvoted, At: redisT0, QuestionID: "q1",
			Participant: fmt.Sprintf("p%d", i), Count: i + 1, Cmd: fmt.Sprintf("p%d/1", i)}
	}
	body, err := json.Marshal(hub.Message{Room: "r1", Epoch: "0123456789abcdef", Events: events})
	if err != nil {
		b.Fatal(err)
	}
	bus := NewBus(nil, BusConfig{Logger: quietLogger})
	ch := bus.keys.channel("r1")
	for _, tc := range []struct {
		name    string
		payload string
		sub     sink
	}{
		{"own", bus.origin + string(body[1:]), sink{}},
		{"other", originPrefix("fedcba9876543210") + string(body[1:]), sink{}},
		{"other-decoded-on-loop", originPrefix("fedcba9876543210") + string(body[1:]), sink{decode: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := &busConn{b: bus, rooms: map[string]*busRoom{ch: {subs: []*busSub{{sub: tc.sub}}}}}
			m := &goredis.Message{Channel: ch, Payload: tc.payload}
			b.ReportAllocs()
			for b.Loop() {
				c.deliver(m)
			}
		})
	}
}
