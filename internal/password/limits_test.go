package password

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCostLimits: a stored hash comes from an admin import as well as from
// Hash. One with an absurd cost (bcrypt 24, argon2id t=2^32-1) would pin a
// hash worker for minutes or hours on every login attempt for that user,
// including a stranger's guesses; Verify and IsHash refuse such hashes
// quickly instead, and Hash never makes one.
func TestCostLimits(t *testing.T) {
	salt, key := "c2FsdHNhbHQ", strings.Repeat("A", 43)
	slow := []string{
		"$2b$24$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"$2y$31$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=65,p=1$" + salt + "$" + key,
	}
	for _, h := range slow {
		if IsHash(h) {
			t.Errorf("IsHash(%.20s...) = true for a hash over the cost limits", h)
		}
		done := make(chan error, 1)
		go func() { _, err := Verify(h, "x"); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnsupportedHash) {
				t.Errorf("Verify(%.20s...) error = %v, want ErrUnsupportedHash", h, err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("Verify(%.20s...) still running after 3 s: the cost is not bounded", h)
		}
	}

	// Within the limits, including everything config accepts (argon2_time
	// up to 20, argon2_memory_kib up to 4 GiB): a hash made with valid
	// config params must verify, or every login fails.
	for _, h := range []string{
		"$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"$argon2id$v=19$m=4194304,t=20,p=4$" + salt + "$" + key,
		"$argon2id$v=19$m=2097152,t=1,p=1$" + salt + "$" + key,
	} {
		if !IsHash(h) {
			t.Errorf("IsHash(%.40s...) = false for a hash within the limits", h)
		}
	}

	// Hash refuses params whose hashes Verify would refuse (Fatal: the
	// second case would really allocate 4 GiB if the first got through).
	for _, p := range []Params{
		{Time: 65, MemKiB: 8, Threads: 1},
		{Time: 1, MemKiB: 4<<20 + 1, Threads: 1},
	} {
		if h, err := Hash("pw", p); err == nil {
			t.Fatalf("Hash(%+v) = %.40s..., want an error", p, h)
		}
	}
}
