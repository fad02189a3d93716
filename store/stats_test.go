package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestStats: appends count batches and records; a background checkpoint
// that fails and the write transaction that then checkpoints inline are
// counted apart.
func TestStats(t *testing.T) {
	ctx := context.Background()
	var logged bytes.Buffer
	db, err := Open(filepath.Join(t.TempDir(), "otpgate.db"), Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := gateCheckpoints(db, 4)
	if err := db.Import(ctx, manyUsers(t, "u", 6)); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s != (Stats{LogWriter: db.LogWriter()}) {
		t.Fatalf("after an import: %+v, want nothing counted", s)
	}
	for i := range 4 {
		setStep(t, db, userName(i), 7) // one append each; the 4th fills the overlay
	}
	g.hold(t)
	g.answer <- errors.New("disk full (test)")
	setStep(t, db, userName(0), 8)
	if err := db.Delete(ctx, userName(1)); err != nil { // takes the failure, checkpoints inline
		t.Fatal(err)
	}
	s := db.Stats()
	if s.LogAppends != 5 || s.LogRecords != 5 || s.LogAppendErrors != 0 || s.LogAppendTime <= 0 {
		t.Errorf("appends %d, records %d, errors %d, time %v; want 5, 5, 0, > 0",
			s.LogAppends, s.LogRecords, s.LogAppendErrors, s.LogAppendTime)
	}
	if s.Checkpoints != 1 || s.CheckpointFailures != 1 {
		t.Errorf("checkpoints %d, failures %d; want 1 and 1", s.Checkpoints, s.CheckpointFailures)
	}
	if s.LogWriter == "" || s.LogWriter != db.LogWriter() {
		t.Errorf("log writer %q, want %q", s.LogWriter, db.LogWriter())
	}
	// Nobody waits for a background checkpoint's error: it is logged, once,
	// and so is the checkpoint that ends the failures.
	out := logged.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "copying the write-ahead log into the database failed") ||
		!strings.Contains(out, "disk full (test)") {
		t.Errorf("want one warning with the error, logged:\n%s", out)
	}
	if strings.Count(out, "level=INFO") != 1 || !strings.Contains(out, "copied into the database again") || !strings.Contains(out, "failed_attempts=1") {
		t.Errorf("want one line saying the checkpoints work again, logged:\n%s", out)
	}
}

// TestCheckpointFailuresLoggedOnce: a run of failed checkpoints (retried
// every second while the disk is full) is one warning, and the checkpoint
// that ends it one line with the count; all of them are counted.
func TestCheckpointFailuresLoggedOnce(t *testing.T) {
	var logged bytes.Buffer
	c := &committer{logger: slog.New(slog.NewTextHandler(&logged, nil))}
	full := errors.New("no space left on device (test)")
	for _, err := range []error{full, full, full, nil, nil, full, nil} {
		c.checkpointResult(err)
	}
	out := logged.String()
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per run of failures):\n%s", n, out)
	}
	if !strings.Contains(out, "failed_attempts=3") || !strings.Contains(out, "failed_attempts=1") || strings.Count(out, "level=INFO") != 2 {
		t.Errorf("want the end of each run logged with its count (3, then 1):\n%s", out)
	}
	if ok, failed := c.stats.checkpoints.Load(), c.stats.checkpointFailures.Load(); ok != 3 || failed != 4 {
		t.Errorf("checkpoints %d, failures %d; want 3 and 4", ok, failed)
	}
}
