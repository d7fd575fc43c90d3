package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/hubtest"
	"github.com/leveling/workshop/hub/redis"
	"github.com/leveling/workshop/room"
	bolt "go.etcd.io/bbolt"
)

const validRoom = `{"title":"REST","teams":["A","B"]}`

// postRoom posts body to /api/rooms with Content-Type ct ("" sends none).
func postRoom(t *testing.T, ctx context.Context, base, ct string, body io.Reader) httpAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/rooms", body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return doHTTP(t, req)
}

// wantError checks a REST error answer: status, code, and a message that
// contains msg.
func wantError(t *testing.T, got httpAnswer, status int, code, msg string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(got.body), &body); err != nil {
		t.Fatalf("status %d, body %q: not a JSON error: %v", got.status, got.body, err)
	}
	if got.status != status || body.Error.Code != code || !strings.Contains(body.Error.Message, msg) {
		t.Fatalf("got %d %s, want %d %s with %q", got.status, got.body, status, code, msg)
	}
}

// TestCreateRoomMediaType: only application/json creates a room, so an
// HTML form on another site (form-urlencoded, multipart, text/plain, all
// with a JSON-looking body) cannot.
func TestCreateRoomMediaType(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	for _, tc := range []struct{ name, ct, msg string }{
		{"text/plain", "text/plain", "got text/plain"},
		{"form-urlencoded", "application/x-www-form-urlencoded", "got application/x-www-form-urlencoded"},
		{"multipart", "multipart/form-data; boundary=x", "want application/json"},
		{"missing", "", "got none"},
		{"malformed", "application/json; charset", "want application/json"},
		{"not utf-8", "application/json; charset=latin1", "charset latin1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := postRoom(t, ctx, srv.URL, tc.ct, strings.NewReader(validRoom))
			wantError(t, got, http.StatusUnsupportedMediaType, hub.EMEDIATYPE, tc.msg)
		})
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"} {
		if got := postRoom(t, ctx, srv.URL, ct, strings.NewReader(validRoom)); got.status != http.StatusCreated {
			t.Errorf("Content-Type %q: got %d %s, want 201", ct, got.status, got.body)
		}
	}
}

// TestCreateRoomTrailingData: the body is one JSON value, white space
// after it allowed, nothing else.
func TestCreateRoomTrailingData(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	for _, tc := range []struct{ name, body string }{
		{"second object", validRoom + `{"title":"Other","teams":["C"]}`},
		{"word", validRoom + ` x`},
		{"closing bracket", validRoom + `]`},
		{"second object after a newline", validRoom + "\n{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := postRoom(t, ctx, srv.URL, "application/json", strings.NewReader(tc.body))
			wantError(t, got, http.StatusBadRequest, room.EINVALID, "data after the JSON object")
		})
	}
	got := postRoom(t, ctx, srv.URL, "application/json", strings.NewReader(validRoom+" \r\n\t\n"))
	if got.status != http.StatusCreated {
		t.Fatalf("trailing white space: got %d %s, want 201", got.status, got.body)
	}
}

// bigRoom is a create request of about 200 KiB, over the 128 KiB limit.
func bigRoom() string {
	return `{"title":"` + strings.Repeat("x", 200<<10) + `","teams":["A"]}`
}

// TestCreateRoomTooLargeContentLength: a body declared too large is
// refused from its header, with our JSON error body.
func TestCreateRoomTooLargeContentLength(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/rooms", strings.NewReader(bigRoom()))
	req.Header.Set("Content-Type", "application/json")
	if req.ContentLength != int64(len(bigRoom())) {
		t.Fatalf("Content-Length %d, want %d", req.ContentLength, len(bigRoom()))
	}
	wantError(t, doHTTP(t, req), http.StatusRequestEntityTooLarge, hub.ETOOLARGE, "over 128 KiB")
}

// TestCreateRoomTooLargeChunked: a body of unknown length (sent chunked,
// no Content-Length) is cut at the limit while it is read and answers the
// same 413 too_large, whether the value ends just past the limit or far
// beyond it, and whether the excess is in the value or after it.
func TestCreateRoomTooLargeChunked(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	srv := startServer(t, t.TempDir(), "")
	for _, tc := range []struct{ name, body string }{
		{"200 KiB", bigRoom()},
		{"1 MiB", `{"title":"` + strings.Repeat("x", 1<<20) + `","teams":["A"]}`},
		{"white space after the value", validRoom + strings.Repeat(" ", 200<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A reader that is not a *strings.Reader or *bytes.Buffer has
			// no known length: net/http sends it chunked.
			body := io.MultiReader(strings.NewReader(tc.body))
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/rooms", body)
			req.Header.Set("Content-Type", "application/json")
			if req.ContentLength != 0 {
				t.Fatalf("Content-Length %d: the body would not be chunked", req.ContentLength)
			}
			wantError(t, doHTTP(t, req), http.StatusRequestEntityTooLarge, hub.ETOOLARGE, "over 128 KiB")
		})
	}
	// A chunked body under the limit is fine.
	got := postRoom(t, ctx, srv.URL, "application/json", io.MultiReader(strings.NewReader(validRoom)))
	if got.status != http.StatusCreated {
		t.Fatalf("small chunked body: got %d %s, want 201", got.status, got.body)
	}
}

// TestCreateRoomMalformedKeepsBudget: 25 refused requests of every kind
// from one address spend none of its 20 rooms an hour; then 20 rooms are
// created and the 21st is refused with a Retry-After.
func TestCreateRoomMalformedKeepsBudget(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "") // the default budget: 20 per hour
	tooManyTeams := `{"title":"Teams","teams":[` + strings.Repeat(`"t",`, room.MaxTeams) + `"t"]}`
	bad := []struct {
		ct, body string
		status   int
	}{
		{"text/plain", validRoom, http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", validRoom, http.StatusUnsupportedMediaType},
		{"", validRoom, http.StatusUnsupportedMediaType},
		{"application/json", validRoom + validRoom, http.StatusBadRequest},
		{"application/json", `{"title":`, http.StatusBadRequest},
		{"application/json", ``, http.StatusBadRequest},
		{"application/json", `{"title":"x","teams":["A"],"colour":"red"}`, http.StatusBadRequest},
		{"application/json", `{"title":"","teams":["A"]}`, http.StatusBadRequest},
		{"application/json", tooManyTeams, http.StatusBadRequest},
		{"application/json", `{"title":"x","teams":["A"],"model":"cmmi"}`, http.StatusBadRequest},
		{"application/json", `{"title":"x","teams":["A"],"model":{"name":"m","levels":[{"name":"one"}],"aspects":[]}}`, http.StatusBadRequest},
		{"application/json", bigRoom(), http.StatusRequestEntityTooLarge},
	}
	for i := range 25 {
		b := bad[i%len(bad)]
		var body io.Reader = strings.NewReader(b.body)
		if i%2 == 1 {
			body = io.MultiReader(body) // chunked
		}
		if got := postRoom(t, ctx, srv.URL, b.ct, body); got.status != b.status {
			t.Fatalf("bad request %d (%q, %.40q): got %d %s, want %d", i, b.ct, b.body, got.status, got.body, b.status)
		}
	}
	for i := range 20 {
		if got := postRoom(t, ctx, srv.URL, "application/json", strings.NewReader(validRoom)); got.status != http.StatusCreated {
			t.Fatalf("room %d after 25 refused requests: got %d %s, want 201", i+1, got.status, got.body)
		}
	}
	got := postRoom(t, ctx, srv.URL, "application/json", strings.NewReader(validRoom))
	wantError(t, got, http.StatusTooManyRequests, room.ERATELIMITED, "rooms created from your address")
	if got.header.Get("Retry-After") == "" || !strings.Contains(got.body, `"retryAfter":`) {
		t.Fatalf("21st room: no Retry-After: %v %s", got.header, got.body)
	}
	// A malformed request from a limited address is still refused for
	// what it is when the headers show it, before the budget is asked.
	wantError(t, postRoom(t, ctx, srv.URL, "text/plain", strings.NewReader(validRoom)),
		http.StatusUnsupportedMediaType, hub.EMEDIATYPE, "want application/json")
}

// TestCreateRoomBudgetConcurrent: many creates at once from one address
// never make more rooms than the budget: a token is taken before the body
// is read, and only a failure gives it back.
func TestCreateRoomBudgetConcurrent(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) { c.Limits.AddrRooms = burst(5) })
	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/rooms", strings.NewReader(validRoom))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 5 || count[http.StatusTooManyRequests] != n-5 {
		t.Fatalf("statuses %v: want 5 created and %d rate-limited", count, n-5)
	}
}

// TestReadyzHidesReason: with its Redis store down, /readyz answers only
// "not ready"; the reason (which names the Redis address) is logged.
func TestReadyzHidesReason(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	r := hubtest.StartRedis(t)
	client, err := redis.NewClient(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	logs := &hubtest.LockedBuffer{}
	srv := startServerHTTP(t, t.TempDir(), "", func(c *hub.HTTPConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, func(c *hub.Config) {
		c.Store = redis.NewStore(client, redis.StoreConfig{KeyPrefix: "readyz:"})
	})
	ready := func() httpAnswer {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/readyz", nil)
		return doHTTP(t, req)
	}
	if got := ready(); got.status != http.StatusOK || got.body != `{"status":"ready"}`+"\n" {
		t.Fatalf("with Redis up: %d %q", got.status, got.body)
	}
	r.Kill()
	got := ready()
	if got.status != http.StatusServiceUnavailable || got.body != `{"status":"not ready"}`+"\n" {
		t.Fatalf("with Redis down: got %d %q, want 503 and only the status", got.status, got.body)
	}
	_, port, _ := strings.Cut(r.Addr(), ":")
	if strings.Contains(got.body, port) || strings.Contains(got.body, "127.0.0.1") {
		t.Fatalf("the answer names Redis: %q", got.body)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "not ready") || !strings.Contains(l, port) {
		t.Fatalf("the reason is not in the log:\n%s", l)
	}
}

// testClock is a clock a test moves by hand. Safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestBoltClosedRoomCodeExpires: on the embedded store a closed room's
// join code resolves until ClosedRoomTTL after the close, then answers
// exactly like a code that never existed; the room itself stays readable
// by its links.
func TestBoltClosedRoomCodeExpires(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	const ttl = 24 * time.Hour
	clock := &testClock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	srv := startServer(t, t.TempDir(), "", func(c *hub.Config) {
		store, err := hub.OpenBoltStoreWithConfig(hub.BoltStoreConfig{
			Dir: t.TempDir(), Bus: c.Bus.(*hub.LocalBus), ClosedRoomTTL: ttl, Now: clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() }) // after the server stops
		c.Store = store
	})
	rm := createRoom(t, srv.URL, map[string]any{"title": "Retention", "teams": []string{"A"}})
	lookup := func(code string) httpAnswer {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/join/"+code, nil)
		return doHTTP(t, req)
	}
	if got := lookup(rm.Code); got.status != http.StatusOK || !strings.Contains(got.body, rm.ID) {
		t.Fatalf("open room: %d %s", got.status, got.body)
	}
	fac := dial(t, ctx, srv.wsURL(rm.ID), map[string]any{"key": rm.FacilitatorKey})
	do(t, ctx, fac, map[string]any{"type": "close"})
	clock.Advance(ttl - time.Millisecond)
	if got := lookup(rm.Code); got.status != http.StatusOK || !strings.Contains(got.body, rm.ID) {
		t.Fatalf("closed room within its retention: %d %s", got.status, got.body)
	}
	clock.Advance(time.Millisecond)
	expired, unknown := lookup(rm.Code), lookup("ZZZZZZZZ")
	if expired.status != http.StatusNotFound || expired.status != unknown.status || expired.body != unknown.body {
		t.Fatalf("expired code: %d %q; unknown code: %d %q; want the same 404", expired.status, expired.body, unknown.status, unknown.body)
	}
	// The browser form too.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, code := range []string{rm.Code, "ZZZZZZZZ"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/j/"+code, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?error=code" {
			t.Fatalf("/j/%s: %d %s, want 303 to /?error=code", code, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/rooms/"+rm.ID, nil)
	if got := doHTTP(t, req); got.status != http.StatusOK {
		t.Fatalf("room by its link after the code expired: %d %s", got.status, got.body)
	}
}

// TestBoltClosedRoomCodeExpiresOldFile: a room closed by a version that
// did not keep the close time in the room's metadata expires from its
// closed event's time.
func TestBoltClosedRoomCodeExpiresOldFile(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	const ttl = time.Hour
	dir := t.TempDir()
	closedAt := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := &testClock{now: closedAt}
	open := func() *hub.BoltStore {
		s, err := hub.OpenBoltStoreWithConfig(hub.BoltStoreConfig{Dir: dir, ClosedRoomTTL: ttl, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	store := open()
	const id, code = "6f1f7a52-6d55-4a3c-9f57-8b1b2a3c4d5e", "K7PQM3TX"
	events, err := room.Create(room.CreateParams{ID: id, Code: code, Title: "Old", Model: room.PEMM(), TeamNames: []string{"A"}, Now: closedAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, id, code, events); err != nil {
		t.Fatal(err)
	}
	closed := []room.Event{{Seq: 2, Type: room.EvClosed, At: closedAt}}
	if err := store.Append(ctx, id, 1, closed, nil); err != nil {
		t.Fatal(err)
	}
	store.Close()
	// What an older version wrote: no close time in the metadata.
	db, err := bolt.Open(filepath.Join(dir, "workshop.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket([]byte("rooms")).Bucket([]byte(id))
		var meta map[string]any
		if err := json.Unmarshal(rb.Get([]byte("meta")), &meta); err != nil {
			return err
		}
		if _, ok := meta["closedAt"]; !ok {
			return errors.New("the store kept no closedAt in meta")
		}
		delete(meta, "closedAt")
		b, _ := json.Marshal(meta)
		return rb.Put([]byte("meta"), b)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	store = open()
	defer store.Close()
	clock.Advance(ttl - time.Millisecond)
	if got, err := store.Lookup(ctx, code); err != nil || got != id {
		t.Fatalf("within retention: %q, %v", got, err)
	}
	clock.Advance(time.Millisecond)
	if _, err := store.Lookup(ctx, code); !errors.Is(err, hub.ErrRoomNotFound) {
		t.Fatalf("after retention: got %v, want ErrRoomNotFound", err)
	}
}
