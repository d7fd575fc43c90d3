package hub_test

// Scale out through Redis: several in-process instances, each with its own
// Redis client, store, bus, hub and HTTP server, share one real
// redis-server under a key prefix of their own.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/hub/redis"
	"github.com/leveling/workshop/room"
)

// redisNode is one instance of the server on Redis, as cmd/workshop runs it.
type redisNode struct {
	t      *testing.T
	name   string
	URL    string
	hub    *hub.Hub
	srv    *httptest.Server
	client goredis.UniversalClient
	store  *redis.Store
	bus    *redis.Bus
	reg    *prometheus.Registry // the hub's metrics
	stop   sync.Once
}

// nodeOptions tweak one instance: its bus (DropHook) and its hub.
type nodeOptions struct {
	bus func(*redis.BusConfig)
	hub func(*hub.Config)
}

// scalePrefix is a Redis key prefix no other test uses.
func scalePrefix(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "test:" + strings.ReplaceAll(t.Name(), "/", ".") + ":" + hex.EncodeToString(b) + ":"
}

// startNode starts an instance on r under prefix and stops it when the
// test ends.
func startNode(t *testing.T, r *hubtest.Redis, prefix, name string, opts nodeOptions) *redisNode {
	t.Helper()
	client, err := redis.NewClient(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	bcfg := redis.BusConfig{KeyPrefix: prefix, Instance: name, Logger: testLogger()}
	if opts.bus != nil {
		opts.bus(&bcfg)
	}
	bus := redis.NewBus(client, bcfg)
	store := redis.NewStore(client, redis.StoreConfig{KeyPrefix: prefix, Bus: bus})
	reg := prometheus.NewRegistry()
	cfg := hub.Config{Store: store, Bus: bus, Logger: testLogger(), Instance: name, Metrics: hub.NewMetrics(reg)}
	if opts.hub != nil {
		opts.hub(&cfg)
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub.NewServer(h, hub.HTTPConfig{Logger: testLogger()}))
	n := &redisNode{t: t, name: name, URL: srv.URL, hub: h, srv: srv, client: client, store: store, bus: bus, reg: reg}
	t.Cleanup(n.Stop)
	return n
}

// startNodes starts count instances named a, b, c... on one prefix.
func startNodes(t *testing.T, r *hubtest.Redis, count int, opts nodeOptions) []*redisNode {
	t.Helper()
	prefix := scalePrefix(t)
	nodes := make([]*redisNode, count)
	for i := range nodes {
		nodes[i] = startNode(t, r, prefix, string(rune('a'+i)), opts)
	}
	return nodes
}

// Stop shuts the instance down in the production order. Idempotent.
func (n *redisNode) Stop() {
	n.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.hub.StartDrain()
		n.srv.Config.SetKeepAlivesEnabled(false)
		if err := n.hub.Shutdown(ctx); err != nil {
			n.t.Errorf("instance %s: hub shutdown: %v", n.name, err)
		}
		n.srv.Close()
		_ = n.bus.Close()
		_ = n.store.Close()
		_ = n.client.Close()
	})
}

func (n *redisNode) wsURL(id string) string {
	return "ws" + strings.TrimPrefix(n.URL, "http") + "/api/rooms/" + id + "/ws"
}

// readyz answers the status of GET /readyz.
func (n *redisNode) readyz(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// counter reads one of the instance's counters (summed over labels).
func (n *redisNode) counter(name string) float64 {
	return counterValue(n.t, n.reg, name)
}

// waitAll waits until every client has applied seq.
func waitAll(t *testing.T, ctx context.Context, seq uint64, clients ...*hubtest.Client) {
	t.Helper()
	for i, c := range clients {
		if err := c.WaitSeq(ctx, seq); err != nil {
			t.Fatalf("client %d (%s): %v", i, c.Welcome().Role, err)
		}
	}
}

// seqTypes lists a client's applied events as "seq:type".
func seqTypes(evs []room.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d:%s", e.Seq, e.Type)
	}
	return out
}

// seqsOnly lists the sequences of events.
func seqsOnly(evs []room.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// checkConverged checks that every client has the store's projection.
func checkConverged(t *testing.T, ctx context.Context, n *redisNode, roomID string, clients ...*hubtest.Client) *room.State {
	t.Helper()
	st, err := n.hub.LoadRoom(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	want := projection(room.View(st, room.Audience{Role: room.RoleAttendee}))
	waitAll(t, ctx, st.Seq, clients...)
	for i, c := range clients {
		if got := projection(c.State()); got != want {
			t.Fatalf("client %d (%s) diverged from the store:\n got %s\nwant %s", i, c.Welcome().Role, got, want)
		}
	}
	return st
}

// TestScaleOutWorkshop runs the end-to-end workshop of TestWorkshopEndToEnd
// with its clients spread over two, then three, instances sharing one
// Redis: secrecy holds on every instance, every client of every instance
// sees the same events with the same sequence numbers, and all converge
// on the store's state.
func TestScaleOutWorkshop(t *testing.T) {
	r := hubtest.StartRedis(t)
	for _, count := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d instances", count), func(t *testing.T) {
			checkNoLeaks(t)
			ctx := testContext(t, 60*time.Second)
			runScaledWorkshop(t, ctx, startNodes(t, r, count, nodeOptions{}))
		})
	}
}

func runScaledWorkshop(t *testing.T, ctx context.Context, nodes []*redisNode) {
	on := func(i int) *redisNode { return nodes[i%len(nodes)] }
	rm := createRoom(t, on(1).URL, map[string]any{"title": "Q3 leveling", "teams": []string{"Payments", "Search"}})

	// Every role on every instance: a second connection of the facilitator
	// and of team 1 lets the same audience be compared across instances.
	fac := dial(t, ctx, on(0).wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	fac2 := dial(t, ctx, on(len(nodes)-1).wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	lead1 := dial(t, ctx, on(1).wsURL(rm.ID), map[string]any{"key": rm.Teams[0].Key})
	lead1b := dial(t, ctx, on(2).wsURL(rm.ID), map[string]any{"key": rm.Teams[0].Key})
	lead2 := dial(t, ctx, on(2).wsURL(rm.ID), map[string]any{"key": rm.Teams[1].Key})
	presenter := dial(t, ctx, on(1).wsURL(rm.ID), map[string]any{"key": rm.PresenterKey})
	var attendees []*hubtest.Client
	for i, name := range []string{"Ana", "Bo", "Cy"} {
		attendees = append(attendees, dial(t, ctx, on(i).wsURL(rm.ID), map[string]any{"name": name}))
	}
	public := append([]*hubtest.Client{presenter}, attendees...)
	all := append([]*hubtest.Client{fac, fac2, lead1, lead1b, lead2}, public...)

	// Each step waits until every client on every instance has it: a
	// command is decided on its instance's state, which must include what
	// its client has seen (a client only names what reached it).
	step := func(c *hubtest.Client, cmd map[string]any) hubtest.Reply {
		t.Helper()
		r := do(t, ctx, c, cmd)
		waitAll(t, ctx, r.Seq, all...)
		return r
	}

	const secret1, secret2 = "RATIONALE-PAYMENTS-7f3a", "RATIONALE-SEARCH-91bc"
	step(lead1, map[string]any{"type": "save_draft", "aspect": "investment", "level": 2, "rationale": "DRAFT-" + secret1})
	step(lead1b, map[string]any{"type": "submit", "aspect": "investment", "level": 3, "rationale": secret1})
	step(lead2, map[string]any{"type": "submit", "aspect": "investment", "level": 1, "rationale": secret2})
	step(fac2, map[string]any{"type": "start"})
	step(fac, map[string]any{"type": "call_turn"})
	// Before the reveal no public frame on any instance, and no frame to
	// the other team or the facilitator, carries a level or a rationale.
	for i, c := range public {
		for _, f := range c.Frames() {
			if bytes.Contains(f, []byte(secret1)) || bytes.Contains(f, []byte(secret2)) || bytes.Contains(f, []byte(`"level":`)) {
				t.Fatalf("public client %d saw a score before the reveal: %s", i, f)
			}
		}
	}
	for _, f := range lead2.Frames() {
		if bytes.Contains(f, []byte(secret1)) {
			t.Fatalf("team 2 saw team 1's rationale: %s", f)
		}
	}
	for _, c := range []*hubtest.Client{fac, fac2} {
		for _, f := range c.Frames() {
			if bytes.Contains(f, []byte(secret1)) || bytes.Contains(f, []byte(secret2)) || bytes.Contains(f, []byte("DRAFT-")) {
				t.Fatalf("facilitator saw an unrevealed rationale: %s", f)
			}
		}
	}
	for _, f := range lead1b.Frames() {
		if bytes.Contains(f, []byte(secret2)) {
			t.Fatalf("team 1 saw team 2's rationale: %s", f)
		}
	}
	if st := attendees[2].State(); st.Turn == nil || st.Turn.Team != "t1" {
		t.Fatalf("turn: got %+v, want team t1", st.Turn)
	}

	step(fac2, map[string]any{"type": "reveal", "team": "t1"})
	for i, c := range all {
		sc := c.State().Score("t1", "investment")
		if sc == nil || !sc.Revealed || sc.Level != 3 || sc.Rationale != secret1 {
			t.Fatalf("client %d after reveal: got %+v, want level 3 revealed", i, sc)
		}
		if other := c.State().Score("t2", "investment"); c != lead2 && other != nil && other.Level != 0 {
			t.Fatalf("client %d: team 2's unrevealed score leaked: %+v", i, other)
		}
	}

	ask := step(attendees[0], map[string]any{"type": "ask", "text": "How do you fund the platform team?"})
	qid, _ := ask.Result["question"].(string)
	if qid == "" {
		t.Fatalf("ask result: %v", ask.Result)
	}
	// The upvotes come through instances other than the asker's.
	step(attendees[1], map[string]any{"type": "upvote", "question": qid})
	step(attendees[2], map[string]any{"type": "upvote", "question": qid})
	if r, _ := attendees[2].Do(ctx, map[string]any{"type": "upvote", "question": qid}); r.Code != room.ECONFLICT {
		t.Fatalf("second upvote: got %q, want conflict", r.Code)
	}
	step(fac2, map[string]any{"type": "highlight", "question": qid})
	last := step(fac, map[string]any{"type": "answer", "question": qid, "on": true})
	for i, c := range all {
		st := c.State()
		q, ok := st.Question(qid)
		if !ok || q.Votes != 2 || !q.Answered || st.Highlighted != qid {
			t.Fatalf("client %d question: got %+v (highlighted %q)", i, q, st.Highlighted)
		}
		if c.Gaps() != 0 || c.Snapshots() != 1 {
			t.Fatalf("client %d: %d gaps and %d snapshots, want 0 and 1", i, c.Gaps(), c.Snapshots())
		}
	}
	st := checkConverged(t, ctx, nodes[0], rm.ID, all...)
	if st.Seq != last.Seq {
		t.Fatalf("store head %d, last ack %d", st.Seq, last.Seq)
	}
	// Every instance loads the same room.
	for _, n := range nodes[1:] {
		other, err := n.hub.LoadRoom(ctx, rm.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := projection(other), projection(st); a != b {
			t.Fatalf("instance %s loads\n %s\nwant %s", n.name, a, b)
		}
	}

	// Same events, same sequence numbers: every client saw every event
	// after its snapshot (2..last), and clients of one audience saw the
	// same types; the others see private twins at the same numbers. The
	// facilitator gets votes and hands as events, everyone else in tallies
	// (PROTOCOL.md, "tally"), which they applied above.
	wantSeqs := make([]uint64, 0, last.Seq)
	var untallied []uint64
	tallied := map[uint64]bool{}
	for _, e := range fac.Events() {
		tallied[e.Seq] = room.Tallied(e)
	}
	for s := uint64(2); s <= last.Seq; s++ {
		wantSeqs = append(wantSeqs, s)
		if !tallied[s] {
			untallied = append(untallied, s)
		}
	}
	for i, c := range all {
		want := wantSeqs
		if c != fac && c != fac2 {
			want = untallied
		}
		if got := seqsOnly(c.Events()); !slices.Equal(got, want) {
			t.Fatalf("client %d events: got %v, want %v", i, got, want)
		}
	}
	for _, group := range [][]*hubtest.Client{{fac, fac2}, {lead1, lead1b}, public} {
		want := seqTypes(group[0].Events())
		for i, c := range group[1:] {
			if got := seqTypes(c.Events()); !slices.Equal(got, want) {
				t.Fatalf("audience %s, client %d on another instance:\n got %v\nwant %v", group[0].Welcome().Role, i+1, got, want)
			}
		}
	}

	// Presence is merged across instances.
	if err := attendees[0].WaitPresence(ctx, func(p room.Presence) bool {
		return p.Attendees == 3 && p.Facilitator && p.Teams["t1"] == 2 && p.Teams["t2"] == 1 && p.Presenters == 1
	}); err != nil {
		t.Fatalf("presence: got %+v: %v", attendees[0].Presence(), err)
	}
	if err := fac.WaitPresence(ctx, func(p room.Presence) bool { return len(p.Names) == 3 }); err != nil {
		t.Fatalf("facilitator presence names: got %+v", fac.Presence())
	}
	if len(attendees[1].Presence().Names) != 0 {
		t.Fatalf("attendee sees names: %+v", attendees[1].Presence())
	}
}
