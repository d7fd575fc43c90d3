package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leveling/workshop/hub"
	"github.com/leveling/workshop/hub/redis"
)

// openBackend opens the store and bus: bbolt and an in-process bus by
// default, Redis for both when a URL is configured. Backend metrics (the
// Redis bus and pool) are registered with reg.
func openBackend(ctx context.Context, cfg config, log *slog.Logger, reg prometheus.Registerer) (hub.Store, hub.Bus, error) {
	if cfg.redisURL == "" {
		bus := hub.NewLocalBus()
		store, err := hub.OpenBoltStoreWithConfig(hub.BoltStoreConfig{Dir: cfg.dataDir, Bus: bus, ClosedRoomTTL: cfg.closedRoomTTL})
		if err != nil {
			return nil, nil, err
		}
		log.Info("embedded store", "dir", cfg.dataDir, "closedRoomTTL", cfg.closedRoomTTL)
		return store, bus, nil
	}
	return openRedis(ctx, cfg, log, reg)
}

// openRedis connects to Redis and builds the store and bus on one client.
// It does not wait for Redis: an instance started before Redis is up
// answers "unavailable" and /readyz fails until it is reachable.
func openRedis(ctx context.Context, cfg config, log *slog.Logger, reg prometheus.Registerer) (hub.Store, hub.Bus, error) {
	client, err := redis.NewClient(cfg.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url: %w", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		log.Warn("redis not reachable yet; will retry", "err", err)
	}
	bus := redis.NewBus(client, redis.BusConfig{Instance: cfg.instance, Logger: log})
	// Paired with the bus, the store's commits come back to this instance
	// marked as its own and are skipped undecoded.
	store := redis.NewStore(client, redis.StoreConfig{ClosedRoomTTL: cfg.closedRoomTTL, Bus: bus})
	// Reconnects, resubscriptions and stalled subscriptions show nowhere
	// else: the hub's own metrics only see their consequences.
	reg.MustRegister(redis.NewCollector(bus, client))
	log.Info("redis store and bus", "addr", redactURL(cfg.redisURL))
	return store, &closingBus{Bus: bus, close: client.Close}, nil
}

// closingBus closes the shared Redis client after the bus (the store is
// closed first, by run).
type closingBus struct {
	hub.Bus
	close func() error
}

func (b *closingBus) Close() error {
	err := b.Bus.Close()
	if cerr := b.close(); err == nil {
		err = cerr
	}
	return err
}

// redactURL hides a password in a Redis URL so it never reaches a log.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
