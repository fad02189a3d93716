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
	"github.com/otpgate/otpgate/totp"
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
// On append and auto clients a field in OpenVPN's static-challenge form,
// "SCRV1:<base64 password>:<base64 response>", is decoded first: password
// and code then arrive apart and nothing is split (an empty response is a
// field without a code).
//
// A user who needs MFA and has no token may enroll in the login itself on
// challenge and auto clients when Options.EnrollAtLogin is on (enroll.go).
//
// A user without a password (an OTP-only user) logs in only on otp-only
// clients. On the others the admin expects two factors, so such a user
// gets a Reject (ReasonNoPassword) whatever the field holds, after the same
// one hash as everyone.
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
//     code being the password.
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
	hashGate *hashGate     // hands out workers round-robin by client
	stations passwordBackoff
	states   challengeStates

	// onWorkerWait, if set (tests), runs when a request finds every
	// worker busy and starts waiting for one.
	onWorkerWait func()
	// onHash, if set (tests), runs before each password hash, so tests can
	// count the hashes a request costs without timing it.
	onHash func()
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
		stations: memoryBackoff{newStationTable(opt, maxStations, maxStationsPerUser)},
		states:   memoryStates{newChallengeTable(opt.ChallengeTTL, stateLimits)},
	}
	if opt.States != nil {
		a.states = sharedStates{s: opt.States, ttl: opt.ChallengeTTL, limits: stateLimits}
	}
	if opt.PasswordBackoff != nil {
		a.stations = sharedBackoff{s: opt.PasswordBackoff, rules: backoffRulesOf(opt, maxStationsPerUser)}
	}
	a.hashGate = newHashGate(a.workers, hashQueuePerClient(opt.HashQueue))
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
	return a.decide(withClient(ctx, r.Client), r)
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
func (a *Authenticator) internal(ctx context.Context, msg, user string, err error) Decision {
	if ctx.Err() != nil {
		// The request itself ended: nobody waits for the answer. A
		// deadline of the store's or a password source's own (a server
		// that did not answer in its timeout) is not this: that is a
		// decision to report, below.
		return dropCanceled
	}
	if errors.Is(err, store.ErrUnavailable) {
		// Nothing was decided: no answer, so the NAS retries and fails
		// over to a node that can decide; a Reject would end the login.
		// Debug: this comes at the NAS's retransmit rate, for any user name,
		// while the database is down, and the daemon's ready probe logs the
		// outage once.
		a.log.Debug(msg, "user", user, "err", err)
		return Decision{Result: Drop, Reason: ReasonUnavailable}
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
	if n := len(field); n >= digits && totp.IsDigits(field[n-digits:], digits) {
		return field[:n-digits], factor{kind: factorCode, value: field[n-digits:]}, true
	}
	return field, factor{}, false
}

// parseFactor reads a field that holds a second factor alone.
func parseFactor(field string, digits int) factor {
	if totp.IsDigits(field, digits) {
		return factor{kind: factorCode, value: field}
	}
	if n, ok := recovery.Normalize(field); ok {
		return factor{kind: factorRecovery, value: n}
	}
	return factor{kind: factorBad}
}

// withPassword handles append, challenge and auto requests.
//
// Every request costs one password hash, including those refused whatever
// the hash says (a station in backoff, a user without a password): a
// Reject then takes as long whatever its reason, and a station in backoff
// cannot be told from one that is not.
func (a *Authenticator) withPassword(ctx context.Context, r Request) Decision {
	typed := r.User
	u, found, err := a.lookup(ctx, r.User)
	if err != nil {
		return a.internal(ctx, "auth: read user", r.User, err)
	}
	if !found && a.opt.Passwords != nil {
		// Another spelling of a directory user's name is that user: "Alice"
		// is alice's record, and a first login creates it under the
		// directory's spelling (or in lower case), so no spelling reaches
		// a record without the token.
		var name string
		if name, err = a.storeName(ctx, r.User); err != nil {
			return a.internal(ctx, "auth: verify password", r.User, err)
		}
		if name != r.User {
			r.User = name
			if u, found, err = a.lookup(ctx, r.User); err != nil {
				return a.internal(ctx, "auth: read user", r.User, err)
			}
		}
	}

	pw, f := r.Password, factor{kind: factorNone}
	scPassword, scResponse, static := decodeStaticChallenge(r.Password)
	switch {
	case static && r.Mode != ModeChallenge:
		// OpenVPN's static challenge: password and code arrive apart, so
		// there is nothing to split.
		pw = scPassword
		if found && hasToken(&u) {
			switch {
			case scResponse != "":
				f = parseFactor(scResponse, tokenDigits(u.TOTP))
			case r.Mode == ModeAppend:
				f = factor{kind: factorMissing}
			}
		}
	case found && hasToken(&u) && r.Mode != ModeChallenge:
		p, g, ok := splitAppend(r.Password, tokenDigits(u.TOTP))
		switch {
		case ok:
			pw, f = p, g
		case r.Mode == ModeAppend:
			f = factor{kind: factorMissing}
		}
	}

	var ok, drop bool
	if a.opt.Passwords != nil {
		ctx, ok, err = a.checkDirectory(ctx, typed, r.User, &u, &found, pw)
	} else {
		ok, drop, err = a.checkPassword(ctx, &u, found, pw)
	}
	if drop {
		return dropCanceled
	}
	if err != nil {
		return a.internal(ctx, "auth: verify password", r.User, err)
	}
	// A user without a password has only the code: on a client that is not
	// otp-only the admin expects two factors, so nothing the field holds
	// lets them in. Only otp-only clients (the NAS checked the password)
	// accept such a user, on the code alone. With a directory every user
	// has the directory's password.
	hasPassword := found && (u.PasswordHash != "" || a.opt.Passwords != nil)
	ok = ok && hasPassword
	outcome := pwFailed
	switch {
	case ok && u.Disabled:
		outcome = pwNeutral
	case ok:
		outcome = pwPassed
	}
	stationLocked, err := a.stations.settle(ctx, r.User, stationOf(r), outcome, a.now())
	if err != nil {
		// Nothing decided: a Reject, or a Drop when the store is
		// unreachable; never an Accept.
		return a.internal(ctx, "auth: password backoff", r.User, err)
	}
	if stationLocked {
		// The same for known and unknown users, right or wrong password.
		return reject(ReasonLocked)
	}
	switch {
	case !found:
		return reject(ReasonUnknownUser)
	case u.Disabled:
		return reject(ReasonDisabled)
	case !hasPassword:
		return reject(ReasonNoPassword)
	case !ok:
		return reject(ReasonBadPassword)
	}
	if a.locked(&u) {
		return reject(ReasonLocked)
	}
	if !hasToken(&u) {
		d := a.noToken(ctx, &u, true)
		if d.Reason == ReasonNotEnrolled && a.enrollOffered(r, static) {
			return a.offerEnrollment(ctx, &u, r.Client)
		}
		return d
	}
	switch f.kind {
	case factorNone:
		st, err := a.states.issue(ctx, u.Name, r.Client, stateInfo{}, a.now())
		if err != nil {
			return a.internal(ctx, "auth: issue state", u.Name, err)
		}
		return Decision{Result: Challenge, Reason: ReasonOK, State: st,
			Message: fmt.Sprintf("Enter the %d-digit code from your authenticator app: ", tokenDigits(u.TOTP))} // a prompt, like "Password: "
	case factorMissing:
		// Correct password but no code: not a guess, so not counted.
		return reject(ReasonBadCode)
	default:
		d, _ := a.checkFactor(ctx, u.Name, func(*store.User) factor { return f })
		return d
	}
}

// checkPassword verifies pw for u (or the dummy hash for an unknown user, or
// a user without a password) on a worker slot. Users without a password need
// an empty pw. drop is true when ctx ended while waiting for a worker, or
// the request's client already has its share of requests waiting
// (hashGate).
func (a *Authenticator) checkPassword(ctx context.Context, u *store.User, found bool, pw string) (ok, drop bool, err error) {
	hash := a.dummy
	if found && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	if !a.hashGate.acquire(ctx, clientOf(ctx), a.onWorkerWait) {
		return false, true, nil
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
	if a.onHash != nil {
		a.onHash()
	}
	return password.Verify(hash, pw)
}

// needsMFA applies the policy to a user without a token: the groups in the
// store and those the directory reported for this request count.
func (a *Authenticator) needsMFA(ctx context.Context, u *store.User) bool {
	p := a.policy.Load()
	if p.MFA != MFAOptional {
		return true
	}
	for _, g := range slices.Concat(u.Groups, directoryGroups(ctx)) {
		if slices.Contains(p.MFAGroups, g) {
			return true
		}
	}
	return false
}

// noToken decides for a user without a token whose first factor passed
// (verified: we checked the password) or was checked by the NAS (otp-only).
// Only a request whose credential we verified is told that enrollment is
// required: to anyone else the hint would say who exists.
func (a *Authenticator) noToken(ctx context.Context, u *store.User, verified bool) Decision {
	notEnrolled := reject(ReasonNotEnrolled)
	if verified {
		notEnrolled.Message = MsgNotEnrolled
	}
	if a.needsMFA(ctx, u) && !a.now().Before(a.policy.Load().GraceUntil) {
		return notEnrolled
	}
	// Decide again on the record inside the transaction that records the
	// success: a token enrolled, a disable, a lock or a new MFA group since
	// the lookup must not let the user in without a code.
	var out Decision
	err := a.st.UpdateLogin(ctx, u.Name, func(v *store.User) error {
		now := a.now()
		if d, ok := barred(v, now); ok {
			out = d
			return errNoWrite
		}
		switch {
		case hasToken(v):
			out = reject(ReasonBadCode) // enrolled meanwhile: the code is required
			return errNoWrite
		case a.needsMFA(ctx, v) && !now.Before(a.policy.Load().GraceUntil):
			out = notEnrolled
			return errNoWrite
		}
		v.LastSuccess = now
		out = Decision{Result: Accept, Reason: ReasonNoMFARequired}
		if a.needsMFA(ctx, v) {
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
		return a.internal(ctx, "auth: record success", u.Name, err)
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
	d, noTok := a.checkFactor(ctx, r.User, fieldFactor(r.Password))
	if noTok != nil {
		return a.noToken(ctx, noTok, false)
	}
	return d
}

// answer handles the answer to a Challenge: the State must be one we issued,
// unused, unexpired, for this user and client. It is consumed either way.
func (a *Authenticator) answer(ctx context.Context, r Request) Decision {
	user, client, info, ok, err := a.states.take(ctx, r.State, a.now())
	if err != nil {
		return a.internal(ctx, "auth: take state", r.User, err)
	}
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(r.User)) != 1 || client != r.Client {
		return reject(ReasonBadState)
	}
	if info.step != stepLoginCode {
		return a.enrollAnswer(ctx, r, info)
	}
	// One transaction: checkFactor checks disabled, locked and the token
	// (removed since the challenge: not_enrolled) on the fresh record.
	d, _ := a.checkFactor(ctx, r.User, fieldFactor(r.Password))
	return d
}

// barred is the Reject for a user who may not log in now, whatever they
// typed: disabled, or locked after too many wrong codes.
func barred(u *store.User, now time.Time) (Decision, bool) {
	switch {
	case u.Disabled:
		return reject(ReasonDisabled), true
	case now.Before(u.LockedUntil):
		return reject(ReasonLocked), true
	}
	return Decision{}, false
}

// fieldFactor reads a field that holds a second factor alone, with the
// digits of the token on the fresh record.
func fieldFactor(field string) func(*store.User) factor {
	return func(u *store.User) factor { return parseFactor(field, tokenDigits(u.TOTP)) }
}

// errNoWrite makes store.Update discard fn's changes; the outcome is in the
// closure.
var errNoWrite = errors.New("auth: nothing to write")

// checkFactor checks a code or recovery code against the fresh record inside
// one store.UpdateLogin, so the replay check, the LastStep update, the
// recovery code removal and the failure count are atomic and recorded before
// we answer (docs/durability.md says how durably). parse reads the factor with the fresh record's token. A user
// without a token is not_enrolled, and a copy of the record comes back as
// noTok for the callers that decide such a user by policy (otp-only).
func (a *Authenticator) checkFactor(ctx context.Context, name string, parse func(*store.User) factor) (d Decision, noTok *store.User) {
	err := a.st.UpdateLogin(ctx, name, func(u *store.User) error {
		noTok = nil // fn may run again
		now := a.now()
		if b, ok := barred(u, now); ok {
			d = b // the code is not evaluated
			return errNoWrite
		}
		if u.TOTP == nil {
			c := *u
			noTok = &c
			d = reject(ReasonNotEnrolled)
			return errNoWrite
		}
		var err error
		d, err = a.judgeFactor(u, parse(u), now)
		return err
	})
	switch {
	case err == nil, errors.Is(err, errNoWrite):
		return d, noTok
	case errors.Is(err, store.ErrUserNotFound):
		return reject(ReasonUnknownUser), nil
	default:
		return a.internal(ctx, "auth: check code", name, err), nil
	}
}

// judgeFactor decides f for u, a record with a token, and records the
// outcome in u. It returns errNoWrite when there is nothing to record.
func (a *Authenticator) judgeFactor(u *store.User, f factor, now time.Time) (Decision, error) {
	switch f.kind {
	case factorCode:
		step, ok, err := matchStep(u.TOTP, f.value, now, a.opt.Skew)
		if err != nil {
			return Decision{}, err
		}
		if !ok {
			return a.codeFailed(u, now, ReasonBadCode), nil
		}
		if step <= u.TOTP.LastStep {
			// A replay, not a guess: the code was right once and cannot
			// pass again, so it tells a guesser nothing. Counting it would
			// let anyone who saw one login lock the user out. Audited
			// (the reason), not counted, nothing written.
			return reject(ReasonCodeReused), errNoWrite
		}
		u.TOTP.LastStep = step
		return codeSucceeded(u, now, ReasonOK), nil
	case factorRecovery:
		want := a.st.HashRecoveryCode(u.Name, f.value)
		hit := -1
		for i, h := range u.RecoveryCodes {
			if subtle.ConstantTimeCompare([]byte(h), []byte(want)) == 1 {
				hit = i
			}
		}
		if hit < 0 {
			return a.codeFailed(u, now, ReasonBadCode), nil
		}
		u.RecoveryCodes = slices.Delete(u.RecoveryCodes, hit, hit+1)
		return codeSucceeded(u, now, ReasonRecoveryCode), nil
	default:
		return a.codeFailed(u, now, ReasonBadCode), nil
	}
}

// codeFailed counts a wrong second factor toward the user's lock.
func (a *Authenticator) codeFailed(u *store.User, now time.Time, r Reason) Decision {
	u.CodeFailures = decayedFailures(u.CodeFailures, u.LastFailure, now, a.opt.LockoutMax) + 1
	u.LastFailure = now
	if d := backoff(u.CodeFailures, a.opt.LockoutThreshold, a.opt.LockoutInitial, a.opt.LockoutMax); d > 0 {
		u.LockedUntil = now.Add(d)
	}
	return reject(r)
}

// codeSucceeded records a login with a right second factor. Failures decay
// with time instead of resetting here, so the real user's logins do not
// restart an attacker's escalation. The decay is applied at the next
// failure (from LastFailure), not stored here: storing it without moving
// LastFailure would apply the same decay again at every later login.
func codeSucceeded(u *store.User, now time.Time, r Reason) Decision {
	u.LockedUntil = time.Time{}
	u.LastSuccess = now
	return Decision{Result: Accept, Reason: r}
}
