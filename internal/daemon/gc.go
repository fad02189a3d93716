package daemon

import (
	"os"
	"runtime/debug"
)

// GC settings for the daemon, unless the environment sets GOGC or
// GOMEMLIMIT (which then win, as for any Go program).
//
// A code check allocates a few KiB that die at once, on a small live heap
// even with a million users (the database is mapped, not on the heap).
// With Go's default GOGC=100 the collector runs very often at full load
// and takes CPU from the logins; a higher GOGC trades a little memory for
// fewer collections. The soft memory limit keeps the larger heap target
// from growing the process under a burst: past it the collector runs as
// often as it must.
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
