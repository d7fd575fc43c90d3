package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthcheckTimeout bounds one probe; it stays under the Dockerfile's
// HEALTHCHECK --timeout so a hung server reads as unhealthy, not as a
// probe the runtime had to kill.
const healthcheckTimeout = 2 * time.Second

// healthcheck probes a running server on this machine: `workshop
// healthcheck` GETs http://127.0.0.1:PORT/healthz, PORT taken from -addr or
// WORKSHOP_ADDR like the server's own. It exists because the distroless
// image has no shell, curl or wget for a container HEALTHCHECK. It answers
// nil on a 200.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("workshop healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("WORKSHOP_ADDR")
	if def == "" {
		def = ":8080"
	}
	addr := fs.String("addr", def, "the server's listen address (WORKSHOP_ADDR)")
	path := fs.String("path", "/healthz", "the path to probe: /healthz (alive) or /readyz (takes clients)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	u, err := probeURL(*addr, *path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", u, resp.Status)
	}
	return nil
}

// probeURL turns a listen address into the URL a local probe uses: an
// address that listens on every interface (":8080", "0.0.0.0:8080",
// "[::]:8080") is probed on 127.0.0.1.
func probeURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("healthcheck: addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
