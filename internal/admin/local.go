package admin

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/enroll/recovery"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// RecoveryCodeCount is how many recovery codes ActivateTOTP and
// NewRecoveryCodes issue.
const RecoveryCodeCount = 10

// Local implements Service directly on a store. otpgated serves it on the
// control socket; the otpgate CLI uses it when no daemon runs.
type Local struct {
	st     store.Store
	params password.Params
	issuer string
	source string // password.source: "local", "ldap" or "radius"

	// now is the clock; tests replace it.
	now func() time.Time
}

var _ Service = (*Local)(nil)

// NewLocal returns a Service on st that hashes new passwords with p. issuer
// is the otpauth:// issuer of tokens this service activates.
func NewLocal(st store.Store, p password.Params, issuer string) *Local {
	return &Local{st: st, params: p, issuer: issuer, source: "local", now: time.Now}
}

// SetPasswordSource records where passwords are checked ([password]
// source), so ListUsers and ShowUser can say it per user.
func (l *Local) SetPasswordSource(source string) { l.source = source }

// Issuer is the otpauth:// issuer given to NewLocal.
func (l *Local) Issuer() string { return l.issuer }

// AddUser creates a user. A non-empty password is hashed with argon2id before
// the store is touched, so the write lock is never held during hashing.
func (l *Local) AddUser(ctx context.Context, nu NewUser) error {
	groups, err := cleanGroups(nu.Groups)
	if err != nil {
		return fmt.Errorf("admin: add %q: %w", nu.Name, err)
	}
	u := store.User{Name: nu.Name, Groups: groups, Created: l.now().UTC()}
	if nu.Password != "" {
		h, err := password.Hash(nu.Password, l.params)
		if err != nil {
			return fmt.Errorf("admin: add %q: %w", nu.Name, err)
		}
		u.PasswordHash = h
	}
	if err := l.st.Create(ctx, u); err != nil {
		return fmt.Errorf("admin: add %q: %w", nu.Name, err)
	}
	return nil
}

// SetPassword replaces a user's password; "" removes it (an OTP-only user).
func (l *Local) SetPassword(ctx context.Context, name, pw string) error {
	var h string
	if pw != "" {
		var err error
		if h, err = password.Hash(pw, l.params); err != nil {
			return fmt.Errorf("admin: set password of %q: %w", name, err)
		}
	}
	err := l.st.Update(ctx, name, func(u *store.User) error {
		u.PasswordHash = h
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: set password of %q: %w", name, err)
	}
	return nil
}

// ListUsers returns every user, sorted as the store lists them.
func (l *Local) ListUsers(ctx context.Context) ([]UserInfo, error) {
	us, err := l.st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin: list users: %w", err)
	}
	out := make([]UserInfo, 0, len(us))
	for i := range us {
		out = append(out, info(&us[i], l.source))
	}
	return out, nil
}

// ShowUser returns one user.
func (l *Local) ShowUser(ctx context.Context, name string) (UserInfo, error) {
	u, err := l.st.Get(ctx, name)
	if err != nil {
		return UserInfo{}, fmt.Errorf("admin: show %q: %w", name, err)
	}
	return info(&u, l.source), nil
}

// SetDisabled disables or enables a user.
func (l *Local) SetDisabled(ctx context.Context, name string, disabled bool) error {
	err := l.st.Update(ctx, name, func(u *store.User) error {
		u.Disabled = disabled
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: set disabled=%v for %q: %w", disabled, name, err)
	}
	return nil
}

// DeleteUser removes a user with its token and recovery codes.
func (l *Local) DeleteUser(ctx context.Context, name string) error {
	if err := l.st.Delete(ctx, name); err != nil {
		return fmt.Errorf("admin: delete %q: %w", name, err)
	}
	return nil
}

// Unlock clears the user's code failure count and lock.
func (l *Local) Unlock(ctx context.Context, name string) error {
	err := l.st.Update(ctx, name, func(u *store.User) error {
		u.CodeFailures = 0
		u.LockedUntil = time.Time{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: unlock %q: %w", name, err)
	}
	return nil
}

// SetGroups replaces a user's groups (none clears them).
func (l *Local) SetGroups(ctx context.Context, name string, groups []string) error {
	gs, err := cleanGroups(groups)
	if err == nil {
		err = l.st.Update(ctx, name, func(u *store.User) error {
			u.Groups = gs
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("admin: set groups of %q: %w", name, err)
	}
	return nil
}

// BeginEnroll starts an enrollment: it makes a new SecretSize-byte secret,
// stores it as the user's pending token (replacing an earlier pending one
// and its count of wrong codes) and returns it, to be shown to the user as
// a QR code. The pending token is never used to log in; ActivateTOTP turns
// it into the active token once a code from it checks. Without force it
// fails with ErrAlreadyEnrolled when a token is active; with force the
// active token keeps working until ActivateTOTP succeeds. The token is
// totp.Default, the parameters every authenticator app understands.
func (l *Local) BeginEnroll(ctx context.Context, name string, force bool) ([]byte, error) {
	return l.BeginEnrollWith(ctx, name, force, totp.Default)
}

// BeginEnrollWith is BeginEnroll for a token with parameters p (say 8
// digits, SHA256, for a hardware token or an app that honours them). The
// enrollment flow must show the same p (enroll.Flow.Params); ActivateTOTP
// and logins use the parameters stored with the token.
func (l *Local) BeginEnrollWith(ctx context.Context, name string, force bool, p totp.Params) ([]byte, error) {
	secret, err := enroll.NewSecret()
	if err != nil {
		return nil, fmt.Errorf("admin: begin enrollment of %q: %w", name, err)
	}
	err = l.st.Update(ctx, name, func(u *store.User) error {
		if u.TOTP != nil && !force {
			return ErrAlreadyEnrolled
		}
		u.PendingTOTP = newTOTP(secret, p, l.now())
		u.PendingTries = 0
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin: begin enrollment of %q: %w", name, err)
	}
	return secret, nil
}

// MaxEnrollTries is how many wrong codes a pending token allows: the one
// that reaches it discards the pending token (ErrEnrollDiscarded). It bounds
// guessing at enrollment, which counts nothing toward the login lockout.
const MaxEnrollTries = 5

// ActivateTOTP finishes an enrollment begun with BeginEnroll. In one store
// transaction it checks code against the pending token (with the token's
// parameters, one time step of skew either side) and, when it matches,
// makes the pending token the active one with the matched step recorded as
// used (so the enrollment code can't be replayed to log in), replaces the
// recovery codes with RecoveryCodeCount new ones and clears the lockout. A
// user with an active token keeps it until this commits.
//
// Errors: ErrNoPendingEnroll without a pending token; without force,
// ErrAlreadyEnrolled when a token is active; ErrWrongCode for a code that
// does not match (the count of wrong codes is stored; nothing counts toward
// the login lockout); ErrEnrollDiscarded for the wrong code that reaches
// MaxEnrollTries (the pending token is removed). A code that is not the
// token's number of digits is refused with ErrWrongCode without counting.
// It returns the plaintext recovery codes, to be shown once.
func (l *Local) ActivateTOTP(ctx context.Context, name string, code string, force bool) ([]string, error) {
	codes, err := recovery.Generate(RecoveryCodeCount)
	if err != nil {
		return nil, fmt.Errorf("admin: activate token for %q: %w", name, err)
	}
	var (
		wrong     bool // the code did not match; the try count was raised
		discarded bool // and that used up the tries
		left      int  // tries left after a wrong code
	)
	err = l.st.Update(ctx, name, func(u *store.User) error {
		// fn may run more than once (group commit): reset what it reports.
		wrong, discarded, left = false, false, 0
		p := u.PendingTOTP
		if p == nil {
			return ErrNoPendingEnroll
		}
		if u.TOTP != nil && !force {
			return ErrAlreadyEnrolled
		}
		tp, err := totp.NewParams(p.Algorithm, p.Digits, p.Period)
		if err != nil {
			return fmt.Errorf("pending token: %w", err)
		}
		if !totp.IsDigits(code, tp.Digits()) {
			return fmt.Errorf("%w (a code is the %d digits the app shows)", ErrWrongCode, tp.Digits())
		}
		now := l.now()
		step, ok, err := tp.Match(p.Secret, code, now, enroll.Skew)
		if err != nil {
			return fmt.Errorf("pending token: %w", err)
		}
		if !ok {
			wrong = true
			u.PendingTries++
			left = MaxEnrollTries - u.PendingTries
			if left <= 0 {
				discarded = true
				u.PendingTOTP, u.PendingTries = nil, 0
			}
			return nil // store the count; the caller reports the wrong code
		}
		t := *p
		t.LastStep = step
		t.Enrolled = now.UTC()
		hashes, err := l.hashCodes(u.Name, codes)
		if err != nil {
			return err
		}
		u.TOTP = &t
		u.PendingTOTP, u.PendingTries = nil, 0
		u.RecoveryCodes = hashes
		u.CodeFailures = 0
		u.LockedUntil = time.Time{}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("admin: activate token for %q: %w", name, err)
	case discarded:
		return nil, fmt.Errorf("admin: activate token for %q: %w after %d wrong codes; start again with a new secret", name, ErrEnrollDiscarded, MaxEnrollTries)
	case wrong:
		return nil, fmt.Errorf("admin: activate token for %q: %w (%d more %s before the enrollment is discarded)", name, ErrWrongCode, left, plural(left, "try", "tries"))
	}
	return codes, nil
}

// ResetMFA removes the user's token, any pending token and the recovery
// codes.
func (l *Local) ResetMFA(ctx context.Context, name string) error {
	err := l.st.Update(ctx, name, func(u *store.User) error {
		u.TOTP = nil
		u.PendingTOTP, u.PendingTries = nil, 0
		u.RecoveryCodes = nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: reset token of %q: %w", name, err)
	}
	return nil
}

// NewRecoveryCodes replaces the user's recovery codes with RecoveryCodeCount
// new ones and returns them in plaintext, to be shown once. The old codes stop
// working. A user without a token gets ErrNotEnrolled.
func (l *Local) NewRecoveryCodes(ctx context.Context, name string) ([]string, error) {
	codes, err := recovery.Generate(RecoveryCodeCount)
	if err != nil {
		return nil, fmt.Errorf("admin: new recovery codes for %q: %w", name, err)
	}
	err = l.st.Update(ctx, name, func(u *store.User) error {
		if u.TOTP == nil {
			return ErrNotEnrolled
		}
		hashes, err := l.hashCodes(u.Name, codes)
		if err != nil {
			return err
		}
		u.RecoveryCodes = hashes
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("admin: new recovery codes for %q: %w", name, err)
	}
	return codes, nil
}

// Import creates all users in one store transaction or none. Plaintext
// passwords are hashed with argon2id (in parallel, one per CPU; still about
// the cost of one login each, so large imports with plaintext passwords are
// slow), supported hashes (password.IsHash) are stored as they are, secrets
// become SHA1/6-digit/30-second tokens, and recovery codes are normalized and
// stored hashed. Errors name the user and the problem, never a secret.
func (l *Local) Import(ctx context.Context, in []ImportUser) (int, error) {
	now := l.now().UTC()
	users := make([]store.User, len(in))
	seen := make(map[string]int, len(in))
	var plain []int // indexes of users whose password needs hashing
	for i, iu := range in {
		if j, dup := seen[iu.Name]; dup {
			return 0, fmt.Errorf("admin: import: user %q appears twice (entries %d and %d): %w", iu.Name, j+1, i+1, ErrInvalidImport)
		}
		seen[iu.Name] = i
		groups, err := cleanGroups(iu.Groups)
		if err != nil {
			return 0, fmt.Errorf("admin: import: user %q: %w", iu.Name, err)
		}
		u := store.User{Name: iu.Name, Groups: groups, Created: now}
		switch {
		case iu.Password == "":
		case password.IsHash(iu.Password):
			u.PasswordHash = iu.Password
		default:
			plain = append(plain, i)
		}
		if len(iu.Secret) > 0 {
			if len(iu.Secret) < 10 {
				return 0, fmt.Errorf("admin: import: user %q: secret of %d bytes is too short (want at least 10): %w", iu.Name, len(iu.Secret), ErrInvalidImport)
			}
			u.TOTP = newTOTP(iu.Secret, totp.Default, now)
		}
		if len(iu.RecoveryCodes) > 0 {
			if u.TOTP == nil {
				return 0, fmt.Errorf("admin: import: user %q has recovery codes but no secret: %w", iu.Name, ErrInvalidImport)
			}
			hashes, err := l.hashCodes(iu.Name, iu.RecoveryCodes)
			if err != nil {
				return 0, fmt.Errorf("admin: import: user %q: %w", iu.Name, err)
			}
			u.RecoveryCodes = hashes
		}
		users[i] = u
	}
	if err := l.hashPasswords(ctx, in, users, plain); err != nil {
		return 0, err
	}
	if err := l.st.Import(ctx, users); err != nil {
		return 0, fmt.Errorf("admin: import %d users: %w", len(users), err)
	}
	return len(users), nil
}

// hashPasswords hashes in[i].Password into users[i] for every i in idx, on
// one goroutine per CPU.
func (l *Local) hashPasswords(ctx context.Context, in []ImportUser, users []store.User, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(idx)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				h, err := password.Hash(in[i].Password, l.params)
				if err != nil {
					select {
					case errs <- fmt.Errorf("admin: import: user %q: %w", in[i].Name, err):
					default:
					}
					continue
				}
				users[i].PasswordHash = h
			}
		}()
	}
feed:
	for _, i := range idx {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		case err := <-errs:
			errs <- err
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("admin: import: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the database to w.
func (l *Local) Backup(ctx context.Context, w io.Writer) (int64, error) {
	n, err := l.st.Backup(ctx, w)
	if err != nil {
		return n, fmt.Errorf("admin: backup: %w", err)
	}
	return n, nil
}

func newTOTP(secret []byte, p totp.Params, now time.Time) *store.TOTP {
	return &store.TOTP{
		Secret:    append([]byte(nil), secret...),
		Algorithm: p.Algorithm(),
		Digits:    p.Digits(),
		Period:    p.Period(),
		Enrolled:  now.UTC(),
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// hashCodes normalizes recovery codes and returns their stored form. The
// error names the position of a bad code, never the code.
func (l *Local) hashCodes(name string, codes []string) ([]string, error) {
	out := make([]string, 0, len(codes))
	seen := make(map[string]bool, len(codes))
	for i, c := range codes {
		n, ok := recovery.Normalize(c)
		if !ok {
			return nil, fmt.Errorf("recovery code %d of %d has neither the xxxx-xxxx-xxxx-xxxx nor the 8-digit shape: %w", i+1, len(codes), ErrInvalidImport)
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, l.st.HashRecoveryCode(name, n))
	}
	return out, nil
}

// cleanGroups trims, checks and de-duplicates group names, keeping order.
func cleanGroups(in []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool, len(in))
	for _, g := range in {
		g = strings.TrimSpace(g)
		if g == "" || len(g) > 64 || strings.ContainsFunc(g, func(r rune) bool {
			return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r)
		}) {
			return nil, fmt.Errorf("%w %q (want 1-64 characters, no spaces or commas)", ErrInvalidGroup, g)
		}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out, nil
}

// info is the admin view of u: no hash, no seed. source is password.source.
func info(u *store.User, source string) UserInfo {
	ui := UserInfo{
		Name:         u.Name,
		Groups:       append([]string{}, u.Groups...),
		Disabled:     u.Disabled,
		HasPassword:  u.PasswordHash != "",
		RecoveryLeft: len(u.RecoveryCodes),
		CodeFailures: u.CodeFailures,
		LockedUntil:  u.LockedUntil,
		LastFailure:  u.LastFailure,
		Created:      u.Created,
		LastSuccess:  u.LastSuccess,
	}
	switch {
	case source != "local" && source != "":
		ui.Password = source // the directory checks everyone's password
	case ui.HasPassword:
		ui.Password = "local"
	default:
		ui.Password = "none"
	}
	ui.PendingEnroll = u.PendingTOTP != nil
	if t := u.TOTP; t != nil {
		ui.Enrolled = true
		ui.EnrolledAt = t.Enrolled
		if t.LastStep > 0 {
			period := t.Period
			if period <= 0 {
				period = totp.DefaultPeriod
			}
			ui.LastCodeAt = time.Unix(int64(t.LastStep)*int64(period), 0).UTC()
		}
	}
	return ui
}
