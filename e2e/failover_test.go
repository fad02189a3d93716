package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bench/loadgen"
	"github.com/otpgate/otpgate/totp"
	"layeh.com/radius"
)

// pamRadiusOTPClient is pam_radius_auth's client entry (127.0.0.2, no
// Message-Authenticator) for the cluster, whose users have no password:
// the code is typed at the password prompt.
var pamRadiusOTPClient = fmt.Sprintf(`
[[client]]
name = "pam-radius-legacy"
address = "127.0.0.2/32"
secret = %q
mode = "otp-only"
require_message_authenticator = false
`, pamSecretRadius)

// failoverLogin is a NAS with a server list: each server in turn, timeout
// each, until one answers. It returns the answer and which server gave it
// (-1: none).
func failoverLogin(servers []*Daemon, user, code string, timeout time.Duration) (radius.Code, int, error) {
	for i, d := range servers {
		cl, err := loadgen.NewClient(d.Addr, []byte(d.Secret), timeout, 0)
		if err != nil {
			return 0, -1, err
		}
		r, err := cl.Authenticate(context.Background(), user, code, nil)
		cl.Close()
		if errors.Is(err, loadgen.ErrTimeout) {
			continue
		}
		if err != nil {
			return 0, -1, err
		}
		return r.Code, i, nil
	}
	return 0, -1, loadgen.ErrTimeout
}

// TestHostClusterPostgresNodeKilledFailover: three nodes on PostgreSQL under
// load from clients that list the nodes in order (a RADIUS client with
// failover, and pam_radius_auth with two servers through pamtester).
// Node 1 is killed with SIGKILL mid-load: every login after the kill
// succeeds on another node, paying at most the client's timeout; a login
// in flight at the kill is at worst refused (never accepted twice); and
// over the audit logs of all nodes each code is accepted at most once.
func TestHostClusterPostgresNodeKilledFailover(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "pamtester")
	requirePAMRadius(t)
	const (
		loadUsers   = 600
		pamUsers    = 6
		concurrency = 6
		timeout     = 500 * time.Millisecond // the load client's, per server
		pamTimeout  = 3                      // pam_radius_auth's, seconds per server (its minimum)
	)
	c := startClusterExtra(t, 3, loadUsers+pamUsers, false, pamRadiusOTPClient)
	load, pam := c.users[:loadUsers], c.users[loadUsers:]
	service := installPAMService(t, pamRadiusStackServers(t, pamTimeout, c.nodes[0].Addr, c.nodes[1].Addr))

	// One login per user, so that "a code accepted at most once" reads as
	// "a user accepted at most once" in the audit logs.
	type outcome struct {
		code          radius.Code
		server        int
		start, finish time.Time
		err           error
	}
	// pam_radius_auth logs in before the load (node 1 answers at once),
	// then meanwhile, around and after the kill.
	type pamOutcome struct {
		ok            bool
		start, finish time.Time
		out           string
	}
	var pamResults []pamOutcome
	pamLogin := func(i int) {
		u := pam[i]
		code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
		p := pamOutcome{start: time.Now()}
		p.ok, _, p.out = pamtester(t, service, u.Name, code)
		p.finish = time.Now()
		pamResults = append(pamResults, p)
	}
	pamLogin(0)

	results := make([]outcome, loadUsers)
	var next atomic.Int64
	var killedAt atomic.Int64 // UnixNano; 0 = alive
	killAfter := int64(loadUsers / 3)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= loadUsers {
					return
				}
				if i == killAfter {
					// Mid-load: the other workers have requests in flight.
					if err := c.nodes[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Errorf("kill node 1: %v", err)
					}
					killedAt.Store(time.Now().UnixNano())
				}
				u := load[i]
				code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
				o := outcome{start: time.Now()}
				o.code, o.server, o.err = failoverLogin(c.nodes, u.Name, code, timeout)
				o.finish = time.Now()
				results[i] = o
			}
		})
	}
	for i := 1; i < pamUsers; i++ {
		if i == pamUsers/2 {
			for killedAt.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		pamLogin(i)
	}
	wg.Wait()
	select {
	case <-c.nodes[0].exited:
	case <-time.After(5 * time.Second):
		t.Fatal("node 1 did not die of SIGKILL")
	}
	kill := time.Unix(0, killedAt.Load())

	// The load client: after the kill every login succeeds elsewhere;
	// one in flight at the kill may be refused (node 1 committed the
	// code, then died before its Accept left), never lost silently.
	accepted, inFlightLost, failedOver := 0, 0, 0
	for i, o := range results {
		switch {
		case o.err != nil:
			t.Errorf("login %d (%s): %v", i, load[i].Name, o.err)
		case o.code == radius.CodeAccessAccept:
			accepted++
			if o.server > 0 {
				failedOver++
			}
			if took := o.finish.Sub(o.start); o.start.After(kill) && took > timeout+2*time.Second {
				t.Errorf("login %d after the kill took %v; want about the client's timeout %v at most", i, took, timeout)
			}
		case o.start.Before(kill) && o.finish.After(kill):
			inFlightLost++
			if !reusedCodeLogged([]*Daemon{c.nodes[o.server]}, load[i].Name) {
				t.Errorf("login %d in flight at the kill: %v from node %d, not refused as a reused code", i, o.code, o.server+1)
			}
		default:
			t.Errorf("login %d (%s): %v from node %d (start %v after the kill)", i, load[i].Name, o.code, o.server+1, o.start.Sub(kill))
		}
	}
	if inFlightLost > concurrency {
		t.Errorf("%d logins refused around the kill; at most %d were in flight", inFlightLost, concurrency)
	}
	if failedOver == 0 {
		t.Error("no login failed over to node 2 or 3: the kill came too late")
	}
	t.Logf("load: %d logins, %d accepted, %d failed over to another node, %d in flight at the kill refused as a reused code",
		loadUsers, accepted, failedOver, inFlightLost)

	// pam_radius_auth with two servers: every login before or after the
	// kill succeeds; after it, paying one timeout on node 1 before node 2
	// answers. One in flight at the kill is held to the load client's
	// rule: at worst refused as a reused code, never silently.
	pamInFlightLost := 0
	for i, p := range pamResults {
		took := p.finish.Sub(p.start)
		inFlight := p.start.Before(kill) && p.finish.After(kill)
		switch {
		case !p.ok && inFlight && reusedCodeLogged(c.nodes[1:], pam[i].Name):
			pamInFlightLost++
			t.Logf("pam_radius_auth login %d: in flight at the kill, refused by node 2 as a reused code after %v", i, took.Round(time.Millisecond))
			continue
		case !p.ok:
			t.Errorf("pam_radius_auth login %d (in flight at the kill: %v) failed after %v:\n%s", i, inFlight, took, p.out)
			continue
		case p.start.After(kill) && took > time.Duration(pamTimeout+3)*time.Second:
			t.Errorf("pam_radius_auth login %d after the kill took %v; want about its %ds timeout", i, took, pamTimeout)
		}
		t.Logf("pam_radius_auth login %d: started %v after the kill, took %v", i, p.start.Sub(kill).Round(time.Millisecond), took.Round(time.Millisecond))
	}
	if pamInFlightLost > 1 {
		t.Errorf("%d pam_radius_auth logins refused around the kill; it logs in one at a time", pamInFlightLost)
	}
	if !pamResults[0].ok || !pamResults[0].finish.Before(kill) {
		t.Error("no pam_radius_auth login succeeded before the kill")
	}

	// Each code accepted at most once over all nodes' audit logs, and
	// every login a client saw accepted is there.
	accepts := map[string]int{}
	for _, d := range c.nodes {
		for _, r := range auditRecords(d) {
			if r.Result == "accept" {
				accepts[r.User]++
			}
		}
	}
	for name, n := range accepts {
		if n > 1 {
			t.Errorf("user %s's one code was accepted %d times across the nodes", name, n)
		}
	}
	for i, o := range results {
		if o.code == radius.CodeAccessAccept && accepts[load[i].Name] != 1 {
			t.Errorf("login %d accepted by the client, %d accepts in the audit logs", i, accepts[load[i].Name])
		}
	}
	for i, p := range pamResults {
		if p.ok && accepts[pam[i].Name] != 1 {
			t.Errorf("pam_radius_auth login %d succeeded, %d accepts in the audit logs", i, accepts[pam[i].Name])
		}
	}
}

// reusedCodeLogged reports whether one of nodes refused user's login as a
// reused code: what a login in flight when another node died gets when
// that node had committed the code before its Accept could leave.
func reusedCodeLogged(nodes []*Daemon, user string) bool {
	for _, d := range nodes {
		for _, r := range auditRecords(d) {
			if r.User == user && r.Reason == "code_reused" {
				return true
			}
		}
	}
	return false
}
