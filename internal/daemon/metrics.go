package daemon

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/otpgate/otpgate/radius"
	"github.com/otpgate/otpgate/store"
)

// metricsHandler serves /metrics from a registry of this daemon's own (not
// the global default, so several daemons can run in one test process): the
// RADIUS server's metrics, the store's write path (store.Stats), and the Go
// runtime and process collectors.
func metricsHandler(rs *radius.Server, st store.Store, extra []prometheus.Collector, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(rs,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db, ok := st.(*store.DB); ok { // the login log is bbolt's
		reg.MustRegister(storeMetrics(db)...)
	}
	reg.MustRegister(extra...) // the password source's
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
}

// storeMetrics read store.Stats at scrape time; the store owns the counters.
func storeMetrics(st *store.DB) []prometheus.Collector {
	counter := func(name, help string, v func(store.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return v(st.Stats()) })
	}
	return []prometheus.Collector{
		counter("otpgate_store_log_appends_total",
			"Login updates appended to the login log.",
			func(s store.Stats) float64 { return float64(s.LogAppends) }),
		counter("otpgate_store_log_append_errors_total",
			"Appends to the login log that failed.",
			func(s store.Stats) float64 { return float64(s.LogAppendErrors) }),
		counter("otpgate_store_log_append_seconds_total",
			"Time spent in appends to the login log.",
			func(s store.Stats) float64 { return s.LogAppendTime.Seconds() }),
		counter("otpgate_store_log_syncs_total",
			"Syncs of the login log to disk (about one a second while logins come in).",
			func(s store.Stats) float64 { return float64(s.LogSyncs) }),
		counter("otpgate_store_checkpoints_total",
			"Checkpoints of the login log into the database.",
			func(s store.Stats) float64 { return float64(s.Checkpoints) }),
		counter("otpgate_store_checkpoint_failures_total",
			"Checkpoints that failed (tried again later; the records stay in the log).",
			func(s store.Stats) float64 { return float64(s.CheckpointFailures) }),
		counter("otpgate_store_fence_moves_total",
			"Synced moves of the time fence that keeps codes from being accepted twice after a power loss.",
			func(s store.Stats) float64 { return float64(s.FenceMoves) }),
	}
}
