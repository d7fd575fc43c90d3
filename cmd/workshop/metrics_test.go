package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
)

// TestMetricsAfterScenario runs the real main loop (embedded store), plays
// a short workshop with one client per role and a few refused commands,
// and reads /metrics: what an operator's dashboard would show must match
// what happened.
func TestMetricsAfterScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := startInProcess(t, ctx, map[string]string{"WORKSHOP_DATA_DIR": t.TempDir()})
	ws := "ws" + strings.TrimPrefix(base, "http")

	rm := createRoom(t, ctx, base, []string{"Payments", "Search"})
	url := ws + "/api/rooms/" + rm.ID + "/ws"
	dial := func(hello map[string]any) *hubtest.Client {
		t.Helper()
		c, err := hubtest.Dial(ctx, url, hello)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	fac := dial(map[string]any{"key": rm.FacilitatorKey})
	lead := dial(map[string]any{"key": rm.Teams[0].Key})
	pres := dial(map[string]any{"key": rm.PresenterKey})
	ana := dial(map[string]any{"name": "Ana"})
	bo := dial(map[string]any{"name": "Bo"})

	do := func(c *hubtest.Client, cmd map[string]any, wantCode string) hubtest.Reply {
		t.Helper()
		r, err := c.Do(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Code; (wantCode == "" && !r.OK()) || (wantCode != "" && got != wantCode) {
			t.Fatalf("%v: got %s %s %q, want %q", cmd["type"], r.Type, r.Code, r.Message, wantCode)
		}
		return r
	}
	do(fac, map[string]any{"type": "start"}, "")
	do(lead, map[string]any{"type": "submit", "aspect": "investment", "level": 2, "rationale": "a team of two"}, "")
	do(lead, map[string]any{"type": "submit", "aspect": "adoption", "level": 9, "rationale": "off the scale"}, "invalid")
	q := do(ana, map[string]any{"type": "ask", "text": "Who pays for it?"}, "")
	qid, _ := q.Result["question"].(string)
	do(bo, map[string]any{"type": "upvote", "question": qid}, "")
	do(bo, map[string]any{"type": "upvote", "question": qid}, "conflict") // one vote each
	do(bo, map[string]any{"type": "start"}, "forbidden")
	do(pres, map[string]any{"type": "ask", "text": "presenters only watch"}, "forbidden")

	m := scrape(t, ctx, base)
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"workshop_commands_total", []string{"type", "start", "result", "ok"}, 1},
		{"workshop_commands_total", []string{"type", "start", "result", "forbidden"}, 1},
		{"workshop_commands_total", []string{"type", "submit", "result", "ok"}, 1},
		{"workshop_commands_total", []string{"type", "submit", "result", "invalid"}, 1},
		{"workshop_commands_total", []string{"type", "ask", "result", "ok"}, 1},
		{"workshop_commands_total", []string{"type", "ask", "result", "forbidden"}, 1},
		{"workshop_commands_total", []string{"type", "upvote", "result", "ok"}, 1},
		{"workshop_commands_total", []string{"type", "upvote", "result", "conflict"}, 1},
		{"workshop_commands_total", nil, 8},
		{"workshop_connections", []string{"role", "facilitator"}, 1},
		{"workshop_connections", []string{"role", "team"}, 1},
		{"workshop_connections", []string{"role", "presenter"}, 1},
		{"workshop_connections", []string{"role", "attendee"}, 2},
		{"workshop_rooms_active", nil, 1},
		{"workshop_store_errors_total", nil, 0},
		{"workshop_slow_client_closes_total", nil, 0},
	} {
		if got := m.value(w.name, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	// Four commands made events (start, submit, ask, upvote): each was
	// fanned out once to the five clients.
	if got := m.value("workshop_fanout_seconds_count"); got < 4 {
		t.Errorf("workshop_fanout_seconds_count = %v, want at least 4", got)
	}
	// Each of them was one append, timed once it was durable.
	if got := m.value("workshop_store_append_seconds_count"); got < 4 {
		t.Errorf("workshop_store_append_seconds_count = %v, want at least 4", got)
	}
	if got := m.value("workshop_deliveries_total"); got < 4*5 {
		t.Errorf("workshop_deliveries_total = %v, want at least %d", got, 4*5)
	}
	if m.has("workshop_redis_bus_messages_total") {
		t.Error("Redis metrics on the embedded store")
	}

	// Everyone leaves: the gauges come back to zero.
	for _, c := range []*hubtest.Client{fac, lead, pres, ana, bo} {
		c.Close()
	}
	waitFor(t, ctx, "connections and rooms back to 0", func() bool {
		m := scrape(t, ctx, base)
		return m.value("workshop_connections") == 0 && m.value("workshop_rooms_active") == 0
	})
}

// startInProcess runs run() on a free loopback port with env as its
// environment and returns the base URL once /readyz answers. The server is
// stopped (through its context) when the test ends.
func startInProcess(t *testing.T, ctx context.Context, env map[string]string) string {
	t.Helper()
	addr := freeAddr(t)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(rctx, []string{"-addr", addr}, func(k string) string { return env[k] }, io.Discard)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not stop")
		}
	})
	base := "http://" + addr
	waitFor(t, ctx, "server ready", func() bool { return httpStatus(ctx, base+"/readyz") == http.StatusOK })
	return base
}

// freeAddr answers a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpStatus answers the status of a GET, or 0 when it failed.
func httpStatus(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// createRoom creates a PEMM room through the REST API.
func createRoom(t *testing.T, ctx context.Context, base string, teams []string) hub.CreatedRoom {
	t.Helper()
	body, _ := json.Marshal(hub.CreateRequest{Title: "Deploy test", Teams: teams})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/rooms", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rm hub.CreatedRoom
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create room: %s %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// metrics is one scrape of /metrics in the Prometheus text format.
type metrics []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// value sums the samples of name whose labels include the given
// name/value pairs.
func (m metrics) value(name string, labels ...string) float64 {
	var sum float64
	for _, s := range m {
		if s.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				ok = false
			}
		}
		if ok {
			sum += s.value
		}
	}
	return sum
}

func (m metrics) has(name string) bool {
	for _, s := range m {
		if s.name == name {
			return true
		}
	}
	return false
}

// scrape GETs /metrics and parses it. Label values here never hold quotes
// or commas, which keeps the parser short.
func scrape(t *testing.T, ctx context.Context, base string) metrics {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var out metrics
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return s, fmt.Errorf("no value in %q", line)
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		return s, fmt.Errorf("value in %q: %w", line, err)
	}
	s.value = v
	series := line[:i]
	name, rest, hasLabels := strings.Cut(series, "{")
	s.name = name
	if hasLabels {
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return s, fmt.Errorf("label %q in %q", kv, line)
			}
			s.labels[k] = strings.Trim(v, `"`)
		}
	}
	return s, nil
}
