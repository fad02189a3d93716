package auth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// PasswordBackoffStore keeps the password backoff of every user (per
// station, see userBackoff) where every node of a cluster sees it, so a
// guesser who spreads password guesses over the nodes gets no more than
// from one. Nil in Options: the backoff stays in this process's memory
// (one node).
type PasswordBackoffStore interface {
	// UpdatePasswordBackoff replaces user's backoff, an opaque value auth
	// encodes, atomically: it calls fn with the stored value (nil when
	// there is none) and stores what fn returns, unless another writer
	// changed the value in between, in which case it calls fn again with
	// the new value. So fn may run more than once and must not act
	// beyond its result. A nil next deletes the value; a next equal to
	// old need not be written. forgetAt is when the value stops
	// mattering: the store may drop it any time after, and auth reads a
	// missing value as no failures. An error from fn is returned as it
	// is; an unreachable store's error wraps store.ErrUnavailable.
	UpdatePasswordBackoff(ctx context.Context, user string, fn func(old []byte) (next []byte, forgetAt time.Time, err error)) error
}

// passwordBackoff is where the Authenticator keeps the password backoff.
type passwordBackoff interface {
	// settle is userBackoff.settle for user, as one atomic step.
	settle(ctx context.Context, user, station string, o pwOutcome, now time.Time) (locked bool, err error)
}

// memoryBackoff is the in-process stationTable as passwordBackoff.
type memoryBackoff struct{ t *stationTable }

func (m memoryBackoff) settle(_ context.Context, user, station string, o pwOutcome, now time.Time) (bool, error) {
	return m.t.settle(user, station, o, now), nil
}

// sharedBackoff keeps each user's userBackoff, encoded, in a
// PasswordBackoffStore.
type sharedBackoff struct {
	s     PasswordBackoffStore
	rules backoffRules
}

func (s sharedBackoff) settle(ctx context.Context, user, station string, o pwOutcome, now time.Time) (bool, error) {
	var locked bool
	err := s.s.UpdatePasswordBackoff(ctx, user, func(old []byte) ([]byte, time.Time, error) {
		b, err := decodeUserBackoff(old)
		if err != nil {
			// Fail closed: the request is refused, not let through
			// without a backoff.
			return nil, time.Time{}, fmt.Errorf("auth: password backoff of %q: %w", user, err)
		}
		locked = b.settle(s.rules, station, o, now)
		if b.len() == 0 {
			return nil, time.Time{}, nil
		}
		return b.encode(), b.forgetAt(s.rules), nil
	})
	if err != nil {
		return false, err
	}
	return locked, nil
}

// backoffFormat is the first byte of an encoded userBackoff.
const backoffFormat = 1

// maxEncodedBuckets bounds what decode accepts: far more than perUser+1,
// so only a value that is not ours is refused.
const maxEncodedBuckets = 1024

// encode is b as a PasswordBackoffStore keeps it: the format byte, the
// number of own stations, each (station, count) in station order, then
// 0 or 1 and the overflow count. Equal values encode to equal bytes, so
// a store can skip writing what did not change.
func (b *userBackoff) encode() []byte {
	out := []byte{backoffFormat}
	stations := make([]string, 0, len(b.own))
	for s := range b.own {
		stations = append(stations, s)
	}
	slices.Sort(stations)
	out = binary.AppendUvarint(out, uint64(len(stations)))
	for _, s := range stations {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
		out = b.own[s].append(out)
	}
	if b.overflow == nil {
		return append(out, 0)
	}
	return b.overflow.append(append(out, 1))
}

func (c *stationCount) append(out []byte) []byte {
	out = binary.AppendUvarint(out, uint64(c.failures))
	out = binary.AppendVarint(out, unixNano(c.last))
	return binary.AppendVarint(out, unixNano(c.lockedUntil))
}

// unixNano is t in nanoseconds since 1970, the zero time as 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

var errBadBackoff = errors.New("not an encoded password backoff")

// decodeUserBackoff reads what encode wrote; nil is no failures.
func decodeUserBackoff(data []byte) (userBackoff, error) {
	var b userBackoff
	if data == nil {
		return b, nil
	}
	d := decoder{data: data}
	if d.byte() != backoffFormat {
		return userBackoff{}, errBadBackoff
	}
	n := d.uvarint()
	if n > maxEncodedBuckets {
		return userBackoff{}, errBadBackoff
	}
	for range n {
		l := d.uvarint()
		if l > uint64(len(d.data)) {
			return userBackoff{}, errBadBackoff
		}
		s := string(d.data[:l])
		d.data = d.data[l:]
		if _, dup := b.own[s]; dup {
			return userBackoff{}, errBadBackoff
		}
		c := d.count()
		if b.own == nil {
			b.own = make(map[string]*stationCount)
		}
		b.own[s] = c
	}
	switch d.byte() {
	case 0:
	case 1:
		b.overflow = d.count()
	default:
		return userBackoff{}, errBadBackoff
	}
	if d.bad || len(d.data) != 0 {
		return userBackoff{}, errBadBackoff
	}
	return b, nil
}

// decoder reads the parts of an encoded userBackoff; bad records the
// first read past the end or malformed number.
type decoder struct {
	data []byte
	bad  bool
}

func (d *decoder) byte() byte {
	if len(d.data) == 0 {
		d.bad = true
		return 0xff
	}
	c := d.data[0]
	d.data = d.data[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.data)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.data)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) count() *stationCount {
	f := d.uvarint()
	if f > math.MaxInt32 { // int(f) stays positive where int has 32 bits
		d.bad = true
	}
	return &stationCount{failures: int(f), last: fromUnixNano(d.varint()), lockedUntil: fromUnixNano(d.varint())}
}
