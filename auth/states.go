package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"time"

	"github.com/otpgate/otpgate/store"
)

// StateStore keeps challenge States where every node of a cluster sees
// them, so a NAS that fails over between the Challenge and the answer
// completes the login on another node. Nil in Options: the States stay in
// this process's memory (one node).
type StateStore interface {
	// PutState stores state, bound to user and client, with info (auth's
	// own encoding of what the State asks for; kept as it is) until
	// expires, and in the same transaction pushes out what limits say
	// (store.StateLimits; auth passes the bounds of its in-memory table,
	// so auth alone owns the numbers). "Oldest" is the earliest expires
	// (the TTL is fixed); States expired but not yet swept may count,
	// and being the oldest they go first. Puts at the same moment, which
	// do not see each other's States, may leave a bound exceeded by as
	// many; the next put of that user or client (for the total, any put)
	// trims it again.
	PutState(ctx context.Context, state []byte, user, client string, info []byte, expires time.Time, limits store.StateLimits) error
	// TakeState removes state and returns what it was bound to; ok is
	// false for an unknown, already taken or (at now) expired State. Of
	// concurrent takes of one State, on any node, at most one gets ok.
	TakeState(ctx context.Context, state []byte, now time.Time) (user, client string, info []byte, ok bool, err error)
}

// challengeStates is where the Authenticator keeps its States.
type challengeStates interface {
	issue(ctx context.Context, user, client string, info stateInfo, now time.Time) ([]byte, error)
	take(ctx context.Context, state []byte, now time.Time) (user, client string, info stateInfo, ok bool, err error)
}

// newState makes a State: stateLen bytes from crypto/rand, which never
// fails (it crashes the program instead).
func newState() []byte {
	st := make([]byte, stateLen)
	rand.Read(st)
	return st
}

// memoryStates is the in-process challengeTable as challengeStates.
type memoryStates struct{ t *challengeTable }

func (m memoryStates) issue(_ context.Context, user, client string, info stateInfo, now time.Time) ([]byte, error) {
	return m.t.issue(user, client, info, now), nil
}

func (m memoryStates) take(_ context.Context, state []byte, now time.Time) (string, string, stateInfo, bool, error) {
	user, client, info, ok := m.t.take(state, now)
	return user, client, info, ok, nil
}

// sharedStates keeps States in a StateStore; the State is made here, with
// the same size and randomness as the in-memory table's. The store sees
// neither the State nor what it asks for: a row is keyed by a hash of the
// State, and its info is sealed under a key derived from the State. Only
// the NAS holds the State, so whoever reads the database can neither
// answer a challenge nor use the enrollment link an offer carries.
type sharedStates struct {
	s      StateStore
	ttl    time.Duration
	limits store.StateLimits
}

func (s sharedStates) issue(ctx context.Context, user, client string, info stateInfo, now time.Time) ([]byte, error) {
	st := newState()
	id, aead := stateKeys(st)
	sealed := aead.Seal(nil, make([]byte, aead.NonceSize()), info.encode(), nil)
	if err := s.s.PutState(ctx, id, user, client, sealed, now.Add(s.ttl), s.limits); err != nil {
		return nil, err
	}
	return st, nil
}

func (s sharedStates) take(ctx context.Context, state []byte, now time.Time) (string, string, stateInfo, bool, error) {
	if len(state) != stateLen {
		return "", "", stateInfo{}, false, nil
	}
	id, aead := stateKeys(state)
	user, client, sealed, ok, err := s.s.TakeState(ctx, id, now)
	if err != nil || !ok {
		return "", "", stateInfo{}, false, err
	}
	b, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed, nil)
	if err != nil {
		return "", "", stateInfo{}, false, nil // not sealed for this State: a bad State
	}
	info, ok := decodeStateInfo(b)
	if !ok {
		return "", "", stateInfo{}, false, nil
	}
	return user, client, info, true, nil
}

// stateKeys derives from a State the key a StateStore files it under and
// the cipher that seals its info. Each State is fresh from crypto/rand and
// seals exactly one message, so a fixed nonce is never reused under a key.
func stateKeys(state []byte) (id []byte, aead cipher.AEAD) {
	idSum := sha256.Sum256(append([]byte("otpgate state id\x00"), state...))
	key := sha256.Sum256(append([]byte("otpgate state info\x00"), state...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key cannot be refused
	}
	aead, err = cipher.NewGCM(block)
	if err != nil {
		panic(err) // AES has the block size GCM needs
	}
	return idSum[:], aead
}

// encode is stateInfo as a StateStore keeps it: the step, the tries, then
// the link. A login code challenge is empty.
func (i stateInfo) encode() []byte {
	if i == (stateInfo{}) {
		return nil
	}
	return append([]byte{byte(i.step), byte(min(i.tries, 255))}, i.link...)
}

func decodeStateInfo(b []byte) (stateInfo, bool) {
	switch {
	case len(b) == 0:
		return stateInfo{}, true
	case len(b) < 2:
		return stateInfo{}, false
	}
	return stateInfo{step: enrollStep(b[0]), tries: int(b[1]), link: string(b[2:])}, true
}
