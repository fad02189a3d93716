package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bench/loadgen"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/totp"
	"layeh.com/radius"
)

// cluster is three otpgated nodes on one PostgreSQL the test started,
// sharing one seed key file, every client otp-only.
type cluster struct {
	pg      *testtool.Postgres
	standby *testtool.Postgres // with startCluster's standby: a streaming replica
	dsn     string
	nodes   []*Daemon
	users   []loadgen.User // imported through node 1
}

func clusterToml(dsn string) string {
	return fmt.Sprintf("[auth]\nmode = \"otp-only\"\nmfa = \"required\"\n\n[store]\nbackend = \"postgres\"\ndsn = %q\n", dsn)
}

// startCluster starts PostgreSQL and n nodes, and imports nUsers users.
func startCluster(t *testing.T, n, nUsers int) *cluster {
	t.Helper()
	return startClusterExtra(t, n, nUsers, false, "")
}

// startClusterExtra is startCluster; with standby, PostgreSQL has a
// streaming standby and the nodes' DSN names both hosts, writes only.
// extraToml (more [[client]] entries, say) goes into every node's config.
func startClusterExtra(t *testing.T, n, nUsers int, standby bool, extraToml string) *cluster {
	t.Helper()
	c := &cluster{pg: testtool.StartPostgres(t)}
	c.dsn = c.pg.NewDB() + "&connect_timeout=2"
	if standby {
		c.standby = c.pg.Standby()
		c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/otpgate_1?sslmode=disable&connect_timeout=2&target_session_attrs=read-write",
			c.pg.Port, c.standby.Port)
	}
	first := startDaemon(t, "", clusterToml(c.dsn)+extraToml)
	key, err := os.ReadFile(filepath.Join(first.Dir, "data", "seed.key"))
	if err != nil {
		t.Fatalf("node 1 made no key file: %v", err)
	}
	c.nodes = append(c.nodes, first)
	for range n - 1 {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		// The same key on every node: copied, as an admin would.
		if err := os.WriteFile(filepath.Join(dir, "data", "seed.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, startDaemon(t, dir, clusterToml(c.dsn)+extraToml))
	}
	if nUsers > 0 {
		var csv bytes.Buffer
		if _, err := loadgen.GenerateUsers(&csv, nUsers, false, ""); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "users.csv")
		if err := os.WriteFile(path, csv.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		c.cli(0).mustOtpgate("", "import", path, "--format", "csv")
		if c.users, err = loadgen.ReadUsers(bytes.NewReader(csv.Bytes())); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *cluster) cli(i int) *cliEnv {
	d := c.nodes[i]
	return &cliEnv{t: d.t.(*testing.T), dir: d.Dir, config: d.Config}
}

// login sends one otp-only Access-Request to node d and returns the
// answer's code, or 0 when none came within timeout (retries more tries).
// It stops the test on any other error: call it on the test's goroutine
// only; elsewhere use tryLogin.
func login(t *testing.T, d *Daemon, user, code string, timeout time.Duration, retries int) radius.Code {
	t.Helper()
	got, err := tryLogin(d, user, code, timeout, retries)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tryLogin is login for any goroutine: it returns the error instead of
// stopping the test.
func tryLogin(d *Daemon, user, code string, timeout time.Duration, retries int) (radius.Code, error) {
	cl, err := loadgen.NewClient(d.Addr, []byte(d.Secret), timeout, retries)
	if err != nil {
		return 0, fmt.Errorf("radius client for %s: %w", d.Addr, err)
	}
	defer cl.Close()
	r, err := cl.Authenticate(context.Background(), user, code, nil)
	if errors.Is(err, loadgen.ErrTimeout) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("login %s on %s: %w", user, d.Addr, err)
	}
	return r.Code, nil
}

// loginInto is tryLogin run on a goroutine of wg: the answer into *got,
// an error reported with t.Error.
func loginInto(t *testing.T, got *radius.Code, d *Daemon, user, code string, timeout time.Duration) {
	a, err := tryLogin(d, user, code, timeout, 0)
	if err != nil {
		t.Error(err)
	}
	*got = a
}

// oneAccept fails t unless answers, the nodes' answers to one code, are
// exactly one Accept and Rejects.
func oneAccept(t *testing.T, what string, answers []radius.Code) {
	t.Helper()
	accepts := 0
	for _, a := range answers {
		switch a {
		case radius.CodeAccessAccept:
			accepts++
		case radius.CodeAccessReject:
		default:
			t.Errorf("%s: a node answered %v", what, a)
		}
	}
	if accepts != 1 {
		t.Errorf("%s: one code sent to %d nodes at once got %d Accepts (%v), want exactly 1", what, len(answers), accepts, answers)
	}
}

// TestClusterPostgresOneCodeOneAccept sends each code to three nodes at
// once: exactly one Accept per code, every round.
func TestClusterPostgresOneCodeOneAccept(t *testing.T) {
	const rounds, burst = 150, 100
	c := startCluster(t, 3, rounds+burst)
	for i := range rounds {
		u := c.users[i]
		code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
		answers := make([]radius.Code, len(c.nodes))
		var wg sync.WaitGroup
		for n, d := range c.nodes {
			wg.Go(func() { loginInto(t, &answers[n], d, u.Name, code, 3*time.Second) })
		}
		wg.Wait()
		if oneAccept(t, fmt.Sprintf("round %d", i), answers); t.Failed() {
			t.FailNow()
		}
	}
	// Then burst users at once, each code to the three nodes at once: the
	// nodes' gathered statements carry many users, some of them in the
	// other nodes' statements too.
	step := totp.Default.Step(time.Now())
	answers := make([][]radius.Code, burst)
	var wg sync.WaitGroup
	for i := range burst {
		u := c.users[rounds+i]
		code := totp.Default.Code(u.Key, step)
		answers[i] = make([]radius.Code, len(c.nodes))
		for n, d := range c.nodes {
			wg.Go(func() { loginInto(t, &answers[i][n], d, u.Name, code, 5*time.Second) })
		}
	}
	wg.Wait()
	for i, a := range answers {
		oneAccept(t, fmt.Sprintf("burst user %d", i), a)
	}
	// Every other answer was a refused reuse, not some other failure.
	count := func() int {
		reused := 0
		for _, d := range c.nodes {
			reused += strings.Count(d.Output(), "result=reject reason=code_reused")
		}
		return reused
	}
	testtool.Eventually(t, 5*time.Second, fmt.Sprintf("%d code_reused rejects logged (two per code)", 2*(rounds+burst)), func() bool {
		return count() == 2*(rounds+burst)
	})
}

// TestClusterPostgresAdminOnAnyNode: enrolled on node 1, logs in on node 3;
// disabled on node 2, refused on node 1 at once.
func TestClusterPostgresAdminOnAnyNode(t *testing.T) {
	requireTool(t, "oathtool")
	c := startCluster(t, 3, 0)
	b32 := enrollViaCLI(t, c.cli(0), "alice", "")
	if got := login(t, c.nodes[2], "alice", oathtoolCode(t, b32), 3*time.Second, 0); got != radius.CodeAccessAccept {
		t.Fatalf("enrolled on node 1, code on node 3: %v, want Access-Accept\n%s", got, c.nodes[2].Output())
	}
	c.cli(1).mustOtpgate("", "user", "disable", "alice")
	// A code of the next step: not yet used, so only the disable refuses it.
	next := oathCode(t, b32, 30*time.Second)
	if got := login(t, c.nodes[0], "alice", next, 3*time.Second, 0); got != radius.CodeAccessReject {
		t.Fatalf("disabled on node 2, login on node 1: %v, want Access-Reject", got)
	}
	testtool.Eventually(t, 5*time.Second, "node 1 audits reason=disabled", func() bool {
		return strings.Contains(c.nodes[0].Output(), "reason=disabled")
	})
}

// TestClusterPostgresRestart stops PostgreSQL under three running nodes:
// no Accept and no Status-Server answer meanwhile (the NAS fails over or
// retries), then logins resume on every node without restarting them.
func TestClusterPostgresRestart(t *testing.T) {
	requireTool(t, "radclient")
	c := startCluster(t, 3, 10)
	step := totp.Default.Step(time.Now())
	for i, d := range c.nodes {
		u := c.users[i]
		if got := login(t, d, u.Name, totp.Default.Code(u.Key, step), 3*time.Second, 0); got != radius.CodeAccessAccept {
			t.Fatalf("node %d before the restart: %v", i+1, got)
		}
	}
	c.pg.Stop()
	for i, d := range c.nodes {
		u := c.users[3+i]
		if got := login(t, d, u.Name, totp.Default.Code(u.Key, step), 2*time.Second, 1); got != 0 {
			t.Errorf("node %d with PostgreSQL down answered %v; want no answer", i+1, got)
		}
	}
	testtool.Eventually(t, 10*time.Second, "Status-Server unanswered while PostgreSQL is down", func() bool {
		ok, _ := statusFrom(t, c.nodes[0], "127.0.0.1", c.nodes[0].Secret)
		return !ok
	})
	c.pg.Start()
	for i, d := range c.nodes {
		u := c.users[3+i]
		// Past one TOTP step: a try the node committed after the client
		// gave up leaves that step's code used.
		testtool.Eventually(t, 45*time.Second, fmt.Sprintf("node %d accepts after PostgreSQL restarted", i+1), func() bool {
			code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
			return login(t, d, u.Name, code, time.Second, 2) == radius.CodeAccessAccept
		})
	}
	// The node's readiness probe runs every second, so its Status-Server
	// answer may follow the first login it decides by up to that.
	testtool.Eventually(t, 5*time.Second, "Status-Server answered after the restart", func() bool {
		ok, _ := statusFrom(t, c.nodes[0], "127.0.0.1", c.nodes[0].Secret)
		return ok
	})
}

// TestClusterPostgresStandbyPromotion loses the primary under three nodes
// and promotes the streaming standby: logins resume on every node without
// a restart (multi-host DSN, target_session_attrs=read-write), and a code
// accepted before the failover is still refused after it.
func TestClusterPostgresStandbyPromotion(t *testing.T) {
	c := startClusterExtra(t, 3, 10, true, "")
	step := totp.Default.Step(time.Now())
	for i, d := range c.nodes {
		u := c.users[i]
		if got := login(t, d, u.Name, totp.Default.Code(u.Key, step), 3*time.Second, 0); got != radius.CodeAccessAccept {
			t.Fatalf("node %d before the failover: %v", i+1, got)
		}
	}
	testtool.Eventually(t, 10*time.Second, "the standby replayed everything", func() bool {
		return c.pg.Psql("postgres", "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()") == "1"
	})
	c.pg.Kill()
	c.standby.Promote()
	for i, d := range c.nodes {
		u := c.users[3+i]
		// Past one TOTP step, as after the restart.
		testtool.Eventually(t, 45*time.Second, fmt.Sprintf("node %d accepts after the promotion", i+1), func() bool {
			code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
			return login(t, d, u.Name, code, time.Second, 2) == radius.CodeAccessAccept
		})
	}
	// The code node 1 accepted on the old primary, sent to node 2 now.
	u := c.users[0]
	if got := login(t, c.nodes[1], u.Name, totp.Default.Code(u.Key, step), 3*time.Second, 1); got != radius.CodeAccessReject {
		t.Errorf("a code accepted before the failover, after it: %v, want Access-Reject", got)
	}
}

// appendClientSecret is the secret of clusterAppendClient.
const appendClientSecret = "e2e-cluster-append-0123456789ab"

// clusterAppendClient is a VPN gateway at 127.0.0.2 whose users type
// password and code together.
var clusterAppendClient = fmt.Sprintf(`
[[client]]
name = "vpn-append"
address = "127.0.0.2/32"
secret = %q
mode = "append"
`, appendClientSecret)

// appendLogin sends one Access-Request from clusterAppendClient to d with
// FreeRADIUS's radclient and returns the reply ("Access-Accept", ...; ""
// for none).
func appendLogin(t *testing.T, d *Daemon, station, user, password string) string {
	t.Helper()
	attrs := append(userPassword(user, password), fmt.Sprintf("Calling-Station-Id=%q", station), "Packet-Src-IP-Address=127.0.0.2")
	return radclientSend(t, d.Addr, appendClientSecret, attrs...).code
}

// challengeClientSecret is the secret of clusterChallengeClient.
const challengeClientSecret = "e2e-cluster-challenge-0123456789"

// clusterChallengeClient is a gateway at 127.0.0.3 that asks for the
// password, then for the code in an Access-Challenge.
var clusterChallengeClient = fmt.Sprintf(`
[[client]]
name = "vpn-challenge"
address = "127.0.0.3/32"
secret = %q
mode = "challenge"
`, challengeClientSecret)

// challengeLogin sends one Access-Request from clusterChallengeClient to d
// with radclient (state "" for none) and returns the reply and its State.
func challengeLogin(t *testing.T, d *Daemon, user, password, state string) (reply, replyState string) {
	t.Helper()
	attrs := append(userPassword(user, password), "Packet-Src-IP-Address=127.0.0.3")
	if state != "" {
		attrs = append(attrs, "State="+state)
	}
	r := radclientSend(t, d.Addr, challengeClientSecret, attrs...)
	return r.code, r.state
}

// TestClusterPostgresChallengeFailover: the gateway asks node 1 (password),
// gets the Challenge, and sends the code with the State to node 2, as a
// NAS that failed over in between: accepted. The same State again, on
// node 3: refused, a State is used once on all nodes.
func TestClusterPostgresChallengeFailover(t *testing.T) {
	requireTool(t, "oathtool")
	c := startClusterExtra(t, 3, 0, false, clusterChallengeClient)
	const pw = "correct horse battery"
	b32 := enrollViaCLI(t, c.cli(0), "alice", pw)

	reply, state := challengeLogin(t, c.nodes[0], "alice", pw, "")
	if reply != "Access-Challenge" || state == "" {
		t.Fatalf("password to node 1: %q with State %q, want an Access-Challenge with a State", reply, state)
	}
	code := oathCode(t, b32, 0)
	if reply, _ := challengeLogin(t, c.nodes[1], "alice", code, state); reply != "Access-Accept" {
		t.Fatalf("the code with node 1's State, to node 2: %q, want Access-Accept", reply)
	}
	if reply, _ := challengeLogin(t, c.nodes[2], "alice", code, state); reply != "Access-Reject" {
		t.Fatalf("the same State again, to node 3: %q, want Access-Reject", reply)
	}
	testtool.Eventually(t, 5*time.Second, "node 3 audits the reused State as bad_state", func() bool {
		return countAudit(c.nodes[2], "bad_state") > 0
	})
}

// TestClusterPostgresPasswordBackoffShared: five wrong passwords from one
// station, spread over two nodes (three on one, two on the other, so
// neither alone reached the threshold), put that station in backoff on
// both: the right password and code are refused on either node, while
// the same user logs in from another station. The backoff is a row in
// PostgreSQL, not in either node's memory.
func TestClusterPostgresPasswordBackoffShared(t *testing.T) {
	requireTool(t, "oathtool")
	c := startClusterExtra(t, 2, 0, false, clusterAppendClient)
	const pw = "correct horse battery"
	b32 := enrollViaCLI(t, c.cli(0), "alice", pw)

	// strongSwan's Calling-Station-Id: a new source port per connection,
	// one station.
	guesser := func(i int) string { return fmt.Sprintf("10.99.0.7[%d]", 50000+i) }
	for i := range 5 {
		if got := appendLogin(t, c.nodes[i%2], guesser(i), "alice", "wrong guess"+oathCode(t, b32, 0)); got != "Access-Reject" {
			t.Fatalf("wrong password %d on node %d: %q, want Access-Reject", i+1, i%2+1, got)
		}
	}
	// Within the 30 s backoff: node 2 saw two guesses, node 1 three.
	for _, n := range []int{1, 0} {
		if got := appendLogin(t, c.nodes[n], guesser(10+n), "alice", pw+oathCode(t, b32, 0)); got != "Access-Reject" {
			t.Fatalf("the right password from the guessing station on node %d: %q, want Access-Reject", n+1, got)
		}
	}
	if got := appendLogin(t, c.nodes[1], "10.99.0.8[50000]", "alice", pw+oathCode(t, b32, 0)); got != "Access-Accept" {
		t.Fatalf("the right password from another station on node 2: %q, want Access-Accept", got)
	}
	// Each node audited its share: the guesses it evaluated, then the
	// refusal for the backoff.
	for n, want := range []struct{ bad, locked int }{{3, 1}, {2, 1}} {
		testtool.Eventually(t, 5*time.Second, fmt.Sprintf("node %d audits %d bad_password and %d locked", n+1, want.bad, want.locked), func() bool {
			return countAudit(c.nodes[n], "bad_password") == want.bad && countAudit(c.nodes[n], "locked") == want.locked
		})
	}
	db := c.dsn[strings.LastIndex(c.dsn, "/")+1 : strings.Index(c.dsn, "?")]
	if rows := c.pg.Psql(db, "SELECT count(*) FROM password_backoff WHERE user_name = 'alice'::bytea"); rows != "1" {
		t.Fatalf("alice's backoff rows in PostgreSQL: %s, want 1", rows)
	}
}
