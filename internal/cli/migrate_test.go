package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

// migrateUsers is every kind of state migrate must carry.
func migrateUsers(db interface {
	HashRecoveryCode(name, code string) string
}) []store.User {
	now := time.Unix(1_800_000_000, 0).UTC()
	secret := []byte("12345678901234567890")
	return []store.User{
		{Name: "alice", Groups: []string{"vpn", "admins"}, PasswordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", Created: now,
			TOTP:          &store.TOTP{Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: 60_000_123, Enrolled: now},
			RecoveryCodes: []string{db.HashRecoveryCode("alice", "ABCD-EFGH"), db.HashRecoveryCode("alice", "IJKL-MNOP")},
			LastSuccess:   now.Add(time.Minute)},
		{Name: "bob", Created: now, Disabled: true,
			TOTP:         &store.TOTP{Secret: secret[:16], Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: 7, Enrolled: now},
			CodeFailures: 4, LockedUntil: now.Add(time.Hour), LastFailure: now},
		{Name: "carol", Created: now, PendingTOTP: &store.TOTP{Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: now}, PendingTries: 2},
	}
}

func migrateLink(user string, b byte) store.HashedEnrollLink {
	hash := make([]byte, store.LinkHashSize)
	hash[0] = b
	now := time.Unix(1_800_000_000, 0).UTC()
	return store.HashedEnrollLink{Hash: hash, Link: store.EnrollLink{User: user, Created: now, Expires: now.Add(time.Hour), Attempts: 1, Begun: true}}
}

type walker interface {
	ForEach(ctx context.Context, fn func(store.User) error) error
	ForEachEnrollLink(ctx context.Context, fn func(store.HashedEnrollLink) error) error
}

func contents(t *testing.T, w walker) ([]store.User, []store.HashedEnrollLink) {
	t.Helper()
	var users []store.User
	var links []store.HashedEnrollLink
	if err := w.ForEach(context.Background(), func(u store.User) error { users = append(users, u); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.ForEachEnrollLink(context.Background(), func(l store.HashedEnrollLink) error { links = append(links, l); return nil }); err != nil {
		t.Fatal(err)
	}
	return users, links
}

func (e *env) openPG(dsn string) *postgres.DB {
	e.t.Helper()
	pg, err := postgres.Open(context.Background(), dsn, postgres.Options{KeyFile: filepath.Join(e.dir, "data", "seed.key")})
	if err != nil {
		e.t.Fatal(err)
	}
	return pg
}

// TestMigrateBothWays copies a bbolt store with every kind of state to a
// real PostgreSQL and back, and checks both copies hold exactly what the
// original held; a target that is not empty is refused without --replace.
func TestMigrateBothWays(t *testing.T) {
	pg := testtool.StartPostgres(t)
	e := newEnv(t)
	ctx := context.Background()
	db := e.open()
	users := migrateUsers(db)
	if err := db.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := db.PutEnrollLink(ctx, migrateLink("carol", 1).Hash, migrateLink("carol", 1).Link); err != nil {
		t.Fatal(err)
	}
	// A login since: only in the login log until a checkpoint.
	if err := db.UpdateLogin(ctx, "alice", func(u *store.User) error { u.TOTP.LastStep++; return nil }); err != nil {
		t.Fatal(err)
	}
	wantUsers, wantLinks := contents(t, db)
	if got := wantUsers[0].TOTP.LastStep; got != 60_000_124 {
		t.Fatalf("alice's last step %d before the move", got)
	}

	// While otpgated holds the lock: refused, and said why.
	dsn := pg.NewDB()
	r := e.run("", "migrate", "--to", "postgres", "--dsn", dsn)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "otpgated (or another otpgate) is running on") {
		t.Errorf("source locked: exit %d, stderr %q", r.code, r.stderr)
	}
	db.Close()

	r = e.must("", "migrate", "--to", "postgres", "--dsn", dsn, "--progress", "2")
	if !strings.Contains(r.stderr, "otpgate: migrate: 2 users copied (") || !strings.Contains(r.stdout, "copied 3 users and 1 enrollment links") {
		t.Errorf("to postgres: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	p := e.openPG(dsn)
	gotUsers, gotLinks := contents(t, p)
	if !reflect.DeepEqual(gotUsers, wantUsers) || !reflect.DeepEqual(gotLinks, wantLinks) {
		t.Errorf("on PostgreSQL:\n%+v\n%+v\nwant\n%+v\n%+v", gotUsers, gotLinks, wantUsers, wantLinks)
	}
	if p.HashRecoveryCode("alice", "ABCD-EFGH") != wantUsers[0].RecoveryCodes[0] {
		t.Error("a recovery code hashes differently on PostgreSQL: it would not be accepted")
	}

	// A node running on PostgreSQL: refused both ways.
	for _, to := range []string{"postgres", "bbolt"} {
		r = e.run("", "migrate", "--to", to, "--dsn", dsn, "--replace")
		if r.code != ExitFailure || !strings.Contains(r.stderr, "otpgated runs on the PostgreSQL database") {
			t.Errorf("--to %s with a node running: exit %d, stderr %q", to, r.code, r.stderr)
		}
	}
	p.Close()

	// Not empty: refused without --replace, both ways, nothing changed.
	for _, to := range []string{"postgres", "bbolt"} {
		r = e.run("", "migrate", "--to", to, "--dsn", dsn)
		if r.code != ExitFailure || !strings.Contains(r.stderr, "--replace") || !strings.Contains(r.stderr, "nothing was copied") {
			t.Errorf("--to %s, target not empty: exit %d, stderr %q", to, r.code, r.stderr)
		}
	}

	// Back: into a fresh file, and over the old one with --replace.
	dbPath := filepath.Join(e.dir, "data", "otpgate.db")
	if err := os.Rename(dbPath, dbPath+".orig"); err != nil {
		t.Fatal(err)
	}
	r = e.must("", "migrate", "--to", "bbolt", "--dsn", dsn)
	if !strings.Contains(r.stdout, "copied 3 users and 1 enrollment links from PostgreSQL") {
		t.Errorf("to bbolt: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	e.must("", "migrate", "--to", "bbolt", "--dsn", dsn, "--replace")
	if _, err := os.Stat(dbPath + ".migrating"); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left: %v", err)
	}
	db = e.open()
	gotUsers, gotLinks = contents(t, db)
	db.Close()
	if !reflect.DeepEqual(gotUsers, wantUsers) || !reflect.DeepEqual(gotLinks, wantLinks) {
		t.Errorf("back on bbolt:\n%+v\n%+v\nwant\n%+v\n%+v", gotUsers, gotLinks, wantUsers, wantLinks)
	}

	// --replace on PostgreSQL: the old rows go in the same transaction.
	e.must("", "migrate", "--to", "postgres", "--dsn", dsn, "--replace")
	p = e.openPG(dsn)
	gotUsers, _ = contents(t, p)
	p.Close()
	if len(gotUsers) != len(wantUsers) {
		t.Errorf("after --replace PostgreSQL holds %d users, want %d", len(gotUsers), len(wantUsers))
	}
}

// TestMigrateAllOrNothing: a copy that fails half-way leaves the target
// as it was (PostgreSQL: one transaction; bbolt: the old file in place).
func TestMigrateAllOrNothing(t *testing.T) {
	pg := testtool.StartPostgres(t)
	e := newEnv(t)
	ctx := context.Background()
	db := e.open()
	if err := db.Import(ctx, migrateUsers(db)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	dsn := pg.NewDB()
	// The schema, then a trigger that fails the third user, after the
	// first two went in.
	e.openPG(dsn).Close()
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	pg.Psql(name, "CREATE FUNCTION no_carol() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'carol' THEN RAISE EXCEPTION 'no carol'; END IF; RETURN NEW; END $$")
	pg.Psql(name, "CREATE TRIGGER no_carol BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION no_carol()")
	r := e.run("", "migrate", "--to", "postgres", "--dsn", dsn)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "nothing was copied") {
		t.Errorf("failing copy: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := pg.Psql(name, "SELECT count(*) FROM users"); strings.TrimSpace(n) != "0" {
		t.Errorf("a failed copy left %s users on PostgreSQL", n)
	}

	// Back to bbolt, with a record on PostgreSQL that cannot be read (a
	// seed sealed for another name): the bbolt file stays as it was.
	pg.Psql(name, "DROP TRIGGER no_carol ON users")
	e.must("", "migrate", "--to", "postgres", "--dsn", dsn)
	pg.Psql(name, "INSERT INTO users SELECT 'zed', record FROM users WHERE name = 'alice'")
	dbPath := filepath.Join(e.dir, "data", "otpgate.db")
	db = e.open()
	before, _ := contents(t, db)
	db.Close()
	r = e.run("", "migrate", "--to", "bbolt", "--dsn", dsn, "--replace")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "nothing was copied") || !strings.Contains(r.stderr, "zed") {
		t.Errorf("failing copy to bbolt: exit %d, stderr %q", r.code, r.stderr)
	}
	db = e.open()
	after, _ := contents(t, db)
	db.Close()
	if !reflect.DeepEqual(after, before) {
		t.Errorf("a failed copy to bbolt changed the database: %+v, was %+v", after, before)
	}
	if _, err := os.Stat(dbPath + ".migrating"); !os.IsNotExist(err) {
		t.Errorf("a failed copy left its temporary file: %v", err)
	}
}

// TestMigrateTiming copies OTPGATE_MIGRATE_USERS users (default 20000)
// both ways and logs how long each way took.
func TestMigrateTiming(t *testing.T) {
	n := 20000
	if s := os.Getenv("OTPGATE_MIGRATE_USERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	pg := testtool.StartPostgres(t)
	e := newEnv(t)
	ctx := context.Background()
	db := e.open()
	secret := []byte("12345678901234567890")
	now := time.Now().UTC()
	users := make([]store.User, n)
	for i := range users {
		name := fmt.Sprintf("user%07d", i)
		users[i] = store.User{Name: name, Groups: []string{"vpn"}, Created: now,
			TOTP:          &store.TOTP{Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: uint64(59_000_000 + i), Enrolled: now},
			RecoveryCodes: []string{db.HashRecoveryCode(name, "ABCD-EFGH")}}
	}
	if err := db.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	db.Close()
	users = nil
	dsn := pg.NewDB()
	start := time.Now()
	r := e.must("", "migrate", "--to", "postgres", "--dsn", dsn)
	toPG := time.Since(start)
	if !strings.Contains(r.stdout, fmt.Sprintf("copied %d users", n)) {
		t.Errorf("stdout %q", r.stdout)
	}
	start = time.Now()
	e.must("", "migrate", "--to", "bbolt", "--dsn", dsn, "--replace")
	toBbolt := time.Since(start)
	t.Logf("%d users: bbolt to PostgreSQL %v (%.0f users/s), PostgreSQL to bbolt %v (%.0f users/s)",
		n, toPG.Round(time.Millisecond), float64(n)/toPG.Seconds(), toBbolt.Round(time.Millisecond), float64(n)/toBbolt.Seconds())
	db = e.open()
	defer db.Close()
	u, err := db.Get(ctx, fmt.Sprintf("user%07d", n-1))
	if err != nil || u.TOTP.LastStep != uint64(59_000_000+n-1) {
		t.Errorf("last user after the round trip: %+v, %v", u.TOTP, err)
	}
}
