package daemon

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/otpgate/otpgate/store"
)

// TestStoreMetrics: every store metric keeps its name and type, reads the
// store's Stats, and two registries can hold them (no global state).
func TestStoreMetrics(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 2 {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(storeMetrics(st)...)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]*dto.MetricFamily)
		for _, mf := range mfs {
			got[mf.GetName()] = mf
		}
		for _, want := range []struct {
			name  string
			typ   dto.MetricType
			value float64
		}{
			{"otpgate_store_log_appends_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_log_append_errors_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_log_append_seconds_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_checkpoints_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_checkpoint_failures_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_log_syncs_total", dto.MetricType_COUNTER, 0},
			{"otpgate_store_fence_moves_total", dto.MetricType_COUNTER, 0},
		} {
			mf := got[want.name]
			if mf == nil || mf.GetType() != want.typ || len(mf.Metric) != 1 {
				t.Errorf("%s: %v, want one %v", want.name, mf, want.typ)
				continue
			}
			m := mf.Metric[0]
			if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v != want.value {
				t.Errorf("%s = %v, want %v", want.name, v, want.value)
			}
		}
		if len(got) != 7 {
			t.Errorf("%d store metrics, want 7", len(got))
		}
	}
}

// scrape GETs /metrics from addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v:\n%s", resp.StatusCode, err, b)
	}
	return string(b)
}

// checkScrape looks for the families of each part of the daemon's registry.
func checkScrape(t *testing.T, body string) {
	t.Helper()
	for _, want := range []string{
		"# TYPE otpgate_radius_requests_total counter",
		"# TYPE otpgate_radius_request_duration_seconds histogram",
		"# TYPE otpgate_radius_queue_length gauge",
		"# TYPE otpgate_store_log_appends_total counter",
		"# TYPE otpgate_store_fence_moves_total counter",
		"# TYPE go_goroutines gauge",
		"# TYPE process_open_fds gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
