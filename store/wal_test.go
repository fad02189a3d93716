package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"testing"
)

// crash stops db the way a kill -9 would leave it: the committer is
// stopped and the files closed with no checkpoint, so logged updates are
// only in the write-ahead log.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	db.closed = true
	db.commit.close()
	db.wal.writer.close()
	db.wal.f.Close()
	db.bolt.Close()
}

// TestWALReplayAfterCrash: updates acknowledged before a crash are there
// after the next Open (replayed into bbolt), the log is emptied, and a
// clean Close removes it.
func TestWALReplayAfterCrash(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 20)); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"u000003", "u000007", "u000003"} {
		if err := db.Update(ctx, name, func(u *User) error { u.TOTP.LastStep = uint64(100 + i); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(db.wal.snapshot()); n != 2 {
		t.Fatalf("%d users in the overlay, want 2: the updates did not go to the log", n)
	}
	crash(t, db)
	if fi, err := os.Stat(WALPath(path)); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log after the crash: %v (%v); want a non-empty 0600 file", fi, err)
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{"u000003": 102, "u000007": 101, "u000001": 0} {
		u, err := db.Get(ctx, name)
		if err != nil || u.TOTP.LastStep != want {
			t.Fatalf("%s after replay: %v, last step %d, want %d", name, err, u.TOTP.LastStep, want)
		}
	}
	if len(db.wal.snapshot()) != 0 {
		t.Fatal("replayed records still in the overlay: bbolt should hold them")
	}
	if data, err := os.ReadFile(WALPath(path)); err != nil || len(data) != walRegionSize+walPrealloc || bytes.Count(data, []byte{0}) != len(data) {
		t.Fatalf("log after replay: %d bytes, %v; want %d zeros", len(data), err, walRegionSize+walPrealloc)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(WALPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("log after a clean Close: %v; want it removed", err)
	}
}

// TestWALNoResurrection: a delete after logged updates checkpoints first,
// so replaying the log after a crash can't bring the user back.
func TestWALNoResurrection(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 3)); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "u000001", func(u *User) error { u.TOTP.LastStep = 5; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "u000001"); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "u000002", func(u *User) error { u.TOTP.LastStep = 6; return nil }); err != nil {
		t.Fatal(err)
	}
	crash(t, db)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Get(ctx, "u000001"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("deleted user after replay: %v, want ErrUserNotFound", err)
	}
	if u, err := db.Get(ctx, "u000002"); err != nil || u.TOTP.LastStep != 6 {
		t.Fatalf("u000002 after replay: %v, last step %d, want 6", err, u.TOTP.LastStep)
	}
	list, err := db.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List after replay: %d users, %v; want 2", len(list), err)
	}
}

// TestWALReadsSeeLoggedUpdates: Get, List, Update and Backup see an update
// that is only in the log.
func TestWALReadsSeeLoggedUpdates(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 3)); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "u000001", func(u *User) error { u.TOTP.LastStep = 41; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.wal.get("u000001"); !ok {
		t.Fatal("the update is not in the overlay; this test would prove nothing")
	}
	if u, _ := db.Get(ctx, "u000001"); u.TOTP.LastStep != 41 {
		t.Fatalf("Get: last step %d, want 41", u.TOTP.LastStep)
	}
	list, _ := db.List(ctx)
	if len(list) != 3 || list[1].TOTP.LastStep != 41 {
		t.Fatalf("List: %+v", list)
	}
	// Update builds on the logged record (a replay check needs exactly this).
	err := db.Update(ctx, "u000001", func(u *User) error {
		if u.TOTP.LastStep != 41 {
			return errors.New("stale record")
		}
		u.TOTP.LastStep = 42
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := db.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if len(db.wal.snapshot()) != 0 {
		t.Fatal("Backup did not checkpoint the log into the copy")
	}
	if u, _ := db.Get(ctx, "u000001"); u.TOTP.LastStep != 42 {
		t.Fatalf("after the checkpoint: last step %d, want 42", u.TOTP.LastStep)
	}
}

// walBytes frames records the way wal.append does.
func walBytes(recs ...struct {
	seq  uint64
	name string
}) []byte {
	var b []byte
	for _, r := range recs {
		p := binary.LittleEndian.AppendUint64(nil, r.seq)
		p = binary.AppendUvarint(p, uint64(len(r.name)))
		p = append(p, r.name...)
		p = append(p, "value-of-"+r.name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, crc32c))
		b = append(b, p...)
	}
	return b
}

type seqName = struct {
	seq  uint64
	name string
}

func TestParseWAL(t *testing.T) {
	good := walBytes(seqName{5, "a"}, seqName{6, "b"}, seqName{7, "a"})
	flipped := bytes.Clone(good)
	flipped[len(walBytes(seqName{5, "a"}))+walHeaderLen+3] ^= 1 // inside b's payload
	tests := []struct {
		name     string
		data     []byte
		applied  uint64
		want     []string
		wantLast uint64
	}{
		{"all new", good, 0, []string{"a", "b", "a"}, 7},
		{"some applied", good, 5, []string{"b", "a"}, 7},
		{"all applied", good, 7, nil, 7},
		{"torn last record", good[:len(good)-2], 0, []string{"a", "b"}, 6},
		{"torn header", good[:len(good)-len(walBytes(seqName{7, "a"}))+3], 0, []string{"a", "b"}, 6},
		{"bad checksum stops", flipped, 0, []string{"a"}, 5},
		{"older generation after the tail", append(walBytes(seqName{8, "c"}), good...), 7, []string{"c"}, 8},
		{"repeated sequence stops", walBytes(seqName{3, "a"}, seqName{3, "b"}), 0, []string{"a"}, 3},
		{"huge length", append(walBytes(seqName{1, "a"}), 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0), 0, []string{"a"}, 1},
		{"empty", nil, 4, nil, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, last := parseWAL(tt.data, tt.applied)
			var names []string
			for _, r := range recs {
				names = append(names, r.name)
				if string(r.data) != "value-of-"+r.name {
					t.Fatalf("record %q has value %q", r.name, r.data)
				}
			}
			if !slices.Equal(names, tt.want) || last != tt.wantLast {
				t.Fatalf("got %v last %d, want %v last %d", names, last, tt.want, tt.wantLast)
			}
		})
	}
}

func FuzzParseWAL(f *testing.F) {
	f.Add(walBytes(seqName{1, "a"}, seqName{2, "b"}), uint64(0))
	f.Add([]byte{9, 0, 0, 0, 1, 2, 3, 4, 5}, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, applied uint64) {
		recs, last := parseWAL(data, applied)
		if last < applied || (len(recs) == 0 && last != applied) {
			t.Fatalf("last %d with applied %d and %d records", last, applied, len(recs))
		}
	})
}

// TestWALStaleRecordsAfterReuse: after a checkpoint the log is written from
// its start again over the old records. An append rewrites only the blocks
// it covers, so stale records stay behind the new ones (here: user u000099,
// deleted since, a few blocks in). They must not be replayed: the zeros
// that fill the new records' last block end the region, and the stale
// sequence numbers are neither above wal_applied nor above the newest
// record's. (A failed batch's leftovers, above wal_applied but behind a
// newer record, stop replay by their smaller sequence number: TestParseWAL.)
func TestWALStaleRecordsAfterReuse(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	const n = 100
	if err := db.Import(ctx, manyUsers(t, "u", n)); err != nil {
		t.Fatal(err)
	}
	step := func(name string, s uint64) {
		t.Helper()
		if err := db.Update(ctx, name, func(u *User) error { u.TOTP.LastStep = s; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		step(fmt.Sprintf("u%06d", i), 5) // sequences 1-100
	}
	var sink bytes.Buffer
	if _, err := db.Backup(ctx, &sink); err != nil { // checkpoint: wal_applied = 100
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "u000099"); err != nil {
		t.Fatal(err)
	}
	step("u000000", 9) // sequence 101, over sequence 1
	crash(t, db)

	data, err := os.ReadFile(WALPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(data, []byte("u000099")); i < walBlock {
		t.Fatalf("the stale record is at %d, not past the first block; this test would prove nothing", i)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Get(ctx, "u000099"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("deleted user after replay: %v, want ErrUserNotFound (a stale record was replayed)", err)
	}
	if u, err := db.Get(ctx, "u000000"); err != nil || u.TOTP.LastStep != 9 {
		t.Fatalf("u000000 after replay: %v, last step %d, want 9", err, u.TOTP.LastStep)
	}
}

// TestWALOversizedRecordUsesTransaction: a record too big for the log is
// written by a bbolt transaction, and survives a crash.
func TestWALOversizedRecordUsesTransaction(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 1)); err != nil {
		t.Fatal(err)
	}
	big := string(bytes.Repeat([]byte("g"), walMaxRecord))
	if err := db.Update(ctx, "u000000", func(u *User) error { u.Groups = []string{big}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.wal.get("u000000"); ok {
		t.Fatal("the oversized record went to the log")
	}
	crash(t, db)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if u, err := db.Get(ctx, "u000000"); err != nil || len(u.Groups) != 1 || u.Groups[0] != big {
		t.Fatalf("after the crash: %v, %d groups", err, len(u.Groups))
	}
}
