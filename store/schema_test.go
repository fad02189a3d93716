package store

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite testdata/schema<currentSchema>.db and .key")

func readSchemaVersion(t *testing.T, path string) string {
	t.Helper()
	b := rawBolt(t, path)
	defer b.Close()
	var v string
	b.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(keySchemaVersion))
		return nil
	})
	return v
}

func TestNewDatabaseStampedCurrent(t *testing.T) {
	db, path := testDB(t)
	db.Close()
	if v := readSchemaVersion(t, path); v != strconv.Itoa(currentSchema) {
		t.Fatalf("schema_version = %q, want %d", v, currentSchema)
	}
}

func TestMigrationListShape(t *testing.T) {
	if len(migrations) != currentSchema {
		t.Fatalf("%d migrations for schema %d", len(migrations), currentSchema)
	}
	for i, m := range migrations {
		if m.to != i+1 || m.name == "" || m.apply == nil {
			t.Errorf("migrations[%d] = {to %d, %q}: want to=%d, a name and a func", i, m.to, m.name, i+1)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := testDB(t)
	db.Close()
	b := rawBolt(t, path)
	b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(currentSchema+1)))
	})
	b.Close()
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open: %v, want ErrNewerSchema", err)
	}
	for _, w := range []string{"version " + strconv.Itoa(currentSchema+1), "up to " + strconv.Itoa(currentSchema), "upgrade otpgate"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if v := readSchemaVersion(t, path); v != strconv.Itoa(currentSchema+1) {
		t.Fatalf("refused Open changed schema_version to %q", v)
	}
}

func TestDamagedSchemaVersionRefused(t *testing.T) {
	db, path := testDB(t)
	db.Close()
	b := rawBolt(t, path)
	b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("one")) })
	b.Close()
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "schema_version") {
		t.Fatalf("Open: %v, want a schema_version error", err)
	}
}

// writeV0 builds a pre-versioned (version 0) database at path: meta without
// schema_version, users as records sealed with the key in keyFile. With
// withCheck false, meta has no key_check either (the earliest layout).
func writeV0(t *testing.T, path, keyFile string, withCheck bool, users ...User) {
	t.Helper()
	key, err := createKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := newKeyring(key)
	b := rawBolt(t, path)
	err = b.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		if withCheck {
			meta.Put(keyKeyCheck, k.check)
		}
		bu, _ := tx.CreateBucket(bucketUsers)
		for i := range users {
			data := encodeRecordJSON(t, k, &users[i]) // v0 wrote JSON
			if err := bu.Put([]byte(users[i].Name), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestMigrateV0(t *testing.T) {
	for _, withCheck := range []bool{true, false} {
		t.Run("key_check="+strconv.FormatBool(withCheck), func(t *testing.T) {
			dir := t.TempDir()
			path, keyFile := filepath.Join(dir, "otpgate.db"), filepath.Join(dir, "seed.key")
			alice, bob := totpUser("alice", randomSeed(t)), User{Name: "bob", Created: time.Unix(1e9, 0).UTC()}
			writeV0(t, path, keyFile, withCheck, alice, bob)

			db, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open v0: %v", err)
			}
			list, err := db.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(list, []User{alice, bob}) {
				t.Fatalf("users after migration = %+v", list)
			}
			db.Close()
			if v := readSchemaVersion(t, path); v != strconv.Itoa(currentSchema) {
				t.Fatalf("schema_version after migration = %q, want %d", v, currentSchema)
			}
			b := rawBolt(t, path)
			b.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketMeta).Get(keyKeyCheck) == nil || tx.Bucket(bucketMeta).Get(keyCreated) == nil {
					t.Error("key_check or created not added")
				}
				return nil
			})
		})
	}
}

// TestV0WithoutKeyCheckNeedsItsKey: a database holding seeds but no
// key_check must not get a fresh key, and a wrong one is detected by trying
// a seed.
func TestV0WithoutKeyCheckNeedsItsKey(t *testing.T) {
	dir := t.TempDir()
	path, keyFile := filepath.Join(dir, "otpgate.db"), filepath.Join(dir, "seed.key")
	writeV0(t, path, keyFile, false, totpUser("alice", randomSeed(t)))
	os.Rename(keyFile, keyFile+".old")
	if _, err := Open(path, Options{}); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("Open without key: %v, want ErrMissingKey", err)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a new key file was created over existing seeds")
	}
	if _, err := createKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	os.Rename(keyFile+".old", keyFile)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with the right key: %v", err)
	}
	db.Close()
}

// TestMigrateFramework runs a made-up three-step list: steps run in order,
// each stamps its version, and a failing step leaves the database untouched.
func TestMigrateFramework(t *testing.T) {
	db, path := testDB(t)
	var ran []int
	step := func(to int, fail bool) migration {
		return migration{to: to, name: "step " + strconv.Itoa(to), apply: func(tx *bolt.Tx) error {
			ran = append(ran, to)
			if fail {
				return errors.New("boom")
			}
			return tx.Bucket(bucketMeta).Put([]byte("step"+strconv.Itoa(to)), []byte("done"))
		}}
	}
	good := []migration{step(1, false), step(2, false), step(3, false)}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return migrate(tx, 1, good) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ran, []int{2, 3}) {
		t.Fatalf("ran %v, want [2 3]", ran)
	}
	bad := []migration{step(1, false), step(2, false), step(3, false), step(4, false), step(5, true)}
	ran = nil
	err := db.bolt.Update(func(tx *bolt.Tx) error { return migrate(tx, 3, bad) })
	if err == nil || !strings.Contains(err.Error(), "4 -> 5") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing step: %v", err)
	}
	broken := []migration{step(1, false), step(3, false)}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return migrate(tx, 0, broken) }); err == nil {
		t.Fatal("a gap in the migration list was not detected")
	}
	db.Close()
	if v := readSchemaVersion(t, path); v != "3" {
		t.Fatalf("schema_version = %q, want 3 (step 4 must have rolled back with step 5)", v)
	}
	b := rawBolt(t, path)
	b.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("step4")) != nil {
			t.Error("step 4's write survived the failed migration")
		}
		if tx.Bucket(bucketMeta).Get([]byte("step3")) == nil {
			t.Error("step 3's write is missing")
		}
		return nil
	})
}

// Fixture: testdata/schema1.db with key testdata/schema1.key, written by
// `go test ./store -run TestFixtureSchema1 -update-fixtures` while the schema
// was 1. It stays as the input of the 1 -> 2 migration test (JSON records
// read, turned binary by their next write); it can't be rewritten now.
const fixtureSeed = "12345678901234567890" // RFC 6238 test seed

func fixtureUsers() []User {
	at := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	return []User{
		{
			Name: "alice", Groups: []string{"vpn"},
			PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g",
			TOTP:         &TOTP{Secret: []byte(fixtureSeed), Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: 59000000, Enrolled: at},
			Created:      at, LastSuccess: at.Add(time.Hour),
		},
		{Name: "bob", Disabled: true, CodeFailures: 3, LockedUntil: at.Add(time.Minute), LastFailure: at, Created: at},
		{Name: "carol@example.com", TOTP: &TOTP{Secret: bytes.Repeat([]byte{0xc4}, 32), Algorithm: "SHA256", Digits: 8, Period: 60, Enrolled: at}, Created: at},
	}
}

func TestFixtureSchema1(t *testing.T) {
	ctx := context.Background()
	src, srcKey := filepath.Join("testdata", "schema1.db"), filepath.Join("testdata", "schema1.key")
	users := fixtureUsers()
	users[0].RecoveryCodes = []string{"placeholder"}
	if *updateFixtures && currentSchema != 1 {
		t.Fatal("testdata/schema1.db holds schema 1 (JSON records) and can't be rewritten by this version")
	}
	if *updateFixtures {
		dir := t.TempDir()
		db, err := Open(filepath.Join(dir, "f.db"), Options{KeyFile: filepath.Join(dir, "f.key")})
		if err != nil {
			t.Fatal(err)
		}
		users[0].RecoveryCodes = []string{db.HashRecoveryCode("alice", "abcdefghijklmnop")}
		if err := db.Import(ctx, users); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Backup(ctx, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		db.Close()
		copyFile(t, filepath.Join(dir, "f.key"), srcKey, 0o600)
	}

	// Work on copies: Open writes, and git checks the key out as 0644.
	dir := t.TempDir()
	path, keyFile := filepath.Join(dir, "otpgate.db"), filepath.Join(dir, "seed.key")
	copyFile(t, src, path, 0o600)
	copyFile(t, srcKey, keyFile, 0o600)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open fixture: %v", err)
	}
	defer db.Close()
	got, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users[0].RecoveryCodes = []string{db.HashRecoveryCode("alice", "abcdefghijklmnop")}
	if !reflect.DeepEqual(got, users) {
		t.Fatalf("fixture users:\n got %+v\nwant %+v", got, users)
	}
	if string(got[0].TOTP.Secret) != fixtureSeed {
		t.Fatal("alice's seed does not match")
	}
	// The fixture's records are JSON; a write turns one binary, the others
	// stay JSON, and both read back.
	isBinary := func(name string) bool { return isBinaryRecord(storedValue(t, db, name)) }
	if isBinary("alice") || isBinary("bob") {
		t.Fatal("the schema 1 fixture already holds binary records")
	}
	if err := db.Update(ctx, "alice", func(u *User) error { u.TOTP.LastStep++; return nil }); err != nil {
		t.Fatal(err)
	}
	if !isBinary("alice") || isBinary("bob") {
		t.Fatal("an Update did not write alice in the binary form, or touched bob")
	}
	users[0].TOTP.LastStep++
	if got, err = db.List(ctx); err != nil || !reflect.DeepEqual(got, users) {
		t.Fatalf("after the update: %v\n got %+v\nwant %+v", err, got, users)
	}
}
