package daemon

import (
	"fmt"
	"io"
	"net/http"

	"github.com/otpgate/otpgate/store"
)

// metricsHandler serves the RADIUS server's metrics followed by the
// store's write path (store.Stats), in the Prometheus text format.
func metricsHandler(radius http.Handler, st *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		radius.ServeHTTP(w, r)
		writeStoreMetrics(w, st.Stats())
	})
}

func writeStoreMetrics(w io.Writer, s store.Stats) {
	metric := func(kind, name, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, v)
	}
	metric("counter", "otpgate_store_log_appends_total",
		"Durable appends to the write-ahead log (one per batch of logins).", s.LogAppends)
	metric("counter", "otpgate_store_log_records_total",
		"User records appended to the write-ahead log.", s.LogRecords)
	metric("counter", "otpgate_store_log_append_errors_total",
		"Appends to the write-ahead log that failed.", s.LogAppendErrors)
	metric("counter", "otpgate_store_log_append_seconds_total",
		"Time spent in appends to the write-ahead log.", s.LogAppendTime.Seconds())
	metric("counter", "otpgate_store_checkpoints_total",
		"Checkpoints of the write-ahead log into the database.", s.Checkpoints)
	metric("counter", "otpgate_store_checkpoint_failures_total",
		"Checkpoints that failed (tried again later; the records stay in the log).", s.CheckpointFailures)
	direct := 0
	if s.LogWriter == store.LogWriterDirect {
		direct = 1
	}
	metric("gauge", "otpgate_store_log_direct_io",
		"1 if the write-ahead log is written with direct I/O, 0 if through the page cache.", direct)
}
