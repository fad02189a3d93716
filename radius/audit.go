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

// unknownLimiter rate-limits the warning about datagrams from unknown
// sources to one line per source per interval, carrying how many were
// dropped. Its memory is bounded by max sources.
type unknownLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	max      int
	m        map[netip.Addr]*unknownSource
	now      func() time.Time
}

type unknownSource struct {
	lastLog time.Time
	dropped int
}

func newUnknownLimiter(now func() time.Time) *unknownLimiter {
	return &unknownLimiter{interval: time.Minute, max: 4096, m: make(map[netip.Addr]*unknownSource), now: now}
}

// note counts a drop from a and reports whether to log now, with the number
// of drops since the last line (including this one).
func (u *unknownLimiter) note(a netip.Addr) (logNow bool, dropped int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
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
		return true, 1
	}
	src.dropped++
	if now.Sub(src.lastLog) < u.interval {
		return false, 0
	}
	n := src.dropped
	src.dropped, src.lastLog = 0, now
	return true, n
}
