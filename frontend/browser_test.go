package frontend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/leveling/workshop/hub/hubtest"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// Timeouts of the browser tests, from the whole test down to one wait.
const (
	flowTimeout  = 150 * time.Second // the whole workshop flow, restart included
	waitTimeout  = 20 * time.Second  // one condition on one page
	startTimeout = 20 * time.Second  // the server answering /readyz
	stopTimeout  = 20 * time.Second  // SIGTERM to exit, before a kill
)

var (
	// chromiumPath is the browser the tests drive, "" when none is installed.
	chromiumPath string
	// serverBin is the workshop binary built once by TestMain.
	serverBin string
	// buildErr is why serverBin could not be built.
	buildErr error
	// repoRoot is the module root (where go.mod is).
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "frontend tests:", err)
		return 1
	}
	repoRoot = root
	chromiumPath = findChromium()
	if chromiumPath != "" {
		dir, err := os.MkdirTemp("", "workshop-frontend-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, "frontend tests:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		serverBin = filepath.Join(dir, "workshop")
		buildErr = buildServer(serverBin)
	}
	return m.Run()
}

func findChromium() string {
	// CHROMIUM names another browser binary; one that does not exist
	// counts as no browser.
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func buildServer(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, "./cmd/workshop")
	cmd.Dir = repoRoot
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/workshop: %w\n%s", err, buf.String())
	}
	return nil
}

// needBrowser skips the test when chromium is missing, except under CI
// (CI=true), where a missing browser is a failure.
func needBrowser(t *testing.T) {
	t.Helper()
	if chromiumPath == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and CI=true requires the browser tests: run `make deps`")
		}
		t.Skip("chromium is not installed (/usr/bin/chromium); `make deps` installs it")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// ---- the server as a subprocess ----

// server runs the workshop binary on a fixed address and data directory, so
// that it can be stopped and started again in place.
type server struct {
	t    *testing.T
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	logs *hubtest.LockedBuffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newServer(t *testing.T) *server {
	s := &server{t: t, addr: freeAddr(t), dir: t.TempDir(), logs: &hubtest.LockedBuffer{}}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *server) url() string { return "http://" + s.addr }

// start runs the binary and waits until /readyz answers 200.
func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(serverBin, "-addr", s.addr, "-data-dir", s.dir, "-log-level", "warn", "-shutdown-grace", "5s")
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.done)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("server exited at start:\n%s", s.logs.String())
		default:
		}
		res, err := http.Get(s.url() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server not ready after %v:\n%s", startTimeout, s.logs.String())
}

// stop sends SIGTERM and waits for the process to exit (killing it after
// stopTimeout).
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("server did not stop within %v of SIGTERM", stopTimeout)
	}
	s.cmd = nil
}

// ---- browser tabs, each in its own browser context ----

type tab struct {
	t       *testing.T
	name    string
	ctx     context.Context
	mu      sync.Mutex
	console []string     // exceptions and CSP violations: the test fails on any
	dialogs atomic.Int32 // alerts opened
}

// newBrowser starts chromium headless with a fresh profile; it stops when
// ctx ends or the test is cleaned up.
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// newTab opens a tab in a new browser context (its own cookies and
// localStorage, like another person's browser).
func newTab(t *testing.T, bctx context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, name: name, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			// The console's confirm() questions are expected; an alert
			// would be the question's markup running.
			if d.Type == page.DialogTypeAlert {
				tb.dialogs.Add(1)
			}
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})
	if err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			text := m.String()
			bad := m.IsException() || strings.Contains(text, "Content Security Policy") || strings.Contains(text, "Content-Security-Policy")
			if bad {
				tb.mu.Lock()
				tb.console = append(tb.console, text)
				tb.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tb
}

func (tb *tab) fatalf(format string, args ...any) {
	tb.t.Helper()
	body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ''`))
	tb.t.Fatalf("%s: %s\npage text:\n%s", tb.name, fmt.Sprintf(format, args...), body)
}

func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fatalf("%s: %v", what, err)
	}
}

func (tb *tab) url() string {
	tb.t.Helper()
	return eval[string](tb, `location.href`)
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("navigate "+url, chromedp.Navigate(url))
}

// waitJS waits until the JavaScript expression is truthy.
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
		if err == nil {
			return
		}
		// A navigation (a redirect, a reload) ends the poll in the old
		// document: poll again in the new one.
		if ctx.Err() == nil && navigated(err) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tb.fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func navigated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "navigated") || strings.Contains(s, "context was destroyed") || strings.Contains(s, "Cannot find context")
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fatalf("eval %s: %v", expr, err)
	}
	return v
}

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// click waits for an enabled button (or link styled as one) whose text is
// label inside the element that scope selects, and clicks it.
func (tb *tab) click(scope, label string) {
	tb.t.Helper()
	expr := fmt.Sprintf(`(() => {
		const root = document.querySelector(%s);
		if (!root) return false;
		const b = [...root.querySelectorAll('button, a.button')].find((x) => x.textContent.trim() === %s && !x.disabled);
		if (!b) return false;
		b.scrollIntoView({block: 'center'});
		b.click();
		return true;
	})()`, js(scope), js(label))
	tb.waitJS(fmt.Sprintf("button %q in %s", label, scope), expr)
}

// typeInto focuses the field and types text as key presses.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.do("type into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (tb *tab) live() {
	tb.t.Helper()
	tb.waitJS("a live connection", `document.querySelector('.conn[data-status="live"]') !== null`)
}

func (tb *tab) checkConsole() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		tb.t.Errorf("%s: browser console: %s", tb.name, m)
	}
	if n := tb.dialogs.Load(); n > 0 {
		tb.t.Errorf("%s: %d JavaScript alerts opened", tb.name, n)
	}
}

// viewport is a size a page is captured at; mobile emulates a phone.
type viewport struct {
	w, h   int64
	mobile bool
}

// viewports are the two sizes every page is captured at.
var viewports = []viewport{{360, 740, true}, {1920, 1080, false}}

// overflowJS lists the elements that stick out of the page to the right,
// making the page scroll sideways (what scrolls inside its own box is fine).
const overflowJS = `(() => {
	const w = document.documentElement.clientWidth;
	const out = [];
	for (const el of document.querySelectorAll('body *')) {
		const r = el.getBoundingClientRect();
		if (r.width === 0 || r.right <= w + 1) continue;
		let clipped = false;
		for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
			const o = getComputedStyle(p).overflowX;
			if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
		}
		if (!clipped) out.push(el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') + ' right=' + Math.round(r.right));
		if (out.length >= 8) break;
	}
	return out;
})()`

// unlabelledJS lists form controls, buttons, links and images that a
// screen reader could not name.
const unlabelledJS = `(() => {
	const out = [];
	const named = (el) => {
		if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return true;
		if (el.tagName === 'IMG') return el.getAttribute('alt') !== null;
		if (el.tagName === 'BUTTON' || el.tagName === 'A') return el.textContent.trim() !== '';
		if (el.id && document.querySelector('label[for="' + el.id + '"]')) return true;
		return el.closest('label') !== null;
	};
	for (const el of document.querySelectorAll('input, select, textarea, button, a[href], img')) {
		if (!named(el)) out.push(el.outerHTML.slice(0, 80));
	}
	return out;
})()`

// contrastJS lists visible text whose colour against its background is
// below WCAG AA: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold).
// Disabled controls are exempt, as WCAG says.
const contrastJS = `(() => {
	const parse = (c) => { const m = c.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
	const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
	const bgOf = (el) => {
		for (let e = el; e; e = e.parentElement) {
			const c = parse(getComputedStyle(e).backgroundColor);
			if (c.length < 4 || c[3] > 0.5) return c;
		}
		return [255, 255, 255];
	};
	const out = [];
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	const seen = new Set();
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const el = n.parentElement;
		if (!el || seen.has(el) || !n.textContent.trim()) continue;
		seen.add(el);
		if (el.closest('[disabled], .visually-hidden, [aria-hidden="true"]')) continue;
		const r = el.getBoundingClientRect();
		if (r.width === 0 || r.height === 0) continue;
		const st = getComputedStyle(el);
		if (st.visibility === 'hidden' || parseFloat(st.opacity) < 1) continue;
		const fg = parse(st.color), bg = bgOf(el);
		const a = lum(fg), b = lum(bg);
		const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
		const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
		if (ratio < need) out.push(JSON.stringify(n.textContent.trim().slice(0, 30)) + ' ' + ratio.toFixed(2) + ' (' + st.color + ' on rgb(' + bg.slice(0, 3).join(',') + '))');
		if (out.length >= 10) break;
	}
	return out;
})()`

// shoot captures the page at each viewport into /screenshots at the repo
// root (ignored by git), then goes back to the working size.
func (tb *tab) shoot(name string) {
	tb.t.Helper()
	tb.shootAt(name, viewports)
}

// shootAt is shoot at the given sizes.
func (tb *tab) shootAt(name string, vps []viewport) {
	tb.t.Helper()
	dir := filepath.Join(repoRoot, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	eval[bool](tb, `(() => { if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0); return true; })()`)
	if bad := eval[[]string](tb, unlabelledJS); len(bad) > 0 {
		tb.t.Errorf("%s: controls without an accessible name: %s", name, strings.Join(bad, "; "))
	}
	if bad := eval[[]string](tb, contrastJS); len(bad) > 0 {
		tb.t.Errorf("%s: text below WCAG AA contrast: %s", name, strings.Join(bad, "; "))
	}
	for _, vp := range vps {
		opts := []chromedp.EmulateViewportOption{}
		if vp.mobile {
			opts = append(opts, chromedp.EmulatePortrait, chromedp.EmulateMobile)
		}
		tb.do("resize", chromedp.EmulateViewport(vp.w, vp.h, opts...), chromedp.Sleep(700*time.Millisecond))
		ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			tb.fatalf("screenshot %s: %v", name, err)
		}
		if wide := eval[[]string](tb, overflowJS); len(wide) > 0 {
			tb.t.Errorf("%s at %dx%d: wider than the screen: %s", name, vp.w, vp.h, strings.Join(wide, "; "))
		}
		file := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, vp.w, vp.h))
		if err := os.WriteFile(file, buf, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		if vp.mobile {
			// The whole page too: on a phone most of it is below the fold.
			ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
			buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			cancel()
			if err != nil {
				tb.fatalf("screenshot %s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d-full.png", name, vp.w)), buf, 0o644); err != nil {
				tb.t.Fatal(err)
			}
		}
	}
	tb.do("resize", chromedp.EmulateViewport(1280, 900))
}

// ---- the tests ----

// created is what the home page shows after creating a room.
type created struct {
	Facilitator, Presenter, Team1, Team2, Join, Results string
}

// TestWorkshopFlow runs one aspect of a workshop through the pages with a
// facilitator, a team lead and two attendees, each in its own browser
// context; restarts the server and checks that the pages reconnect and
// resume without a reload; checks that a question with markup stays text;
// and captures every page at phone and projector sizes.
func TestWorkshopFlow(t *testing.T) {
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	start := time.Now()

	srv := newServer(t)
	srv.start()
	base := srv.url()
	bctx := newBrowser(t, ctx)

	fac := newTab(t, bctx, "facilitator")
	team := newTab(t, bctx, "team lead")
	ana := newTab(t, bctx, "attendee Ana")
	ben := newTab(t, bctx, "attendee Ben")
	tabs := []*tab{fac, team, ana, ben}
	defer func() {
		for _, tb := range tabs {
			tb.checkConsole()
		}
	}()

	// Home: create a room.
	fac.navigate(base + "/")
	fac.waitJS("the create form", `document.querySelector('#room-title') !== null`)
	fac.shoot("home")
	fac.typeInto("#room-title", "Platform maturity Q3")
	fac.typeInto("#room-teams", "Payments\nSearch")
	checkModelErrors(fac)
	fac.click(".create-card", "Create room")
	fac.waitJS("the room's links", `document.querySelector('#link-facilitator') !== null`)
	fac.waitJS("the QR code", `(() => { const i = document.querySelector('.join-qr img'); return i && i.complete && i.naturalWidth > 0; })()`)
	links := eval[created](fac, `({
		Facilitator: document.querySelector('#link-facilitator').value,
		Presenter: document.querySelector('#link-presenter').value,
		Team1: document.querySelector('#link-team-t1').value,
		Team2: document.querySelector('#link-team-t2').value,
		Join: document.querySelector('#link-join').value,
		Results: document.querySelector('#link-results').value,
	})`)
	fac.shoot("home-created")
	if !strings.Contains(links.Facilitator, "#key=") || !strings.Contains(links.Team1, "#key=") || !strings.Contains(links.Join, "/j/") {
		t.Fatalf("links: %+v", links)
	}

	// Everyone opens their page.
	fac.navigate(links.Facilitator)
	fac.live()
	// The console shows the team links again (derived from the facilitator
	// key), the same ones the home page showed once.
	fac.waitJS("the team links in the console", fmt.Sprintf(`(() => { const i = document.querySelector('#link-team-t1'); return i !== null && i.value === %s; })()`, strconv.Quote(links.Team1)))
	team.navigate(links.Team1)
	team.live()
	// Ana types the code on the home page (a wrong one first, then the
	// right one in lower case with a dash); Ben follows the short link.
	code := links.Join[strings.LastIndex(links.Join, "/")+1:]
	ana.navigate(base + "/")
	ana.typeInto("#join-code", "ZZZZ-ZZZZ")
	ana.click(".join-card", "Join")
	ana.waitJS("the unknown code refused", `document.querySelector('#join-code-err').textContent.includes('No workshop with this code')`)
	eval[bool](ana, `(() => { const i = document.querySelector('#join-code'); i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`)
	ana.typeInto("#join-code", strings.ToLower(code[:4]+"-"+code[4:]))
	ana.click(".join-card", "Join")
	ana.waitJS("the room's join form", `document.querySelector('#join-name') !== null`)
	ana.typeInto("#join-name", "Ana")
	ana.click("form", "Join")
	ana.live()
	roomURL := eval[string](ana, `location.href`)
	if !strings.Contains(roomURL, "/room/") {
		t.Fatalf("the code led to %s", roomURL)
	}
	// Ben's clock is seven minutes fast: longer than a turn, so only the
	// ping/pong offset keeps his countdown in step with everyone else's.
	skewClock(ben, 7*time.Minute)
	ben.navigate(links.Join) // the short link redirects to the room
	if skew := eval[float64](ben, `Date.now() - new Date().getTime()`); skew < 6*60e3 {
		t.Fatalf("the clock skew did not take: %v ms", skew)
	}
	ben.typeInto("#join-name", "Ben")
	ben.click("form", "Join")
	ben.live()
	fac.waitJS("two attendees in presence", `document.querySelector('[data-attendees="2"]') !== null`)
	ana.shoot("room-lobby")

	// The team lead drafts (autosaved) and submits a level for Investment.
	const rationale = "We fund the platform as a product with a roadmap and a product owner."
	team.do("pick level 3", chromedp.Click(chromedp.CSS(`label[for="lv-investment-3"]`)))
	team.typeInto("#why-investment", rationale)
	team.waitJS("the draft saved", `document.querySelector('[data-save="saved"]') !== null`)
	team.shoot("team-draft")
	team.click(".editor", "Submit")
	team.waitJS("submitted", `document.querySelector('.status-line[data-status="submitted"]') !== null`)
	fac.waitJS("the submission counted", `document.querySelector('[data-submitted="1"]') !== null`)

	// The facilitator starts and calls the next team: every screen counts
	// down to the same end.
	fac.click(".phase-bar", "Start the workshop")
	for _, tb := range tabs {
		tb.waitJS("the first aspect", `document.querySelector('.aspect-name') && document.querySelector('.aspect-name').textContent.includes('Investment')`)
	}
	fac.click(".timer-controls", "Call next team")
	for _, tb := range []*tab{ana, ben, team} {
		tb.waitJS("Payments speaking", `document.querySelector('.turn[data-turn="t1"] [role="timer"]') !== null`)
	}
	left := []int{eval[int](ana, `+document.querySelector('[role="timer"]').dataset.left`), eval[int](ben, `+document.querySelector('[role="timer"]').dataset.left`)}
	if left[0] < 170 || left[0] > 180 || left[1]-left[0] > 1 || left[0]-left[1] > 1 {
		t.Errorf("countdowns disagree or are off: %v (want about 180 s each)", left)
	}

	// Before the reveal an attendee sees no score, and no rationale
	// reaches the page.
	if got := eval[bool](ana, `document.querySelector('.reveal[data-team="t1"]') === null && !document.body.innerText.includes(`+js(rationale)+`)`); !got {
		t.Fatal("attendee sees the score before the reveal")
	}
	fac.click(`.queue li[data-team="t1"]`, "Reveal")
	for _, tb := range []*tab{ana, ben} {
		tb.waitJS("the revealed score", `document.querySelector('.reveal[data-team="t1"] .chip[data-level="3"]') !== null`)
		tb.waitJS("the rationale", `document.querySelector('.reveal[data-team="t1"] .rationale').textContent === `+js(rationale))
		tb.waitJS("the next level explained", `document.querySelector('.reveal[data-team="t1"] .explain-next').textContent.includes('Level 4')`)
	}

	// Numbers or names.
	ana.click(".topbar", "Names")
	ana.waitJS("the level's name", `document.querySelector('.reveal[data-team="t1"] .chip').textContent.trim() === 'Scalable'`)
	ana.click(".topbar", "1–4")
	ana.waitJS("the level's number", `document.querySelector('.reveal[data-team="t1"] .chip').textContent.trim() === '3'`)

	// Q&A: ask, upvote, highlight, answer. Ben's question carries markup.
	const q1 = "How do you measure whether teams choose the platform?"
	const xss = `<img src=x onerror=alert(1)>`
	ana.typeInto("#ask-text", q1)
	ana.click(".ask", "Ask")
	ben.waitJS("Ana's question", `document.querySelector('.q[data-question="q1"] .q-text') !== null`)
	ben.typeInto("#ask-text", xss)
	ben.click(".ask", "Ask")
	ben.do("upvote q1", chromedp.Click(chromedp.CSS(`.q[data-question="q1"] .vote`)))
	ana.waitJS("one vote on q1", `document.querySelector('.q[data-question="q1"] .vote-count').textContent === '1'`)
	fac.click(`.q[data-question="q1"]`, "Put on screen")
	fac.click(`.q[data-question="q1"]`, "Mark answered")
	for _, tb := range []*tab{ana, ben} {
		tb.waitJS("q1 highlighted and answered", `(() => { const q = document.querySelector('.q[data-question="q1"]'); return q && q.classList.contains('q-highlighted') && q.querySelector('.badge-answered'); })()`)
	}
	for _, tb := range []*tab{ana, ben, fac} {
		tb.waitJS("the markup shown as text", `[...document.querySelectorAll('.q-text')].some((e) => e.textContent === `+js(xss)+`)`)
		if n := eval[int](tb, `document.querySelectorAll('img[src="x"], .q-text img').length`); n != 0 {
			t.Errorf("%s: the question's markup became %d elements", tb.name, n)
		}
	}

	// A raised hand gets the floor.
	ana.click(".hands", "Raise my hand")
	fac.click(".hands", "Give the floor")
	ben.waitJS("Ana speaking", `document.querySelector('.turn .turn-name') && document.querySelector('.turn .turn-name').textContent === 'Ana'`)

	// The presenter screen shows the highlighted question and the join code.
	pres := newTab(t, bctx, "presenter")
	tabs = append(tabs, pres)
	pres.navigate(links.Presenter)
	pres.live()
	pres.waitJS("the highlighted question", `document.querySelector('.pres-question-text') && document.querySelector('.pres-question-text').textContent === `+js(q1))
	pres.waitJS("the join code", `document.querySelector('.join-code') && document.querySelector('.join-code').textContent.length >= 8`)
	pres.waitJS("the heatmap cell", `document.querySelector('td[data-team="t1"][data-aspect="investment"] .chip[data-level="3"]') !== null`)

	// The server restarts; the pages reconnect and resume without a reload.
	// A vote cast while the server is down goes out after the reconnect.
	for _, tb := range tabs {
		eval[bool](tb, `(window.__sameDocument = true)`)
	}
	srv.stop()
	for _, tb := range tabs {
		tb.waitJS("the connection noticed as lost", `document.querySelector('.conn[data-status="live"]') === null`)
	}
	ana.do("upvote q2 while offline", chromedp.Click(chromedp.CSS(`.q[data-question="q2"] .vote`)))
	restart := time.Now()
	srv.start()
	for _, tb := range tabs {
		tb.live()
	}
	t.Logf("pages live again %v after the restart", time.Since(restart).Round(time.Millisecond))
	for _, tb := range tabs {
		if !eval[bool](tb, `window.__sameDocument === true`) {
			t.Errorf("%s: the page reloaded", tb.name)
		}
	}
	ben.waitJS("the offline vote counted", `document.querySelector('.q[data-question="q2"] .vote-count').textContent === '1'`)
	ana.waitJS("the revealed score still there", `document.querySelector('.reveal[data-team="t1"] .chip[data-level="3"]') !== null`)
	ben.waitJS("Ben's own vote still his", `document.querySelector('.q[data-question="q1"] .vote').getAttribute('aria-pressed') === 'true'`)

	// Live again: the facilitator reveals the rest.
	fac.click(".queue", "Reveal all")
	ana.waitJS("Search revealed as not submitted", `document.querySelector('.reveal[data-team="t2"]') !== null`)

	// Hiding a reveal takes the score off every screen; revealing it again
	// brings it back.
	fac.click(`.queue li[data-team="t1"]`, "Hide")
	ana.waitJS("the hidden reveal gone", `document.querySelector('.reveal[data-team="t1"]') === null && document.querySelector('td[data-team="t1"][data-aspect="investment"] .cell-hidden') !== null`)
	fac.click(`.queue li[data-team="t1"]`, "Reveal")
	ana.waitJS("the score back", `document.querySelector('.reveal[data-team="t1"] .chip[data-level="3"]') !== null`)

	// The question with markup on the presenter screen is text too.
	fac.click(`.q[data-question="q2"]`, "Put on screen")
	pres.waitJS("the markup on screen as text", `document.querySelector('.pres-question-text') && document.querySelector('.pres-question-text').textContent === `+js(xss))
	if n := eval[int](pres, `document.querySelectorAll('img[src="x"], .pres-question img').length`); n != 0 {
		t.Errorf("presenter: the question's markup became %d elements", n)
	}
	fac.click(`.q[data-question="q1"]`, "Put on screen")
	pres.waitJS("q1 back on screen", `document.querySelector('.pres-question-text').textContent === `+js(q1))

	checkGapResume(ben)

	// Ben reloads: the same identity comes back from localStorage.
	ben.navigate(roomURL)
	ben.live()
	ben.waitJS("Ben's vote after a reload", `document.querySelector('.q[data-question="q1"] .vote').getAttribute('aria-pressed') === 'true'`)
	if eval[bool](ben, `document.querySelector('#join-name') !== null`) {
		t.Error("a reload asked for the name again")
	}

	// Notes and an action item, then the results page with exports.
	fac.typeInto("#note-text", "Funding is fine; adoption lags.")
	fac.typeInto("#action-text", "Interview three teams about onboarding")
	fac.click(".notes", "Add")
	fac.waitJS("the action item", `[...document.querySelectorAll('.action-list li')].some((li) => li.textContent.includes('Interview three teams'))`)
	fac.waitJS("the note saved", `[...document.querySelectorAll('.notes [role="status"]')].some((e) => e.textContent === 'Saved')`)

	res := newTab(t, bctx, "results")
	tabs = append(tabs, res)
	key := links.Facilitator[strings.Index(links.Facilitator, "#key=")+len("#key="):]
	if i := strings.Index(key, "&"); i >= 0 {
		key = key[:i]
	}
	res.navigate(links.Results + "#key=" + key)
	res.waitJS("the results matrix", `document.querySelector('td[data-team="t1"][data-aspect="investment"] .chip[data-level="3"]') !== null`)
	res.waitJS("the action in the results", `document.body.innerText.includes('Interview three teams')`)
	checkExport(t, res, "CSV", ".csv", "Payments")

	// Every page at phone and projector sizes.
	fac.shoot("facilitator")
	team.shoot("team")
	ana.shoot("room")
	pres.shoot("presenter")
	res.shoot("results")
	shootPrint(res, "results-print")

	facilitatorControls(t, fac, ana, ben, team, links.Team1)
	t.Logf("workshop flow took %v", time.Since(start).Round(time.Millisecond))
}

// facilitatorControls goes through the console's other controls and
// checks what the attendees see.
func facilitatorControls(t *testing.T, fac, ana, ben, team *tab, oldTeamLink string) {
	t.Helper()
	timeLeft := func(tb *tab) int {
		return eval[int](tb, `(() => { const e = document.querySelector('[role="timer"]'); return e ? +e.dataset.left : -1; })()`)
	}
	// The timer: a new turn, thirty seconds more, the end.
	fac.click(`.queue li[data-team="t2"]`, "Call")
	ana.waitJS("Search speaking", `document.querySelector('.turn[data-turn="t2"]') !== null`)
	before := timeLeft(ana)
	fac.click(".timer-controls", "+30 s")
	ana.waitJS("thirty seconds more", fmt.Sprintf(`(() => { const e = document.querySelector('[role="timer"]'); return e && +e.dataset.left >= %d; })()`, before+25))
	fac.click(".timer-controls", "End turn")
	ana.waitJS("nobody speaking", `document.querySelector('.turn-none') !== null`)

	// The queue and the agenda reorder.
	fac.do("move Payments down", chromedp.Click(chromedp.CSS(`.queue li[data-team="t1"] button[aria-label="Move Payments down"]`)))
	fac.waitJS("Search first in the queue", `document.querySelector('.queue-list li').dataset.team === 't2'`)
	fac.do("move Investment down", chromedp.Click(chromedp.CSS(`.agenda li[data-aspect="investment"] button[aria-label="Move Investment down"]`)))
	fac.waitJS("Adoption first on the agenda", `document.querySelector('.agenda-list li').dataset.aspect === 'adoption'`)

	// Approve first: a question waits until the facilitator approves it.
	fac.do("approve first", chromedp.Click(chromedp.CSS(`.qa-mod-tools input[type="checkbox"]`)))
	// Once the console shows it, the server has it: Ben's question after
	// this waits for approval.
	fac.waitJS("approve-first on", `document.querySelector('.qa[data-approve-first="on"]') !== null`)
	const q3 = "Who owns the platform budget?"
	ben.typeInto("#ask-text", q3)
	ben.click(".ask", "Ask")
	ben.waitJS("Ben's pending question", `document.querySelector('.q[data-question="q3"] .badge-pending') !== null`)
	fac.click(`.q[data-question="q3"]`, "Approve")
	ana.waitJS("the approved question", `document.querySelector('.q[data-question="q3"]') !== null`)
	if eval[bool](ana, `document.querySelector('.q[data-question="q3"] .badge-pending') !== null`) {
		t.Error("an approved question still shows as pending")
	}

	// Hide and restore.
	fac.click(`.q[data-question="q3"]`, "Hide")
	ana.waitJS("the hidden question gone", `document.querySelector('.q[data-question="q3"]') === null`)
	fac.click(`.qa-mod-tools`, "Hidden")
	fac.click(`.q[data-question="q3"]`, "Restore")
	ana.waitJS("the restored question", `document.querySelector('.q[data-question="q3"]') !== null`)
	fac.click(`.qa-mod-tools`, "All")

	// The next aspect, a new team, wrap-up and close.
	fac.click(`.agenda li[data-aspect="adoption"]`, "Discuss")
	ana.waitJS("Adoption under discussion", `document.querySelector('.aspect-name').textContent === 'Adoption'`)
	fac.typeInto("#new-team", "Identity")
	fac.click(".links", "Add team")
	fac.waitJS("the new team's link", `(() => { const i = document.querySelector('#link-new-team'); return i && i.value.includes('#key='); })()`)
	ana.waitJS("the new team in the heatmap", `[...document.querySelectorAll('.heatmap tbody th')].some((th) => th.textContent === 'Identity')`)
	// Removing an attendee closes their page for good, reload or not.
	fac.waitJS("Ben's remove button", `(() => { const b = document.querySelector('button[aria-label="Remove Ben from the room"]'); if (!b) return false; b.click(); return true; })()`)
	ben.waitJS("the removal shown", `document.querySelector('.conn[data-status="stopped"]') !== null && document.body.innerText.includes('removed from this room')`)
	ben.navigate(ben.url())
	ben.waitJS("still removed after a reload", `document.body.innerText.includes('removed from this room')`)
	if eval[bool](ben, `document.querySelector('#join-name') !== null`) {
		t.Error("a removed attendee is offered to join again")
	}

	// Replacing every link: the console moves to its new link by itself,
	// shows new team links, and the old team link stops working.
	oldFac := eval[string](fac, `location.href`)
	fac.click(".links", "Replace all links")
	fac.waitJS("the console on its new link", fmt.Sprintf(`location.href !== %s && document.querySelector('.conn[data-status="live"]') !== null`, strconv.Quote(oldFac)))
	fac.waitJS("new team links", fmt.Sprintf(`(() => { const i = document.querySelector('#link-team-t1'); return i !== null && i.value.includes('#key=') && i.value !== %s; })()`, strconv.Quote(oldTeamLink)))
	team.waitJS("the old team link refused", `document.querySelector('.conn[data-status="stopped"]') !== null`)

	fac.click(".phase-bar", "Wrap up")
	ana.waitJS("the wrap-up", `[...document.querySelectorAll('h2')].some((h) => h.textContent === 'Wrap-up')`)
	fac.click(".phase-bar", "Close room")
	ana.waitJS("the room closed", `[...document.querySelectorAll('h2')].some((h) => h.textContent === 'This workshop is closed')`)
	fac.waitJS("closed in the console", `document.querySelector('[data-phase="closed"]') !== null`)
}

// shootPrint captures the page as the print style sheet shows it, on a
// sheet of A4 width (794 CSS pixels).
func shootPrint(tb *tab, name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		tb.fatalf("print media: %v", err)
	}
	defer chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: ""})
	tb.do("resize", chromedp.EmulateViewport(794, 1123), chromedp.Sleep(500*time.Millisecond))
	if n := eval[int](tb, `[...document.querySelectorAll('button')].filter((b) => b.offsetParent !== null).length`); n != 0 {
		tb.t.Errorf("%s: %d buttons still show in print", name, n)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(repoRoot, "screenshots", name+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// skewClock makes Date.now in the tab's future pages run ahead by d.
func skewClock(tb *tab, d time.Duration) {
	tb.t.Helper()
	src := fmt.Sprintf(`(() => { const real = Date.now.bind(Date); Date.now = () => real() + %d; })();`, d.Milliseconds())
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
		tb.fatalf("skew clock: %v", err)
	}
}

// checkModelErrors pastes broken custom models into the home page's form
// and checks that each error names the problem, from the browser's own
// checks and from the server's, then goes back to PEMM.
func checkModelErrors(fac *tab) {
	fac.t.Helper()
	fac.do("choose a custom model", chromedp.Click(chromedp.CSS(`input[name="model"][value="custom"]`)))
	steps := []struct{ model, want string }{
		{`{"name": "Ours", "levels": [`, "not valid JSON"},
		{`{"name": "Ours", "levels": [{"name": "Low"}], "aspects": []}`, "levels: a model has 2 to 10 levels, got 1"},
		{`{"name": "Ours", "levels": [{"name": "Low"}, {"name": "High"}], "aspects": [{"name": "CI", "cells": [{"label": "` + strings.Repeat("x", 61) + `"}, {"label": "Auto"}]}]}`, "cells[0].label"},
	}
	for _, st := range steps {
		eval[bool](fac, `(() => { const t = document.querySelector('#room-model'); t.value = ''; t.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`)
		fac.typeInto("#room-model", st.model)
		fac.click(".create-card", "Create room")
		fac.waitJS("the model error "+st.want, `document.querySelector('#room-model-err').textContent.includes(`+js(st.want)+`)`)
	}
	fac.do("back to PEMM", chromedp.Click(chromedp.CSS(`input[name="model"][value="pemm"]`)))
}

// checkGapResume feeds the page's connection code an events message that
// skips a sequence number and checks that it asks the server to resume
// from the last event it has, instead of applying past the hole.
func checkGapResume(tb *tab) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(async () => {
		const { Conn } = await import('/static/js/conn.js');
		const id = location.pathname.split('/')[2];
		const c = new Conn({ roomId: id, identity: () => ({ name: 'Gap probe' }) });
		c.start();
		for (let i = 0; i < 100 && !(c.status.value === 'live' && c.state); i++) await new Promise((r) => setTimeout(r, 50));
		const sent = [];
		const send = c.ws.send.bind(c.ws);
		c.ws.send = (m) => { sent.push(JSON.parse(m)); send(m); };
		const before = c.seq;
		c.handle({ type: 'events', epoch: c.epoch, events: [{ seq: before + 2, type: 'private', at: '' }] });
		const resume = sent.find((m) => m.type === 'resume');
		c.stop('done');
		return { before, after: c.seq, resume: resume || null };
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fatalf("gap probe: %v", err)
	}
	resume, _ := got["resume"].(map[string]any)
	if resume == nil || resume["seq"] != got["before"] || got["after"] != got["before"] {
		tb.t.Errorf("a gap in events: got %v, want a resume from the last applied seq and nothing applied", got)
	}
}

// checkExport clicks an export button and waits for the download to land.
func checkExport(t *testing.T, tb *tab, label, ext, want string) {
	t.Helper()
	dir := t.TempDir()
	c := chromedp.FromContext(tb.ctx)
	yes := true
	if _, err := chromedp.CallBrowser(tb.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: c.BrowserContextID,
		DownloadPath: dir, EventsEnabled: &yes,
	}); err != nil {
		t.Fatalf("download behaviour: %v", err)
	}
	tb.click(".export", label)
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && bytes.Contains(b, []byte(want)) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, _ := os.ReadDir(dir)
	t.Fatalf("no %s download containing %q in %s (%d files)", ext, want, dir, len(entries))
}

// TestPresenterFitsProjector fills a room with many teams and revealed
// scores through the API and checks that the presenter screen still shows
// everything on one 1920x1080 screen, and the heatmap on a phone.
func TestPresenterFitsProjector(t *testing.T) {
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv := newServer(t)
	srv.start()

	teams := []string{"Payments", "Search", "Identity", "Checkout", "Data platform", "Mobile", "Messaging", "Observability", "Security", "Developer experience"}
	rm := createRoom(t, srv.url(), map[string]any{"title": "Ten teams, one screen", "teams": teams})
	for i, tm := range rm.Teams {
		ws := dialRoom(t, ctx, srv, rm.ID, map[string]any{"key": tm.Key})
		for j, aspect := range []string{"investment", "adoption", "interfaces", "operations", "measurement"} {
			command(t, ctx, ws, map[string]any{"type": "submit", "aspect": aspect, "level": 1 + (i+j)%4, "rationale": "because"})
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
	fac := dialRoom(t, ctx, srv, rm.ID, map[string]any{"key": rm.FacilitatorKey})
	command(t, ctx, fac, map[string]any{"type": "start"})
	command(t, ctx, fac, map[string]any{"type": "call_turn"})
	for _, aspect := range []string{"investment", "adoption", "interfaces", "operations", "measurement"} {
		command(t, ctx, fac, map[string]any{"type": "reveal", "aspect": aspect})
	}
	q := command(t, ctx, fac, map[string]any{"type": "ask", "text": "What would it take for the platform to be the obvious choice for a new service, without any mandate?"})
	command(t, ctx, fac, map[string]any{"type": "highlight", "question": q["question"]})
	fac.Close(websocket.StatusNormalClosure, "")

	bctx := newBrowser(t, ctx)
	pres := newTab(t, bctx, "presenter")
	defer pres.checkConsole()
	pres.navigate(srv.url() + "/presenter/" + rm.ID + "#key=" + rm.PresenterKey)
	pres.live()
	pres.waitJS("fifty revealed cells", `document.querySelectorAll('.heatmap td .chip').length === 50`)
	pres.shoot("presenter-10-teams")
	pres.do("projector size", chromedp.EmulateViewport(1920, 1080), chromedp.Sleep(300*time.Millisecond))
	clipped := eval[[]string](pres, `(() => {
		const out = [];
		for (const sel of ['.pres-now', '.heatmap tfoot', '.join-code', '.pres-question-meta', '.turn [role="timer"]']) {
			const e = document.querySelector(sel);
			if (!e) { out.push(sel + ' missing'); continue; }
			const r = e.getBoundingClientRect();
			if (r.bottom > innerHeight || r.right > innerWidth) out.push(sel + ' ends at ' + Math.round(r.right) + 'x' + Math.round(r.bottom));
		}
		return out;
	})()`)
	if len(clipped) > 0 {
		t.Errorf("presenter at 1920x1080 with %d teams cuts off: %s", len(teams), strings.Join(clipped, "; "))
	}
}

// roomCreated is the answer of POST /api/rooms, as far as the tests need.
type roomCreated struct {
	ID             string `json:"id"`
	FacilitatorKey string `json:"facilitatorKey"`
	PresenterKey   string `json:"presenterKey"`
	Teams          []struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	} `json:"teams"`
}

func createRoom(t *testing.T, base string, body map[string]any) roomCreated {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(base+"/api/rooms", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var rm roomCreated
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create room: %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// dialRoom opens a WebSocket to the room and says hello; it returns once
// the welcome has come.
func dialRoom(t *testing.T, ctx context.Context, srv *server, id string, hello map[string]any) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws://"+srv.addr+"/api/rooms/"+id+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 22)
	t.Cleanup(func() { ws.CloseNow() })
	hello["type"] = "hello"
	b, _ := json.Marshal(hello)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	readUntil(t, ctx, ws, func(m map[string]any) bool { return m["type"] == "welcome" })
	return ws
}

var commandSeq atomic.Int64

// command sends a command and waits for its ack; it answers the ack's
// result.
func command(t *testing.T, ctx context.Context, ws *websocket.Conn, cmd map[string]any) map[string]any {
	t.Helper()
	id := fmt.Sprintf("t-%d", commandSeq.Add(1))
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	var result map[string]any
	readUntil(t, ctx, ws, func(m map[string]any) bool {
		if m["id"] != id {
			return false
		}
		if m["type"] == "error" {
			t.Fatalf("%v: %v", cmd, m)
		}
		result, _ = m["result"].(map[string]any)
		return m["type"] == "ack"
	})
	return result
}

func readUntil(t *testing.T, ctx context.Context, ws *websocket.Conn, done func(map[string]any) bool) {
	t.Helper()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("decode %s: %v", line, err)
			}
			if done(m) {
				return
			}
		}
	}
}

// phone is the phone the estimate pages are captured at besides the two
// sizes of every page.
var phone = viewport{390, 844, true}

// noEstimateJS is true when the page shows nothing of the room's
// estimate but counts: no histogram, no median, no mean, no gap.
const noEstimateJS = `document.querySelector('.est-result, .est-hist, .est-stats, .est-median, .est-gap') === null && !/median|histogram/i.test(document.body.innerText)`

// pickEstimate clicks tb's level button for team and waits until the page
// shows it as its own pick, and no other level as pressed.
func pickEstimate(tb *tab, team string, level int) {
	tb.t.Helper()
	pick := fmt.Sprintf(`.est-pick[data-team=%q] .est-level`, team)
	tb.waitJS(fmt.Sprintf("level %d for %s clicked", level, team), fmt.Sprintf(`(() => {
		const b = document.querySelector(%s);
		if (!b || b.disabled) return false;
		b.click();
		return true;
	})()`, js(fmt.Sprintf(`%s[data-level="%d"]`, pick, level))))
	tb.waitJS(fmt.Sprintf("own pick %d for %s", level, team), fmt.Sprintf(`(() => {
		const pressed = [...document.querySelectorAll(%s)].filter((b) => b.getAttribute('aria-pressed') === 'true');
		return pressed.length === 1 && pressed[0].dataset.level === %q;
	})()`, js(pick), fmt.Sprint(level)))
}

// waitHistogram waits until tb shows the revealed estimate of team with
// these counts per level, and answers its median, gap and flag as shown.
func waitHistogram(tb *tab, team string, want []int) (median, gap string, flagged bool) {
	tb.t.Helper()
	b, _ := json.Marshal(want)
	sel := fmt.Sprintf(`.est-result[data-team=%q]`, team)
	tb.waitJS(fmt.Sprintf("the histogram of %s", team), fmt.Sprintf(`(() => {
		const r = document.querySelector(%s);
		return r !== null && JSON.stringify([...r.querySelectorAll('.est-col')].map((c) => +c.dataset.count)) === %s;
	})()`, js(sel), js(string(b))))
	got := eval[map[string]any](tb, fmt.Sprintf(`(() => {
		const r = document.querySelector(%s);
		const t = (s) => (r.querySelector(s) || {}).textContent || '';
		return {median: t('.est-median'), gap: t('.est-gap'), flagged: r.dataset.flagged === 'true', alt: r.querySelector('.est-hist').getAttribute('aria-label')};
	})()`, js(sel)))
	if alt, _ := got["alt"].(string); !strings.Contains(alt, "level 1") {
		tb.t.Errorf("%s: the histogram of %s has no text alternative with counts per level: %q", tb.name, team, alt)
	}
	median, _ = got["median"].(string)
	gap, _ = got["gap"].(string)
	flagged, _ = got["flagged"].(bool)
	return median, gap, flagged
}

// TestEstimateFlow runs an aspect with the room's estimate opened on every
// turn: three attendees and the leads of the two other teams estimate each
// team (one changes its pick, one reloads and still sees its own), every
// page shows only how many have estimated until the reveal, then the
// presenter, attendee, team and console pages show the same histogram, the
// console flags the gaps and calls the team to discuss first, and the
// results carry the calibration. The estimate pages are captured at a
// phone's 390x844 too, where the level buttons are at least 44x44 px.
func TestEstimateFlow(t *testing.T) {
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	srv := newServer(t)
	srv.start()
	base := srv.url()

	// Blue says 4, Green 2, Amber 1 on Investment.
	rm := createRoom(t, base, map[string]any{"title": "Estimates Q3", "teams": []string{"Blue", "Green", "Amber"}})
	for i, level := range []int{4, 2, 1} {
		ws := dialRoom(t, ctx, srv, rm.ID, map[string]any{"key": rm.Teams[i].Key})
		command(t, ctx, ws, map[string]any{"type": "submit", "aspect": "investment", "level": level, "rationale": "as we see it"})
		ws.Close(websocket.StatusNormalClosure, "")
	}

	bctx := newBrowser(t, ctx)
	fac := newTab(t, bctx, "facilitator")
	pres := newTab(t, bctx, "presenter")
	blue := newTab(t, bctx, "Blue's lead")
	green := newTab(t, bctx, "Green's lead")
	amber := newTab(t, bctx, "Amber's lead")
	ana := newTab(t, bctx, "attendee Ana")
	ben := newTab(t, bctx, "attendee Ben")
	cy := newTab(t, bctx, "attendee Cy")
	tabs := []*tab{fac, pres, blue, green, amber, ana, ben, cy}
	defer func() {
		for _, tb := range tabs {
			tb.checkConsole()
		}
	}()

	fac.navigate(base + "/facilitator/" + rm.ID + "#key=" + rm.FacilitatorKey)
	fac.live()
	fac.do("estimate on every turn", chromedp.Click(chromedp.CSS(`.est-console input[type="checkbox"]`)))
	fac.waitJS("estimating on every turn", `document.querySelector('.est-console[data-each-turn="on"]') !== null`)
	pres.navigate(base + "/presenter/" + rm.ID + "#key=" + rm.PresenterKey)
	pres.live()
	for i, tb := range []*tab{blue, green, amber} {
		tb.navigate(base + "/team/" + rm.ID + "#key=" + rm.Teams[i].Key)
		tb.live()
	}
	for _, p := range []struct {
		tb   *tab
		name string
	}{{ana, "Ana"}, {ben, "Ben"}, {cy, "Cy"}} {
		p.tb.navigate(base + "/room/" + rm.ID)
		p.tb.typeInto("#join-name", p.name)
		p.tb.click("form", "Join")
		p.tb.live()
	}
	fac.waitJS("three attendees here", `document.querySelector('[data-attendees="3"]') !== null`)

	fac.click(".phase-bar", "Start the workshop")
	fac.click(".timer-controls", "Call next team")

	// Blue's turn opens estimating Blue: everyone else gets a picker,
	// Blue's lead only the count.
	for _, tb := range []*tab{ana, ben, cy, green, amber} {
		tb.waitJS("a picker for Blue", `document.querySelector('.est-pick[data-team="t1"] .est-level:not([disabled])') !== null`)
	}
	if got := eval[string](ana, `document.querySelector('.est-pick[data-team="t1"] .est-level[data-level="3"]').getAttribute('aria-label')`); got != "Estimate Blue at level 3, Scalable" {
		t.Errorf("level button's label: got %q, want %q", got, "Estimate Blue at level 3, Scalable")
	}
	ana.waitJS("the announcement", `[...document.querySelectorAll('[aria-live="polite"]')].some((r) => r.textContent.includes('Estimating open for Blue'))`)
	blue.waitJS("Blue's own estimate counted, not picked", `document.querySelector('.est-progress[data-team="t1"]') !== null && document.querySelector('.est-pick[data-team="t1"]') === null`)

	pickEstimate(ana, "t1", 2)
	pickEstimate(ben, "t1", 2)
	pickEstimate(cy, "t1", 3)
	pickEstimate(green, "t1", 2)
	pickEstimate(amber, "t1", 3)
	pickEstimate(cy, "t1", 1) // Cy changes her mind
	// Ana reloads: her own pick is still hers.
	ana.navigate(base + "/room/" + rm.ID)
	ana.live()
	ana.waitJS("Ana's pick after a reload", `document.querySelector('.est-pick[data-team="t1"] .est-level[data-level="2"][aria-pressed="true"]') !== null`)

	// Five estimates, counted everywhere; nothing else shown anywhere.
	for _, tb := range tabs {
		tb.waitJS("five estimates of Blue", `document.querySelector('.est-progress[data-team="t1"][data-count="5"]') !== null`)
	}
	fac.waitJS("five of five on the console", `document.querySelector('.est-console .est-progress[data-team="t1"]').textContent.includes('5 of 5 estimated')`)
	for _, tb := range tabs {
		if !eval[bool](tb, noEstimateJS) {
			t.Errorf("%s: the room's estimate shows before the reveal", tb.name)
		}
	}
	ana.shoot("estimate-attendee-open")
	ana.shootAt("estimate-attendee-open", []viewport{phone})
	ana.do("phone", chromedp.EmulateViewport(phone.w, phone.h, chromedp.EmulatePortrait, chromedp.EmulateMobile))
	if small := eval[[]string](ana, `[...document.querySelectorAll('.est-level')].map((b) => b.getBoundingClientRect()).filter((r) => r.width < 44 || r.height < 44).map((r) => Math.round(r.width) + 'x' + Math.round(r.height))`); len(small) > 0 {
		t.Errorf("level buttons smaller than 44x44 on a phone: %v", small)
	}
	ana.do("back to the desk", chromedp.EmulateViewport(1280, 900))
	fac.shoot("estimate-console-open")
	pres.shoot("estimate-presenter-open")
	blue.shoot("estimate-team-estimated")

	// The reveal of Blue: 1, 3, 1, 0 per level, median 2, Blue says 4.
	fac.click(`.queue li[data-team="t1"]`, "Reveal")
	for _, tb := range []*tab{pres, ana, fac, blue} {
		median, gap, flagged := waitHistogram(tb, "t1", []int{1, 3, 1, 0})
		if median != "2" || gap != "+2" || !flagged {
			t.Errorf("%s: Blue's estimate shows median %q, gap %q, flagged %v; want 2, +2, flagged", tb.name, median, gap, flagged)
		}
	}
	ana.waitJS("the reveal's flag", `document.querySelector('.est-flag[data-flag="t1"]') !== null`)
	fac.waitJS("Discuss first: Blue", `(() => { const f = document.querySelector('.est-first'); return f !== null && f.dataset.first === 't1' && f.textContent.includes('Blue (gap +2)'); })()`)
	pres.shoot("estimate-presenter-revealed")
	ana.shoot("estimate-attendee-revealed")
	ana.shootAt("estimate-attendee-revealed", []viewport{phone})

	// Green's turn, then Amber's: each opened by its turn. Blue's lead
	// estimates them too.
	fac.click(".timer-controls", "Call next team")
	pickEstimate(ana, "t2", 2)
	pickEstimate(blue, "t2", 2)
	fac.waitJS("two estimates of Green", `document.querySelector('.est-console .est-progress[data-team="t2"][data-count="2"]') !== null`)
	fac.click(".timer-controls", "Call next team")
	pickEstimate(ana, "t3", 2)
	pickEstimate(ben, "t3", 3)
	pickEstimate(green, "t3", 2)
	fac.waitJS("three estimates of Amber", `document.querySelector('.est-console .est-progress[data-team="t3"][data-count="3"]') !== null`)
	if !eval[bool](pres, `document.querySelector('.est-result[data-team="t2"], .est-result[data-team="t3"]') === null`) {
		t.Errorf("presenter: Green's or Amber's estimate shows before their reveal")
	}
	fac.click(".queue", "Reveal all")
	if _, gap, flagged := waitHistogram(fac, "t2", []int{0, 2, 0, 0}); gap != "0" || flagged {
		t.Errorf("Green: gap %q, flagged %v; want 0, not flagged", gap, flagged)
	}
	if median, gap, flagged := waitHistogram(pres, "t3", []int{0, 2, 1, 0}); median != "2" || gap != "−1" || !flagged {
		t.Errorf("Amber on the presenter: median %q, gap %q, flagged %v; want 2, −1, flagged", median, gap, flagged)
	}
	// The largest gap first: Blue, then Amber; Call Blue gives Blue the floor.
	fac.waitJS("Discuss first: Blue, Amber", `(() => { const f = document.querySelector('.est-first'); return f !== null && f.dataset.first === 't1 t3' && f.textContent.includes('Amber (gap −1)'); })()`)
	fac.shoot("estimate-console-revealed")
	pres.shoot("estimate-presenter-all")
	fac.click(".est-first", "Call Blue")
	for _, tb := range []*tab{fac, pres, ana} {
		tb.waitJS("Blue has the floor", `document.querySelector('.turn[data-turn="t1"]') !== null`)
	}
	blue.waitJS("Blue's reveal with its estimate", `document.querySelector('.reveal[data-team="t1"] .est-result[data-flagged="true"]') !== null`)
	blue.shoot("estimate-team-revealed")

	// The results: the calibration layer and the summary.
	res := newTab(t, bctx, "results")
	tabs = append(tabs, res)
	res.navigate(base + "/results/" + rm.ID)
	res.waitJS("the calibration layer", `document.querySelector('.heatmap-wrap[data-layer="calibration"] td[data-team="t1"][data-aspect="investment"] .cal-flagged') !== null`)
	if got := eval[string](res, `document.querySelector('td[data-team="t1"][data-aspect="investment"] .cal').textContent.trim()`); !strings.Contains(got, "room 2 · gap +2") {
		t.Errorf("results cell of Blue: got %q, want the room's median 2 and gap +2", got)
	}
	res.waitJS("the calibration summary", `(() => { const c = document.querySelector('.result-aspect[data-aspect="investment"] .calibration'); return c !== null && c.textContent.includes('The room estimated 3 teams') && c.textContent.includes('Discuss first: Blue, Amber'); })()`)
	res.shoot("estimate-results")
}

// TestEstimateCustomModel estimates a team on a custom model of ten
// levels: the picker has a button per level that still fits a phone, and
// the histogram a bar per level on the presenter and the attendee page.
func TestEstimateCustomModel(t *testing.T) {
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv := newServer(t)
	srv.start()
	base := srv.url()

	const levels = 10
	var lv []map[string]any
	var cells []map[string]any
	for i := 1; i <= levels; i++ {
		lv = append(lv, map[string]any{"name": fmt.Sprintf("Stage %d", i)})
		cells = append(cells, map[string]any{"label": fmt.Sprintf("Step %d", i)})
	}
	model := map[string]any{"id": "steps", "name": "Ten steps", "levels": lv,
		"aspects": []map[string]any{{"id": "delivery", "name": "Delivery", "cells": cells}}}
	rm := createRoom(t, base, map[string]any{"title": "Ten levels", "teams": []string{"Blue", "Green"}, "model": model})
	blueWS := dialRoom(t, ctx, srv, rm.ID, map[string]any{"key": rm.Teams[0].Key})
	command(t, ctx, blueWS, map[string]any{"type": "submit", "aspect": "delivery", "level": 9, "rationale": "nearly there"})
	fac := dialRoom(t, ctx, srv, rm.ID, map[string]any{"key": rm.FacilitatorKey})
	command(t, ctx, fac, map[string]any{"type": "start"})
	command(t, ctx, fac, map[string]any{"type": "open_estimates", "team": "t1"})
	for i, level := range []int{4, 6} {
		ws := dialRoom(t, ctx, srv, rm.ID, map[string]any{"name": fmt.Sprintf("Guest %d", i)})
		command(t, ctx, ws, map[string]any{"type": "estimate", "team": "t1", "level": level})
	}

	bctx := newBrowser(t, ctx)
	ana := newTab(t, bctx, "attendee Ana")
	pres := newTab(t, bctx, "presenter")
	defer ana.checkConsole()
	defer pres.checkConsole()
	pres.navigate(base + "/presenter/" + rm.ID + "#key=" + rm.PresenterKey)
	pres.live()
	ana.navigate(base + "/room/" + rm.ID)
	ana.typeInto("#join-name", "Ana")
	ana.click("form", "Join")
	ana.live()
	if n := eval[int](ana, `document.querySelectorAll('.est-pick[data-team="t1"] .est-level').length`); n != levels {
		t.Errorf("picker buttons: got %d, want %d", n, levels)
	}
	pickEstimate(ana, "t1", 6)
	pres.waitJS("three estimates", `document.querySelector('.est-progress[data-team="t1"][data-count="3"]') !== null`)
	ana.shootAt("estimate-custom-attendee-open", []viewport{phone})
	ana.do("phone", chromedp.EmulateViewport(phone.w, phone.h, chromedp.EmulatePortrait, chromedp.EmulateMobile))
	if small := eval[[]string](ana, `[...document.querySelectorAll('.est-level')].map((b) => b.getBoundingClientRect()).filter((r) => r.width < 44 || r.height < 44).map((r) => Math.round(r.width) + 'x' + Math.round(r.height))`); len(small) > 0 {
		t.Errorf("level buttons smaller than 44x44 on a phone: %v", small)
	}
	ana.do("back to the desk", chromedp.EmulateViewport(1280, 900))

	command(t, ctx, fac, map[string]any{"type": "reveal", "team": "t1"})
	want := []int{0, 0, 0, 1, 0, 2, 0, 0, 0, 0}
	for _, tb := range []*tab{pres, ana} {
		if median, gap, flagged := waitHistogram(tb, "t1", want); median != "6" || gap != "+3" || !flagged {
			t.Errorf("%s: median %q, gap %q, flagged %v; want 6, +3, flagged", tb.name, median, gap, flagged)
		}
	}
	pres.shoot("estimate-custom-presenter")
	ana.shootAt("estimate-custom-attendee-revealed", []viewport{phone})
}
