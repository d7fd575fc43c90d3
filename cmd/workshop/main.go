// Command workshop serves live maturity leveling workshops: the web pages,
// the REST API and the WebSocket hub. With no configuration it keeps its
// data in ./data (embedded bbolt store); with WORKSHOP_REDIS_URL set it
// shares rooms with other instances through Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leveling/workshop/frontend"
	"github.com/leveling/workshop/hub"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" { // the image's HEALTHCHECK: no shell or curl there
		if err := healthcheck(ctx, os.Args[2:], os.Getenv, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "workshop:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "workshop:", err)
		os.Exit(1)
	}
}

// config is the server's configuration: each flag has an environment twin.
type config struct {
	addr           string
	dataDir        string
	redisURL       string
	publicURL      string
	allowedOrigins string
	trustedProxies string
	logLevel       string
	instance       string
	shutdownGrace  time.Duration
	closedRoomTTL  time.Duration
	limitScale     float64
	drainDelay     time.Duration
	pprof          bool
}

// envVars lists every environment variable the binary reads, for the
// deployment consistency test.
var envVars = []string{
	"WORKSHOP_ADDR", "WORKSHOP_DATA_DIR", "WORKSHOP_REDIS_URL", "WORKSHOP_PUBLIC_URL",
	"WORKSHOP_ALLOWED_ORIGINS", "WORKSHOP_TRUSTED_PROXIES", "WORKSHOP_LOG_LEVEL",
	"WORKSHOP_INSTANCE", "WORKSHOP_SHUTDOWN_GRACE", "WORKSHOP_DRAIN_DELAY", "WORKSHOP_PPROF",
	"WORKSHOP_CLOSED_ROOM_TTL", "WORKSHOP_LIMIT_SCALE",
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("workshop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	// A malformed environment value is an error, not a silent default:
	// an operator who set it meant something.
	var envErrs []error
	envDur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			envErrs = append(envErrs, fmt.Errorf("%s: want a duration such as 15s, got %q", name, v))
			return def
		}
		return d
	}
	envBool := false
	if v := getenv("WORKSHOP_PPROF"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("WORKSHOP_PPROF: want true or false, got %q", v))
		}
		envBool = b
	}
	fs.StringVar(&c.addr, "addr", env("WORKSHOP_ADDR", ":8080"), "listen address (WORKSHOP_ADDR)")
	fs.StringVar(&c.dataDir, "data-dir", env("WORKSHOP_DATA_DIR", "./data"), "embedded store directory, used without Redis (WORKSHOP_DATA_DIR)")
	fs.StringVar(&c.redisURL, "redis-url", env("WORKSHOP_REDIS_URL", ""), "redis://host:port/db; set: Redis store and bus; unset: embedded (WORKSHOP_REDIS_URL)")
	fs.StringVar(&c.publicURL, "public-url", env("WORKSHOP_PUBLIC_URL", ""), "origin for links and QR codes, e.g. https://workshop.example.com (WORKSHOP_PUBLIC_URL)")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", env("WORKSHOP_ALLOWED_ORIGINS", ""), "comma-separated extra origins allowed to open WebSockets (WORKSHOP_ALLOWED_ORIGINS)")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", env("WORKSHOP_TRUSTED_PROXIES", ""), "comma-separated CIDRs of proxies whose X-Forwarded-For is trusted (WORKSHOP_TRUSTED_PROXIES)")
	fs.StringVar(&c.logLevel, "log-level", env("WORKSHOP_LOG_LEVEL", "info"), "debug, info, warn or error (WORKSHOP_LOG_LEVEL)")
	fs.StringVar(&c.instance, "instance", env("WORKSHOP_INSTANCE", ""), "this instance's name on the bus; default random (WORKSHOP_INSTANCE)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", envDur("WORKSHOP_SHUTDOWN_GRACE", 15*time.Second), "time allowed for a graceful shutdown (WORKSHOP_SHUTDOWN_GRACE)")
	fs.DurationVar(&c.drainDelay, "drain-delay", envDur("WORKSHOP_DRAIN_DELAY", 0), "time /readyz fails before clients are moved on shutdown, so a load balancer notices (WORKSHOP_DRAIN_DELAY)")
	fs.DurationVar(&c.closedRoomTTL, "closed-room-ttl", envDur("WORKSHOP_CLOSED_ROOM_TTL", hub.DefaultClosedRoomTTL), "how long a closed room's join code resolves; Redis also deletes the room then (WORKSHOP_CLOSED_ROOM_TTL)")
	envScale, err := strconv.ParseFloat(env("WORKSHOP_LIMIT_SCALE", "1"), 64)
	if err != nil {
		return c, fmt.Errorf("WORKSHOP_LIMIT_SCALE: %w", err)
	}
	fs.Float64Var(&c.limitScale, "limit-scale", envScale, "multiply every per-address rate limit, e.g. 10 for a load test from one machine (WORKSHOP_LIMIT_SCALE)")
	fs.BoolVar(&c.pprof, "pprof", envBool, "serve /debug/pprof/ (WORKSHOP_PPROF)")
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.drainDelay >= c.shutdownGrace {
		return c, fmt.Errorf("drain-delay (%s) must be shorter than shutdown-grace (%s)", c.drainDelay, c.shutdownGrace)
	}
	if c.limitScale <= 0 {
		return c, fmt.Errorf("limit-scale must be positive, got %v", c.limitScale)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseCIDRs(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range splitList(s) {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// run reads the configuration, builds store, bus, hub and server, serves
// until ctx ends, and shuts down in order: readiness fails, new upgrades
// stop, clients are told to go away, handlers finish, store and bus close.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	level, err := parseLevel(cfg.logLevel)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	proxies, err := parseCIDRs(cfg.trustedProxies)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := hub.NewMetrics(reg)

	store, bus, err := openBackend(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer bus.Close()
	defer store.Close()

	h, err := hub.New(hub.Config{
		Store: store, Bus: bus, Logger: log, Instance: cfg.instance, Metrics: metrics,
		Limits: hub.DefaultLimits.Scaled(cfg.limitScale),
	})
	if err != nil {
		return err
	}
	e := hub.NewServer(h, hub.HTTPConfig{
		PublicURL: cfg.publicURL, AllowedOrigins: splitList(cfg.allowedOrigins), TrustedProxies: proxies,
		Pages: frontend.FS(), Gatherer: reg, Pprof: cfg.pprof, Logger: log,
	})
	srv := &http.Server{Addr: cfg.addr, Handler: e, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	mode := "embedded"
	if cfg.redisURL != "" {
		mode = "redis"
	}
	log.Info("workshop listening", "addr", ln.Addr().String(), "store", mode)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "grace", cfg.shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	h.StartDrain() // /readyz fails from here on
	if cfg.drainDelay > 0 {
		select {
		case <-time.After(cfg.drainDelay):
		case <-sctx.Done():
		}
	}
	// Stop accepting and finish plain requests; hijacked WebSockets are the
	// hub's to close and wait for.
	httpErr := srv.Shutdown(sctx)
	hubErr := h.Shutdown(sctx)
	if err := errors.Join(httpErr, hubErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
