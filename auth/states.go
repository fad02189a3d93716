package auth

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// StateStore keeps challenge States where every node of a cluster sees
// them, so a NAS that fails over between the Challenge and the answer
// completes the login on another node. Nil in Options: the States stay in
// this process's memory (one node).
type StateStore interface {
	// PutState stores state, bound to user and client, until expires.
	PutState(ctx context.Context, state []byte, user, client string, expires time.Time) error
	// TakeState removes state and returns what it was bound to; ok is
	// false for an unknown, already taken or (at now) expired State. Of
	// concurrent takes of one State, on any node, at most one gets ok.
	TakeState(ctx context.Context, state []byte, now time.Time) (user, client string, ok bool, err error)
}

// challengeStates is where the Authenticator keeps its States.
type challengeStates interface {
	issue(ctx context.Context, user, client string, now time.Time) ([]byte, error)
	take(ctx context.Context, state []byte, now time.Time) (user, client string, ok bool, err error)
}

// memoryStates is the in-process challengeTable as challengeStates.
type memoryStates struct{ t *challengeTable }

func (m memoryStates) issue(_ context.Context, user, client string, now time.Time) ([]byte, error) {
	return m.t.issue(user, client, now)
}

func (m memoryStates) take(_ context.Context, state []byte, now time.Time) (string, string, bool, error) {
	user, client, ok := m.t.take(state, now)
	return user, client, ok, nil
}

// sharedStates keeps States in a StateStore; the State is made here, with
// the same size and randomness as the in-memory table's.
type sharedStates struct {
	s   StateStore
	ttl time.Duration
}

func (s sharedStates) issue(ctx context.Context, user, client string, now time.Time) ([]byte, error) {
	st := make([]byte, stateLen)
	if _, err := rand.Read(st); err != nil {
		return nil, fmt.Errorf("auth: state: %w", err)
	}
	if err := s.s.PutState(ctx, st, user, client, now.Add(s.ttl)); err != nil {
		return nil, err
	}
	return st, nil
}

func (s sharedStates) take(ctx context.Context, state []byte, now time.Time) (string, string, bool, error) {
	if len(state) != stateLen {
		return "", "", false, nil
	}
	return s.s.TakeState(ctx, state, now)
}
