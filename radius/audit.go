package radius

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/otpgate/otpgate/auth"
)

// auditDecision writes one line per decision. It never includes the
// password, the code, the State or the secret.
func (s *Server) auditDecision(req auth.Request, d auth.Decision, elapsed time.Duration) {
	s.audit.LogAttrs(context.Background(), slog.LevelInfo, "radius access",
		slog.String("user", req.User),
		slog.String("client", req.Client),
		slog.String("station", req.Station),
		slog.String("mode", string(req.Mode)),
		slog.String("result", d.Result.String()),
		slog.String("reason", string(d.Reason)),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Bool("recovery", d.Reason == auth.ReasonRecoveryCode),
	)
}

// unknownLimiter rate-limits one kind of warning about dropped datagrams
// (first used for unknown sources). Per source: one line per interval,
// carrying how many were dropped since the last. Over all sources: at most
// burst lines per interval; past that, sources are only counted, and one
// summary line when the interval ends says how many datagrams from how many
// sources were not logged one by one. So a flood from many (spoofed) source
// addresses writes a bounded number of lines, and journald's rate limit,
// which would drop audit lines too, is never reached. Its memory is bounded
// by max sources.
type unknownLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	max      int
	burst    int // lines per interval, over all sources
	m        map[netip.Addr]*unknownSource
	now      func() time.Time

	summary         func(dropped, sources int) // logs the summary; nil: none
	windowEnd       time.Time                  // end of the interval lines are counted in
	lines           int                        // lines allowed in this interval
	unlogged        int                        // drops carried by lines not logged
	unloggedSources int
	timer           *time.Timer // logs the summary at windowEnd
}

type unknownSource struct {
	lastLog time.Time
	dropped int
}

// warnBurst is how many lines of one kind are logged per interval before
// the rest are summed up.
const warnBurst = 10

func newUnknownLimiter(now func() time.Time) *unknownLimiter {
	return &unknownLimiter{interval: time.Minute, max: 4096, burst: warnBurst, m: make(map[netip.Addr]*unknownSource), now: now}
}

// withSummary sets how the summary of the lines not logged is written.
func (u *unknownLimiter) withSummary(f func(dropped, sources int)) *unknownLimiter {
	u.summary = f
	return u
}

// note counts a drop from a and reports whether to log now, with the number
// of drops since the last line (including this one).
func (u *unknownLimiter) note(a netip.Addr) (logNow bool, dropped int) {
	u.mu.Lock()
	now := u.now()
	n, due := u.perSourceLocked(a, now)
	if !due {
		u.mu.Unlock()
		return false, 0
	}
	var lateDropped, lateSources int
	if !now.Before(u.windowEnd) { // a new interval; its summary is pending if the timer has not run
		lateDropped, lateSources = u.takeLocked()
		u.windowEnd, u.lines = now.Add(u.interval), 0
	}
	if u.lines < u.burst {
		u.lines++
	} else {
		if u.unloggedSources == 0 && u.summary != nil {
			u.timer = time.AfterFunc(u.windowEnd.Sub(now), u.flush)
		}
		u.unlogged += n
		u.unloggedSources++
		n = 0
	}
	u.mu.Unlock()
	if lateDropped > 0 && u.summary != nil {
		u.summary(lateDropped, lateSources)
	}
	return n > 0, n
}

// perSourceLocked counts a drop from a; due is true when a's line is due,
// with the drops it carries.
func (u *unknownLimiter) perSourceLocked(a netip.Addr, now time.Time) (dropped int, due bool) {
	src, ok := u.m[a]
	if !ok {
		if len(u.m) >= u.max {
			for k, v := range u.m {
				if now.Sub(v.lastLog) >= u.interval {
					delete(u.m, k)
				}
			}
			if len(u.m) >= u.max {
				clear(u.m)
			}
		}
		u.m[a] = &unknownSource{lastLog: now}
		return 1, true
	}
	src.dropped++
	if now.Sub(src.lastLog) < u.interval {
		return 0, false
	}
	n := src.dropped
	src.dropped, src.lastLog = 0, now
	return n, true
}

// takeLocked returns and resets the count of lines not logged.
func (u *unknownLimiter) takeLocked() (dropped, sources int) {
	dropped, sources = u.unlogged, u.unloggedSources
	u.unlogged, u.unloggedSources = 0, 0
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	return dropped, sources
}

// flush writes the summary of the lines not logged so far, if any: when
// the interval ends, and at shutdown.
func (u *unknownLimiter) flush() {
	u.mu.Lock()
	dropped, sources := u.takeLocked()
	u.mu.Unlock()
	if dropped > 0 && u.summary != nil {
		u.summary(dropped, sources)
	}
}
