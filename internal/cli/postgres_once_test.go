package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestPostgresOpenedOncePerCommand: on PostgreSQL, where no file lock
// needs releasing during a prompt, a command opens the store once (one
// pool, one migration lock, one row in nodes) and holds it through its
// prompts: while enroll waits for a code, its node is registered; when the
// command ends, it is gone.
func TestPostgresOpenedOncePerCommand(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn := pg.NewDB()
	db := dsn[strings.LastIndex(dsn, "/")+1:]
	if i := strings.IndexByte(db, '?'); i >= 0 {
		db = db[:i]
	}
	e := newEnv(t)
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("[store]\nbackend = \"postgres\"\ndsn = \"" + dsn + "\"\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	nodes := func() string { return strings.TrimSpace(pg.Psql(db, "SELECT count(*) FROM nodes")) }

	e.must("", "user", "add", "alice", "--no-password")
	if n := nodes(); n != "0" {
		t.Errorf("%s rows in nodes after user add ended, want 0", n)
	}
	var during []string
	r := e.enrollSession(func(s []byte) []string {
		during = append(during, nodes())
		return []string{"000000", codeNow(t, s)}
	}, "alice")
	if r.code != 0 || !strings.Contains(r.stdout, "Code accepted") {
		t.Fatalf("enroll: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if len(during) != 1 || during[0] != "1" {
		t.Errorf("rows in nodes while enroll waited for a code = %q, want [\"1\"]: the store held open once", during)
	}
	if n := nodes(); n != "0" {
		t.Errorf("%s rows in nodes after enroll ended, want 0: the store closed at the end", n)
	}
}
