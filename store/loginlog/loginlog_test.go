package loginlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db-logins")
	id, other := [IDLen]byte{1}, [IDLen]byte{2}
	l, err := Create(OS, path, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{1, "alice", []byte("a1")}, Record{2, "bob", []byte("b1")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{3, "alice", []byte("a2")}); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	l.Close()

	recs, err := Read(OS, path, id)
	if err != nil || len(recs) != 3 || recs[2].Name != "alice" || string(recs[2].Data) != "a2" {
		t.Fatalf("Read: %+v, %v", recs, err)
	}
	if _, err := Create(OS, path, id); !errors.Is(err, os.ErrExist) {
		t.Errorf("Create over an existing log: %v, want ErrExist", err)
	}
	if _, err := Read(OS, path, other); !errors.Is(err, ErrOtherDatabase) {
		t.Errorf("Read for another database: %v", err)
	}

	// A torn last record is dropped, the ones before it kept.
	data, _ := os.ReadFile(path)
	for cut := int64(HeaderLen); cut < size; cut++ {
		got := Parse(data[HeaderLen:cut])
		if len(got) > 3 {
			t.Fatalf("cut %d: %d records", cut, len(got))
		}
		if cut < size && len(got) == 3 {
			t.Fatalf("cut %d: the torn last record was read", cut)
		}
	}
	// Stale records behind a newer one (left by a truncation) end it.
	stale := append([]byte{}, data[HeaderLen:]...)
	if got := Parse(append(append([]byte{}, stale...), stale...)); len(got) != 3 {
		t.Errorf("%d records with a stale copy behind, want 3", len(got))
	}

	os.WriteFile(filepath.Join(dir, "junk"), []byte("-wal from an older otpgate........................."), 0o600)
	if _, err := Read(OS, filepath.Join(dir, "junk"), id); !errors.Is(err, ErrNotALog) {
		t.Errorf("Read of a foreign file: %v, want ErrNotALog", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(path, link)
	if _, err := Read(OS, link, id); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Read through a symbolic link: %v, want a refusal", err)
	}
	if _, err := Create(OS, filepath.Join(dir, "dangling"), id); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "dangling2"))
	if _, err := Create(OS, filepath.Join(dir, "dangling2"), id); err == nil {
		t.Error("Create followed a dangling symbolic link")
	}
	if recs, err := Read(OS, filepath.Join(dir, "missing"), id); err != nil || recs != nil {
		t.Errorf("Read of a missing log: %v, %v", recs, err)
	}
}

// TestReadShortFile: a log whose header never reached the disk (empty, or
// a prefix of the magic) holds no records; it must not crash the reader.
func TestReadShortFile(t *testing.T) {
	var id [IDLen]byte
	for _, content := range []string{"", "OTPG", magic} {
		path := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		recs, err := Read(OS, path, id)
		if err != nil || len(recs) != 0 {
			t.Errorf("Read(%q) = %v, %v; want no records", content, recs, err)
		}
	}
}
