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

// diskDirEnv names a directory on a disk file system (ext4, xfs) for the
// tests of the log's direct I/O writer: TMPDIR is often a tmpfs, which may
// lack O_DIRECT. make test sets it.
const diskDirEnv = "OTPGATE_TEST_DISK_DIR"

// directIODir returns a fresh directory under $OTPGATE_TEST_DISK_DIR in
// which direct I/O works, removed when the test ends. Without the variable,
// or where direct I/O does not work, the test skips saying so; when CI=true
// it fails instead, so CI never passes by skipping the direct writer.
func directIODir(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	base := os.Getenv(diskDirEnv)
	if base == "" {
		skip("set %s to a directory on a disk file system (ext4, xfs; tmpfs may lack O_DIRECT) to run this direct I/O test; make test sets it", diskDirEnv)
	}
	dir, err := os.MkdirTemp(base, "otpgate-store-test-")
	if err != nil {
		t.Fatalf("%s: %v", diskDirEnv, err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := probeDirectIO(dir); err != nil {
		skip("direct I/O does not work in %s=%s: %v", diskDirEnv, base, err)
	}
	return dir
}

// TestWALAppendWholeBlocks: appends of records smaller than, across and
// bigger than a block, with each writer this platform has, leave the log
// exactly as the records in order with zeros after the last one, to the
// end of its block; and a crash replays the last of each user.
func TestWALAppendWholeBlocks(t *testing.T) {
	for _, kind := range walWriterKinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			if kind == LogWriterDirect {
				dir = directIODir(t)
			}
			path := filepath.Join(dir, "otpgate.db")
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
				t.Fatalf("%s writer: %v", kind, err)
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
