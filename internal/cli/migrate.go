package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/safefile"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

// defaultProgressEvery is how many users migrate copies between two
// progress lines.
const defaultProgressEvery = 100000

// errStopWalk ends a ForEach early; never returned to the caller.
var errStopWalk = errors.New("stop")

func migrateCommand() *command {
	var to, dsn, dsnFile string
	var replace bool
	var every int
	return &command{
		name:    "migrate",
		args:    "--to postgres|bbolt [--dsn-file FILE] [--replace]",
		summary: "Copy every user from the bbolt database to PostgreSQL, or back.",
		help: `--to postgres copies the bbolt database in data_dir to the PostgreSQL database
named by --dsn-file, --dsn, or else [store] dsn_file / dsn in the config; --to
bbolt copies that PostgreSQL database into a new bbolt database in data_dir.
The [store] backend setting is not read and not changed: set it once the
copy is done, then start otpgated.

Everything is carried: users with their sealed seeds (the same key_file
must be used on both sides: the seeds are not decrypted for the move),
passwords, groups, recovery codes, pending enrollments, the last accepted
time step (a code used before the move stays used after it), lockout
counters, and enrollment links. Challenge States and the password backoff
per station are short-lived and not carried.

All or nothing: PostgreSQL is filled in one transaction; bbolt is written
to a new file beside the database and renamed into place only when
complete. A target that holds users or links is refused unless --replace,
which deletes what it holds (take a backup first).

The source must not change during the copy: migrate refuses while otpgated
runs on it (it holds the bbolt lock; on PostgreSQL, a node's heartbeat in
the last 30 seconds). Stop otpgated on every node first. A progress line
goes to stderr every --progress users.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&to, "to", "", "the backend to copy to: `postgres` or bbolt")
			fs.StringVar(&dsnFile, "dsn-file", "", "read the PostgreSQL connection string from `FILE` (default [store] dsn_file)")
			fs.StringVar(&dsn, "dsn", "", "the PostgreSQL connection string `DSN` (visible to other users in ps: prefer --dsn-file)")
			fs.BoolVar(&replace, "replace", false, "delete what the target holds instead of refusing a target that is not empty")
			fs.IntVar(&every, "progress", defaultProgressEvery, "print a progress line to stderr every `N` users (default 100000; 0: none)")
		},
		maxArgs: 0,
		run: func(a *app, _ *flag.FlagSet, _ []string) error {
			if to != "postgres" && to != "bbolt" {
				return usagef("migrate: --to must be postgres or bbolt")
			}
			if dsn != "" && dsnFile != "" {
				return usagef("migrate: give --dsn or --dsn-file, not both")
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			m := &migration{a: a, cfg: cfg, replace: replace, every: every, start: time.Now()}
			if m.dsn, err = migrateDSN(cfg, dsn, dsnFile); err != nil {
				return err
			}
			if to == "postgres" {
				return m.toPostgres()
			}
			return m.toBbolt()
		},
	}
}

// migrateDSN is the connection string from the flags, else from [store].
func migrateDSN(cfg *config.Config, dsn, dsnFile string) (string, error) {
	if dsn != "" {
		return dsn, nil
	}
	sc := cfg.Store
	if dsnFile != "" {
		sc = config.StoreConfig{DSNFile: dsnFile}
	}
	got, err := sc.ReadDSN()
	if err != nil {
		return "", err
	}
	if got == "" {
		return "", usagef("migrate: no PostgreSQL database named: pass --dsn-file FILE, or set [store] dsn_file in %s", cfg.Path)
	}
	return got, nil
}

// migration is one run of migrate.
type migration struct {
	a       *app
	cfg     *config.Config
	dsn     string
	replace bool
	every   int
	start   time.Time
	users   int
}

// counted is called once per user copied: the progress line.
func (m *migration) counted() {
	m.users++
	if m.every > 0 && m.users%m.every == 0 {
		fmt.Fprintf(m.a.stderr, "otpgate: migrate: %d users copied (%s)\n", m.users, time.Since(m.start).Round(100*time.Millisecond))
	}
}

// openPostgres opens the PostgreSQL side and refuses when otpgated nodes
// run on it: they would change it under the copy, or serve from it
// half-way.
func (m *migration) openPostgres() (*postgres.DB, error) {
	ctx, cancel := context.WithTimeout(m.a.ctx, 30*time.Second)
	defer cancel()
	pg, err := postgres.Open(ctx, m.dsn, postgres.Options{KeyFile: m.cfg.KeyPath(), MaxConns: 2})
	if err != nil {
		return nil, fmt.Errorf("migrate: open PostgreSQL: %w", err)
	}
	nodes, err := pg.LiveNodes(ctx)
	if err != nil {
		pg.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if len(nodes) > 0 {
		pg.Close()
		return nil, fmt.Errorf("migrate: otpgated runs on the PostgreSQL database (%s seen in the last 30s); stop it on every node first", strings.Join(nodes, ", "))
	}
	return pg, nil
}

// openBbolt opens the bbolt database at path for migrate, explaining a
// lock held by otpgated.
func (m *migration) openBbolt(path string, readOnly bool) (*store.DB, error) {
	st, err := store.Open(path, store.Options{KeyFile: m.cfg.KeyPath(), LockTimeout: storeLockTimeout, ReadOnly: readOnly})
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, store.ErrLocked):
		return nil, fmt.Errorf("migrate: otpgated (or another otpgate) is running on %s: it holds the database lock; stop it first (systemctl stop otpgated)", path)
	case errors.Is(err, os.ErrNotExist) && readOnly:
		return nil, fmt.Errorf("migrate: no bbolt database at %s (data_dir in %s)", path, m.cfg.Path)
	default:
		return nil, fmt.Errorf("migrate: open %s: %w", path, err)
	}
}

func (m *migration) toPostgres() error {
	if err := checkDataDirs(m.cfg, daemonUsers(m.cfg)); err != nil {
		return err
	}
	src, err := m.openBbolt(m.cfg.DBPath(), true)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := m.openPostgres()
	if err != nil {
		return err
	}
	defer dst.Close()
	links := 0
	n, err := dst.Load(m.a.ctx, m.replace, func(l *postgres.Loader) error {
		err := src.ForEach(m.a.ctx, func(u store.User) error {
			if err := l.AddUser(u); err != nil {
				return err
			}
			m.counted()
			return nil
		})
		if err != nil {
			return err
		}
		return src.ForEachEnrollLink(m.a.ctx, func(hl store.HashedEnrollLink) error {
			links++
			return l.AddEnrollLink(hl)
		})
	})
	if errors.Is(err, postgres.ErrNotEmpty) {
		return fmt.Errorf("migrate: %w; pass --replace to delete what it holds (nothing was copied)", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: nothing was copied: %w", err)
	}
	fmt.Fprintf(m.a.stdout, "copied %d users and %d enrollment links from %s to PostgreSQL in %s\n"+
		"next: set [store] backend = \"postgres\" and dsn_file in %s on every node, the same key file %s on each, and start otpgated\n",
		n, links, m.cfg.DBPath(), time.Since(m.start).Round(time.Millisecond), m.cfg.Path, m.cfg.KeyPath())
	return nil
}

// bboltBatch is how many users go into one bbolt transaction of the new file.
const bboltBatch = 10000

func (m *migration) toBbolt() error {
	if err := checkDataDirs(m.cfg, daemonUsers(m.cfg)); err != nil {
		return err
	}
	path := m.cfg.DBPath()
	// An existing database is opened for writing: its lock keeps
	// otpgated away until the new file is in place, and a login log a
	// crash left is folded into it (and removed by Close), so that it
	// cannot be replayed onto the new file.
	var old *store.DB
	if _, err := os.Stat(path); err == nil {
		if old, err = m.openBbolt(path, false); err != nil {
			return err
		}
		defer func() {
			if old != nil {
				old.Close()
			}
		}()
		if err := m.checkEmpty(old, path); err != nil {
			return err
		}
	}
	src, err := m.openPostgres()
	if err != nil {
		return err
	}
	defer src.Close()

	tmp := path + ".migrating"
	for _, f := range store.Files(tmp) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("migrate: remove the leftover %s: %w", f, err)
		}
	}
	dst, err := store.Open(tmp, store.Options{KeyFile: m.cfg.KeyPath()})
	if err != nil {
		return fmt.Errorf("migrate: create %s: %w", tmp, err)
	}
	links, err := m.fillBbolt(src, dst)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp, cerr)
	}
	if err != nil {
		for _, f := range store.Files(tmp) {
			os.Remove(f)
		}
		return fmt.Errorf("migrate: nothing was copied (%s left as it was): %w", path, err)
	}
	if old != nil {
		if err := old.Close(); err != nil {
			return fmt.Errorf("migrate: close %s: %w", path, err)
		}
		old = nil
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("migrate: rename %s to %s: %w", tmp, path, err)
	}
	if err := safefile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := matchDataDirOwner(path, m.cfg.KeyPath()); err != nil {
		return err
	}
	fmt.Fprintf(m.a.stdout, "copied %d users and %d enrollment links from PostgreSQL to %s in %s\n"+
		"next: set [store] backend = \"bbolt\" in %s (or remove backend) and start otpgated on this one node\n",
		m.users, links, path, time.Since(m.start).Round(time.Millisecond), m.cfg.Path)
	return nil
}

// checkEmpty refuses a bbolt target that holds users or links, unless
// --replace.
func (m *migration) checkEmpty(db *store.DB, path string) error {
	if m.replace {
		return nil
	}
	users, links := 0, 0
	err := db.ForEach(m.a.ctx, func(store.User) error { users++; return errStopWalk })
	if err == nil || errors.Is(err, errStopWalk) {
		err = db.ForEachEnrollLink(m.a.ctx, func(store.HashedEnrollLink) error { links++; return errStopWalk })
	}
	if err != nil && !errors.Is(err, errStopWalk) {
		return fmt.Errorf("migrate: read %s: %w", path, err)
	}
	if users+links > 0 {
		return fmt.Errorf("migrate: %s is not empty (it holds users or enrollment links); pass --replace to replace it with the copy (nothing was copied)", path)
	}
	return nil
}

// fillBbolt copies users in batches (each one bbolt transaction of the
// new file, which nobody sees until the rename) and then the links.
func (m *migration) fillBbolt(src *postgres.DB, dst *store.DB) (int, error) {
	batch := make([]store.User, 0, bboltBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.Import(m.a.ctx, batch)
		batch = batch[:0]
		return err
	}
	err := src.ForEach(m.a.ctx, func(u store.User) error {
		batch = append(batch, u)
		m.counted()
		if len(batch) == bboltBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	var links []store.HashedEnrollLink
	if err := src.ForEachEnrollLink(m.a.ctx, func(hl store.HashedEnrollLink) error {
		links = append(links, hl)
		return nil
	}); err != nil {
		return 0, err
	}
	return len(links), dst.ImportEnrollLinks(m.a.ctx, links)
}
