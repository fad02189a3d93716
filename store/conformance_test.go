package store_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/storetest"
)

// TestConformance runs the suite every backend passes on bbolt.
func TestConformance(t *testing.T) {
	paths := map[store.Store]string{}
	var lastKey string // Restore's backup comes from the store opened last
	openAt := func(t *testing.T, path string) store.Store {
		t.Helper()
		key := filepath.Join(filepath.Dir(path), store.DefaultKeyFileName)
		st, err := store.Open(path, store.Options{KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		paths[st], lastKey = path, key
		return st
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) store.Store { return openAt(t, filepath.Join(t.TempDir(), "otpgate.db")) },
		Reopen: func(t *testing.T, st store.Store) store.Store {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return openAt(t, paths[st])
		},
		Restore: func(t *testing.T, backup []byte) store.Store {
			path := filepath.Join(t.TempDir(), "restored.db")
			if err := os.WriteFile(path, backup, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(path, store.Options{KeyFile: lastKey})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		Migrated: func(t *testing.T) (store.Store, []string) {
			dir := t.TempDir()
			path := filepath.Join(dir, "otpgate.db")
			copyTo(t, filepath.Join("testdata", "schema1.db"), path)
			copyTo(t, filepath.Join("testdata", "schema1.key"), filepath.Join(dir, "seed.key"))
			st := openAt(t, path)
			list, err := st.List(context.Background())
			if err != nil || len(list) == 0 {
				t.Fatalf("fixture: %d users, %v", len(list), err)
			}
			var names []string
			for _, u := range list {
				names = append(names, u.Name)
			}
			return st, names
		},
		FullDisk: fullDisk(paths),
	})
}

func copyTo(t *testing.T, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fullDisk limits the size of every file this process writes to the
// database's size now (RLIMIT_FSIZE), so growing it fails with EFBIG the
// way ENOSPC would.
func fullDisk(paths map[store.Store]string) func(t *testing.T, st store.Store, fn func()) {
	if runtime.GOOS != "linux" {
		return nil
	}
	return func(t *testing.T, st store.Store, fn func()) {
		fi, err := os.Stat(paths[st])
		if err != nil {
			t.Fatal(err)
		}
		var old syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
		signal.Ignore(syscall.SIGXFSZ)
		lim := old
		lim.Cur = uint64(fi.Size())
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
		defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
		fn()
	}
}
