package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// Bounds of the in-memory tables. They are not settings: they cap memory
// under a flood of distinct States or (user, station) pairs.
const (
	maxChallengeStates = 10000 // outstanding challenge States
	// Pending States one client, and one user, may hold: a client cannot
	// take more than half the table, a user (whose password a flooder
	// knows) no more than a person has logins under way.
	maxStatesPerClient = maxChallengeStates / 2
	maxStatesPerUser   = 16
	maxStations        = 100000 // (user, station) password-failure buckets in memory
	// maxStationsPerUser is how many stations of one user get a backoff
	// bucket of their own; the rest share one.
	maxStationsPerUser = 8
	// stationForgetAfter is how long a (user, station) password-failure
	// entry survives without a new failure once its backoff has expired.
	stationForgetAfter = 24 * time.Hour
)

// stateLimits are the bounds of the pending challenge States, in this
// process's table and in a StateStore alike (see challengeTable).
var stateLimits = store.StateLimits{PerUser: maxStatesPerUser, PerClient: maxStatesPerClient, Total: maxChallengeStates}

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

// Options configures an Authenticator. The daemon builds it from the config,
// which owns every default; tests spell it out. New rejects invalid values
// and fills none in: a zero where zero is not a valid setting is an error.
type Options struct {
	// Skew is how many 30 s time steps either side of now a code may come
	// from (RFC 6238 §5.2 recommends 1). 0 accepts only the current step.
	Skew int

	// LockoutThreshold is how many failures (codes per user, passwords per
	// user and station) pass before backoff starts.
	LockoutThreshold int
	// LockoutInitial is the first lock; each further failure doubles it.
	LockoutInitial time.Duration
	// LockoutMax caps one lock; one failure is also forgiven per LockoutMax
	// without failures.
	LockoutMax time.Duration

	// ChallengeTTL is how long a challenge State stays valid.
	ChallengeTTL time.Duration

	// HashWorkers bounds the password hashes running at once. HashQueue more
	// requests may wait for one: Authenticate admits at most
	// HashWorkers+HashQueue requests at a time (hashing, waiting, or doing
	// their store update) and answers Drop/ReasonOverload beyond that.
	// Workers go to the clients (Request.Client) in turn, and one client may
	// have at most half of HashQueue waiting (hashGate).
	HashWorkers int
	HashQueue   int

	// PasswordHashParams is the cost of new password hashes; the dummy hash
	// unknown users are checked against costs the same, so they take as
	// long as known ones.
	PasswordHashParams password.Params

	Policy Policy

	// Passwords checks the first factor outside the store (a directory or
	// an upstream RADIUS server); nil = the argon2id hashes in the store.
	Passwords PasswordChecker

	// EnrollAtLogin offers first-login enrollment (see Authenticator): a
	// user who needs MFA and has no token, after a correct password on a
	// challenge or auto client, gets a Challenge that shows a new key (or
	// a link, EnrollLink) instead of the not-enrolled Reject. It needs
	// Enroller.
	EnrollAtLogin bool
	// Enroller begins and activates the pending token: the daemon passes
	// the admin operations the terminal and the web page use.
	Enroller Enroller
	// EnrollLink, if set ([web]), issues a one-time enrollment link for a
	// user; the offer then shows the link instead of the key.
	EnrollLink func(ctx context.Context, name string) (url string, err error)
	// Issuer is the otpauth issuer the offer names, so the user can tell
	// the account in the app ("" leaves it out).
	Issuer string
	// States keeps challenge States shared between nodes; nil = in this
	// process's memory.
	States StateStore
	// PasswordBackoff keeps the password backoff per (user, station)
	// shared between nodes; nil = in this process's memory.
	PasswordBackoff PasswordBackoffStore

	Now func() time.Time // clock; nil = time.Now (not a setting)
}

// Validate reports the first invalid option, naming it.
func (o Options) Validate() error {
	switch {
	case o.Skew < 0 || o.Skew > totp.MaxSkew:
		return fmt.Errorf("auth: Options.Skew = %d: must be 0..%d", o.Skew, totp.MaxSkew)
	case o.LockoutThreshold < 1:
		return fmt.Errorf("auth: Options.LockoutThreshold = %d: must be at least 1", o.LockoutThreshold)
	case o.LockoutInitial <= 0:
		return fmt.Errorf("auth: Options.LockoutInitial = %s: must be positive", o.LockoutInitial)
	case o.LockoutMax < o.LockoutInitial:
		return fmt.Errorf("auth: Options.LockoutMax = %s: must be at least LockoutInitial (%s)", o.LockoutMax, o.LockoutInitial)
	case o.ChallengeTTL <= 0:
		return fmt.Errorf("auth: Options.ChallengeTTL = %s: must be positive", o.ChallengeTTL)
	case o.HashWorkers < 1:
		return fmt.Errorf("auth: Options.HashWorkers = %d: must be at least 1", o.HashWorkers)
	case o.EnrollAtLogin && o.Enroller == nil:
		return fmt.Errorf("auth: Options.EnrollAtLogin without an Enroller")
	case o.HashQueue < 0:
		return fmt.Errorf("auth: Options.HashQueue = %d: must not be negative", o.HashQueue)
	}
	if err := o.PasswordHashParams.Validate(); err != nil {
		return fmt.Errorf("auth: Options.PasswordHashParams: %w", err)
	}
	return validatePolicy(o.Policy)
}

func validatePolicy(p Policy) error {
	if p.MFA != MFARequired && p.MFA != MFAOptional {
		return fmt.Errorf("auth: Policy.MFA = %q: want %q or %q", p.MFA, MFARequired, MFAOptional)
	}
	return nil
}
