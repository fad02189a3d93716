package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store/loginlog"
)

// powerFS is a loginlog.FS whose files remember what a power loss would
// leave of them: the bytes as of their last Sync, and the writes since, in
// order.
type powerFS struct {
	mu    sync.Mutex
	files map[string]*powerFile
}

type powerFile struct {
	*os.File
	mu      sync.Mutex
	durable []byte
	pending []pendingWrite
}

// pendingWrite is a WriteAt (data) or a Truncate (data nil) not yet synced.
type pendingWrite struct {
	off  int64
	data []byte
}

func (fs *powerFS) OpenFile(name string, flag int, perm os.FileMode) (loginlog.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	pf := &powerFile{File: f}
	if flag&(os.O_RDWR|os.O_WRONLY) != 0 {
		fs.mu.Lock()
		if fs.files == nil {
			fs.files = map[string]*powerFile{}
		}
		fs.files[name] = pf
		fs.mu.Unlock()
	}
	return pf, nil
}

func (f *powerFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.pending = append(f.pending, pendingWrite{off, append([]byte{}, p...)})
	f.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *powerFile) Truncate(size int64) error {
	f.mu.Lock()
	f.pending = append(f.pending, pendingWrite{off: size})
	f.mu.Unlock()
	return f.File.Truncate(size)
}

func (f *powerFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := io.ReadAll(io.NewSectionReader(f.File, 0, 1<<40))
	if err != nil {
		return err
	}
	f.durable, f.pending = data, nil
	return f.File.Sync()
}

// afterPowerLoss is what the disk holds if the power fails now and only
// the first keep unsynced writes reached it, the last of them cut to part
// bytes (whole if part < 0).
func (f *powerFile) afterPowerLoss(keep, part int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := append([]byte{}, f.durable...)
	for i, w := range f.pending[:keep] {
		if w.data == nil {
			img = img[:min(int64(len(img)), w.off)]
			continue
		}
		d := w.data
		if i == keep-1 && part >= 0 && part < len(d) {
			d = d[:part]
		}
		if end := int(w.off) + len(d); end > len(img) {
			img = append(img, make([]byte, end-len(img))...)
		}
		copy(img[w.off:], d)
	}
	return img
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// crash stops db the way a kill -9 or a power loss leaves it: no
// checkpoint, no clean mark, files closed as they are.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.mu.Lock()
	db.closed = true
	db.mu.Unlock()
	if !db.ro {
		close(db.stop)
		<-db.done
		db.llog.Close()
	}
	db.bolt.Close()
}

func acceptStep(step uint64) func(u *User) error {
	return func(u *User) error {
		if step <= u.TOTP.LastStep {
			return errCodeReused
		}
		u.TOTP.LastStep = step
		return nil
	}
}

// TestPowerLoss plays logins, syncs, fence moves, checkpoints and admin
// writes, cuts the power at a chosen point (keeping only what was synced
// of the login log, plus a prefix of the writes since, the last one maybe
// torn), then opens the database on a new boot: every step accepted
// before the cut must be refused. Many cut points, each with its own
// seed; bbolt's part is as of its last commit, since each is synced.
func TestPowerLoss(t *testing.T) {
	ctx := context.Background()
	for cut := range 120 {
		rng := rand.New(rand.NewPCG(uint64(cut), 16))
		dir := t.TempDir()
		path := filepath.Join(dir, "otpgate.db")
		clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		fs := &powerFS{}
		db, err := open(path, Options{}, hooks{now: clock.Now, bootID: func() string { return "boot-1" }, fs: fs, tick: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Import(ctx, manyUsers(t, "u", 8)); err != nil {
			t.Fatal(err)
		}
		type acc struct {
			user string
			step uint64
		}
		var accepted []acc
		for op := range 10 + cut%50 {
			clock.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
			name := userName(rng.IntN(8))
			switch r := rng.IntN(20); {
			case r == 0:
				db.tick()
			case r == 1:
				if err := db.checkpoint(rng.IntN(2) == 0); err != nil {
					t.Fatal(err)
				}
			case r == 2:
				if err := db.Update(ctx, name, func(u *User) error { u.Groups = []string{fmt.Sprint(op)}; return nil }); err != nil {
					t.Fatal(err)
				}
			default:
				step := uint64(clock.Now().Unix()/30) + uint64(rng.IntN(2))
				err := db.UpdateLogin(ctx, name, acceptStep(step))
				if err == nil {
					accepted = append(accepted, acc{name, step})
				} else if !errors.Is(err, errCodeReused) {
					t.Fatal(err)
				}
			}
		}
		f := fs.files[logPath(path)]
		keep := rng.IntN(len(f.pending) + 1)
		part := -1
		if keep > 0 && rng.IntN(2) == 0 {
			part = rng.IntN(len(f.pending[keep-1].data) + 1)
		}
		img := f.afterPowerLoss(keep, part)
		crash(t, db)
		if err := os.WriteFile(logPath(path), img, 0o600); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Duration(5+rng.IntN(60)) * time.Second) // the reboot
		db, err = open(path, Options{}, hooks{now: clock.Now, bootID: func() string { return "boot-2" }, fs: fs, tick: -1})
		if err != nil {
			t.Fatalf("cut %d: open after the power loss: %v", cut, err)
		}
		for _, a := range accepted {
			if err := db.UpdateLogin(ctx, a.user, acceptStep(a.step)); !errors.Is(err, errCodeReused) {
				t.Fatalf("cut %d (kept %d writes, part %d): step %d of %s accepted again after the power loss: %v",
					cut, keep, part, a.step, a.user, err)
			}
		}
		// The refusal ends once the clock has passed the fence.
		clock.Add(fenceAhead + 31*time.Second)
		if err := db.UpdateLogin(ctx, userName(0), acceptStep(uint64(clock.Now().Unix()/30))); err != nil {
			t.Fatalf("cut %d: a fresh code after the fence: %v", cut, err)
		}
		db.Close()
	}
}

// TestKill9LosesNothing: a crash on the same boot keeps every login (the
// page cache held the log), and refuses nothing more.
func TestKill9LosesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "otpgate.db")
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h := hooks{now: clock.Now, bootID: func() string { return "boot-1" }, tick: -1}
	db, err := open(path, Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Import(ctx, manyUsers(t, "u", 4)); err != nil {
		t.Fatal(err)
	}
	step := uint64(clock.Now().Unix() / 30)
	for i := range 4 {
		if err := db.UpdateLogin(ctx, userName(i), acceptStep(step+uint64(i%2))); err != nil {
			t.Fatal(err)
		}
	}
	crash(t, db)
	db, err = open(path, Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 4 {
		u, err := db.Get(ctx, userName(i))
		if err != nil || u.TOTP.LastStep != step+uint64(i%2) {
			t.Fatalf("%s after kill -9: last step %d, %v; want %d", userName(i), u.TOTP.LastStep, err, step+uint64(i%2))
		}
	}
	if db.floor != 0 {
		t.Errorf("refusing steps up to %d after a crash on the same boot", db.floor)
	}
}

// TestRefusalOutlivesCleanRestart: the refusal a power loss set holds
// through a clean restart until the clock passes it.
func TestRefusalOutlivesCleanRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "otpgate.db")
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	boot := "boot-1"
	h := hooks{now: clock.Now, bootID: func() string { return boot }, tick: -1}
	db, err := open(path, Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Import(ctx, manyUsers(t, "u", 1)); err != nil {
		t.Fatal(err)
	}
	crash(t, db)
	boot = "boot-2"
	for range 2 {
		if db, err = open(path, Options{}, h); err != nil {
			t.Fatal(err)
		}
		u, _ := db.Get(ctx, userName(0))
		if want := uint64(clock.Now().Unix()/30) + 1; u.TOTP.LastStep < want {
			t.Fatalf("last step shown %d, want at least %d while the fence holds", u.TOTP.LastStep, want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// userName is the name manyUsers(_, "u", _) gives user i.
func userName(i int) string { return fmt.Sprintf("u%06d", i) }
