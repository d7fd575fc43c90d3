package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/room"
	"github.com/prometheus/client_golang/prometheus"
)

// TestClosedRoomTTLReachesEmbeddedStore: WORKSHOP_CLOSED_ROOM_TTL (and
// its flag) configure the embedded store, not only Redis: with 1ns a
// closed room's code stops resolving at once; with the default (30 days)
// it still resolves.
func TestClosedRoomTTLReachesEmbeddedStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		expires bool
	}{
		{"env", map[string]string{"WORKSHOP_CLOSED_ROOM_TTL": "1ns"}, nil, true},
		{"flag", nil, []string{"-closed-room-ttl", "1ns"}, true},
		{"default", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-data-dir", t.TempDir()}, tc.args...)
			cfg, err := parseConfig(args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			store, bus, err := openBackend(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			defer bus.Close()
			defer store.Close()
			id, code := uuid.NewString(), "K7PQM3TX"
			events, err := room.Create(room.CreateParams{ID: id, Code: code, Title: "TTL", Model: room.PEMM(), TeamNames: []string{"A"}, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Create(ctx, id, code, events); err != nil {
				t.Fatal(err)
			}
			if got, err := store.Lookup(ctx, code); err != nil || got != id {
				t.Fatalf("open room: %q, %v", got, err)
			}
			closed := []room.Event{{Seq: 2, Type: room.EvClosed, At: time.Now()}}
			if err := store.Append(ctx, id, 1, closed, nil); err != nil {
				t.Fatal(err)
			}
			if !tc.expires {
				if got, err := store.Lookup(ctx, code); err != nil || got != id {
					t.Fatalf("closed room within 30 days: %q, %v", got, err)
				}
				return
			}
			// The close time is kept in milliseconds: the code is gone
			// within one.
			for {
				_, err := store.Lookup(ctx, code)
				if errors.Is(err, hub.ErrRoomNotFound) {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if ctx.Err() != nil {
					t.Fatal("the closed room's code still resolves with a 1ns retention")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
