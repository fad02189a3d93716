package daemon

import (
	"fmt"
	"slices"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/radius"
)

// The functions here turn a loaded config (defaults applied, validated) into
// each package's Options. They copy; they invent no default: config owns
// those. Each validates the result, so Check, the start and a reload refuse
// the same configs.

// authOptions is the decision policy of cfg. The clock is left nil
// (time.Now).
func authOptions(cfg *config.Config) (auth.Options, error) {
	a := cfg.Auth
	grace, err := graceEnd(a.GraceUntil)
	if err != nil {
		return auth.Options{}, err
	}
	o := auth.Options{
		Skew:               a.Skew,
		LockoutThreshold:   a.LockoutThreshold,
		LockoutInitial:     a.LockoutBase.Duration,
		LockoutMax:         a.LockoutMax.Duration,
		ChallengeTTL:       cfg.Radius.ChallengeTTL.Duration,
		HashWorkers:        cfg.Radius.Workers,
		HashQueue:          cfg.Radius.Queue,
		PasswordHashParams: cfg.Password.Params(),
		Policy:             auth.Policy{MFA: a.MFA, MFAGroups: slices.Clone(a.MFAGroups), GraceUntil: grace},
		Issuer:             cfg.Issuer,
		// EnrollAtLogin is set with the admin service that enrolls
		// (RunWithOptions): it needs the store.
	}
	if err := o.Validate(); err != nil {
		return auth.Options{}, err
	}
	return o, nil
}

// graceEnd is the first instant after grace_until "YYYY-MM-DD": grace lasts
// to the end of that day, UTC. "" is no grace (zero time).
func graceEnd(day string) (time.Time, error) {
	if day == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, day, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("auth.grace_until %q: want YYYY-MM-DD: %w", day, err)
	}
	return d.AddDate(0, 0, 1), nil
}

// radiusOptions is the RADIUS transport of cfg: listeners, NAS table, reply
// cache, reject delay and the request pool.
func radiusOptions(cfg *config.Config) (radius.Options, error) {
	r := cfg.Radius
	clients := make([]radius.Client, len(cfg.Clients))
	for i, c := range cfg.Clients {
		clients[i] = radius.Client{
			Name:                        c.Name,
			Address:                     c.Address,
			Secret:                      c.Secret,
			RequireMessageAuthenticator: c.MessageAuthenticatorRequired(),
			LimitProxyState:             c.ProxyStateLimited(),
			Mode:                        auth.Mode(c.Mode),
		}
	}
	o := radius.Options{
		Clients:              clients,
		ReplyCacheTTL:        r.ReplyCacheTTL.Duration,
		ReplyCacheMaxEntries: r.ReplyCacheMax,
		RejectDelay:          r.RejectDelay.Duration,
		// [radius] workers bounds the password hashes (auth enforces it,
		// with queue requests waiting). Requests need more handlers than
		// that: most of a code check is waiting for the durable replay
		// write, and the store commits whatever is waiting in one fsync, so
		// with only `workers` handlers throughput would be bound by fsyncs.
		// One handler per request auth admits: still a fixed pool.
		Handlers: r.Workers + r.Queue,
		QueueLen: r.Queue,
	}
	if err := o.Validate(); err != nil {
		return radius.Options{}, err
	}
	return o, nil
}
