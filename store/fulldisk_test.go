//go:build linux

package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const fullDiskEnv = "OTPGATE_STORE_FULLDISK_DB"

// TestFullDisk simulates a full disk: a child process (this test binary)
// runs with RLIMIT_FSIZE at the current file size, so growing the database
// fails with EFBIG the way ENOSPC would. The failed Import must come back
// as a wrapped error and leave the database exactly as it was.
func TestFullDisk(t *testing.T) {
	if path := os.Getenv(fullDiskEnv); path != "" {
		fullDiskChild(path)
		return
	}
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "keep", 20)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDisk$", "-test.v")
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "IMPORT-FAILED: store: import") {
		t.Fatalf("child did not report a wrapped import error:\n%s", out)
	}
	t.Logf("child output:\n%s", out)

	b := rawBolt(t, path)
	err = b.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("database damaged after the failed write: %v", err)
	}
	b.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 20 {
		t.Fatalf("%d users after the failed import, want the 20 from before", len(list))
	}
}

func fullDiskChild(path string) {
	fail := func(format string, args ...any) {
		fmt.Printf("CHILD-ERROR: "+format+"\n", args...)
		os.Exit(3)
	}
	fi, err := os.Stat(path)
	if err != nil {
		fail("%v", err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	lim := &syscall.Rlimit{Cur: uint64(fi.Size()), Max: uint64(fi.Size())}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, lim); err != nil {
		fail("setrlimit: %v", err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		fail("open: %v", err)
	}
	users := manyUsers(nil, "big", 5000)
	err = db.Import(context.Background(), users)
	if err == nil {
		fail("import of 5000 users succeeded within %d bytes", fi.Size())
	}
	fmt.Printf("IMPORT-FAILED: %v\n", err)
	if _, err := db.Get(context.Background(), "keep000000"); err != nil {
		fail("get after failed import: %v", err)
	}
	if err := db.Close(); err != nil {
		fail("close: %v", err)
	}
	fmt.Println("CHILD-OK size " + strconv.FormatInt(fi.Size(), 10) + " " + filepath.Base(path))
}
