package redis

import (
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

// Collector exposes the Redis side of an instance to Prometheus: the
// Bus's counters (messages, resubscriptions, failed probes, receive
// errors) and the go-redis connection pool's. It reads them when scraped,
// so the bus's receive loop and the pool pay nothing for it: both already
// count with atomics.
//
// Without these, a Redis outage shows only indirectly (store errors,
// unavailable commands); with them an operator sees reconnects
// (resubscribes, receive errors, pool misses) and a subscription that
// stalls silently (probe failures).
type Collector struct {
	bus    *Bus
	client goredis.UniversalClient

	busMessages, busResubscribes, busProbeFailures, busReceiveErrors, busDecodeErrors *prometheus.Desc
	poolConns, poolHits, poolMisses, poolTimeouts, poolStale, poolUnusable            *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector collects bus's and client's statistics; either may be
// nil (its metrics are then left out).
func NewCollector(bus *Bus, client goredis.UniversalClient) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		bus: bus, client: client,
		busMessages:      d("workshop_redis_bus_messages_total", "Messages received on the Redis bus and handed to a room's subscribers."),
		busResubscribes:  d("workshop_redis_bus_resubscribes_total", "Room channels subscribed again after a reconnect or a stalled probe; each resyncs the room from the store."),
		busProbeFailures: d("workshop_redis_bus_probe_failures_total", "Self-probes that did not come back in time: the subscription was taken for stalled and replaced."),
		busReceiveErrors: d("workshop_redis_bus_receive_errors_total", "Errors reading the Redis subscription (each may be a reconnect)."),
		busDecodeErrors:  d("workshop_redis_bus_decode_errors_total", "Bus messages that did not decode; their room is resynced from the store."),
		poolConns:        d("workshop_redis_pool_connections", "Connections in the Redis client pool, by state (total or idle).", "state"),
		poolHits:         d("workshop_redis_pool_hits_total", "Redis commands that found an idle pooled connection."),
		poolMisses:       d("workshop_redis_pool_misses_total", "Redis commands that found no idle connection and dialed a new one (reconnects after a Redis restart count here)."),
		poolTimeouts:     d("workshop_redis_pool_timeouts_total", "Redis commands that timed out waiting for a pooled connection."),
		poolStale:        d("workshop_redis_pool_stale_connections_total", "Pooled Redis connections closed as stale (idle too long or broken)."),
		poolUnusable:     d("workshop_redis_pool_unusable_total", "Pooled Redis connections found unusable when taken (for example closed by a Redis restart)."),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.busMessages, c.busResubscribes, c.busProbeFailures, c.busReceiveErrors, c.busDecodeErrors,
		c.poolConns, c.poolHits, c.poolMisses, c.poolTimeouts, c.poolStale, c.poolUnusable,
	} {
		ch <- d
	}
}

// Collect reads the current counters. It may run on any goroutine (the
// scrape's); Stats and PoolStats are safe for that.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if c.bus != nil {
		s := c.bus.Stats()
		counter(c.busMessages, float64(s.Messages))
		counter(c.busResubscribes, float64(s.Resubscribes))
		counter(c.busProbeFailures, float64(s.ProbeFailures))
		counter(c.busReceiveErrors, float64(s.ReceiveErrors))
		counter(c.busDecodeErrors, float64(s.DecodeErrors))
	}
	if c.client != nil {
		if p := c.client.PoolStats(); p != nil {
			ch <- prometheus.MustNewConstMetric(c.poolConns, prometheus.GaugeValue, float64(p.TotalConns), "total")
			ch <- prometheus.MustNewConstMetric(c.poolConns, prometheus.GaugeValue, float64(p.IdleConns), "idle")
			counter(c.poolHits, float64(p.Hits))
			counter(c.poolMisses, float64(p.Misses))
			counter(c.poolTimeouts, float64(p.Timeouts))
			counter(c.poolStale, float64(p.StaleConns))
			counter(c.poolUnusable, float64(p.Unusable))
		}
	}
}
