package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the walk itself: how long one answer may take, and how much of
// an answer a line shows.
const (
	replyTimeout   = 5 * time.Second       // one answer from the server
	helloTimeout   = 10 * time.Second      // PROTOCOL.md: hello within 10 seconds
	closeSlack     = 5 * time.Second       // on top of helloTimeout before the close must have come
	maxShown       = 260                   // characters of an answer shown in a line
	maxRetryWait   = 3 * time.Second       // longest retryAfter the walk honours before giving up
	pollInterval   = 50 * time.Millisecond // between polls of a condition over HTTP
	maxGoneWait    = 15 * time.Second      // on top of -closed-room-ttl for a closed room's code to stop resolving
	shutdownWait   = 20 * time.Second      // for a SIGTERMed server to close its sockets
	dedicatedAddrs = 8                     // top source addresses kept for per-address limit checks
	slowFlood      = 8000                  // messages a never-reading client sends to fall behind
	slowRcvBuf     = 4096                  // its socket receive buffer, bytes
	slowWriteWait  = 3 * time.Second       // how long the flood may wait for the server to take it
	httpTimeout    = 10 * time.Second      // one REST call
	shutdownPoll   = 20 * time.Millisecond // between /readyz polls while the server drains
	bigFrame       = 64<<10 + 1            // one byte over PROTOCOL.md's 64 KiB
	maxFrame       = 64 << 10              // PROTOCOL.md: at most 64 KiB
	bigBody        = 1 << 20               // a create request far over any sane limit
	maxCreateBody  = 128 << 10             // PROTOCOL.md: the create body is at most 128 KiB
	clockSkew      = 60 * time.Second      // server clock vs ours on one machine
	floodTimeout   = 30 * time.Second      // the identity flood as a whole
	upgradeTimeout = 15 * time.Second      // the upgrade flood as a whole
	idPrefixBytes  = 4                     // random bytes in the walk's command id prefix
	markerBytes    = 6                     // random bytes in a secret marker
	slowReadLimit  = 64 << 20              // what the slow client may read once it reads
	readLimit      = 16 << 20              // a server message (snapshots, batches)
)

// walker runs the checks and counts their outcomes. check may be called
// from several goroutines.
type walker struct {
	cfg config
	out io.Writer

	mu      sync.Mutex
	oks     int
	skips   int
	failed  []string
	clients map[string]*http.Client // per source address
	conns   []*wsClient             // every WebSocket the walk opened
	secrets []secret                // values some audiences must never receive

	idPrefix string
	ids      atomic.Int64
	// serverPings counts WebSocket pings from the server, on any connection.
	serverPings atomic.Int64
	next        atomic.Int64 // round robin over the shared source addresses
}

func newWalker(cfg config, out io.Writer) *walker {
	return &walker{cfg: cfg, out: out, clients: map[string]*http.Client{}, idPrefix: randHex(idPrefixBytes)}
}

// check prints one line: ok or FAIL, the check, what was sent, what came
// back and what PROTOCOL.md says.
func (w *walker) check(name string, ok bool, sent, got, says string) bool {
	status := "ok  "
	if !ok {
		status = "FAIL"
	}
	line := fmt.Sprintf("%s %s: sent %s; got %s; PROTOCOL.md: %s", status, name, shorten(sent), shorten(got), says)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok {
		w.oks++
	} else {
		w.failed = append(w.failed, line)
	}
	fmt.Fprintln(w.out, line)
	return ok
}

// checkFull is check for a summary line: got is shown whole.
func (w *walker) checkFull(name string, ok bool, sent, got, says string) bool {
	status := "ok  "
	if !ok {
		status = "FAIL"
	}
	line := fmt.Sprintf("%s %s: sent %s; got %s; PROTOCOL.md: %s", status, name, sent, got, says)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok {
		w.oks++
	} else {
		w.failed = append(w.failed, line)
	}
	fmt.Fprintln(w.out, line)
	return ok
}

// skip prints why a check is not made.
func (w *walker) skip(name, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.skips++
	fmt.Fprintf(w.out, "skip %s: %s\n", name, why)
}

// note prints a line that is neither a pass nor a failure.
func (w *walker) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.out, "#    "+format+"\n", args...)
}

// summary prints the totals, the failures again, and answers the exit
// status.
func (w *walker) summary() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.out, "\n%d ok, %d FAIL, %d skipped\n", w.oks, len(w.failed), w.skips)
	if len(w.failed) == 0 {
		return 0
	}
	fmt.Fprintln(w.out, "failed:")
	for _, l := range w.failed {
		fmt.Fprintln(w.out, "  "+l)
	}
	return 1
}

// newID answers a command id unique for this walk: a random prefix per
// run and a counter, as PROTOCOL.md suggests.
func (w *walker) newID() string {
	return fmt.Sprintf("h%s-%d", w.idPrefix, w.ids.Add(1))
}

// The source addresses: 127.0.0.1 to .N. The top dedicatedAddrs are kept
// for the checks that spend a per-address budget on purpose; the others
// are shared round robin by everything else.
const (
	addrIdentities = iota // the 4029 identity flood
	addrUpgrades          // the upgrade 429 flood
	addrLookups           // the lookup rate limit
	addrGone              // lookups of a gone room's code
	addrBadCreate         // malformed POST /api/rooms
	addrSlow              // the client that never reads
	addrShutdown          // the connections that see the SIGTERM
)

// dedicated answers the source address kept for one purpose, or "" when
// there are not enough addresses (the check is then skipped).
func (w *walker) dedicated(which int) string {
	if w.cfg.sourceAddrs < dedicatedAddrs+2 {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", w.cfg.sourceAddrs-which)
}

// shared answers the next shared source address ("" = the system's choice).
func (w *walker) shared() string {
	n := w.cfg.sourceAddrs
	if n < dedicatedAddrs+2 {
		if n == 1 {
			return ""
		}
		return fmt.Sprintf("127.0.0.%d", 1+int(w.next.Add(1))%n)
	}
	return fmt.Sprintf("127.0.0.%d", 1+int(w.next.Add(1))%(n-dedicatedAddrs))
}

// httpClient answers an HTTP client whose connections come from src ("":
// any). It does not follow redirects: /j/{code} is checked as it answers.
func (w *walker) httpClient(src string) *http.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.clients[src]; ok {
		return c
	}
	c := &http.Client{
		Timeout:       httpTimeout,
		Transport:     &http.Transport{DialContext: dialer(src, 0).DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	w.clients[src] = c
	return c
}

// dialer dials from src ("": any), with a receive buffer of rcvbuf bytes
// when rcvbuf > 0.
func dialer(src string, rcvbuf int) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	if rcvbuf > 0 {
		d.Control = setRcvBuf(rcvbuf)
	}
	return d
}

// closeIdle lets go of every kept-alive HTTP connection.
func (w *walker) closeIdle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		c.CloseIdleConnections()
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shorten(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\n", `\n`), "\uFFFD")
	if len(s) <= maxShown {
		return s
	}
	return s[:maxShown] + fmt.Sprintf("…(%d bytes)", len(s))
}

// within answers a context bounded by d under ctx.
func within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
