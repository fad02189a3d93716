package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// diskTempDir is a temporary directory beside the package source rather
// than in TMPDIR, which may be a tmpfs without direct I/O.
func diskTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", ".test-wal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestWALAppendWholeBlocks: appends of records smaller than, across and
// bigger than a block, with each writer this platform has, leave the log
// exactly as the records in order with zeros after the last one, to the
// end of its block; and a crash replays the last of each user.
func TestWALAppendWholeBlocks(t *testing.T) {
	for _, kind := range walWriterKinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(diskTempDir(t), "otpgate.db")
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Import(ctx, manyUsers(t, "u", 4)); err != nil {
				t.Fatal(err)
			}
			w, err := testWALWriter(db.wal.f, kind)
			if err != nil {
				t.Skipf("%s not available here: %v", kind, err)
			}
			db.wal.writer.close()
			db.wal.writer = w

			want := map[string]string{}
			// Group lengths chosen so records end mid-block, exactly
			// straddle block ends, and span several blocks.
			for i, n := range []int{10, 3000, 5000, 100, 9000, 1, 4000, 4096, 12000, 7} {
				name := fmt.Sprintf("u%06d", i%4)
				group := strings.Repeat(string(rune('a'+i)), n)
				if err := db.Update(ctx, name, func(u *User) error { u.Groups = []string{group}; return nil }); err != nil {
					t.Fatal(err)
				}
				want[name] = group

				data, err := os.ReadFile(WALPath(path))
				if err != nil {
					t.Fatal(err)
				}
				recs, last := parseWAL(data[:walRegionSize], 0)
				if len(recs) != i+1 || last != uint64(i+1) || recs[i].name != name {
					t.Fatalf("after append %d: %d records, last sequence %d; want %d, %d (%s)", i, len(recs), last, i+1, i+1, name)
				}
				off := db.wal.off
				if tail := data[off:roundUpBlock(off)]; !bytes.Equal(tail, make([]byte, len(tail))) {
					t.Fatalf("after append %d: the rest of the last block is not zeros", i)
				}
			}
			if got := db.wal.writer.kind(); got != kind {
				t.Fatalf("writer is %s after the appends, want %s (a silent fallback)", got, kind)
			}
			crash(t, db)

			db, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for name, group := range want {
				u, err := db.Get(ctx, name)
				if err != nil || len(u.Groups) != 1 || u.Groups[0] != group {
					t.Fatalf("%s after replay: %v, groups of %d", name, err, len(u.Groups))
				}
			}
		})
	}
}
