package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/enroll/recovery"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
)

// Messages the transport may show the user.
const (
	MsgNotEnrolled = "MFA enrollment is required; contact your administrator"
)

// maxField bounds the User-Password field we look at (RADIUS allows 128
// octets, pam_exec 511).
const maxField = 1024

// Authenticator makes access decisions. It is safe for concurrent use.
//
// # Modes
//
//   - append: the field is password + code. The code is the trailing
//     recovery code in the dashed shape (recovery.SplitSuffix), else the last
//     6 characters, which must be ASCII digits.
//   - challenge: the field is the password; a correct password of a user who
//     needs MFA gets a Challenge with a single-use State, and the answer (a
//     Request with that State) carries the code or a recovery code.
//   - otp-only: the NAS checked the password; the field is the code or a
//     recovery code.
//   - auto: the rule below.
//
// # The auto rule
//
// The user record is read before any hashing, so the split can depend on
// whether the user has a token, and every request costs exactly one
// password hash:
//
//   - A user with no token: the whole field is the password (no split).
//   - A user with a token, when the field ends in a code (a dashed recovery
//     code, else 6 ASCII digits): it is read as append, the text before the
//     code being the password (may be empty only for users without a
//     password).
//   - A user with a token, when the field does not end in a code: it is read
//     as challenge, the whole field being the password.
//
// We never try a second split. Consequence: a user with a token whose
// password itself ends in 6 digits cannot use the challenge style on an auto
// client (typing only the password is read as password-prefix + code and is
// rejected as a bad password). Such a user types password and code together
// at the password prompt (append style, which auto accepts everywhere), or
// the admin sets that client to mode = "challenge". Trying the whole field
// as the password after a failed prefix would double the hash cost of every
// digit-ending guess, let each request test two passwords, and make the
// response time reveal which users have a token.
type Authenticator struct {
	opt      Options
	st       store.Store
	log      *slog.Logger
	now      func() time.Time
	dummy    string // password.Dummy(opt.PasswordHashParams): verified for unknown users
	policy   atomic.Pointer[Policy]
	admit    chan struct{} // HashWorkers+HashQueue tokens: requests in flight
	workers  chan struct{} // HashWorkers tokens: password hashes running
	stations *stationTable
	states   *challengeTable

	// onWorkerWait, if set (tests), runs when a request finds every
	// worker busy and starts waiting for one.
	onWorkerWait func()
}

// New returns an Authenticator over st. It computes the dummy hash for
// unknown users once, so it takes as long as one password hash.
func New(opt Options, st store.Store, log *slog.Logger) (*Authenticator, error) {
	if st == nil {
		return nil, errors.New("auth: new: nil store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	opt.Policy.MFAGroups = slices.Clone(opt.Policy.MFAGroups)
	// A hash of a random password with the configured cost: nobody can log
	// in against it. Validate checked the params, so Dummy cannot panic.
	dummy := password.Dummy(opt.PasswordHashParams)
	a := &Authenticator{
		opt:      opt,
		st:       st,
		log:      log.With("component", "auth"),
		now:      opt.Now,
		dummy:    dummy,
		admit:    make(chan struct{}, opt.HashWorkers+opt.HashQueue),
		workers:  make(chan struct{}, opt.HashWorkers),
		stations: newStationTable(opt, maxStations),
		states:   newChallengeTable(opt.ChallengeTTL, maxChallengeStates),
	}
	p := opt.Policy
	a.policy.Store(&p)
	return a, nil
}

// SetPolicy replaces the MFA policy (on SIGHUP). It is safe to call while
// requests run. An unknown MFA value is treated as MFARequired (fail safe)
// and logged.
func (a *Authenticator) SetPolicy(p Policy) {
	p.MFAGroups = slices.Clone(p.MFAGroups)
	if err := validatePolicy(p); err != nil {
		a.log.Error("auth: invalid policy, treating mfa as required", "err", err)
		p.MFA = MFARequired
	}
	a.policy.Store(&p)
}

// Authenticate decides one login attempt. It never returns an error: store
// and internal failures are a Reject with ReasonInternal (logged), overload
// and cancellation are a Drop.
func (a *Authenticator) Authenticate(ctx context.Context, r Request) Decision {
	start := time.Now()
	var d Decision
	select {
	case a.admit <- struct{}{}:
		d = a.admitted(ctx, r)
	default:
		d = Decision{Result: Drop, Reason: ReasonOverload}
	}
	d.Elapsed = time.Since(start)
	if a.log.Enabled(ctx, slog.LevelDebug) { // the arguments allocate even when discarded
		a.log.Debug("decision", "user", r.User, "client", r.Client, "mode", string(r.Mode),
			"result", d.Result.String(), "reason", string(d.Reason), "dur_s", d.Elapsed.Seconds())
	}
	return d
}

// admitted runs decide holding an admission token; the token is released
// even if decide panics (the transport recovers panics).
func (a *Authenticator) admitted(ctx context.Context, r Request) Decision {
	defer func() { <-a.admit }()
	return a.decide(ctx, r)
}

func reject(r Reason) Decision { return Decision{Result: Reject, Reason: r} }

var dropCanceled = Decision{Result: Drop, Reason: ReasonOverload}

func (a *Authenticator) decide(ctx context.Context, r Request) Decision {
	if r.User == "" || len(r.User) > store.MaxNameLen || len(r.Password) > maxField {
		return reject(ReasonMalformed)
	}
	if r.State != nil {
		return a.answer(ctx, r)
	}
	switch r.Mode {
	case ModeAppend, ModeChallenge, ModeAuto, "":
		return a.withPassword(ctx, r)
	case ModeOTPOnly:
		return a.otpOnly(ctx, r)
	default:
		a.log.Error("auth: unknown mode", "mode", string(r.Mode), "client", r.Client)
		return reject(ReasonInternal)
	}
}

// lookup reads the user; found is false for an unknown or invalid name.
func (a *Authenticator) lookup(ctx context.Context, name string) (u store.User, found bool, err error) {
	u, err = a.st.Get(ctx, name)
	switch {
	case err == nil:
		return u, true, nil
	case errors.Is(err, store.ErrUserNotFound), errors.Is(err, store.ErrInvalidName):
		return store.User{}, false, nil
	default:
		return store.User{}, false, err
	}
}

// internal logs a store or internal error (errors never carry secrets) and
// rejects. A request whose context ended is dropped instead: the daemon is
// shutting down or the transport gave up, and the NAS will retransmit.
func (a *Authenticator) internal(msg, user string, err error) Decision {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return dropCanceled
	}
	a.log.Error(msg, "user", user, "err", err)
	return reject(ReasonInternal)
}

func hasToken(u *store.User) bool { return u.TOTP != nil }

func (a *Authenticator) locked(u *store.User) bool { return a.now().Before(u.LockedUntil) }

// factorKind is what the second-factor part of a field holds.
type factorKind int

const (
	factorNone     factorKind = iota // no second factor: challenge (or none needed)
	factorMissing                    // append mode, field does not end in a code
	factorCode                       // a TOTP code
	factorRecovery                   // a recovery code, normalized
	factorBad                        // a second factor that is neither shape
)

type factor struct {
	kind  factorKind
	value string
}

// splitAppend splits password + code; ok is false when field ends in no code.
func splitAppend(field string, digits int) (pw string, f factor, ok bool) {
	if prefix, code, ok := recovery.SplitSuffix(field); ok {
		return prefix, factor{kind: factorRecovery, value: code}, true
	}
	if n := len(field); n >= digits && recovery.IsDigits(field[n-digits:], digits) {
		return field[:n-digits], factor{kind: factorCode, value: field[n-digits:]}, true
	}
	return field, factor{}, false
}

// parseFactor reads a field that holds a second factor alone.
func parseFactor(field string, digits int) factor {
	if recovery.IsDigits(field, digits) {
		return factor{kind: factorCode, value: field}
	}
	if n, ok := recovery.Normalize(field); ok {
		return factor{kind: factorRecovery, value: n}
	}
	return factor{kind: factorBad}
}

// withPassword handles append, challenge and auto requests.
func (a *Authenticator) withPassword(ctx context.Context, r Request) Decision {
	skey := stationKey(r.User, r.Client, r.Station)
	if a.stations.locked(skey, a.now()) {
		// The same for known and unknown users; no hash, to shed the
		// guesser's load.
		return reject(ReasonLocked)
	}
	u, found, err := a.lookup(ctx, r.User)
	if err != nil {
		return a.internal("auth: read user", r.User, err)
	}

	pw, f := r.Password, factor{kind: factorNone}
	if found && hasToken(&u) && r.Mode != ModeChallenge {
		p, g, ok := splitAppend(r.Password, tokenDigits(u.TOTP))
		switch {
		case ok:
			pw, f = p, g
		case r.Mode == ModeAppend:
			f = factor{kind: factorMissing}
		}
	}

	ok, drop, err := a.checkPassword(ctx, &u, found, pw)
	if drop {
		return dropCanceled
	}
	if err != nil {
		return a.internal("auth: verify password", r.User, err)
	}
	if found && u.PasswordHash == "" && !hasToken(&u) {
		// Neither a password nor a token: there is no factor to check here,
		// so the empty field must not pass as "the password". Only otp-only
		// clients (the NAS checked the password) accept such a user, on
		// policy alone.
		ok = false
	}
	switch {
	case !found:
		a.stations.fail(skey, a.now())
		return reject(ReasonUnknownUser)
	case u.Disabled:
		if !ok {
			a.stations.fail(skey, a.now())
		}
		return reject(ReasonDisabled)
	case !ok:
		a.stations.fail(skey, a.now())
		return reject(ReasonBadPassword)
	}
	a.stations.succeed(skey)
	if a.locked(&u) {
		return reject(ReasonLocked)
	}
	if !hasToken(&u) {
		return a.noToken(ctx, &u)
	}
	switch f.kind {
	case factorNone:
		st, err := a.states.issue(u.Name, r.Client, a.now())
		if err != nil {
			return a.internal("auth: issue state", u.Name, err)
		}
		return Decision{Result: Challenge, Reason: ReasonOK, State: st,
			Message: fmt.Sprintf("Enter the %d-digit code from your authenticator app: ", tokenDigits(u.TOTP))} // a prompt, like "Password: "
	case factorMissing:
		// Correct password but no code: not a guess, so not counted.
		return reject(ReasonBadCode)
	default:
		return a.checkFactor(ctx, u.Name, f)
	}
}

// checkPassword verifies pw for u (or the dummy hash for an unknown user, or
// a user without a password) on a worker slot. Users without a password need
// an empty pw. drop is true when ctx ended while waiting for a worker.
func (a *Authenticator) checkPassword(ctx context.Context, u *store.User, found bool, pw string) (ok, drop bool, err error) {
	hash := a.dummy
	if found && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	select {
	case a.workers <- struct{}{}:
	default:
		if a.onWorkerWait != nil {
			a.onWorkerWait()
		}
		select {
		case a.workers <- struct{}{}:
		case <-ctx.Done():
			return false, true, nil
		}
	}
	ok, err = a.verify(hash, pw)
	if err != nil {
		return false, false, err
	}
	switch {
	case !found:
		return false, false, nil
	case u.PasswordHash == "":
		return pw == "", false, nil
	}
	return ok, false, nil
}

// verify runs one hash on a worker slot the caller acquired, and releases it.
func (a *Authenticator) verify(hash, pw string) (bool, error) {
	defer func() { <-a.workers }()
	return password.Verify(hash, pw)
}

// needsMFA applies the policy to a user without a token.
func (a *Authenticator) needsMFA(u *store.User) bool {
	p := a.policy.Load()
	if p.MFA != MFAOptional {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(p.MFAGroups, g) {
			return true
		}
	}
	return false
}

// noToken decides for a user without a token whose first factor passed.
func (a *Authenticator) noToken(ctx context.Context, u *store.User) Decision {
	if a.needsMFA(u) && !a.now().Before(a.policy.Load().GraceUntil) {
		return Decision{Result: Reject, Reason: ReasonNotEnrolled, Message: MsgNotEnrolled}
	}
	// Decide again on the record inside the transaction that records the
	// success: a token enrolled, a disable, a lock or a new MFA group since
	// the lookup must not let the user in without a code.
	var out Decision
	err := a.st.Update(ctx, u.Name, func(v *store.User) error {
		now := a.now()
		switch {
		case v.Disabled:
			out = reject(ReasonDisabled)
			return errNoWrite
		case now.Before(v.LockedUntil):
			out = reject(ReasonLocked)
			return errNoWrite
		case hasToken(v):
			out = reject(ReasonBadCode) // enrolled meanwhile: the code is required
			return errNoWrite
		case a.needsMFA(v) && !now.Before(a.policy.Load().GraceUntil):
			out = Decision{Result: Reject, Reason: ReasonNotEnrolled, Message: MsgNotEnrolled}
			return errNoWrite
		}
		v.LastSuccess = now
		out = Decision{Result: Accept, Reason: ReasonNoMFARequired}
		if a.needsMFA(v) {
			out.Reason = ReasonGrace
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errNoWrite):
		return out
	case errors.Is(err, store.ErrUserNotFound):
		return reject(ReasonUnknownUser)
	default:
		return a.internal("auth: record success", u.Name, err)
	}
}

// otpOnly handles a field that is the code alone (the NAS checked the
// password). Users without a token pass or fail by policy alone.
//
// A user with a token is decided in one store.Update (no separate read
// first): checkFactor checks disabled, locked and the token on the fresh
// record in the same order the lookup did, and parses the field with the
// token's digits there. A user without a token goes on to noToken with the
// record that Update read.
func (a *Authenticator) otpOnly(ctx context.Context, r Request) Decision {
	d, noTok := a.checkFactorWith(ctx, r.User, func(u *store.User) factor {
		return parseFactor(r.Password, tokenDigits(u.TOTP))
	}, true)
	if noTok != nil {
		return a.noToken(ctx, noTok)
	}
	return d
}

// answer handles the answer to a Challenge: the State must be one we issued,
// unused, unexpired, for this user and client. It is consumed either way.
func (a *Authenticator) answer(ctx context.Context, r Request) Decision {
	user, client, ok := a.states.take(r.State, a.now())
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(r.User)) != 1 || client != r.Client {
		return reject(ReasonBadState)
	}
	// One transaction: checkFactorWith checks disabled, locked and the token
	// (removed since the challenge: not_enrolled) on the fresh record.
	d, _ := a.checkFactorWith(ctx, r.User, func(u *store.User) factor {
		return parseFactor(r.Password, tokenDigits(u.TOTP))
	}, false)
	return d
}

// errNoWrite makes store.Update discard fn's changes; the outcome is in the
// closure.
var errNoWrite = errors.New("auth: nothing to write")

// checkFactor checks a code or recovery code against the fresh record inside
// one store.Update, so the replay check, the LastStep update, the recovery
// code removal and the failure count are atomic and durable before we
// answer.
func (a *Authenticator) checkFactor(ctx context.Context, name string, f factor) Decision {
	d, _ := a.checkFactorWith(ctx, name, func(*store.User) factor { return f }, false)
	return d
}

// checkFactorWith is checkFactor with the factor read from the field inside
// the transaction (parse gets the fresh record, which has a token). When the
// record has no token and wantNoToken is set, nothing is written and the
// record comes back as noTok (the Decision is then not to be used).
func (a *Authenticator) checkFactorWith(ctx context.Context, name string, parse func(u *store.User) factor, wantNoToken bool) (d Decision, noTok *store.User) {
	var out Decision
	err := a.st.Update(ctx, name, func(u *store.User) error {
		noTok = nil // fn may run again (group commit)
		now := a.now()
		switch {
		case u.Disabled:
			out = reject(ReasonDisabled)
			return errNoWrite
		case now.Before(u.LockedUntil):
			out = reject(ReasonLocked) // the code is not evaluated
			return errNoWrite
		case u.TOTP == nil && wantNoToken:
			c := *u
			noTok = &c
			return errNoWrite
		case u.TOTP == nil:
			out = reject(ReasonNotEnrolled)
			return errNoWrite
		}
		f := parse(u)
		var recHash string
		if f.kind == factorRecovery {
			recHash = a.st.HashRecoveryCode(name, f.value)
		}
		fail := func(r Reason) error {
			u.CodeFailures = decayedFailures(u.CodeFailures, u.LastFailure, now, a.opt.LockoutMax) + 1
			u.LastFailure = now
			if d := backoff(u.CodeFailures, a.opt.LockoutThreshold, a.opt.LockoutInitial, a.opt.LockoutMax); d > 0 {
				u.LockedUntil = now.Add(d)
			}
			out = reject(r)
			return nil
		}
		succeed := func(r Reason) error {
			// Failures decay with time instead of resetting here, so the
			// real user's logins do not restart an attacker's escalation.
			// The decay is applied at the next failure (from LastFailure),
			// not stored here: storing it without moving LastFailure would
			// apply the same decay again at every later login.
			u.LockedUntil = time.Time{}
			u.LastSuccess = now
			out = Decision{Result: Accept, Reason: r}
			return nil
		}
		switch f.kind {
		case factorCode:
			step, ok, err := matchStep(u.TOTP, f.value, now, a.opt.Skew)
			if err != nil {
				return err
			}
			if !ok {
				return fail(ReasonBadCode)
			}
			if step <= u.TOTP.LastStep {
				return fail(ReasonCodeReused)
			}
			u.TOTP.LastStep = step
			return succeed(ReasonOK)
		case factorRecovery:
			hit := -1
			for i, h := range u.RecoveryCodes {
				if subtle.ConstantTimeCompare([]byte(h), []byte(recHash)) == 1 {
					hit = i
				}
			}
			if hit < 0 {
				return fail(ReasonBadCode)
			}
			u.RecoveryCodes = slices.Delete(u.RecoveryCodes, hit, hit+1)
			return succeed(ReasonRecoveryCode)
		default:
			return fail(ReasonBadCode)
		}
	})
	switch {
	case err == nil, errors.Is(err, errNoWrite):
		return out, noTok
	case errors.Is(err, store.ErrUserNotFound):
		return reject(ReasonUnknownUser), nil
	default:
		return a.internal("auth: check code", name, err), nil
	}
}
