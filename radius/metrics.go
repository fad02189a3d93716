package radius

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/auth"
)

// Drop reasons, the label values of otpgate_radius_drops_total.
const (
	dropUnknownClient   = "unknown_client"
	dropMalformed       = "malformed"
	dropBadMA           = "bad_message_authenticator"
	dropMissingMA       = "missing_message_authenticator"
	dropProxyState      = "proxy_state"
	dropOverload        = "overload"
	dropDuplicate       = "duplicate_in_flight"
	dropUnsupportedCode = "unsupported_code"
	dropInternal        = "internal_error"
)

// metrics are the server's counters. Each Server has its own, registered
// by whoever serves them (see Server.Collect), so several servers can live
// in one process. The label values are bounded enums; there is no per-user
// or per-address label.
type metrics struct {
	requests  *prometheus.CounterVec
	rejects   *prometheus.CounterVec
	drops     *prometheus.CounterVec
	cacheHits prometheus.Counter
	panics    prometheus.Counter
	duration  prometheus.Histogram

	// byResult holds the requests series of the usual codes, looked up
	// once: WithLabelValues hashes and locks on every call, and this
	// counter moves on every answer.
	byResult map[auth.Result]prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otpgate_radius_requests_total",
			Help: "Answered RADIUS requests by response code.",
		}, []string{"code"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otpgate_radius_rejects_total",
			Help: "Access-Rejects by reason (never sent to the NAS).",
		}, []string{"reason"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otpgate_radius_drops_total",
			Help: "Datagrams discarded without an answer, by reason.",
		}, []string{"reason"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpgate_radius_reply_cache_hits_total",
			Help: "Retransmissions answered from the reply cache.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpgate_radius_panics_total",
			Help: "Panics recovered while handling a request.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "otpgate_radius_request_duration_seconds",
			Help:    "Time from receipt of an Access-Request to its decision, reject delay excluded.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
	}
	// The usual series exist from the start at 0, so a dashboard's rate()
	// has a value before the first event.
	m.byResult = make(map[auth.Result]prometheus.Counter)
	for _, r := range []auth.Result{auth.Accept, auth.Reject, auth.Challenge} {
		m.byResult[r] = m.requests.WithLabelValues(r.String())
	}
	for _, reason := range []string{dropUnknownClient, dropMalformed, dropBadMA, dropMissingMA,
		dropProxyState, dropOverload, dropDuplicate} {
		m.drops.WithLabelValues(reason)
	}
	return m
}

// drop counts one datagram discarded for reason.
func (m *metrics) drop(reason string) { m.drops.WithLabelValues(reason).Inc() }

// answered counts one answered Access-Request: its code, its reject reason
// and how long the decision took.
func (m *metrics) answered(d auth.Decision, elapsed time.Duration) {
	c, ok := m.byResult[d.Result]
	if !ok {
		c = m.requests.WithLabelValues(d.Result.String())
	}
	c.Inc()
	if d.Result == auth.Reject {
		m.rejects.WithLabelValues(string(d.Reason)).Inc()
	}
	m.duration.Observe(elapsed.Seconds())
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.rejects, m.drops, m.cacheHits, m.panics, m.duration}
}

// The gauges are read from the reply cache and the queue at scrape time.
var (
	cacheEntriesDesc = prometheus.NewDesc("otpgate_radius_reply_cache_entries",
		"Entries in the RFC 5080 reply cache.", nil, nil)
	queueLengthDesc = prometheus.NewDesc("otpgate_radius_queue_length",
		"Requests waiting for a worker.", nil, nil)
)

// Describe and Collect make the Server a prometheus.Collector: register it
// with the registry that serves /metrics.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.metrics.collectors() {
		c.Describe(ch)
	}
	ch <- cacheEntriesDesc
	ch <- queueLengthDesc
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.metrics.collectors() {
		c.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.cache.len()))
	ch <- prometheus.MustNewConstMetric(queueLengthDesc, prometheus.GaugeValue, float64(len(s.queue)))
}
