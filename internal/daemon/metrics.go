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
func metricsHandler(rs *radius.Server, st *store.DB, extra []prometheus.Collector, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(rs,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(storeMetrics(st)...)
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
			"Durable appends to the write-ahead log (one per batch of logins).",
			func(s store.Stats) float64 { return float64(s.LogAppends) }),
		counter("otpgate_store_log_records_total",
			"User records appended to the write-ahead log.",
			func(s store.Stats) float64 { return float64(s.LogRecords) }),
		counter("otpgate_store_log_append_errors_total",
			"Appends to the write-ahead log that failed.",
			func(s store.Stats) float64 { return float64(s.LogAppendErrors) }),
		counter("otpgate_store_log_append_seconds_total",
			"Time spent in appends to the write-ahead log.",
			func(s store.Stats) float64 { return s.LogAppendTime.Seconds() }),
		counter("otpgate_store_checkpoints_total",
			"Checkpoints of the write-ahead log into the database.",
			func(s store.Stats) float64 { return float64(s.Checkpoints) }),
		counter("otpgate_store_checkpoint_failures_total",
			"Checkpoints that failed (tried again later; the records stay in the log).",
			func(s store.Stats) float64 { return float64(s.CheckpointFailures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "otpgate_store_log_direct_io",
			Help: "1 if the write-ahead log is written with direct I/O, 0 if through the page cache.",
		}, func() float64 {
			if st.LogWriter() == store.LogWriterDirect {
				return 1
			}
			return 0
		}),
	}
}
