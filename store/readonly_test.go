package store

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// dirState is every file in dir with its bytes and modification time.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		fi, err2 := os.Stat(p)
		if err != nil || err2 != nil {
			t.Fatal(err, err2)
		}
		out[e.Name()] = string(data) + "|" + fi.ModTime().String()
	}
	return out
}

// TestReadOnlyWritesNothing: a read-only open (what `otpgate user list`
// does with the daemon stopped) leaves every file byte for byte and
// reads the logins a crash left in the log; writes fail with ErrReadOnly.
func TestReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 3)); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateLogin(ctx, userName(1), acceptStep(42)); err != nil {
		t.Fatal(err)
	}
	crash(t, db)
	before := dirState(t, filepath.Dir(path))
	time.Sleep(10 * time.Millisecond) // so a write would show in the times
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := ro.Get(ctx, userName(1))
	if err != nil || u.TOTP.LastStep != 42 {
		t.Fatalf("read-only Get: last step %d, %v; want 42 from the log", u.TOTP.LastStep, err)
	}
	if err := ro.UpdateLogin(ctx, userName(1), acceptStep(43)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("UpdateLogin on a read-only store: %v", err)
	}
	if err := ro.Create(ctx, User{Name: "x"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Create on a read-only store: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := dirState(t, filepath.Dir(path)); !maps.Equal(before, after) {
		t.Fatalf("a read-only open changed the files:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
}

// TestOpenBackupCopyReadOnly: a backup copy that nobody may write to opens
// read-only, and the open writes nothing (compared file by file: as root
// the modes alone would not stop a write).
func TestOpenBackupCopyReadOnly(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 2)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Backup(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	copyFile(t, filepath.Join(filepath.Dir(path), DefaultKeyFileName), filepath.Join(dir, DefaultKeyFileName), 0o400)
	os.Chmod(filepath.Join(dir, "copy.db"), 0o400)
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	before := dirState(t, dir)
	time.Sleep(10 * time.Millisecond) // so a write would show in the times
	ro, err := Open(filepath.Join(dir, "copy.db"), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := ro.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("List of the copy: %d users, %v", len(list), err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := dirState(t, dir); !maps.Equal(before, after) {
		t.Fatalf("a read-only open of the copy changed the files:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+":"+v[max(0, len(v)-40):])
	}
	return out
}
