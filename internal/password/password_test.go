package password

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var fast = Params{Time: 1, MemKiB: 64, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("Hash = %q, want PHC argon2id", h)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct hors", false}, {"", false}, {"correct horse ", false}} {
		got, err := Verify(h, tc.pw)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tc.pw, got, err, tc.want)
		}
	}
}

func TestVerifyBcrypt(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		h := prefix + string(b[4:])
		if !IsHash(h) {
			t.Errorf("IsHash(%s...) = false", prefix)
		}
		if ok, err := Verify(h, "s3cret"); !ok || err != nil {
			t.Errorf("Verify(%s..., right) = %v, %v", prefix, ok, err)
		}
		if ok, err := Verify(h, "wrong"); ok || err != nil {
			t.Errorf("Verify(%s..., wrong) = %v, %v", prefix, ok, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$!!$AAAA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$2b$04$short",
	} {
		if IsHash(h) {
			t.Errorf("IsHash(%q) = true", h)
		}
		if ok, err := Verify(h, "x"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want error", h, ok, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	h, _ := Hash("pw", fast)
	f.Add(h, "pw")
	f.Add("$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "x")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		if strings.Contains(hash, "m=") && len(hash) > 200 {
			return
		}
		// Costs within the limits can still take seconds (bcrypt 16,
		// argon2id 4 GiB); the fuzzer looks for panics, not slow inputs.
		if p, _, _, err := parseArgon2id(hash); err == nil && uint64(p.Time)*uint64(p.MemKiB) > 1<<16 {
			return
		}
		if c, err := bcrypt.Cost([]byte(hash)); err == nil && c > 8 {
			return
		}
		_, _ = Verify(hash, pw) // must not panic
	})
}

// BenchmarkArgon2idDefault is the time of one hash on an otherwise idle
// machine: bench/compare.sh's argon2 bound is the core count divided by it.
func BenchmarkArgon2idDefault(b *testing.B) {
	h, _ := Hash("pw", DefaultParams)
	for b.Loop() {
		_, _ = Verify(h, "pw")
	}
}

// BenchmarkArgon2idAllCores runs one hash per core at once (GOMAXPROCS
// goroutines) and reports hashes/s: what the cores reach together, which is
// below the bound above where they share caches and memory bandwidth.
func BenchmarkArgon2idAllCores(b *testing.B) {
	h, _ := Hash("pw", DefaultParams)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = Verify(h, "pw")
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
