package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: the daemon's GC settings apply unless GOGC / GOMEMLIMIT are
// set, which win.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Cleanup(func() { os.Setenv(k, v) })
		} else {
			t.Cleanup(func() { os.Unsetenv(k) })
		}
	}

	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	tuneGC()
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Errorf("GC percent %d without GOGC, want %d", got, daemonGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != daemonMemoryLimit {
		t.Errorf("memory limit %d without GOMEMLIMIT, want %d", got, daemonMemoryLimit)
	}

	os.Setenv("GOGC", "150")
	os.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	tuneGC()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GC percent %d with GOGC=150, want it kept", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d with GOMEMLIMIT=1GiB, want it kept", got)
	}
}
