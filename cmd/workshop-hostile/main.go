// Command workshop-hostile walks hub/PROTOCOL.md against a running workshop
// server as a careful, hostile new client would: every REST call, every
// hello form, every command from the right and the wrong role, every
// documented error code, close code and limit, and the secrecy promise on
// the raw frames. It is written from PROTOCOL.md alone: its JSON types and
// its WebSocket client are its own (on github.com/coder/websocket), and it
// imports nothing of the server.
//
// It prints one line per check:
//
//	ok   <check>: sent …; got …; PROTOCOL.md: …
//	FAIL <check>: sent …; got …; PROTOCOL.md: …
//	skip <check>: why it cannot be reached from outside
//
// and exits 1 when any check failed.
//
//	go run ./cmd/workshop-hostile -url http://127.0.0.1:8080
//
// Per-address limits are checked only with -source-addrs (several loopback
// source addresses, so the rest of the walk is not throttled by them) and
// the bursts the server is configured with (-identity-burst, -upgrade-burst,
// -room-burst, -lookup-burst; README.md "Security and limits" and
// PROTOCOL.md give the defaults). The gone-room lookup needs
// -closed-room-ttl, and close 1001 needs -server-pid: the walk ends by
// stopping the server. main_test.go runs it all against the real binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is the walk's configuration, from flags.
type config struct {
	base          *url.URL
	sourceAddrs   int
	identityBurst int
	upgradeBurst  int
	lookupBurst   int
	roomBurst     int
	closedRoomTTL time.Duration
	serverPID     int
	timeout       time.Duration
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("workshop-hostile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "http://127.0.0.1:8080", "the server's base URL")
	fs.IntVar(&c.sourceAddrs, "source-addrs", 1, "spread connections over loopback source addresses 127.0.0.1 to .N; per-address limit checks need at least 8 (1: the system's choice, for a remote server)")
	fs.IntVar(&c.identityBurst, "identity-burst", 0, "the server's burst of new attendee identities per address and room (README: 5000 times WORKSHOP_LIMIT_SCALE); 0 skips the 4029 check")
	fs.IntVar(&c.upgradeBurst, "upgrade-burst", 0, "the server's burst of WebSocket upgrades per address (README: 5000 times WORKSHOP_LIMIT_SCALE); 0 skips the upgrade 429 check")
	fs.IntVar(&c.lookupBurst, "lookup-burst", 0, "the server's burst of short-code lookups per address (README: 30); 0 skips the lookup rate-limit checks")
	fs.IntVar(&c.roomBurst, "room-burst", 0, "the server's burst of rooms created per address (PROTOCOL.md: 20 times WORKSHOP_LIMIT_SCALE); 0 skips the room-creation limit check")
	fs.DurationVar(&c.closedRoomTTL, "closed-room-ttl", 0, "the server's WORKSHOP_CLOSED_ROOM_TTL, when short enough to wait for; 0 skips the gone-room lookup check")
	fs.IntVar(&c.serverPID, "server-pid", 0, "the server's process id: the walk ends by sending it SIGTERM and checks close 1001; 0 skips that")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "the whole walk's time limit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("-url: want http://host:port, got %q", *rawURL)
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	c.base = u
	if c.sourceAddrs < 1 || c.sourceAddrs > 250 {
		return c, errors.New("-source-addrs: want 1 to 250, got " + strconv.Itoa(c.sourceAddrs))
	}
	return c, nil
}

// run walks the protocol and answers the exit status: 0 when every check
// passed, 1 when one failed, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "workshop-hostile:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	w := newWalker(cfg, stdout)
	w.walk(ctx)
	return w.summary()
}
