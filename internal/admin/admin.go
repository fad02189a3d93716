// Package admin is the set of administrative operations on users (add,
// password, groups, enroll, reset, unlock, import, backup). Local runs them on
// a store; the control socket exposes the same Service to the otpgate CLI
// while otpgated owns the database.
package admin

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/otpgate/otpgate/enroll"
)

// Errors callers (the CLI, the control socket) branch on with errors.Is, next
// to store.ErrUserNotFound, store.ErrUserExists and store.ErrInvalidName.
var (
	// ErrAlreadyEnrolled: BeginEnroll or ActivateTOTP without force for a
	// user whose token is active. The old token stays valid.
	ErrAlreadyEnrolled = errors.New("admin: user already has an active token")
	// ErrNoPendingEnroll: ActivateTOTP for a user with no enrollment in
	// progress (BeginEnroll was not called, or the pending token was
	// discarded or reset).
	ErrNoPendingEnroll = errors.New("admin: no enrollment in progress")
	// ErrWrongCode: ActivateTOTP with a code that does not match the
	// pending token. It is the same value as enroll.ErrWrongCode, so the
	// enrollment flow recognizes it through any Service. Nothing counts
	// toward the user's lockout; the pending token allows
	// MaxEnrollTries wrong codes.
	ErrWrongCode = enroll.ErrWrongCode
	// ErrEnrollDiscarded: the wrong code that used up MaxEnrollTries; the
	// pending token is gone and the enrollment must start again.
	ErrEnrollDiscarded = errors.New("admin: too many wrong codes; the enrollment was discarded")
	// ErrNotEnrolled: NewRecoveryCodes for a user without a token.
	ErrNotEnrolled = errors.New("admin: user has no token")
	// ErrInvalidGroup: a group name that is empty or holds a space, comma
	// or control character.
	ErrInvalidGroup = errors.New("admin: invalid group name")
	// ErrInvalidImport: an import batch that can't be stored as given
	// (duplicate name, empty secret, malformed recovery code, ...).
	ErrInvalidImport = errors.New("admin: invalid import")
)

// UserInfo is what an admin may see about a user: never a hash or a seed.
type UserInfo struct {
	Name        string   `json:"name"`
	Groups      []string `json:"groups"`
	Disabled    bool     `json:"disabled"`
	HasPassword bool     `json:"has_password"`
	// Password says where the first factor is checked: "local" (a hash
	// in the store), "ldap" or "radius" (password.source), "none".
	Password string `json:"password"`
	Enrolled bool   `json:"enrolled"`
	// PendingEnroll: an enrollment was begun (BeginEnroll) and awaits its
	// code; the pending token is not used to log in.
	PendingEnroll bool      `json:"pending_enroll"`
	EnrolledAt    time.Time `json:"enrolled_at,omitzero"`
	LastCodeAt    time.Time `json:"last_code_at,omitzero"` // start of the last accepted time step
	RecoveryLeft  int       `json:"recovery_codes_left"`
	CodeFailures  int       `json:"code_failures"`
	LockedUntil   time.Time `json:"locked_until,omitzero"`
	LastFailure   time.Time `json:"last_failure,omitzero"`
	Created       time.Time `json:"created"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
}

// NewUser is the input of AddUser. Password is plaintext ("" = none) and is
// hashed by the Service.
type NewUser struct {
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Password string   `json:"password,omitempty"`
}

// ImportUser is one row of an import. Password may be plaintext or a
// supported hash; Secret is raw key bytes; RecoveryCodes are plaintext.
type ImportUser struct {
	Name          string   `json:"name"`
	Groups        []string `json:"groups"`
	Password      string   `json:"password,omitempty"`
	Secret        []byte   `json:"secret,omitempty"`
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// Service is implemented by Local (direct store access) and by the control
// socket client.
type Service interface {
	AddUser(ctx context.Context, u NewUser) error
	SetPassword(ctx context.Context, name, password string) error
	ListUsers(ctx context.Context) ([]UserInfo, error)
	ShowUser(ctx context.Context, name string) (UserInfo, error)
	SetDisabled(ctx context.Context, name string, disabled bool) error
	DeleteUser(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	SetGroups(ctx context.Context, name string, groups []string) error
	// BeginEnroll makes a new secret, stores it as the user's pending token
	// (replacing an earlier pending one) and returns it, to be shown to the
	// user. Without force it fails with ErrAlreadyEnrolled if a token is
	// active; an active token stays valid either way.
	BeginEnroll(ctx context.Context, name string, force bool) (secret []byte, err error)
	// ActivateTOTP checks code against the pending token and, if it
	// matches, makes it the active token (the code counts as used) and
	// returns fresh recovery codes (plaintext, shown once). Errors:
	// ErrNoPendingEnroll, ErrWrongCode, ErrEnrollDiscarded, and without
	// force ErrAlreadyEnrolled if a token is active.
	ActivateTOTP(ctx context.Context, name string, code string, force bool) (recovery []string, err error)
	// ResetMFA removes the token, a pending one and the recovery codes.
	ResetMFA(ctx context.Context, name string) error
	NewRecoveryCodes(ctx context.Context, name string) ([]string, error)
	Import(ctx context.Context, users []ImportUser) (int, error)
	Backup(ctx context.Context, w io.Writer) (int64, error)
	LinkIssuer
}
