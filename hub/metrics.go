package hub

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus instruments. NewMetrics registers them
// with a registry (or none, for tests that do not look).
type Metrics struct {
	connections    *prometheus.GaugeVec
	rooms          prometheus.Gauge
	commands       *prometheus.CounterVec
	clientMessages *prometheus.CounterVec
	fanoutSeconds  prometheus.Histogram
	deliveries     prometheus.Counter
	slowCloses     prometheus.Counter
	busErrors      prometheus.Counter
	publishDrops   prometheus.Counter
	busGaps        prometheus.Counter
	busLagSeconds  prometheus.Histogram
	appendSeconds  prometheus.Histogram
	storeErrors    prometheus.Counter
	appendConflict prometheus.Counter
	reloads        prometheus.Counter
}

// NewMetrics creates the instruments and registers them with reg when it is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workshop_connections", Help: "Open WebSocket connections by role.",
		}, []string{"role"}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workshop_rooms_active", Help: "Rooms with at least one client on this instance.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workshop_commands_total", Help: "Commands by type and result (ok or an error code).",
		}, []string{"type", "result"}),
		clientMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workshop_client_messages_total", Help: "Pings and resumes by type and result (ok, served, coalesced into a waiting resume, or rate_limited).",
		}, []string{"type", "result"}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "workshop_fanout_seconds", Help: "Time to encode and queue one batch of events to every local client.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_deliveries_total", Help: "Messages queued to clients.",
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_slow_client_closes_total", Help: "Clients closed because their send queue was full.",
		}),
		busErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_bus_errors_total", Help: "Failed bus publishes (heartbeats, presence).",
		}),
		publishDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_bus_publish_drops_total", Help: "Heartbeats and presence messages dropped because the publish queue was full (the next heartbeat repeats them).",
		}),
		busGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_bus_gaps_total", Help: "Gaps in a room's sequence noticed on the bus and filled from the store.",
		}),
		busLagSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "workshop_bus_lag_seconds", Help: "Time from an event's commit to its arrival on this instance's bus.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "workshop_store_append_seconds", Help: "Time to append one batch of events to the store, until it is durable (successful appends).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_store_errors_total", Help: "Store calls that failed (other than sequence conflicts).",
		}),
		appendConflict: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_append_conflicts_total", Help: "Appends that lost a race to another instance and were retried.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workshop_room_reloads_total", Help: "Rooms read whole from the store again after a failure or a lost race (a lost race of votes alone costs none).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.rooms, m.commands, m.clientMessages, m.fanoutSeconds, m.deliveries,
			m.slowCloses, m.busErrors, m.publishDrops, m.busGaps, m.busLagSeconds, m.appendSeconds, m.storeErrors, m.appendConflict, m.reloads)
	}
	return m
}
