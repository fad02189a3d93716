package store

import (
	"sync/atomic"
	"time"
)

// Stats are counters of the store's write path since Open, for metrics.
type Stats struct {
	LogAppends         uint64        // login records appended to the login log
	LogAppendErrors    uint64        // appends that failed (their login got the error)
	LogAppendTime      time.Duration // total time spent in appends
	LogSyncs           uint64        // syncs of the login log (about one a second under load)
	Checkpoints        uint64        // checkpoints of the login log into the database committed
	CheckpointFailures uint64        // checkpoints that failed (tried again later)
	FenceMoves         uint64        // synced moves of the time fence
}

// statCounters are the counters behind Stats.
type statCounters struct {
	logAppends, logAppendErrors     atomic.Uint64
	logAppendNanos                  atomic.Uint64
	logSyncs, fenceMoves            atomic.Uint64
	checkpoints, checkpointFailures atomic.Uint64
}

func (s *statCounters) appended(d time.Duration, err error) {
	if err != nil {
		s.logAppendErrors.Add(1)
		return
	}
	s.logAppends.Add(1)
	s.logAppendNanos.Add(uint64(d))
}

func (s *statCounters) checkpointed(err error) {
	if err != nil {
		s.checkpointFailures.Add(1)
		return
	}
	s.checkpoints.Add(1)
}

// Stats returns the write path's counters.
func (db *DB) Stats() Stats {
	s := &db.stats
	return Stats{
		LogAppends:         s.logAppends.Load(),
		LogAppendErrors:    s.logAppendErrors.Load(),
		LogAppendTime:      time.Duration(s.logAppendNanos.Load()),
		LogSyncs:           s.logSyncs.Load(),
		Checkpoints:        s.checkpoints.Load(),
		CheckpointFailures: s.checkpointFailures.Load(),
		FenceMoves:         s.fenceMoves.Load(),
	}
}
