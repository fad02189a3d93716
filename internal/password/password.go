// Package password hashes passwords with argon2id (PHC string format) and
// verifies argon2id and imported bcrypt ($2a$, $2b$, $2y$) hashes in constant
// time.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params is the argon2id cost of new hashes.
type Params struct {
	Time    uint32 // iterations
	MemKiB  uint32 // memory in KiB
	Threads uint8
}

// DefaultParams follows the OWASP argon2id minimum (19 MiB, t=2, p=1): the
// memory cost bounds how many hashes can run at once, so keep it moderate.
var DefaultParams = Params{Time: 2, MemKiB: 19 * 1024, Threads: 1}

// ErrUnsupportedHash is returned for a hash string in no supported format.
var ErrUnsupportedHash = errors.New("password: unsupported hash format")

const (
	saltLen = 16
	keyLen  = 32
)

// Cost limits of the hashes Hash makes and Verify accepts. A stored hash may
// come from an import; one with an absurd cost would pin a hash worker for
// minutes on every login attempt for that user, a stranger's included. The
// argon2id limits cover every setting config accepts (argon2_time <= 20,
// argon2_memory_kib <= 4 GiB); bcrypt cost 16 already takes seconds.
const (
	maxArgon2Time   = 64
	maxArgon2MemKiB = 4 << 20 // 4 GiB
	maxBcryptCost   = 16
)

var b64 = base64.RawStdEncoding

// Validate reports params Hash refuses: a zero field, or a cost over the
// limits Verify accepts.
func (p Params) Validate() error {
	if p.Time == 0 || p.MemKiB == 0 || p.Threads == 0 || p.Time > maxArgon2Time || p.MemKiB > maxArgon2MemKiB {
		return fmt.Errorf("password: invalid argon2id params %+v (time 1..%d, memory 1..%d KiB, threads at least 1)", p, maxArgon2Time, maxArgon2MemKiB)
	}
	return nil
}

// Hash returns a PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func Hash(pw string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemKiB, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// IsHash reports whether s looks like a hash this package can verify, so an
// import can tell a hash from a plaintext password.
func IsHash(s string) bool {
	if strings.HasPrefix(s, "$argon2id$") {
		_, _, _, err := parseArgon2id(s)
		return err == nil
	}
	if isBcrypt(s) {
		return checkBcryptCost(s) == nil
	}
	return false
}

// checkBcryptCost parses a bcrypt hash's cost and refuses one over the limit.
func checkBcryptCost(s string) error {
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return fmt.Errorf("password: bcrypt: %w", err)
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("%w: bcrypt cost %d over the limit %d", ErrUnsupportedHash, cost, maxBcryptCost)
	}
	return nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// Verify reports whether pw matches hash. A malformed hash is an error, a
// wrong password is (false, nil).
func Verify(hash, pw string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		p, salt, want, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemKiB, p.Threads, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1, nil
	case isBcrypt(hash):
		h := hash
		if strings.HasPrefix(h, "$2y$") { // PHP's name for the same algorithm
			h = "$2b$" + h[4:]
		}
		if err := checkBcryptCost(h); err != nil {
			return false, err
		}
		err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("password: bcrypt: %w", err)
		}
		return true, nil
	default:
		return false, ErrUnsupportedHash
	}
}

func parseArgon2id(s string) (p Params, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: want 6 fields", ErrUnsupportedHash)
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: argon2id: version %q", ErrUnsupportedHash, parts[2])
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemKiB, &p.Time, &threads); err != nil {
		return p, nil, nil, fmt.Errorf("%w: argon2id: params %q", ErrUnsupportedHash, parts[3])
	}
	if p.MemKiB == 0 || p.Time == 0 || threads == 0 || threads > 255 || p.MemKiB > maxArgon2MemKiB || p.Time > maxArgon2Time {
		return p, nil, nil, fmt.Errorf("%w: argon2id: params out of range", ErrUnsupportedHash)
	}
	p.Threads = uint8(threads)
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: salt", ErrUnsupportedHash)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: key", ErrUnsupportedHash)
	}
	return p, salt, key, nil
}

// Dummy is a hash of a random password with the given params; verifying
// against it costs the same as a real check, so unknown users take as long as
// known ones.
func Dummy(p Params) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h, err := Hash(base64.RawStdEncoding.EncodeToString(b), p)
	if err != nil {
		panic(err) // params were validated by the caller
	}
	return h
}
