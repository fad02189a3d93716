package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	Unavailable uint64 // checks (or name lookups) that got no answer from any server
	ServerFails uint64 // connections or operations that failed on one server (failover)
}

// NameResolver is implemented by a PasswordChecker whose directory matches
// more than one spelling of a name (Active Directory's sAMAccountName and
// LDAP's uid ignore case; a filter may match a UPN or a mail address too):
// CanonicalName returns the directory's own name for the one entry user
// matches, so "Alice" and "alice@corp.example.com" log in as alice's store
// record. It is asked only for a name the store does not hold. With no
// entry, or more than one, it returns user unchanged (Check refuses such a
// name); when it could not get an answer it returns an error, never user:
// a record created under a spelling the directory did not give would be a
// second record, without the first one's token.
type NameResolver interface {
	CanonicalName(ctx context.Context, user string) (string, error)
}

// storeName is the name a login for name, which the store does not hold,
// is recorded under: the directory's spelling (NameResolver), or name in
// lower case for a source that cannot spell names (upstream RADIUS: AD
// behind NPS matches without regard to case), so every spelling reaches
// one record and needs its token. The password is still checked as typed,
// so an upstream that matches case checks the account it holds. A resolver
// that cannot answer is a password source that cannot answer.
func (a *Authenticator) storeName(ctx context.Context, name string) (string, error) {
	res, ok := a.opt.Passwords.(NameResolver)
	if !ok {
		return strings.ToLower(name), nil
	}
	canon, err := res.CanonicalName(ctx, name)
	switch {
	case err != nil:
		return "", fmt.Errorf("password source: directory name: %w", err)
	case canon == "":
		return "", errors.New("password source: the directory gave no name")
	}
	return canon, nil
}

// PasswordResult is a PasswordChecker's answer.
type PasswordResult struct {
	OK bool
	// Groups are the user's groups in the directory. With mfa = "optional"
	// they count toward mfa_groups next to the groups in the store, so
	// "MFA for the VPN group" is managed where the groups already are.
	Groups []string
}

// checkDirectory checks pw for typed, the name as the request gave it, with
// the configured PasswordChecker. A user the checker accepts who is not in
// the store yet is created under name (storeName; without a password) so
// the MFA policy and enrollment apply to the whole directory; u and found
// then describe the new record. The returned context carries the
// directory groups for needsMFA.
func (a *Authenticator) checkDirectory(ctx context.Context, typed, name string, u *store.User, found *bool, pw string) (context.Context, bool, error) {
	res, err := a.opt.Passwords.Check(ctx, typed, pw)
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
