package testtool

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PostgresBin is where Debian's postgresql package puts the server programs.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Postgres is a PostgreSQL server a test started in a temp dir on a
// loopback port (trust authentication, user "postgres"). As root it runs as
// the postgres (or nobody) system user: PostgreSQL refuses to run as root.
type Postgres struct {
	Port   int
	Dir    string // data directory
	Sock   string // unix socket directory
	cred   *syscall.Credential
	srv    *server // the running postmaster; nil before the first Start
	log    *Buffer // every run's output, shown when the test fails
	t      testing.TB
	lastDB atomic.Int64
}

func postgresProgram(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(PostgresBin, name)
	if _, err := os.Stat(p); err != nil {
		missing(t, p)
	}
	return p
}

// unprivileged returns the credential to run PostgreSQL with when this
// process is root (nil otherwise) and chowns dir to it.
func unprivileged(t testing.TB, dir string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	t.Fatal("running as root and there is neither a postgres nor a nobody user to run PostgreSQL as")
	return nil
}

func (p *Postgres) run(name string, args ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, postgresProgram(p.t, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// StartPostgres runs initdb in a temp dir and starts the server; the
// cleanup stops it and removes the directory.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p := newPostgres(t)
	p.run("initdb", "-D", p.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	p.Start()
	return p
}

func newPostgres(t testing.TB) *Postgres {
	t.Helper()
	postgresProgram(t, "postgres")
	root := PublicTempDir(t, "otpgate-pg-")
	p := &Postgres{t: t, Port: FreePort(t, "tcp"), Dir: filepath.Join(root, "data"), Sock: filepath.Join(root, "sock"), log: &Buffer{}}
	for _, d := range []string{p.Dir, p.Sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p.cred = unprivileged(t, root)
	for _, d := range []string{p.Dir, p.Sock} {
		if p.cred != nil {
			if err := os.Chown(d, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(p.Kill)
	showLogOnFailure(t, "postgres", p.log)
	return p
}

// Start starts the server (again, after Stop or Kill) and waits until it
// accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	cmd := exec.Command(postgresProgram(p.t, "postgres"), "-D", p.Dir, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+p.Sock,
		"-c", "max_connections=300", "-c", "fsync=on", "-c", "synchronous_commit=on")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	cmd.Dir = "/"
	p.srv = startServer(p.t, "postgres", cmd, p.log)
	isReady := postgresProgram(p.t, "pg_isready")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port))
	p.srv.awaitReady(p.t, 30*time.Second, "postgres listening on "+addr, func() bool {
		return exec.Command(isReady, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port)).Run() == nil
	})
}

// Stop shuts the server down (fast mode: sessions are cut, what was
// committed stays) and waits for it.
func (p *Postgres) Stop() { p.signal(syscall.SIGINT) }

// Kill kills the server without a shutdown (the cleanup does this).
func (p *Postgres) Kill() { p.signal(syscall.SIGKILL) }

// signal sends sig to the postmaster unless it has exited already, and
// waits for it.
func (p *Postgres) signal(sig syscall.Signal) {
	if p.srv == nil {
		return // never started
	}
	select {
	case <-p.srv.exited:
		return
	default:
	}
	p.srv.stop(sig)
	if sig == syscall.SIGKILL {
		// The postmaster's children notice it died and exit; the data
		// directory stays locked until they have.
		time.Sleep(200 * time.Millisecond)
	}
}

// DSN is the connection string for database db over TCP.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// Psql runs one SQL command in database db and returns its output.
func (p *Postgres) Psql(db, sql string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, postgresProgram(p.t, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		p.t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewDB creates an empty database and returns its DSN.
func (p *Postgres) NewDB() string {
	p.t.Helper()
	name := fmt.Sprintf("otpgate_%d", p.lastDB.Add(1))
	p.Psql("postgres", "CREATE DATABASE "+name)
	return p.DSN(name)
}

// Standby makes a streaming standby of p with pg_basebackup and starts it.
func (p *Postgres) Standby() *Postgres {
	p.t.Helper()
	s := newPostgres(p.t)
	if err := os.Remove(s.Dir); err != nil {
		p.t.Fatal(err)
	}
	s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-D", s.Dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	s.Start()
	return s
}

// Promote turns a standby into a primary.
func (p *Postgres) Promote() {
	p.t.Helper()
	p.run("pg_ctl", "promote", "-w", "-D", p.Dir)
}
