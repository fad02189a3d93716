package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/otpgate/otpgate/store"
)

// PasswordChecker checks the first factor somewhere other than otpgate's
// store: a directory (LDAP, Active Directory) or an upstream RADIUS server.
// The daemon wires the implementation in (Options.Passwords); with none,
// the first factor is the argon2id hash in the store.
//
// Check is called at most once per request, so a directory that locks an
// account after N failures counts each login attempt once. It must treat an
// empty password as wrong without asking anyone (an empty LDAP bind is an
// anonymous bind that succeeds), must not cache or log the password, and
// returns an error only when it could not get an answer (every server down,
// misconfigured): that is a Reject with ReasonInternal, never an Accept.
type PasswordChecker interface {
	Check(ctx context.Context, user, password string) (PasswordResult, error)
}

// SourceStats are a remote PasswordChecker's counters, for the metrics
// endpoint.
type SourceStats struct {
	Checks      uint64 // password checks asked
	Unavailable uint64 // checks that got no answer from any server
	ServerFails uint64 // connections or operations that failed on one server (failover)
}

// NameResolver is implemented by a PasswordChecker whose directory matches
// names without regard to case (Active Directory's sAMAccountName, LDAP's
// uid): CanonicalName returns the directory's own spelling of user, so
// "Alice" and "alice" log in as one store record. It is asked only for a
// name the store does not hold, and returns user unchanged when the
// directory has no single entry for it.
type NameResolver interface {
	CanonicalName(ctx context.Context, user string) (string, error)
}

// canonicalName is the directory's spelling of name when the store does not
// hold name itself. A directory that cannot answer leaves name as typed:
// the password check that follows fails closed on its own.
func (a *Authenticator) canonicalName(ctx context.Context, name string) string {
	res, ok := a.opt.Passwords.(NameResolver)
	if !ok {
		return name
	}
	canon, err := res.CanonicalName(ctx, name)
	if err != nil || canon == "" {
		return name
	}
	return canon
}

// PasswordResult is a PasswordChecker's answer.
type PasswordResult struct {
	OK bool
	// Groups are the user's groups in the directory. With mfa = "optional"
	// they count toward mfa_groups next to the groups in the store, so
	// "MFA for the VPN group" is managed where the groups already are.
	Groups []string
}

// checkDirectory checks pw with the configured PasswordChecker. A user the
// checker accepts who is not in the store yet is created (without a
// password) so the MFA policy and enrollment apply to the whole directory;
// u and found then describe the new record. The returned context carries
// the directory groups for needsMFA.
func (a *Authenticator) checkDirectory(ctx context.Context, name string, u *store.User, found *bool, pw string) (context.Context, bool, error) {
	res, err := a.opt.Passwords.Check(ctx, name, pw)
	if err != nil {
		return ctx, false, fmt.Errorf("password source: %w", err)
	}
	if !res.OK {
		return ctx, false, nil
	}
	if !*found {
		err := a.st.Create(ctx, store.User{Name: name, Created: a.now()})
		switch {
		case err == nil:
			a.log.Info("auth: created a directory user on the first login", "user", name)
		case errors.Is(err, store.ErrUserExists): // created by a concurrent login
		case errors.Is(err, store.ErrInvalidName):
			a.log.Warn("auth: directory user has a name otpgate cannot store; rejected", "user", name)
			return ctx, false, nil
		default:
			return ctx, false, fmt.Errorf("create directory user: %w", err)
		}
		v, ok, err := a.lookup(ctx, name)
		if err != nil || !ok {
			return ctx, false, errors.Join(errors.New("read the created directory user"), err)
		}
		*u, *found = v, true
	}
	return context.WithValue(ctx, directoryGroupsKey{}, slices.Clone(res.Groups)), true, nil
}

type directoryGroupsKey struct{}

// directoryGroups are the groups the PasswordChecker reported for this
// request's user, if any.
func directoryGroups(ctx context.Context) []string {
	g, _ := ctx.Value(directoryGroupsKey{}).([]string)
	return g
}
