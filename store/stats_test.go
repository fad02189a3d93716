package store

import (
	"context"
	"errors"
	"testing"
)

// TestStats: appends count batches and records; a background checkpoint
// that fails and the write transaction that then checkpoints inline are
// counted apart.
func TestStats(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
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
}
