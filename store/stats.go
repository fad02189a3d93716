package store

import (
	"sync/atomic"
	"time"
)

// Stats are counters of the store's write path since Open, for metrics.
type Stats struct {
	LogAppends         uint64        // durable appends to the write-ahead log (one per batch)
	LogRecords         uint64        // user records in them
	LogAppendErrors    uint64        // appends that failed (their batch got the error)
	LogAppendTime      time.Duration // total time spent in appends
	Checkpoints        uint64        // checkpoints of the log into bbolt committed
	CheckpointFailures uint64        // checkpoints that failed (tried again later)
	LogWriter          string        // see DB.LogWriter
}

// statCounters are the counters behind Stats; the committer goroutine
// and its background checkpoint add, Stats reads.
type statCounters struct {
	logAppends, logRecords, logAppendErrors atomic.Uint64
	logAppendNanos                          atomic.Uint64
	checkpoints, checkpointFailures         atomic.Uint64
}

// appended counts one append of n records that took d.
func (s *statCounters) appended(n int, d time.Duration, err error) {
	if err != nil {
		s.logAppendErrors.Add(1)
		return
	}
	s.logAppends.Add(1)
	s.logRecords.Add(uint64(n))
	s.logAppendNanos.Add(uint64(d))
}

// checkpointed counts one checkpoint's outcome.
func (s *statCounters) checkpointed(err error) {
	if err != nil {
		s.checkpointFailures.Add(1)
		return
	}
	s.checkpoints.Add(1)
}

// Stats returns the write path's counters.
func (db *DB) Stats() Stats {
	s := &db.commit.stats
	return Stats{
		LogAppends:         s.logAppends.Load(),
		LogRecords:         s.logRecords.Load(),
		LogAppendErrors:    s.logAppendErrors.Load(),
		LogAppendTime:      time.Duration(s.logAppendNanos.Load()),
		Checkpoints:        s.checkpoints.Load(),
		CheckpointFailures: s.checkpointFailures.Load(),
		LogWriter:          db.LogWriter(),
	}
}
