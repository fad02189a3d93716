package cli

import (
	"context"
	"errors"
	"io"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
)

// directService is admin.Local on a store that is opened for each call and
// closed right after it, so the database lock is never held while the CLI
// waits for a person (a password prompt, a code during enrollment): another
// otpgate, or otpgated starting, gets the lock meanwhile. If otpgated took
// the lock since, the call goes through its control socket instead.
//
// Commands that only read open the store read-only, so they write nothing.
//
// PostgreSQL has no such lock, and opening it is costly (a pool, the
// migration lock, a row in nodes): there held is the store, opened once
// for the command and closed when it ends.
type directService struct {
	open   func(readOnly bool) (store.Store, error)
	held   store.Store
	dial   func() (admin.Service, error)
	params password.Params
	issuer string
	source string // password.source
}

var _ admin.Service = (*directService)(nil)

// call runs fn on a Local over a freshly opened store, or on the daemon's
// control socket when the daemon started since and holds the store.
func call[T any](s *directService, fn func(l admin.Service) (T, error)) (T, error) {
	return callStore(s, false, fn)
}

// read is call for a command that only reads.
func read[T any](s *directService, fn func(l admin.Service) (T, error)) (T, error) {
	return callStore(s, true, fn)
}

func callStore[T any](s *directService, readOnly bool, fn func(l admin.Service) (T, error)) (T, error) {
	if s.held != nil {
		return fn(s.local(s.held))
	}
	st, err := s.open(readOnly)
	if errors.Is(err, store.ErrLocked) && s.dial != nil {
		if svc, derr := s.dial(); derr == nil {
			if c, ok := svc.(io.Closer); ok {
				defer c.Close()
			}
			return fn(svc)
		}
	}
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(s.local(st))
	if cerr := st.Close(); err == nil && cerr != nil {
		return v, cerr
	}
	return v, err
}

func (s *directService) local(st store.Store) *admin.Local {
	l := admin.NewLocal(st, s.params, s.issuer)
	l.SetPasswordSource(s.source)
	return l
}

func do(s *directService, fn func(l admin.Service) error) error {
	_, err := call(s, func(l admin.Service) (struct{}, error) { return struct{}{}, fn(l) })
	return err
}

func (s *directService) AddUser(ctx context.Context, u admin.NewUser) error {
	return do(s, func(l admin.Service) error { return l.AddUser(ctx, u) })
}

func (s *directService) SetPassword(ctx context.Context, name, pw string) error {
	return do(s, func(l admin.Service) error { return l.SetPassword(ctx, name, pw) })
}

func (s *directService) ListUsers(ctx context.Context) ([]admin.UserInfo, error) {
	return read(s, func(l admin.Service) ([]admin.UserInfo, error) { return l.ListUsers(ctx) })
}

func (s *directService) ShowUser(ctx context.Context, name string) (admin.UserInfo, error) {
	return read(s, func(l admin.Service) (admin.UserInfo, error) { return l.ShowUser(ctx, name) })
}

func (s *directService) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return do(s, func(l admin.Service) error { return l.SetDisabled(ctx, name, disabled) })
}

func (s *directService) DeleteUser(ctx context.Context, name string) error {
	return do(s, func(l admin.Service) error { return l.DeleteUser(ctx, name) })
}

func (s *directService) Unlock(ctx context.Context, name string) error {
	return do(s, func(l admin.Service) error { return l.Unlock(ctx, name) })
}

func (s *directService) SetGroups(ctx context.Context, name string, groups []string) error {
	return do(s, func(l admin.Service) error { return l.SetGroups(ctx, name, groups) })
}

func (s *directService) BeginEnroll(ctx context.Context, name string, force bool) ([]byte, error) {
	return call(s, func(l admin.Service) ([]byte, error) { return l.BeginEnroll(ctx, name, force) })
}

func (s *directService) ActivateTOTP(ctx context.Context, name string, code string, force bool) ([]string, error) {
	return call(s, func(l admin.Service) ([]string, error) { return l.ActivateTOTP(ctx, name, code, force) })
}

func (s *directService) ResetMFA(ctx context.Context, name string) error {
	return do(s, func(l admin.Service) error { return l.ResetMFA(ctx, name) })
}

func (s *directService) NewRecoveryCodes(ctx context.Context, name string) ([]string, error) {
	return call(s, func(l admin.Service) ([]string, error) { return l.NewRecoveryCodes(ctx, name) })
}

func (s *directService) Import(ctx context.Context, users []admin.ImportUser) (int, error) {
	return call(s, func(l admin.Service) (int, error) { return l.Import(ctx, users) })
}

func (s *directService) Backup(ctx context.Context, w io.Writer) (int64, error) {
	n, err := read(s, func(l admin.Service) (int64, error) { return l.Backup(ctx, w) })
	if errors.Is(err, store.ErrReadOnly) && n == 0 {
		// A crash left logins in the log: fold them in, then copy.
		return call(s, func(l admin.Service) (int64, error) { return l.Backup(ctx, w) })
	}
	return n, err
}
