package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkpointGate holds background checkpoints: each one waits in the hook
// until the test answers it with the error it should fail with (nil: go on
// and commit).
type checkpointGate struct {
	started chan struct{}
	answer  chan error
}

// gateCheckpoints installs a gate on db's committer and lowers the
// checkpoint threshold to entries records. Call it before any write: the
// committer reads both after each batch.
func gateCheckpoints(db *DB, entries int) *checkpointGate {
	g := &checkpointGate{started: make(chan struct{}, 8), answer: make(chan error)}
	db.wal.maxEntries = entries
	db.commit.cpHook = func() error {
		g.started <- struct{}{}
		return <-g.answer
	}
	return g
}

// hold waits until a background checkpoint has started and is held.
func (g *checkpointGate) hold(t *testing.T) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no background checkpoint started")
	}
}

// waitThawed waits until the committer has taken a successful checkpoint's
// result (the frozen set is gone).
func waitThawed(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, frozen := db.wal.frozenSet(); !frozen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the frozen set is still there 10 s after its checkpoint")
		}
		time.Sleep(time.Millisecond)
	}
}

func setStep(t *testing.T, db *DB, name string, step uint64) {
	t.Helper()
	err := db.Update(context.Background(), name, func(u *User) error { u.TOTP.LastStep = step; return nil })
	if err != nil {
		t.Fatalf("update %s to step %d: %v", name, step, err)
	}
}

func wantSteps(t *testing.T, db *DB, want map[string]uint64) {
	t.Helper()
	for name, step := range want {
		u, err := db.Get(context.Background(), name)
		if err != nil || u.TOTP.LastStep != step {
			t.Fatalf("%s: %v, last step %d, want %d", name, err, u.TOTP.LastStep, step)
		}
	}
}

func userName(i int) string { return fmt.Sprintf("u%06d", i) }

// TestWALBackgroundCheckpoint: while a checkpoint is held, code checks go on
// (logged in the other region) and reads see the frozen records; once it
// commits, bbolt holds them and the frozen set is dropped; a crash after
// that loses nothing.
func TestWALBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	g := gateCheckpoints(db, 8)
	if err := db.Import(ctx, manyUsers(t, "u", 12)); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		setStep(t, db, userName(i), 1)
	}
	g.hold(t)
	for _, i := range []int{0, 1, 8, 9} {
		setStep(t, db, userName(i), 2) // would hang here if logging waited for the checkpoint
	}
	frozen, seq, ok := db.wal.frozenSet()
	if !ok || len(frozen) != 8 || seq != 8 {
		t.Fatalf("frozen set: %d records up to %d (%v); want 8 up to 8", len(frozen), seq, ok)
	}
	want := map[string]uint64{"u000000": 2, "u000001": 2, "u000005": 1, "u000008": 2, "u000010": 0}
	wantSteps(t, db, want)
	list, err := db.List(ctx)
	if err != nil || len(list) != 12 || list[0].TOTP.LastStep != 2 || list[5].TOTP.LastStep != 1 {
		t.Fatalf("List while the checkpoint is held: %d users, %v", len(list), err)
	}

	g.answer <- nil
	waitThawed(t, db)
	var applied uint64
	if err := db.read(func(tx *bolt.Tx) error {
		v, err := userValue(tx, "test", "u000005")
		if err == nil && parseStored(t, v).TOTP.LastStep != 1 {
			err = errors.New("u000005 in bbolt is not the frozen record")
		}
		if err == nil {
			applied, err = readApplied(tx)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if applied != 8 {
		t.Fatalf("wal_applied %d after the checkpoint, want 8", applied)
	}
	wantSteps(t, db, want)

	crash(t, db)
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantSteps(t, db, want)
}

// TestWALReplayBothRegions: a crash while a checkpoint has not committed
// leaves records above wal_applied in both regions; replay applies them in
// sequence order, whichever region holds the older ones.
func TestWALReplayBothRegions(t *testing.T) {
	tests := []struct {
		name        string
		generations int // checkpoints that commit before the one that fails
		olderRegion int64
	}{
		{"region 0 older", 0, 0},
		{"region 1 older", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, path := testDB(t)
			g := gateCheckpoints(db, 4)
			if err := db.Import(ctx, manyUsers(t, "u", 6)); err != nil {
				t.Fatal(err)
			}
			step := uint64(0)
			for range tt.generations {
				step++
				for i := range 4 {
					setStep(t, db, userName(i), step)
				}
				g.hold(t)
				g.answer <- nil
				waitThawed(t, db)
			}
			step++
			for i := range 4 {
				setStep(t, db, userName(i), step) // frozen, its checkpoint fails
			}
			g.hold(t)
			g.answer <- errors.New("disk full (test)")
			setStep(t, db, userName(0), step+1) // the newer region
			setStep(t, db, userName(4), step+1)
			if db.wal.region == tt.olderRegion {
				t.Fatalf("active region %d; the test meant the other one", db.wal.region)
			}
			crash(t, db)

			data, err := os.ReadFile(WALPath(path))
			if err != nil {
				t.Fatal(err)
			}
			for r := range int64(2) {
				if bytes.Count(data[r*walRegionSize:r*walRegionSize+64], []byte{0}) == 64 {
					t.Fatalf("region %d is empty; the test would prove nothing", r)
				}
			}
			db, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			wantSteps(t, db, map[string]uint64{
				"u000000": step + 1, "u000001": step, "u000003": step, "u000004": step + 1, "u000005": 0,
			})
		})
	}
}

// TestWALFailedCheckpointThenDelete: after a background checkpoint failed,
// a delete puts every logged record into bbolt in its own transaction, so
// replay after a crash neither resurrects the user nor loses the others.
func TestWALFailedCheckpointThenDelete(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	g := gateCheckpoints(db, 4)
	if err := db.Import(ctx, manyUsers(t, "u", 6)); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		setStep(t, db, userName(i), 7)
	}
	g.hold(t)
	g.answer <- errors.New("disk full (test)")
	setStep(t, db, userName(0), 8)
	if err := db.Delete(ctx, userName(1)); err != nil { // its record is in the frozen set
		t.Fatal(err)
	}
	if _, _, frozen := db.wal.frozenSet(); frozen {
		t.Fatal("the frozen set survived a write transaction")
	}
	setStep(t, db, userName(2), 9)
	crash(t, db)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Get(ctx, userName(1)); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("deleted user after replay: %v, want ErrUserNotFound", err)
	}
	wantSteps(t, db, map[string]uint64{"u000000": 8, "u000002": 9, "u000003": 7, "u000004": 0})
}

// TestWALRegionFullWaitsForCheckpoint: with a checkpoint held, logging
// stops once the active region is full (it can't overwrite the frozen
// records) and resumes when the checkpoint commits; nothing is lost.
func TestWALRegionFullWaitsForCheckpoint(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	g := gateCheckpoints(db, 4)
	waiting := make(chan struct{}, 1)
	db.commit.cpWaitHook = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	const users, updates = 10, 3000
	if err := db.Import(ctx, manyUsers(t, "u", users)); err != nil {
		t.Fatal(err)
	}
	big := string(bytes.Repeat([]byte("g"), 3000)) // ~1,300 records fill a region
	var done atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for i := range updates {
			err := db.Update(ctx, userName(i%users), func(u *User) error {
				u.Groups, u.TOTP.LastStep = []string{big}, uint64(i+1)
				return nil
			})
			if err != nil {
				errc <- err
				return
			}
			done.Add(1)
		}
		errc <- nil
	}()
	g.hold(t)
	// Wait until logging stops: the committer waits for the held
	// checkpoint (or everything went through, a failure).
	select {
	case <-waiting:
	case err := <-errc:
		t.Fatalf("all %d updates ended (err %v) while the checkpoint was held", updates, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("the committer never waited for the held checkpoint (%d updates done)", done.Load())
	}
	if n := done.Load(); n == updates || n*3000 > 2*walRegionSize {
		t.Fatalf("%d updates of 3 kB went through while the checkpoint was held; the regions hold %d bytes", n, 2*walRegionSize)
	}
	g.answer <- nil
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-g.started: // later checkpoints go through
			g.answer <- nil
			continue
		case <-time.After(20 * time.Second):
			t.Fatalf("updates stuck after the checkpoint was released (%d done)", done.Load())
		}
		break
	}
	var stop sync.WaitGroup
	stop.Go(func() { // answer checkpoints still to come (the close's is not gated)
		for {
			select {
			case <-g.started:
				g.answer <- nil
			case <-time.After(time.Second):
				return
			}
		}
	})
	want := map[string]uint64{}
	for i := updates - users; i < updates; i++ {
		want[userName(i%users)] = uint64(i + 1)
	}
	wantSteps(t, db, want)
	crash(t, db)
	stop.Wait()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantSteps(t, db, want)
}

// TestWALBatchBiggerThanRegion: a batch whose records do not fit in a whole
// region goes into bbolt with the rest of the log, and is durable.
func TestWALBatchBiggerThanRegion(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", maxBatch)); err != nil {
		t.Fatal(err)
	}
	setStep(t, db, userName(0), 1) // logged before: must reach bbolt too
	big := string(bytes.Repeat([]byte("g"), 5000))
	release := holdCommitter(t, db)
	errs := make(chan error, maxBatch)
	for i := range maxBatch {
		go func() {
			errs <- db.Update(ctx, userName(i), func(u *User) error {
				u.Groups = []string{big}
				u.TOTP.LastStep += 10
				return nil
			})
		}()
	}
	waitQueued(t, db, maxBatch)
	release()
	for range maxBatch {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := db.commit.maxBatch.Load(); got != maxBatch {
		t.Fatalf("largest batch %d, want %d: the test would not fill a region", got, maxBatch)
	}
	if n := len(db.wal.snapshot()); n != 0 {
		t.Fatalf("%d records in the log; want the batch (and the record before it) in bbolt", n)
	}
	crash(t, db)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]uint64{userName(0): 11}
	for i := 1; i < maxBatch; i += 97 {
		want[userName(i)] = 10
	}
	wantSteps(t, db, want)
	if u, _ := db.Get(ctx, userName(maxBatch-1)); len(u.Groups) != 1 || u.Groups[0] != big {
		t.Fatalf("last user after the crash: %d groups", len(u.Groups))
	}
}
