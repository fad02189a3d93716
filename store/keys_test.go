package store

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "otpgate")
	path := filepath.Join(dir, "otpgate.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Dir(dir), 0o700 | os.ModeDir},
		{path, 0o600},
		{filepath.Join(dir, DefaultKeyFileName), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	if fi, _ := os.Stat(path); fi.Size() > 1<<20 {
		t.Errorf("new database is %d bytes; the mmap size must not become file size", fi.Size())
	}
	key, err := os.ReadFile(filepath.Join(dir, DefaultKeyFileName))
	if err != nil || len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("key file: %d bytes, err %v", len(key), err)
	}
}

// TestNoSeedInRawFile scans the database bytes for the seed in every form a
// careless implementation might store it.
func TestNoSeedInRawFile(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	var seeds [][]byte
	for i, name := range []string{"alice", "bob", "carol"} {
		seed, pending, later := randomSeed(t), randomSeed(t), randomSeed(t)
		seeds = append(seeds, seed, pending, later)
		u := totpUser(name, seed)
		u.PendingTOTP = &TOTP{Secret: pending, Algorithm: "SHA1", Digits: 6, Period: 30}
		if err := db.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		// Rewrite once so old pages (free list) would hold stale copies too,
		// and begin a new pending enrollment as BeginEnroll does.
		if err := db.Update(ctx, name, func(u *User) error {
			u.TOTP.LastStep = uint64(i + 1)
			u.PendingTOTP = &TOTP{Secret: later, Algorithm: "SHA1", Digits: 6, Period: 30}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// One user with only a pending seed (a first enrollment in progress).
	only := randomSeed(t)
	seeds = append(seeds, only)
	if err := db.Create(ctx, User{Name: "dave", PendingTOTP: &TOTP{Secret: only, Algorithm: "SHA1", Digits: 6, Period: 30}}); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := db.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, seed := range seeds {
		b32 := base32.StdEncoding.EncodeToString(seed)
		forms := map[string][]byte{
			"raw":             seed,
			"hex":             []byte(hex.EncodeToString(seed)),
			"HEX":             []byte(strings.ToUpper(hex.EncodeToString(seed))),
			"base32":          []byte(b32),
			"base32 lower":    []byte(strings.ToLower(b32)),
			"base32 nopad":    []byte(strings.TrimRight(b32, "=")),
			"base64":          []byte(base64.StdEncoding.EncodeToString(seed)),
			"raw first half":  seed[:10],
			"hex first half":  []byte(hex.EncodeToString(seed[:10])),
			"base32 16 chars": []byte(b32[:16]),
		}
		for form, needle := range forms {
			for what, hay := range map[string][]byte{"database": raw, "backup": backup.Bytes()} {
				if bytes.Contains(hay, needle) {
					t.Errorf("seed %d found in the %s as %s", i, what, form)
				}
			}
		}
	}
	// The check can fail: the sealed forms are in the file.
	var sealed [][]byte
	b := rawBolt(t, path)
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
			r := parseStored(t, v)
			for _, s := range [][]byte{r.SealedSeed, r.SealedPendingSeed} {
				if s != nil {
					sealed = append(sealed, s)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 7 { // alice, bob, carol: active and pending; dave: pending
		t.Fatalf("%d sealed seeds stored, want 7", len(sealed))
	}
	for _, s := range sealed {
		if !bytes.Contains(raw, s) {
			t.Fatal("a sealed seed is not in the file as stored; the scan above proves nothing")
		}
	}
}

func TestWrongKeyRefused(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Create(ctx, totpUser("alice", randomSeed(t))); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := createKeyFile(other); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{KeyFile: other})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), other) {
		t.Errorf("error %q does not name the key file", err)
	}
	// The right key still works: nothing was overwritten.
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen with the right key: %v", err)
	}
	db.Close()
}

func TestMissingKeyRefused(t *testing.T) {
	db, path := testDB(t)
	db.Close()
	keyFile := filepath.Join(filepath.Dir(path), DefaultKeyFileName)
	moved := keyFile + ".moved"
	if err := os.Rename(keyFile, moved); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrMissingKey) {
		t.Fatalf("Open without key: %v, want ErrMissingKey", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created a new key over an existing database: %v", err)
	}
	if err := os.Rename(moved, keyFile); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with the key restored: %v", err)
	}
	db.Close()
}

func TestKeyFileProblems(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, keyFile string)
		want  []string
	}{
		{"mode 0644", func(t *testing.T, k string) { os.Chmod(k, 0o644) }, []string{"chmod 600", "0644"}},
		{"mode 0640", func(t *testing.T, k string) { os.Chmod(k, 0o640) }, []string{"chmod 600", "0640"}},
		{"mode 0604", func(t *testing.T, k string) { os.Chmod(k, 0o604) }, []string{"chmod 600"}},
		{"too short", func(t *testing.T, k string) { os.WriteFile(k, make([]byte, 31), 0o600) }, []string{"31 bytes", "want exactly 32"}},
		{"too long", func(t *testing.T, k string) { os.WriteFile(k, make([]byte, 64), 0o600) }, []string{"want exactly 32"}},
		{"directory", func(t *testing.T, k string) {
			os.Remove(k)
			os.Mkdir(k, 0o700)
		}, []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := testDB(t)
			db.Close()
			keyFile := filepath.Join(filepath.Dir(path), DefaultKeyFileName)
			tt.setup(t, keyFile)
			_, err := Open(path, Options{})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range append(tt.want, keyFile) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestExistingKeyFileReused: a new database beside a key file (restored
// first, or a database file deleted) uses that key rather than failing.
func TestExistingKeyFileReused(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "seed.key")
	key, err := createKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(filepath.Join(dir, "otpgate.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, _ := newKeyring(key)
	if db.HashRecoveryCode("a", "b") != k.hashRecoveryCode("a", "b") {
		t.Fatal("the existing key file was not used")
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	_, path := testDB(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	db2, err := Open(path, Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		db2.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "otpgated") {
		t.Errorf("error %q does not say who holds the lock", err)
	}
	if elapsed < timeout-100*time.Millisecond || elapsed > timeout+time.Second {
		t.Errorf("second Open failed after %v, want about %v", elapsed, timeout)
	}
}

// TestSeedSwapDetected moves alice's sealed seed into bob's record: the AAD
// binds a seed to its user, so bob's record must fail to decrypt.
func TestSeedSwapDetected(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	for _, name := range []string{"alice", "bob"} {
		if err := db.Create(ctx, totpUser(name, randomSeed(t))); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b := rawBolt(t, path)
	err := b.Update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		r := parseStored(t, users.Get([]byte("alice")))
		r.Name = "bob" // alice's sealed seed, under bob
		return users.Put([]byte("bob"), marshalBinaryRecord(nil, &r))
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Get(ctx, "alice"); err != nil {
		t.Fatalf("alice: %v", err)
	}
	_, err = db.Get(ctx, "bob")
	if err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("Get of bob with alice's seed: %v, want an authentication failure", err)
	}
}

func TestOpenBadPaths(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o600)
	tests := []struct{ name, path, text string }{
		{"empty path", "", "empty database path"},
		{"garbage file", garbage, "store: open " + garbage},
		{"directory", dir, "store: open " + dir},
		{"parent is a file", filepath.Join(notDir, "x.db"), "store: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.text)
			}
		})
	}
	// A database that failed to open created no key file beside it.
	if _, err := os.Stat(filepath.Join(dir, DefaultKeyFileName)); err == nil {
		t.Error("a failed Open left a key file")
	}
}

// TestPendingSeedSlotsBound moves a sealed seed between the active and the
// pending slot of the same record: each slot has its own additional data,
// so a pending (never verified) seed can't be made the active one by
// editing the database, nor the other way round.
func TestPendingSeedSlotsBound(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(r *record)
	}{
		{"pending into active", func(r *record) { r.SealedSeed = r.SealedPendingSeed }},
		{"active into pending", func(r *record) { r.SealedPendingSeed = r.SealedSeed }},
		{"pending into active, pending dropped", func(r *record) {
			r.SealedSeed = r.SealedPendingSeed
			r.SealedPendingSeed = nil
			r.PendingTOTP = nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := testDB(t)
			u := totpUser("alice", randomSeed(t))
			u.PendingTOTP = &TOTP{Secret: randomSeed(t), Algorithm: "SHA1", Digits: 6, Period: 30}
			if err := db.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			got, err := db.Get(ctx, "alice")
			if err != nil || got.PendingTOTP == nil || !bytes.Equal(got.PendingTOTP.Secret, u.PendingTOTP.Secret) {
				t.Fatalf("Get before the edit: %v (pending %v)", err, got.PendingTOTP != nil)
			}
			db.Close()
			b := rawBolt(t, path)
			err = b.Update(func(tx *bolt.Tx) error {
				users := tx.Bucket(bucketUsers)
				r := parseStored(t, users.Get([]byte("alice")))
				if r.SealedPendingSeed == nil || r.SealedSeed == nil {
					return errors.New("record lacks a sealed seed")
				}
				tt.edit(&r)
				return users.Put([]byte("alice"), marshalBinaryRecord(nil, &r))
			})
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
			db, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.Get(ctx, "alice")
			if err == nil || !strings.Contains(err.Error(), "authentication") {
				t.Fatalf("Get after moving a seed between slots: %v, want an authentication failure", err)
			}
		})
	}
}
