package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"WORKSHOP_ADDR": ":9999", "WORKSHOP_LOG_LEVEL": "debug", "WORKSHOP_SHUTDOWN_GRACE": "3s"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != ":9999" || c.logLevel != "debug" || c.shutdownGrace != 3*time.Second || c.dataDir != "./data" {
		t.Fatalf("env twins: got %+v", c)
	}
	c, err = parseConfig([]string{"-addr", "127.0.0.1:1"}, getenv, io.Discard)
	if err != nil || c.addr != "127.0.0.1:1" {
		t.Fatalf("flag over env: got %q, %v", c.addr, err)
	}
	for _, badEnv := range []map[string]string{
		{"WORKSHOP_SHUTDOWN_GRACE": "25"}, {"WORKSHOP_DRAIN_DELAY": "-1s"}, {"WORKSHOP_PPROF": "maybe"},
		{"WORKSHOP_LIMIT_SCALE": "lots"}, {"WORKSHOP_DRAIN_DELAY": "20s"},
	} {
		if _, err := parseConfig(nil, func(k string) string { return badEnv[k] }, io.Discard); err == nil {
			t.Errorf("parseConfig with %v: want an error", badEnv)
		}
	}
	for _, bad := range [][]string{{"-nope"}, {"extra"}, {"-shutdown-grace", "soon"}, {"-drain-delay", "1m"}} {
		if _, err := parseConfig(bad, getenv, io.Discard); err == nil {
			t.Errorf("parseConfig(%v): want an error", bad)
		}
	}
	if _, err := parseCIDRs("10.0.0.0/8, 192.168.1.1, ::1"); err != nil {
		t.Fatal(err)
	}
	if _, err := parseCIDRs("not-an-ip"); err == nil {
		t.Fatal("bad CIDR accepted")
	}
	if got := redactURL("redis://user:secret@host:6379/0"); strings.Contains(got, "secret") {
		t.Fatalf("password in %q", got)
	}
}

func TestRunBadConfig(t *testing.T) {
	ctx := context.Background()
	for _, env := range []map[string]string{
		{"WORKSHOP_LOG_LEVEL": "loud"},
		{"WORKSHOP_TRUSTED_PROXIES": "x/99"},
		{"WORKSHOP_REDIS_URL": "http://not-redis"},
	} {
		if err := run(ctx, []string{"-addr", "127.0.0.1:0", "-data-dir", t.TempDir()}, func(k string) string { return env[k] }, io.Discard); err == nil {
			t.Errorf("run with %v: want an error", env)
		}
	}
}

// TestRunServesAndStops runs the real main loop on a free port, checks
// the probes and a page, and stops it through its context.
func TestRunServesAndStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-data-dir", t.TempDir()}, func(string) string { return "" }, io.Discard)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, path := range []string{"/readyz", "/", "/static/css/app.css", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// Static files revalidate by content hash.
	resp, err := http.Get(base + "/static/css/app.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tag := resp.Header.Get("ETag")
	if tag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("static caching headers: %v", resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/static/css/app.css", nil)
	req.Header.Set("If-None-Match", tag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: got %d, want 304", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
}
