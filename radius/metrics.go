package radius

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// counterVec is a counter with one label. The label values are bounded
// enums; there is no per-user or per-address label.
type counterVec struct {
	name, help, label string
	mu                sync.Mutex
	vals              map[string]uint64
}

func newCounterVec(name, help, label string, initial ...string) *counterVec {
	c := &counterVec{name: name, help: help, label: label, vals: make(map[string]uint64)}
	for _, v := range initial {
		c.vals[v] = 0
	}
	return c
}

func (c *counterVec) inc(v string) {
	c.mu.Lock()
	c.vals[v]++
	c.mu.Unlock()
}

func (c *counterVec) get(v string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vals[v]
}

func (c *counterVec) write(w io.Writer) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.vals))
	for k := range c.vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	for _, k := range keys {
		fmt.Fprintf(w, "%s{%s=\"%s\"} %d\n", c.name, c.label, escapeLabel(k), c.vals[k])
	}
	c.mu.Unlock()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// histogram is a cumulative Prometheus histogram in seconds.
type histogram struct {
	name, help string
	bounds     []float64
	mu         sync.Mutex
	counts     []uint64 // per bucket, not cumulative
	sum        float64
	count      uint64
}

func newHistogram(name, help string, bounds []float64) *histogram {
	return &histogram{name: name, help: help, bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sum += s
	h.count++
	for i, b := range h.bounds {
		if s <= b {
			h.counts[i]++
			return
		}
	}
}

func (h *histogram) write(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", h.name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", h.name, h.count)
	fmt.Fprintf(w, "%s_sum %s\n", h.name, strconv.FormatFloat(h.sum, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count %d\n", h.name, h.count)
}

// metrics are the server's counters, hand-rolled in the Prometheus text
// exposition format (version 0.0.4) to avoid a client library dependency.
type metrics struct {
	requests  *counterVec
	rejects   *counterVec
	drops     *counterVec
	cacheHits atomic.Uint64
	panics    atomic.Uint64
	duration  *histogram
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
			dropOverload, dropDuplicate),
		duration: newHistogram("otpgate_radius_request_duration_seconds",
			"Time from receipt of an Access-Request to its decision, reject delay excluded.",
			[]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
	}
}

// answered counts one answered Access-Request: its code, its reject reason
// and how long the decision took.
func (m *metrics) answered(d auth.Decision, elapsed time.Duration) {
	m.requests.inc(d.Result.String())
	if d.Result == auth.Reject {
		m.rejects.inc(string(d.Reason))
	}
	m.duration.observe(elapsed)
}

// handler serves the exposition; gauges are read at scrape time.
func (m *metrics) handler(gauges func(w io.Writer)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w := bufio.NewWriter(rw)
		m.requests.write(w)
		m.rejects.write(w)
		m.drops.write(w)
		fmt.Fprintf(w, "# HELP otpgate_radius_reply_cache_hits_total Retransmissions answered from the reply cache.\n# TYPE otpgate_radius_reply_cache_hits_total counter\notpgate_radius_reply_cache_hits_total %d\n", m.cacheHits.Load())
		fmt.Fprintf(w, "# HELP otpgate_radius_panics_total Panics recovered while handling a request.\n# TYPE otpgate_radius_panics_total counter\notpgate_radius_panics_total %d\n", m.panics.Load())
		m.duration.write(w)
		if gauges != nil {
			gauges(w)
		}
		_ = w.Flush()
	})
}
