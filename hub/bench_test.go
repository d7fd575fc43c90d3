package hub

// Benchmarks of the hot paths of a reveal and a vote storm: deciding and
// applying a command, encoding its events once per audience, and queueing
// the frames to every local client. BenchmarkRedisStoreAppend
// (hub/redis) covers the Redis append; cmd/workshop-bench measures the
// whole server over real connections.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/room"
)

var benchT0 = time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)

// benchTeams is the number of teams in benchmark rooms: a large workshop.
const benchTeams = 10

// benchState is a running PEMM room whose teams submitted every aspect,
// with one question; t advances the clock of each command it applies.
func benchState(b *testing.B) *room.State {
	b.Helper()
	names := make([]string, benchTeams)
	for i := range names {
		names[i] = "Team " + strconv.Itoa(i+1)
	}
	events, err := room.Create(room.CreateParams{
		ID: "bench", Code: "BENCH234", Title: "Benchmark", Model: room.PEMM(), TeamNames: names,
		Secrets: room.Secrets{FacilitatorKeyHash: "f", ParticipantSecret: "p", TeamKeyHashes: map[string]string{}},
		Now:     benchT0,
	})
	if err != nil {
		b.Fatal(err)
	}
	st, err := room.Replay(events)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	apply := func(a room.Actor, cmd room.Command) []room.Event {
		n++
		cmd.Key = a.Participant + "/" + strconv.Itoa(n)
		evs, err := room.Decide(st, a, cmd, benchT0.Add(time.Duration(n)*time.Second))
		if err != nil {
			b.Fatalf("%s: %v", cmd.Type, err)
		}
		if err := room.Apply(st, evs); err != nil {
			b.Fatal(err)
		}
		return evs
	}
	for ti, t := range st.Teams {
		for ai, a := range st.Model.Aspects {
			apply(room.TeamActor(t), room.Command{Type: room.CmdSubmit, Aspect: a.ID, Level: 1 + (ti+ai)%4,
				Rationale: "We run this on a shared platform team; the evidence is in our runbooks and dashboards."})
		}
	}
	apply(room.FacilitatorActor(), room.Command{Type: room.CmdStart})
	apply(benchAttendee(0), room.Command{Type: room.CmdAsk, Text: "What would move us up a level?"})
	return st
}

func benchAttendee(i int) room.Actor {
	return room.Actor{Role: room.RoleAttendee, Participant: "p" + strconv.Itoa(i), Name: "Attendee " + strconv.Itoa(i)}
}

// benchEvents decides cmd as a against st without applying it: the events
// a fan-out would send.
func benchEvents(b *testing.B, st *room.State, a room.Actor, cmd room.Command) []room.Event {
	b.Helper()
	cmd.Key = a.Participant + "/bench"
	evs, err := room.Decide(st, a, cmd, benchT0.Add(time.Hour))
	if err != nil {
		b.Fatalf("%s: %v", cmd.Type, err)
	}
	return evs
}

// benchActor is a room actor with in-memory clients: n attendees, the
// facilitator and one lead per team. A client has only what fan-out
// touches (identity, send queue, done); marked as writing, so that
// enqueue starts no write loop: no connection, no goroutines.
func benchActor(b *testing.B, st *room.State, n int) (*roomActor, []*Client) {
	b.Helper()
	h := &Hub{m: NewMetrics(nil)}
	h.cfg.setDefaults()
	ra := newRoomActor(h, st.ID)
	ra.state, ra.epoch = st, "e1"
	actors := []room.Actor{room.FacilitatorActor()}
	for _, t := range st.Teams {
		actors = append(actors, room.TeamActor(t))
	}
	for i := range n {
		actors = append(actors, benchAttendee(i+1))
	}
	clients := make([]*Client, 0, len(actors))
	for _, a := range actors {
		c := &Client{h: h, actor: a, aud: room.AudienceOf(a), class: room.ClassOf(room.AudienceOf(a)), keyGen: -1,
			writing: true, done: make(chan struct{})}
		ra.clients[c] = struct{}{}
		addTo(ra.byClass, c.class, c)
		addTo(ra.byPeer, a.Participant, c)
		clients = append(clients, c)
	}
	return ra, clients
}

// drain empties every client's queue, as their write loops would.
func drain(clients []*Client) {
	for _, c := range clients {
		c.qmu.Lock()
		q := c.queue
		c.queue = nil
		c.qmu.Unlock()
		c.giveBack(q)
	}
}

// BenchmarkEncodeEvents encodes one batch of events once per audience
// class of a room (facilitator, each team, the public), as fanout does.
func BenchmarkEncodeEvents(b *testing.B) {
	st := benchState(b)
	cases := []struct {
		name string
		evs  []room.Event
	}{
		{"reveal_one", benchEvents(b, st, room.FacilitatorActor(), room.Command{Type: room.CmdReveal, Aspect: st.Model.Aspects[0].ID, Team: st.Teams[0].ID})},
		{"reveal_all", benchEvents(b, st, room.FacilitatorActor(), room.Command{Type: room.CmdReveal, Aspect: st.Model.Aspects[0].ID})},
		{"upvote", benchEvents(b, st, benchAttendee(1), room.Command{Type: room.CmdUpvote, Question: "q1"})},
	}
	classes := []string{room.ClassFacilitator, room.ClassPublic}
	for _, t := range st.Teams {
		classes = append(classes, room.ClassOf(room.AudienceOf(room.TeamActor(t))))
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc := newEventEncoder(tc.evs, nil)
				for _, class := range classes {
					_ = eventsFrame(enc.encodeFor(room.ClassAudience(class)))
				}
			}
		})
	}
}

// BenchmarkFanout fans one reveal out to n in-memory clients: encoding per
// audience and queueing to every client. Queues are emptied every
// drainEvery operations with the timer stopped.
func BenchmarkFanout(b *testing.B) {
	const drainEvery = 256 // below the default send queue of 512
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			st := benchState(b)
			evs := benchEvents(b, st, room.FacilitatorActor(), room.Command{Type: room.CmdReveal, Aspect: st.Model.Aspects[0].ID, Team: st.Teams[0].ID})
			ra, clients := benchActor(b, st, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ra.fanout(evs)
				if i++; i%drainEvery == 0 {
					b.StopTimer()
					drain(clients)
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(len(clients))*float64(i)/b.Elapsed().Seconds(), "deliveries/s")
			for c := range ra.clients {
				select {
				case <-c.done:
					b.Fatalf("client %s closed as too slow", c.actor.Participant)
				default:
				}
			}
		})
	}
}

// BenchmarkDecideApply decides a command and applies its events, as a room
// actor does for each command before the append.
func BenchmarkDecideApply(b *testing.B) {
	b.Run("upvote", func(b *testing.B) {
		st := benchState(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			a := benchAttendee(i)
			evs, err := room.Decide(st, a, room.Command{Type: room.CmdUpvote, Question: "q1", Key: a.Participant + "/v"}, benchT0.Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			if err := room.Apply(st, evs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reveal_hide", func(b *testing.B) {
		st := benchState(b)
		fac := room.FacilitatorActor()
		aspect, team := st.Model.Aspects[0].ID, st.Teams[0].ID
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			typ := room.CmdReveal
			if i%2 == 0 {
				typ = room.CmdHideReveal
			}
			evs, err := room.Decide(st, fac, room.Command{Type: typ, Aspect: aspect, Team: team, Key: "f/" + strconv.Itoa(i)}, benchT0.Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			if err := room.Apply(st, evs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFanoutLoopback sends one reveal to n attendees connected over
// real loopback WebSockets (server and clients in this process) and waits
// until every one has read it: the whole write path of a reveal, from
// the actor's fan-out through the queues, the write loops and the
// kernel, to the clients' reads. ns/op is one complete broadcast.
func BenchmarkFanoutLoopback(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			h, srv, rm := benchServer(ctx, b)
			url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/rooms/" + rm.ID + "/ws"
			var received atomic.Int64 // events messages read by all clients
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				conns[i] = benchDial(ctx, b, url, i)
			}
			for _, conn := range conns {
				go func() {
					for {
						_, data, err := conn.Read(context.Background())
						if err != nil {
							return
						}
						received.Add(int64(bytes.Count(data, []byte(`{"type":"events"`))))
					}
				}()
			}
			defer func() {
				for _, c := range conns {
					c.CloseNow()
				}
			}()
			h.mu.Lock()
			ra := h.rooms[rm.ID]
			h.mu.Unlock()
			var evs []room.Event
			if err := ra.call(ctx, func() {
				evs = benchEvents(b, ra.state, room.FacilitatorActor(), room.Command{Type: room.CmdStart})
			}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var want int64
			for b.Loop() {
				if err := ra.call(ctx, func() { ra.fanout(evs) }); err != nil {
					b.Fatal(err)
				}
				want += int64(n)
				for received.Load() < want {
					if ctx.Err() != nil {
						b.Fatalf("received %d of %d", received.Load(), want)
					}
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// benchServer runs a hub on the embedded store behind a loopback HTTP
// server, with one room; everything stops when tb ends.
func benchServer(ctx context.Context, tb testing.TB) (*Hub, *httptest.Server, *CreatedRoom) {
	tb.Helper()
	bus := NewLocalBus()
	store, err := OpenBoltStore(tb.TempDir(), bus)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(Config{Store: store, Bus: bus, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(h, HTTPConfig{}))
	tb.Cleanup(func() {
		srv.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = h.Shutdown(sctx)
		_ = store.Close()
	})
	rm, err := h.CreateRoom(ctx, CreateRequest{Title: "bench", Teams: []string{"Payments"}}, srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	return h, srv, rm
}

// benchDial connects attendee i and reads until its snapshot.
func benchDial(ctx context.Context, b *testing.B, url string, i int) *websocket.Conn {
	b.Helper()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","name":"a`+strconv.Itoa(i)+`"}`)); err != nil {
		b.Fatal(err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Contains(data, []byte(`{"type":"snapshot"`)) {
			return conn
		}
	}
}
