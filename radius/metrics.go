package radius

import (
	"sync"
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
	// dropStoreUnavailable: the store could not decide; the NAS fails over.
	dropStoreUnavailable = "store_unavailable"
	// dropNotReady: a Status-Server while the store cannot decide.
	dropNotReady = "not_ready"
)

// metrics are the server's counters. Each Server has its own, registered
// by whoever serves them (see Server.Collect), so several servers can live
// in one process. The label values are bounded enums; there is no per-user
// or per-address label.
type metrics struct {
	requests  *counterVec
	rejects   *counterVec
	drops     *counterVec
	cacheHits prometheus.Counter
	panics    prometheus.Counter
	duration  prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		requests: newCounterVec("otpgate_radius_requests_total",
			"Answered RADIUS requests by response code.", "code",
			"accept", "reject", "challenge"),
		rejects: newCounterVec("otpgate_radius_rejects_total",
			"Access-Rejects by reason (never sent to the NAS).", "reason"),
		drops: newCounterVec("otpgate_radius_drops_total",
			"Datagrams discarded without an answer, by reason.", "reason",
			dropUnknownClient, dropMalformed, dropBadMA, dropMissingMA, dropProxyState,
			dropOverload, dropDuplicate, dropStoreUnavailable, dropNotReady,
			dropUnsupportedCode, dropInternal, dropBadRequestAuth),
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
}

// counterVec is a CounterVec with one label whose series are looked up once
// per label value: WithLabelValues hashes and takes a read lock on every
// call, and these counters move on every request (or every datagram shed
// under overload). The label values are bounded enums, so the cache is too.
type counterVec struct {
	*prometheus.CounterVec
	series sync.Map // label value -> prometheus.Counter
}

// newCounterVec creates the initial series at 0, so a dashboard's rate()
// has a value before the first event.
func newCounterVec(name, help, label string, initial ...string) *counterVec {
	v := &counterVec{CounterVec: prometheus.NewCounterVec(
		prometheus.CounterOpts{Name: name, Help: help}, []string{label})}
	for _, l := range initial {
		v.series.Store(l, v.WithLabelValues(l))
	}
	return v
}

func (v *counterVec) inc(label string) {
	c, ok := v.series.Load(label)
	if !ok {
		c, _ = v.series.LoadOrStore(label, v.WithLabelValues(label))
	}
	c.(prometheus.Counter).Inc()
}

// answered counts one answered Access-Request: its code, its reject reason
// and how long the decision took.
func (m *metrics) answered(d auth.Decision, elapsed time.Duration) {
	m.requests.inc(d.Result.String())
	if d.Result == auth.Reject {
		m.rejects.inc(string(d.Reason))
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
