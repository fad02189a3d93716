package store

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testDB opens a fresh store in t.TempDir() and closes it at cleanup.
func testDB(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "otpgate.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// errCodeReused is what the tests' Update functions return for a replayed
// code: an error of the caller's own, as auth's would be.
var errCodeReused = errors.New("test: totp time step already used")

func randomSeed(testing.TB) []byte { return newSeed() }

// newSeed returns 20 random bytes (crypto/rand.Read never fails).
func newSeed() []byte {
	seed := make([]byte, 20)
	rand.Read(seed)
	return seed
}

func totpUser(name string, seed []byte) User {
	return User{
		Name:         name,
		Groups:       []string{"vpn", "staff"},
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
		TOTP: &TOTP{
			Secret:    seed,
			Algorithm: "SHA1",
			Digits:    6,
			Period:    30,
			Enrolled:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		RecoveryCodes: []string{"aa", "bb"},
		Created:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// rawBolt opens the database file with bbolt directly (the DB must be closed).
func rawBolt(t testing.TB, path string) *bolt.DB {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// parseStored decodes a stored record in either form without opening the
// seeds (no key needed), for tests that inspect or edit the raw database.
func parseStored(t testing.TB, v []byte) record {
	t.Helper()
	var r record
	var err error
	if isBinaryRecord(v) {
		err = unmarshalBinaryRecord(v, &r)
	} else {
		err = json.Unmarshal(v, &r)
	}
	if err != nil {
		t.Fatalf("parse stored record: %v", err)
	}
	return r
}

// encodeRecordJSON is encodeRecord in the schema 1 (JSON) form, for
// databases written the way older versions wrote them.
func encodeRecordJSON(t testing.TB, k *keyring, u *User) []byte {
	t.Helper()
	bin, err := encodeRecord(k, u)
	if err != nil {
		t.Fatal(err)
	}
	r := parseStored(t, bin)
	data, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// storedValue returns the stored value of user name: the login log's
// overlay if it holds one, else bbolt's.
func storedValue(t testing.TB, db *DB, name string) []byte {
	t.Helper()
	v, _, err := db.current("get", name)
	if err != nil {
		t.Fatalf("stored value of %q: %v", name, err)
	}
	return v
}
