package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// One-time enrollment links: the admin issues a link for a user who has no
// token (IssueEnrollLink); the web page served by otpgated shows the
// user's new secret behind it (OpenEnrollLink) and activates the token
// with a code from the app (RedeemEnrollLink), through the same
// BeginEnroll and ActivateTOTP the terminal enrollment uses.

// Link parameters.
const (
	// LinkTokenBytes is the randomness of a link token: 128 bits.
	LinkTokenBytes = 16
	// DefaultLinkTTL is how long a link works unless the admin says.
	DefaultLinkTTL = 72 * time.Hour
	// MaxLinkTTL bounds --expires: a link is a credential in a mailbox.
	MaxLinkTTL = 30 * 24 * time.Hour
	// MaxLinkAttempts wrong codes on a link's page kill the link.
	MaxLinkAttempts = 5
)

var (
	// ErrLinkInvalid: the token names no live link (never issued, used,
	// expired, killed by wrong codes, replaced by a newer link, or its
	// user was deleted or has enrolled since). One error for all, so the
	// page can't tell them apart.
	ErrLinkInvalid = errors.New("admin: the enrollment link is not valid")
	// ErrLinkRestart: the enrollment behind the link was reset or
	// replaced meanwhile (another enrollment began); opening the link
	// again shows a new secret.
	ErrLinkRestart = errors.New("admin: the enrollment behind the link was replaced; open the link again")
	// ErrLinksUnsupported: the store keeps no enrollment links.
	ErrLinksUnsupported = errors.New("admin: this store keeps no enrollment links")
	// ErrInvalidTTL: a link lifetime out of range.
	ErrInvalidTTL = errors.New("admin: invalid link lifetime")
)

// EnrollLink is a link just issued. Token is the secret part of its URL,
// returned only now (the store keeps its SHA-256).
type EnrollLink struct {
	User    string    `json:"user"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// LinkIssuer issues one-time enrollment links. It is part of Service;
// the web page needs only this.
type LinkIssuer interface {
	// IssueEnrollLink makes a link for user name, who must exist and have
	// no active token (else ErrAlreadyEnrolled), valid for ttl (0:
	// DefaultLinkTTL); it replaces the user's earlier link.
	IssueEnrollLink(ctx context.Context, name string, ttl time.Duration) (EnrollLink, error)
}

var _ LinkIssuer = (*Local)(nil)

// LinkEnrollment is what a link's page shows: the pending secret to add
// to the app, with the account it belongs to.
type LinkEnrollment struct {
	User    string
	Issuer  string
	Secret  []byte
	Params  totp.Params
	Expires time.Time
}

// HashLinkToken is the key a link is stored under.
func HashLinkToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (l *Local) links() (store.EnrollLinks, error) {
	ls, ok := l.st.(store.EnrollLinks)
	if !ok {
		return nil, ErrLinksUnsupported
	}
	return ls, nil
}

// IssueEnrollLink implements LinkIssuer.
func (l *Local) IssueEnrollLink(ctx context.Context, name string, ttl time.Duration) (EnrollLink, error) {
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	if ttl < time.Minute || ttl > MaxLinkTTL {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w: %s (from 1m to %s)", name, ErrInvalidTTL, ttl, MaxLinkTTL)
	}
	ls, err := l.links()
	if err != nil {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w", name, err)
	}
	u, err := l.st.Get(ctx, name)
	if err != nil {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w", name, err)
	}
	if u.TOTP != nil {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w (a link never replaces a token: reset it first)", name, ErrAlreadyEnrolled)
	}
	raw := make([]byte, LinkTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w", name, err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := l.now().UTC()
	link := store.EnrollLink{User: name, Created: now, Expires: now.Add(ttl)}
	if err := ls.PutEnrollLink(ctx, HashLinkToken(token), link); err != nil {
		return EnrollLink{}, fmt.Errorf("admin: enrollment link for %q: %w", name, err)
	}
	return EnrollLink{User: name, Token: token, Expires: link.Expires}, nil
}

// openMu serializes OpenEnrollLink, so two quick visits of one link (a
// reload, a mail scanner) never begin two enrollments and show a secret
// the second replaced.
var openMu sync.Mutex

// OpenEnrollLink is a visit of a link's page: for a live link it begins
// the user's enrollment on the first visit (BeginEnroll, a pending token)
// and returns that pending secret on every visit until it is activated.
// Any dead link gives ErrLinkInvalid.
func (l *Local) OpenEnrollLink(ctx context.Context, token string) (LinkEnrollment, error) {
	openMu.Lock()
	defer openMu.Unlock()
	ls, hash, link, err := l.liveLink(ctx, token)
	if err != nil {
		return LinkEnrollment{}, err
	}
	u, err := l.st.Get(ctx, link.User)
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		l.dropLink(ctx, ls, hash)
		return LinkEnrollment{}, ErrLinkInvalid
	case err != nil:
		return LinkEnrollment{}, fmt.Errorf("admin: open enrollment link: %w", err)
	case u.TOTP != nil:
		l.dropLink(ctx, ls, hash)
		return LinkEnrollment{}, ErrLinkInvalid
	}
	le := LinkEnrollment{User: u.Name, Issuer: l.issuer, Expires: link.Expires}
	if link.Begun && u.PendingTOTP != nil {
		p, err := totp.NewParams(u.PendingTOTP.Algorithm, u.PendingTOTP.Digits, u.PendingTOTP.Period)
		if err != nil {
			return LinkEnrollment{}, fmt.Errorf("admin: open enrollment link: pending token: %w", err)
		}
		le.Secret, le.Params = u.PendingTOTP.Secret, p
		return le, nil
	}
	secret, err := l.BeginEnroll(ctx, u.Name, false)
	if errors.Is(err, ErrAlreadyEnrolled) {
		l.dropLink(ctx, ls, hash)
		return LinkEnrollment{}, ErrLinkInvalid
	}
	if err != nil {
		return LinkEnrollment{}, fmt.Errorf("admin: open enrollment link: %w", err)
	}
	err = ls.UpdateEnrollLink(ctx, hash, func(sl *store.EnrollLink) (bool, error) {
		sl.Begun = true
		return false, nil
	})
	if err != nil {
		return LinkEnrollment{}, linkErr(err)
	}
	le.Secret, le.Params = secret, totp.Default
	return le, nil
}

// RedeemEnrollLink checks code for the enrollment behind a live link:
// through ActivateTOTP, so the code is checked (and the token activated)
// exactly as at the terminal. A correct code returns the recovery codes,
// shown once, and the link is gone. A wrong one counts against the link:
// the MaxLinkAttempts-th kills it (ErrLinkInvalid then); the others return
// an error wrapping ErrWrongCode with the tries left.
func (l *Local) RedeemEnrollLink(ctx context.Context, token, code string) ([]string, error) {
	ls, hash, link, err := l.liveLink(ctx, token)
	if err != nil {
		return nil, err
	}
	if !link.Begun {
		return nil, ErrLinkRestart
	}
	codes, err := l.ActivateTOTP(ctx, link.User, code, false)
	switch {
	case err == nil:
		l.dropLink(ctx, ls, hash)
		return codes, nil
	case errors.Is(err, ErrWrongCode), errors.Is(err, ErrEnrollDiscarded):
		left := 0
		uerr := ls.UpdateEnrollLink(ctx, hash, func(sl *store.EnrollLink) (bool, error) {
			sl.Attempts++
			left = MaxLinkAttempts - sl.Attempts
			if errors.Is(err, ErrEnrollDiscarded) {
				left = 0
			}
			return left <= 0, nil
		})
		if uerr != nil {
			return nil, linkErr(uerr)
		}
		if left <= 0 {
			if !errors.Is(err, ErrEnrollDiscarded) {
				_ = l.resetPending(ctx, link.User)
			}
			return nil, ErrLinkInvalid
		}
		return nil, fmt.Errorf("%w (%d more %s before the link stops working)", ErrWrongCode, left, plural(left, "try", "tries"))
	case errors.Is(err, ErrNoPendingEnroll):
		_ = ls.UpdateEnrollLink(ctx, hash, func(sl *store.EnrollLink) (bool, error) {
			sl.Begun = false
			return false, nil
		})
		return nil, ErrLinkRestart
	case errors.Is(err, ErrAlreadyEnrolled), errors.Is(err, store.ErrUserNotFound):
		l.dropLink(ctx, ls, hash)
		return nil, ErrLinkInvalid
	}
	return nil, err
}

// resetPending drops a pending token, leaving an active one alone.
func (l *Local) resetPending(ctx context.Context, name string) error {
	err := l.st.Update(ctx, name, func(u *store.User) error {
		u.PendingTOTP, u.PendingTries = nil, 0
		return nil
	})
	if err != nil {
		return fmt.Errorf("admin: drop pending token of %q: %w", name, err)
	}
	return nil
}

// liveLink returns the link behind token, and the hash it is stored
// under, when it exists and has not expired.
func (l *Local) liveLink(ctx context.Context, token string) (store.EnrollLinks, []byte, store.EnrollLink, error) {
	ls, err := l.links()
	if err != nil {
		return nil, nil, store.EnrollLink{}, err
	}
	hash := HashLinkToken(token)
	link, err := ls.GetEnrollLink(ctx, hash)
	if err != nil {
		return nil, nil, store.EnrollLink{}, linkErr(err)
	}
	if !l.now().Before(link.Expires) {
		return nil, nil, store.EnrollLink{}, ErrLinkInvalid
	}
	return ls, hash, link, nil
}

func (l *Local) dropLink(ctx context.Context, ls store.EnrollLinks, hash []byte) {
	_ = ls.UpdateEnrollLink(ctx, hash, func(*store.EnrollLink) (bool, error) { return true, nil })
}

func linkErr(err error) error {
	if errors.Is(err, store.ErrLinkNotFound) {
		return ErrLinkInvalid
	}
	return fmt.Errorf("admin: enrollment link: %w", err)
}

// PruneEnrollLinks deletes expired links (the daemon runs it now and then).
func (l *Local) PruneEnrollLinks(ctx context.Context) (int, error) {
	ls, err := l.links()
	if err != nil {
		return 0, nil
	}
	return ls.PruneEnrollLinks(ctx, l.now())
}
