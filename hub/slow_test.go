package hub_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/room"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSlowClientIsClosed connects a client that never reads (with a tiny
// receive buffer) next to a normal one. The normal one gets every event;
// the slow one is closed with 4008 "too slow" once its queue is full, and
// fan-out never waits for it.
//
// Nothing here is timed: commands go out in waves until the server has
// counted the slow close, however many waves a machine needs to fill the
// kernel's socket buffers (about 4 MiB on loopback). The write deadline is
// out of the race: with its default of 10 s, a loaded machine took longer
// than that to fill the queue behind the blocked write, and the client
// was closed as a failed write instead, which this test is not about.
func TestSlowClientIsClosed(t *testing.T) {
	checkNoLeaks(t)
	ctx := testContext(t, 3*time.Minute)
	reg := prometheus.NewRegistry()
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) {
		c.SendQueue = 32
		c.WriteTimeout = time.Hour // longer than the test: only the queue closes the client
		c.Metrics = hub.NewMetrics(reg)
		c.Limits.Commands = hub.Rate{Per: time.Microsecond, Burst: 10000}
	})
	slowCloses := func() float64 { return counterValue(t, reg, "workshop_slow_client_closes_total") }
	rm := createRoom(t, srv.URL, map[string]any{"title": "Slow", "teams": []string{"A"}})
	url := srv.wsURL(rm.ID)
	fac := dial(t, ctx, url, map[string]any{"key": rm.FacilitatorKey})
	fast := dial(t, ctx, url, map[string]any{"name": "Fast"})

	// The slow client: a 4 KiB receive buffer, and it stops reading after
	// hello.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	httpClient := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	slow, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(64 << 20)
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","name":"Slow"}`)); err != nil {
		t.Fatal(err)
	}
	if err := fac.WaitPresence(ctx, func(p room.Presence) bool { return p.Attendees == 2 }); err != nil {
		t.Fatal(err)
	}

	// As soon as the server has closed the slow client, read its socket:
	// that drains it up to the close frame with the documented code.
	slowErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for slowCloses() < 1 {
			select {
			case <-ctx.Done():
				slowErr <- ctx.Err()
				return
			case <-tick.C:
			}
		}
		for {
			if _, _, err := slow.Read(ctx); err != nil {
				slowErr <- err
				return
			}
		}
	}()

	// Big events in waves, each sent without waiting for its acks, until
	// the slow client's socket and then its queue are full.
	note := strings.Repeat("\U0001F4DD", room.MaxNoteLen) // the longest note: 20 KB of UTF-8
	const perWave = 100
	waves := 0
	for ; slowCloses() < 1; waves++ {
		if ctx.Err() != nil {
			t.Fatalf("after %d waves of %d notes of up to %d KB, the slow client is still not closed as too slow: %v",
				waves, perWave, len(note)>>10, ctx.Err())
		}
		var wg sync.WaitGroup
		errs := make(chan error, perWave)
		for i := range perWave {
			wg.Go(func() {
				text := note[:len(note)-4*(i%50)] // each differs from the last
				if r, err := fac.Do(ctx, map[string]any{"type": "set_note", "aspect": "investment", "text": text}); err != nil || !r.OK() {
					errs <- fmt.Errorf("set_note: %+v %v", r, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("a command failed while a client was slow: %v", err)
		}
	}
	t.Logf("the slow client was closed after %d waves of %d notes", waves, perWave)
	// The normal client saw everything.
	if err := fast.WaitSeq(ctx, fac.Seq()); err != nil {
		t.Fatal(err)
	}
	if fast.Gaps() != 0 {
		t.Fatalf("fast client saw %d gaps", fast.Gaps())
	}
	err = <-slowErr
	if got := websocket.CloseStatus(err); got != 4008 {
		t.Fatalf("slow client close: got %v (%v), want 4008", got, err)
	}
	if !strings.Contains(err.Error(), "too slow") {
		t.Fatalf("close reason: %v, want \"too slow\"", err)
	}
}

// counterValue reads a counter (summed over labels) from a registry.
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}
