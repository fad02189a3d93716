package auth

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/password"
)

// Defaults used by OptionsFromConfig (and by New for fields whose zero value
// means "unset").
const (
	DefaultSkew             = 1
	DefaultLockoutThreshold = 5
	DefaultLockoutBase      = 30 * time.Second
	DefaultLockoutMax       = 4 * time.Hour
	DefaultChallengeTTL     = 120 * time.Second
	DefaultChallengeMax     = 10000  // outstanding challenge States
	DefaultStationMax       = 100000 // (user, station) password-failure entries
	// DefaultStationForget is how long a (user, station) password-failure
	// entry survives without a new failure once its backoff has expired.
	DefaultStationForget = 24 * time.Hour

	maxSkew = 10
)

// MFA policy values (the [auth] mfa key).
const (
	MFARequired = "required"
	MFAOptional = "optional"
)

// Policy says who needs a second factor. It can be swapped at run time with
// SetPolicy (SIGHUP).
type Policy struct {
	// MFA is MFARequired (everyone) or MFAOptional (members of MFAGroups).
	// Users with a token always need their code, whatever the policy.
	MFA       string
	MFAGroups []string
	// GraceUntil: while now is before it, users who need MFA but have no
	// token pass on their password alone (ReasonGrace). It is the first
	// instant after the grace period; zero means no grace.
	GraceUntil time.Time
}

// Options configures an Authenticator. Build it with OptionsFromConfig, or by
// hand in tests. New fills zero values of fields marked "0 = default"; Skew
// and Queue are taken as given (0 is meaningful).
type Options struct {
	Skew int // time steps accepted either side of now (RFC 6238 §5.2 recommends 1)

	LockoutThreshold int           // code failures before backoff starts; 0 = default
	LockoutBase      time.Duration // first lock; doubles per further failure; 0 = default
	LockoutMax       time.Duration // cap of one lock; 0 = default

	ChallengeTTL time.Duration // lifetime of a challenge State; 0 = default
	ChallengeMax int           // outstanding States kept; 0 = default

	StationMax    int           // (user, station) password-failure entries kept; 0 = default
	StationForget time.Duration // forget a station's password failures after this quiet time; 0 = default

	// Workers bounds the password hashes running at once (0 =
	// runtime.NumCPU()). Queue more requests may wait; Authenticate admits at
	// most Workers+Queue requests at a time (hashing, waiting, or doing
	// their store update) and answers Drop/ReasonOverload beyond that.
	Workers int
	Queue   int

	Password password.Params // cost of the dummy hash for unknown users; zero = DefaultParams

	Policy Policy

	Now func() time.Time // clock; nil = time.Now
}

// OptionsFromConfig builds Options from a config (normally from
// config.Load), applying defaults to zero values where zero is not a valid
// setting (lockout, challenge TTL, workers, queue = 64*workers, password
// params, mfa) and validating. Skew is taken as given (0 = strict).
// grace_until "YYYY-MM-DD" grants grace to the end of that day, UTC.
func OptionsFromConfig(c *config.Config) (Options, error) {
	if c == nil {
		return Options{}, errors.New("auth: options: nil config")
	}
	a := c.Auth
	o := Options{
		Skew:             a.Skew,
		LockoutThreshold: a.LockoutThreshold,
		LockoutBase:      a.LockoutBase.Duration,
		LockoutMax:       a.LockoutMax.Duration,
		ChallengeTTL:     c.Radius.ChallengeTTL.Duration,
		Workers:          c.Radius.Workers,
		Queue:            c.Radius.Queue,
		Password: password.Params{
			Time:    c.Password.Argon2Time,
			MemKiB:  c.Password.Argon2MemKiB,
			Threads: c.Password.Argon2Threads,
		},
		Policy: Policy{MFA: a.MFA, MFAGroups: slices.Clone(a.MFAGroups)},
		Now:    time.Now,
	}
	// Skew is taken as given: config.Load defaults an unset skew to 1, so a
	// 0 here is an explicit "skew = 0" (strict) and must not be widened.
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Queue == 0 {
		o.Queue = 64 * o.Workers
	}
	if o.Policy.MFA == "" {
		o.Policy.MFA = MFARequired
	}
	if a.GraceUntil != "" {
		day, err := time.ParseInLocation(time.DateOnly, a.GraceUntil, time.UTC)
		if err != nil {
			return Options{}, fmt.Errorf("auth: grace_until %q: want YYYY-MM-DD: %w", a.GraceUntil, err)
		}
		o.Policy.GraceUntil = day.AddDate(0, 0, 1) // grace lasts to the end of that day, UTC
	}
	o.fillDefaults()
	if err := o.validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// fillDefaults replaces zero values that mean "unset".
func (o *Options) fillDefaults() {
	if o.LockoutThreshold == 0 {
		o.LockoutThreshold = DefaultLockoutThreshold
	}
	if o.LockoutBase == 0 {
		o.LockoutBase = DefaultLockoutBase
	}
	if o.LockoutMax == 0 {
		o.LockoutMax = DefaultLockoutMax
	}
	if o.ChallengeTTL == 0 {
		o.ChallengeTTL = DefaultChallengeTTL
	}
	if o.ChallengeMax == 0 {
		o.ChallengeMax = DefaultChallengeMax
	}
	if o.StationMax == 0 {
		o.StationMax = DefaultStationMax
	}
	if o.StationForget == 0 {
		o.StationForget = DefaultStationForget
	}
	if o.Workers == 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Password.Time == 0 {
		o.Password.Time = password.DefaultParams.Time
	}
	if o.Password.MemKiB == 0 {
		o.Password.MemKiB = password.DefaultParams.MemKiB
	}
	if o.Password.Threads == 0 {
		o.Password.Threads = password.DefaultParams.Threads
	}
	if o.Policy.MFA == "" {
		o.Policy.MFA = MFARequired
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) validate() error {
	switch {
	case o.Skew < 0 || o.Skew > maxSkew:
		return fmt.Errorf("auth: skew %d: must be 0..%d", o.Skew, maxSkew)
	case o.LockoutThreshold < 1:
		return fmt.Errorf("auth: lockout_threshold %d: must be at least 1", o.LockoutThreshold)
	case o.LockoutBase < 0:
		return fmt.Errorf("auth: lockout_base %s: must be positive", o.LockoutBase)
	case o.LockoutMax < o.LockoutBase:
		return fmt.Errorf("auth: lockout_max %s: must be at least lockout_base %s", o.LockoutMax, o.LockoutBase)
	case o.ChallengeTTL < 0:
		return fmt.Errorf("auth: challenge_ttl %s: must be positive", o.ChallengeTTL)
	case o.ChallengeMax < 0 || o.StationMax < 0 || o.StationForget < 0:
		return errors.New("auth: table limits must be positive")
	case o.Workers < 1:
		return fmt.Errorf("auth: workers %d: must be at least 1", o.Workers)
	case o.Queue < 0:
		return fmt.Errorf("auth: queue %d: must not be negative", o.Queue)
	}
	if err := validatePolicy(o.Policy); err != nil {
		return err
	}
	return nil
}

func validatePolicy(p Policy) error {
	if p.MFA != MFARequired && p.MFA != MFAOptional {
		return fmt.Errorf("auth: mfa %q: want %q or %q", p.MFA, MFARequired, MFAOptional)
	}
	return nil
}
