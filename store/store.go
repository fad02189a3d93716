package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Errors callers branch on with errors.Is.
var (
	ErrUserNotFound = errors.New("store: user not found")
	ErrUserExists   = errors.New("store: user already exists")
	ErrLocked       = errors.New("store: database is in use by another process")
	ErrWrongKey     = errors.New("store: key file does not match the database")
	ErrMissingKey   = errors.New("store: key file missing for a database that holds seeds")
	ErrNewerSchema  = errors.New("store: database schema is newer than this program")
	ErrInvalidName  = errors.New("store: invalid user name")
	ErrClosed       = errors.New("store: closed")
	ErrReadOnly     = errors.New("store: opened read-only")
	// ErrUnavailable: the database cannot be reached (a networked backend
	// down, failing over, or read-only); nothing was decided, so the
	// caller should not answer and let the client try another server.
	ErrUnavailable = errors.New("store: database unavailable")
)

// TOTP is a user's active RFC 6238 token. Secret is the raw key (not base32),
// in clear only in memory.
type TOTP struct {
	Secret    []byte    `json:"-"`
	Algorithm string    `json:"algorithm"` // "SHA1"
	Digits    int       `json:"digits"`    // 6
	Period    int       `json:"period"`    // seconds, 30
	LastStep  uint64    `json:"last_step"` // last accepted time step; 0 = never
	Enrolled  time.Time `json:"enrolled"`
}

// User is one account. The zero value of every optional field means "none".
type User struct {
	Name         string   `json:"name"`
	Groups       []string `json:"groups,omitempty"`
	Disabled     bool     `json:"disabled,omitempty"`
	PasswordHash string   `json:"password_hash,omitempty"` // PHC argon2id or bcrypt; "" = no password
	TOTP         *TOTP    `json:"totp,omitempty"`

	// PendingTOTP is a token whose enrollment has begun but is not verified
	// yet (admin BeginEnroll): it is never used to log in, and becomes TOTP
	// only when a code from it is checked. Its secret is encrypted at rest
	// like TOTP's, under a different additional data, so a sealed pending
	// seed can't be moved into the active slot. nil = none.
	PendingTOTP *TOTP `json:"pending_totp,omitempty"`
	// PendingTries counts wrong codes entered for PendingTOTP; the admin
	// layer discards the pending token after a few.
	PendingTries int `json:"pending_tries,omitempty"`

	// RecoveryCodes holds hashes (see HashRecoveryCode) of unused recovery codes.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`

	// Code failures count per user across all clients (RFC 4226 §7.3).
	CodeFailures int       `json:"code_failures,omitempty"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`

	Created     time.Time `json:"created"`
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Store is what the rest of otpgate needs from persistence.
//
// Update is the only way to change an existing user: fn runs on a fresh copy
// of the user and its result is written atomically (as if in one
// transaction with the read) and durably (fsync) before Update returns. If
// fn returns an error nothing is written and Update returns that error
// unwrapped-compatible (errors.Is works).
//
// UpdateLogin is Update for a login's bookkeeping, under the durability
// contract in docs/durability.md: if fn changes nothing but TOTP.LastStep
// (upwards), CodeFailures, LockedUntil, LastFailure and LastSuccess, the
// change survives a crash of the process when UpdateLogin returns and a
// power loss about a second later; a step it accepted is refused after a
// power loss all the same (the time fence). Any other change (a recovery
// code used, say) is made durable as Update would.
type Store interface {
	Get(ctx context.Context, name string) (User, error)
	List(ctx context.Context) ([]User, error)
	Create(ctx context.Context, u User) error
	Update(ctx context.Context, name string, fn func(u *User) error) error
	UpdateLogin(ctx context.Context, name string, fn func(u *User) error) error
	Delete(ctx context.Context, name string) error
	// Import creates all users in one transaction or none; an existing name fails it.
	Import(ctx context.Context, users []User) error
	// Backup writes a consistent copy of the database to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// HashRecoveryCode returns the stored form of a recovery code for user name
	// (keyed hash; the code itself is never stored).
	HashRecoveryCode(name, code string) string
	Close() error
}

// Options configures Open.
type Options struct {
	// KeyFile holds the 32-byte AES-256-GCM key for seeds. Default:
	// "seed.key" beside the database. Created with mode 0600 when the
	// database is new; never regenerated over existing seeds.
	KeyFile string
	// LockTimeout bounds the wait for the bbolt file lock (another process
	// holds it). Default 2s; on expiry Open returns ErrLocked.
	LockTimeout time.Duration
	// ReadOnly opens the database without writing anything: no lock for
	// writing, no login log, no key file created; writes fail with
	// ErrReadOnly. A login log a crash left is read into memory.
	ReadOnly bool
	// Log receives what the store cannot return as an error because no
	// caller is waiting: a failing background checkpoint or sync. Nil:
	// discarded.
	Log *slog.Logger
}
