package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/leveling/workshop/room"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	qrcode "github.com/skip2/go-qrcode"
)

// HTTPConfig configures the Echo server. Zero values mean the defaults in
// the comments.
type HTTPConfig struct {
	// PublicURL is the origin links and QR codes start with, such as
	// https://workshop.example.com; empty derives it from each request.
	PublicURL string
	// AllowedOrigins are extra origins (host patterns, as in
	// coder/websocket's AcceptOptions.OriginPatterns) whose pages may open
	// WebSockets; the server's own origin is always allowed.
	AllowedOrigins []string
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For is
	// believed; empty means the TCP peer is the client.
	TrustedProxies []*net.IPNet
	// Pages is the web front end (frontend.FS()); nil serves no pages.
	Pages fs.FS
	// Gatherer serves /metrics; nil serves none.
	Gatherer prometheus.Gatherer
	// Pprof mounts /debug/pprof/ when true.
	Pprof bool
	// Logger defaults to the hub's.
	Logger *slog.Logger
}

// Body and header limits of the REST API.
const (
	maxCreateBody = 128 << 10 // a room with a large custom model
)

// contentSecurityPolicy allows only the server's own scripts and styles:
// no inline code, no third-party origins, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// NewServer builds the Echo server of h: REST, WebSocket, pages, probes.
func NewServer(h *Hub, cfg HTTPConfig) *echo.Echo {
	if cfg.Logger == nil {
		cfg.Logger = h.log
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	if len(cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(middleware.Recover())
	e.Use(requestLogger(cfg.Logger))
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection:         "0",
		ContentTypeNosniff:    "nosniff",
		XFrameOptions:         "DENY",
		ContentSecurityPolicy: contentSecurityPolicy,
		ReferrerPolicy:        "no-referrer",
	}))

	s := &server{h: h, cfg: cfg}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	if cfg.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	}
	if cfg.Pprof {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	}

	api := e.Group("/api")
	api.POST("/rooms", s.createRoom) // checks its own body: type, size, one JSON value
	api.GET("/rooms/:id", s.getRoom)
	api.GET("/rooms/:id/results", s.getResults)
	api.GET("/rooms/:id/export", s.export)
	api.GET("/rooms/:id/qr.svg", s.qr)
	api.GET("/rooms/:id/ws", s.ws)
	api.GET("/join/:code", s.join)
	e.GET("/j/:code", s.joinRedirect)

	if cfg.Pages != nil {
		page := func(name string) echo.HandlerFunc {
			serve := echo.StaticFileHandler(name, cfg.Pages)
			return func(c echo.Context) error {
				c.Response().Header().Set("Cache-Control", "no-cache")
				return serve(c)
			}
		}
		e.GET("/", page("index.html"))
		e.GET("/room/:id", page("room.html"))
		e.GET("/team/:id", page("team.html"))
		e.GET("/facilitator/:id", page("facilitator.html"))
		e.GET("/presenter/:id", page("presenter.html"))
		e.GET("/results/:id", page("results.html"))
		e.Group("/static", staticCache(cfg.Pages)).StaticFS("/", echo.MustSubFS(cfg.Pages, "static"))
	}
	return e
}

type server struct {
	h   *Hub
	cfg HTTPConfig
}

// apiError is the JSON error body of every REST failure.
type apiError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		RetryAfter int64  `json:"retryAfter,omitempty"` // ms, for rate_limited
	} `json:"error"`
}

func newAPIError(err error) apiError {
	var body apiError
	body.Error.Code, body.Error.Message = errorCode(err), errorMessage(err)
	body.Error.RetryAfter = retryAfter(err).Milliseconds()
	return body
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := statusOf(err), newAPIError(err)
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			body.Error.Code = codeForStatus(status)
			body.Error.Message = strings.ToLower(http.StatusText(status))
			if m, ok := he.Message.(string); ok {
				body.Error.Message = m
			}
		}
		if status >= 500 && body.Error.Code != room.EUNAVAILABLE {
			log.Error("http: request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}

func codeForStatus(status int) string {
	for code, s := range httpStatus {
		if s == status {
			return code
		}
	}
	if status >= 500 {
		return room.EINTERNAL
	}
	return room.EINVALID
}

// requestLogger logs each request's method, route, status and duration.
// Never the query or fragment: keys do not travel there, but a careless
// client might put them there all the same.
func requestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			log.Debug("http", "method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
				"dur", time.Since(start).Round(time.Microsecond), "ip", c.RealIP())
			return nil
		}
	}
}

func (s *server) base(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	return c.Scheme() + "://" + c.Request().Host
}

// readyz answers ready or not, and nothing else: the reason can name
// Redis addresses, so it goes to the log, never to the prober.
func (s *server) readyz(c echo.Context) error {
	if err := s.h.Ready(c.Request().Context()); err != nil {
		level := slog.LevelWarn
		if s.h.Draining() {
			level = slog.LevelDebug // shutting down on purpose
		}
		s.cfg.Logger.Log(c.Request().Context(), level, "http: not ready", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// limited applies a per-address limit to a REST call.
func limited(l *addrLimiters, c echo.Context, what string) error {
	ok, retry := l.allow(c.RealIP(), time.Now())
	if ok {
		return nil
	}
	c.Response().Header().Set("Retry-After", retryAfterSeconds(retry))
	return rateLimitedError(what, retry)
}

// createRoom creates a room. Everything that can be refused from the
// headers is refused first; then the address's budget is reserved, before
// the body is read, and given back unless a room is created: a malformed
// request costs the address nothing.
func (s *server) createRoom(c echo.Context) error {
	if err := checkJSONHeaders(c.Request(), maxCreateBody); err != nil {
		return err
	}
	refund, retry := s.h.addrRooms.reserve(c.RealIP(), time.Now())
	if refund == nil {
		c.Response().Header().Set("Retry-After", retryAfterSeconds(retry))
		return rateLimitedError("rooms created from your address", retry)
	}
	out, err := s.create(c)
	if err != nil {
		refund()
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, out)
}

func (s *server) create(c echo.Context) (*CreatedRoom, error) {
	var req CreateRequest
	if err := decodeJSONBody(c, maxCreateBody, &req); err != nil {
		return nil, err
	}
	if n := len(req.Teams); n > s.h.cfg.Limits.MaxTeamsPerRoom {
		return nil, room.Errorf(room.EINVALID, "teams: a room has at most %d teams, got %d", s.h.cfg.Limits.MaxTeamsPerRoom, n)
	}
	return s.h.CreateRoom(c.Request().Context(), req, s.base(c))
}

// checkJSONHeaders refuses a request body that is not JSON or is declared
// longer than limit bytes. Only application/json (charset, if given,
// utf-8) is accepted: the types an HTML form can send (form-urlencoded,
// multipart, text/plain) never are, so a page on another site cannot post
// to the API with a visitor's browser, and a script there would need a
// CORS preflight, which this server never grants.
func checkJSONHeaders(r *http.Request, limit int64) error {
	ct := r.Header.Get(echo.HeaderContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != echo.MIMEApplicationJSON {
		if ct == "" {
			ct = "none"
		}
		return room.Errorf(EMEDIATYPE, "Content-Type: want application/json, got %s", truncate(ct, 60))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return room.Errorf(EMEDIATYPE, "Content-Type: JSON is UTF-8, got charset %s", truncate(cs, 20))
	}
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	return nil
}

// decodeJSONBody decodes exactly one JSON value into v: at most limit
// bytes however they are sent (a chunked body has no Content-Length to
// check beforehand), no unknown field, nothing but white space after it.
func decodeJSONBody(c echo.Context, limit int64, v any) error {
	dec := jsonDecoder(http.MaxBytesReader(c.Response().Writer, c.Request().Body, limit))
	if err := dec.Decode(v); err != nil {
		switch {
		case isMaxBytes(err):
			return tooLarge(limit)
		case err == io.EOF:
			return room.Errorf(room.EINVALID, "malformed request: empty body, want a JSON object")
		}
		return room.Errorf(room.EINVALID, "malformed request: %s", shortJSONError(err))
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case isMaxBytes(err):
		return tooLarge(limit)
	}
	return room.Errorf(room.EINVALID, "malformed request: data after the JSON object")
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func tooLarge(limit int64) error {
	return room.Errorf(ETOOLARGE, "request body over %d KiB", limit>>10)
}

func (s *server) getRoom(c echo.Context) error {
	st, err := s.h.LoadRoom(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, room.View(st, room.Audience{Role: room.RoleAttendee}))
}

func (s *server) getResults(c echo.Context) error {
	st, err := s.h.LoadRoom(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, room.ComputeResults(st).JSON())
}

func (s *server) export(c echo.Context) error {
	st, err := s.h.LoadRoom(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	key, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || !keyMatches(strings.TrimSpace(key), st.Secrets.FacilitatorKeyHash) {
		return room.Errorf(EUNAUTHORIZED, "export needs the facilitator key (Authorization: Bearer KEY)")
	}
	res := room.ComputeResults(st)
	name := "workshop-" + st.Code
	c.Response().Header().Set("Cache-Control", "no-store")
	switch c.QueryParam("format") {
	case "csv":
		c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`.csv"`)
		return c.Blob(http.StatusOK, "text/csv; charset=utf-8", res.CSV())
	case "json", "":
		c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`.json"`)
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, res.JSON())
	case "md":
		c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`.md"`)
		return c.Blob(http.StatusOK, "text/markdown; charset=utf-8", res.Markdown())
	}
	return room.Errorf(room.EINVALID, "format: use csv, json or md")
}

func (s *server) qr(c echo.Context) error {
	st, err := s.h.LoadRoom(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	q, err := qrcode.New(s.base(c)+"/j/"+st.Code, qrcode.Medium)
	if err != nil {
		return fmt.Errorf("hub: qr code: %w", err)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, "image/svg+xml", qrSVG(q.Bitmap()))
}

// qrSVG draws a QR bitmap (quiet zone included) as one SVG path.
func qrSVG(bits [][]bool) []byte {
	n := len(bits)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y, row := range bits {
		for x, on := range row {
			if on {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return []byte(b.String())
}

type joinAnswer struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Room  string `json:"room"`
}

// resolve answers a code's room; unknown and gone codes fail alike.
func (s *server) resolve(c echo.Context) (*joinAnswer, error) {
	if err := limited(s.h.addrLookups, c, "code lookups from your address"); err != nil {
		return nil, err
	}
	notFound := room.Errorf(room.ENOTFOUND, "no room with this code")
	code := normalizeCode(c.Param("code"))
	if code == "" {
		return nil, notFound
	}
	id, err := s.h.store.Lookup(c.Request().Context(), code)
	if errors.Is(err, ErrRoomNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	st, err := s.h.LoadRoom(c.Request().Context(), id)
	if errors.Is(err, ErrRoomNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return &joinAnswer{ID: id, Title: st.Title, Room: s.base(c) + "/room/" + id}, nil
}

func (s *server) join(c echo.Context) error {
	ans, err := s.resolve(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ans)
}

func (s *server) joinRedirect(c echo.Context) error {
	ans, err := s.resolve(c)
	if err != nil {
		switch errorCode(err) {
		case room.ENOTFOUND:
			return c.Redirect(http.StatusSeeOther, "/?error=code")
		case room.ERATELIMITED:
			return c.Redirect(http.StatusSeeOther, "/?error=busy")
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/room/"+ans.ID)
}

func (s *server) ws(c echo.Context) error {
	// The room itself is checked by its actor (close 4004), not here: a
	// load per upgrade would cost a join storm a full read of the room.
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return room.Errorf(room.ENOTFOUND, "room not found")
	}
	s.h.serveWS(c.Response(), c.Request(), id, c.RealIP(), &websocket.AcceptOptions{
		OriginPatterns:  s.cfg.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	return nil
}

// staticCache lets browsers keep the embedded static files and revalidate
// them cheaply: an ETag from each file's content (computed once; the files
// never change while the program runs) and "no-cache", so a new release is
// picked up at the next page load without a stale script ever running
// against a newer server.
func staticCache(pages fs.FS) echo.MiddlewareFunc {
	var mu sync.Mutex
	tags := map[string]string{}
	etag := func(name string) string {
		mu.Lock()
		defer mu.Unlock()
		if t, ok := tags[name]; ok {
			return t
		}
		t := ""
		if b, err := fs.ReadFile(pages, name); err == nil {
			sum := sha256.Sum256(b)
			t = `"` + hex.EncodeToString(sum[:8]) + `"`
		}
		tags[name] = t
		return t
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			name := path.Clean("static/" + strings.TrimPrefix(c.Request().URL.Path, "/static/"))
			if tag := etag(name); tag != "" {
				h := c.Response().Header()
				h.Set("ETag", tag)
				h.Set("Cache-Control", "no-cache")
				if c.Request().Header.Get("If-None-Match") == tag {
					return c.NoContent(http.StatusNotModified)
				}
			}
			return next(c)
		}
	}
}
