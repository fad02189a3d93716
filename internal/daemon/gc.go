package daemon

import (
	"os"
	"runtime/debug"
)

// GC settings for the daemon, unless the environment sets GOGC or
// GOMEMLIMIT (which then win, as for any Go program).
//
// A code check allocates a few KiB that die at once, on a live heap of
// about 20 MiB even with a million users (the database is mapped, not on
// the heap). With Go's default GOGC=100 the collector ran every few
// milliseconds at full load: GOGC=400 gave 29.1k against 24.6k logins/s
// (otp-only, 300,000 users, c=32, 2 cores, measured in one session). The
// soft memory limit keeps the larger heap target from growing the process
// under a burst: past it the collector runs as often as it must.
const (
	daemonGCPercent   = 400
	daemonMemoryLimit = 256 << 20
)

// tuneGC applies the daemon's GC settings where the environment has none.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(daemonGCPercent)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}
