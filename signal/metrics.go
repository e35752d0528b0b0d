package signal

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
// The counters of the relay path are resolved once, so counting is an
// atomic add.
type metrics struct {
	reg *prometheus.Registry

	rooms   prometheus.Gauge
	joins   *prometheus.CounterVec // by result
	relayed map[string]prometheus.Counter
	errors  *prometheus.CounterVec // by code
	closed  *prometheus.CounterVec // by reason
	resumes *prometheus.CounterVec // by result
	refused *prometheus.CounterVec // upgrades refused, by reason
	shed    prometheus.Counter     // connections and seats dropped for the buffer budget
	latency prometheus.Histogram   // receive → enqueued on every target
}

// Reasons an upgrade is refused, for rendezvous_connections_refused_total.
const (
	refusedMaxConns    = "max-conns"    // Config.MaxConns open already
	refusedPerIP       = "per-ip"       // Config.MaxConnsPerIP open from the address already
	refusedUpgradeRate = "upgrade-rate" // the address's upgrades are over Config.UpgradeRate
	refusedAddrTable   = "addr-table"   // too many client addresses tracked at once
	refusedShutdown    = "shutdown"     // the server is shutting down
)

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rendezvous_rooms_open", Help: "Rooms that exist now.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_joins_total", Help: "Join requests by result (created, joined, resumed, full, unauthorized).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_errors_total", Help: "Protocol errors sent to clients, by code.",
		}, []string{"code"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_connections_closed_total", Help: "Connections closed, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_connections_refused_total", Help: "WebSocket upgrades refused, by reason (max-conns, per-ip, upgrade-rate, addr-table, shutdown).",
		}, []string{"reason"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rendezvous_buffer_shed_total", Help: "Connections and held seats dropped as slow consumers because the buffer budget was exceeded.",
		}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rendezvous_resumes_total", Help: "Resume attempts by result (ok, failed, expired).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rendezvous_relay_latency_seconds",
			Help:    "Time from receiving a relayed message to having queued it for every target.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1},
		}),
	}
	relayed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rendezvous_messages_relayed_total", Help: "Messages relayed, by type (counted once per message, not per target).",
	}, []string{"type"})
	m.relayed = make(map[string]prometheus.Counter)
	for _, t := range []string{TypeOffer, TypeAnswer, TypeCandidate, TypeMessage} {
		m.relayed[t] = relayed.WithLabelValues(t)
	}
	// Pre-create the label values so that they show as 0 before they occur.
	for _, r := range []string{"created", "joined", "resumed", "full", "unauthorized"} {
		m.joins.WithLabelValues(r)
	}
	for _, r := range closeReasons {
		m.closed.WithLabelValues(string(r))
	}
	for _, r := range []string{refusedMaxConns, refusedPerIP, refusedUpgradeRate, refusedAddrTable, refusedShutdown} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed", "expired"} {
		m.resumes.WithLabelValues(r)
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rendezvous_connections_open", Help: "WebSocket connections open now.",
		}, func() float64 { return float64(s.nconns.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rendezvous_connections_idle", Help: "Connections parked on a small idle goroutine (quiet for a second or more).",
		}, func() float64 { return float64(s.idleConns.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rendezvous_buffered_bytes", Help: "Bytes of frames buffered for all connections and held seats (queued, kept for a resume, being read).",
		}, func() float64 { return float64(s.buffered.Load()) }),
		m.rooms, m.joins, relayed, m.errors, m.closed, m.resumes, m.refused, m.shed, m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.reg.MustRegister(s.cfg.Collectors...) // a collision is a programming error, as with http.Handle
	return m
}
