package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

// stateTable is the shared challenge_states table seen through two nodes.
// A State is its label ("user@client#n") padded to the 16 bytes of a real
// one, so the test can read which ones are left; each is issued a second
// after the one before, so issue order is expiry order, as with auth's
// fixed TTL.
type stateTable struct {
	t      *testing.T
	pg     *testtool.Postgres
	name   string
	nodes  []*postgres.DB
	limits store.StateLimits
	issued int
	base   time.Time
}

func newStateTable(t *testing.T, limits store.StateLimits) *stateTable {
	pg := testtool.StartPostgres(t)
	dsn := pg.NewDB()
	return &stateTable{
		t: t, pg: pg, limits: limits, base: time.Now().Add(time.Hour),
		name:  dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")],
		nodes: openNodes(t, dsn, filepath.Join(t.TempDir(), "seed.key"), 2),
	}
}

// put issues the State label for user on client, through the nodes in
// turn, and returns it.
func (s *stateTable) put(user, client string) []byte {
	s.t.Helper()
	s.issued++
	state := []byte(fmt.Sprintf("%-16.16s", fmt.Sprintf("%s@%s#%d", user, client, s.issued)))
	node := s.nodes[s.issued%len(s.nodes)]
	if err := node.PutState(context.Background(), state, user, client, nil, s.base.Add(time.Duration(s.issued)*time.Second), s.limits); err != nil {
		s.t.Fatalf("put %s: %v", state, err)
	}
	return state
}

// left is the labels of the States in the table, oldest first.
func (s *stateTable) left() string {
	s.t.Helper()
	return s.pg.Psql(s.name, "SELECT string_agg(rtrim(convert_from(state, 'UTF8')), ' ' ORDER BY expires) FROM challenge_states")
}

func (s *stateTable) wantLeft(when, want string) {
	s.t.Helper()
	if got := s.left(); got != want {
		s.t.Fatalf("%s: left\n  %s\nwant\n  %s", when, got, want)
	}
}

func (s *stateTable) reset() {
	s.t.Helper()
	s.pg.Psql(s.name, "DELETE FROM challenge_states")
}

// TestSharedStatesBounded: the shared table keeps the bounds of auth's
// in-memory table. A user past PerUser loses their own oldest, on any
// client; a client past PerClient its own oldest, whoever's it is; past
// Total the client holding the most loses its oldest. Older States of
// other users and clients stay, and a State pushed out is refused.
func TestSharedStatesBounded(t *testing.T) {
	s := newStateTable(t, store.StateLimits{PerUser: 3, PerClient: 4, Total: 8})
	ctx := context.Background()

	t.Run("per user", func(t *testing.T) {
		s.reset()
		s.put("bob", "vpn")
		first := s.put("alice", "vpn")
		s.put("alice", "wifi")
		s.put("carol", "wifi")
		s.put("alice", "vpn")
		s.wantLeft("alice at the bound", "bob@vpn#1 alice@vpn#2 alice@wifi#3 carol@wifi#4 alice@vpn#5")
		s.put("alice", "wifi") // alice's oldest was on vpn: it goes all the same
		s.wantLeft("alice past the bound", "bob@vpn#1 alice@wifi#3 carol@wifi#4 alice@vpn#5 alice@wifi#6")
		s.put("alice", "vpn")
		s.wantLeft("alice past the bound again", "bob@vpn#1 carol@wifi#4 alice@vpn#5 alice@wifi#6 alice@vpn#7")
		if _, _, _, ok, err := s.nodes[0].TakeState(ctx, first, time.Now()); ok || err != nil {
			t.Fatalf("a State pushed out was taken (ok=%v, err=%v)", ok, err)
		}
	})

	t.Run("per client", func(t *testing.T) {
		s.reset()
		s.put("zoe", "wifi")
		for _, u := range []string{"u1", "u2", "u3", "u4"} {
			s.put(u, "vpn")
		}
		s.wantLeft("vpn at the bound", "zoe@wifi#8 u1@vpn#9 u2@vpn#10 u3@vpn#11 u4@vpn#12")
		s.put("u5", "vpn") // u1 holds one State, far under PerUser: vpn's bound pushes it out
		s.wantLeft("vpn past the bound", "zoe@wifi#8 u2@vpn#10 u3@vpn#11 u4@vpn#12 u5@vpn#13")
		s.put("zoe", "vpn") // zoe's own State on wifi stays
		s.wantLeft("vpn past the bound again", "zoe@wifi#8 u3@vpn#11 u4@vpn#12 u5@vpn#13 zoe@vpn#14")
	})

	t.Run("per user before per client", func(t *testing.T) {
		// As in memory: the user's own oldest goes first, and if it was
		// the client's, the client is back under its bound and nobody
		// else loses one.
		s.reset()
		s.put("x", "vpn")
		s.put("alice", "vpn")
		s.put("alice", "vpn")
		s.put("alice", "vpn")
		s.wantLeft("vpn and alice at their bounds", "x@vpn#15 alice@vpn#16 alice@vpn#17 alice@vpn#18")
		s.put("alice", "vpn")
		s.wantLeft("one more from alice on vpn", "x@vpn#15 alice@vpn#17 alice@vpn#18 alice@vpn#19")
	})

	t.Run("total", func(t *testing.T) {
		s.reset()
		s.put("a1", "A")
		for _, u := range []string{"b1", "b2"} {
			s.put(u, "B")
		}
		for _, u := range []string{"c1", "c2", "c3", "c4"} {
			s.put(u, "C")
		}
		s.put("d1", "D")
		s.wantLeft("a full table", "a1@A#20 b1@B#21 b2@B#22 c1@C#23 c2@C#24 c3@C#25 c4@C#26 d1@D#27")
		s.put("b3", "B") // C holds the most: its oldest goes, not A's, older
		s.wantLeft("past the total", "a1@A#20 b1@B#21 b2@B#22 c2@C#24 c3@C#25 c4@C#26 d1@D#27 b3@B#28")
		s.put("a2", "A") // B and C hold three each: of the two, B's oldest is older
		s.wantLeft("past the total again", "a1@A#20 b2@B#22 c2@C#24 c3@C#25 c4@C#26 d1@D#27 b3@B#28 a2@A#29")
		s.put("d2", "D")
		s.wantLeft("and again", "a1@A#20 b2@B#22 c3@C#25 c4@C#26 d1@D#27 b3@B#28 a2@A#29 d2@D#30")
	})

	t.Run("concurrent puts", func(t *testing.T) {
		// Puts at once from both nodes, past every bound, neither
		// deadlock nor fail; once each user and client has put again,
		// every bound holds.
		s.reset()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			wg.Go(func() {
				state := []byte(fmt.Sprintf("%-16.16s", fmt.Sprintf("race#%d", i)))
				user, client := fmt.Sprintf("r%d", i%8), fmt.Sprintf("n%d", i%3)
				expires := s.base.Add(time.Hour + time.Duration(i)*time.Millisecond)
				if err := s.nodes[i%2].PutState(ctx, state, user, client, nil, expires, s.limits); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent put: %v", err)
		}
		s.base = s.base.Add(2 * time.Hour) // after the racers
		for i := range 8 {
			s.put(fmt.Sprintf("r%d", i), fmt.Sprintf("n%d", i%3))
		}
		counts := s.pg.Psql(s.name, `SELECT (SELECT count(*) FROM challenge_states) || ' ' ||
			(SELECT max(n) FROM (SELECT count(*) n FROM challenge_states GROUP BY user_name) u) || ' ' ||
			(SELECT max(n) FROM (SELECT count(*) n FROM challenge_states GROUP BY client) c)`)
		var total, user, client int
		if _, err := fmt.Sscan(counts, &total, &user, &client); err != nil {
			t.Fatalf("%q: %v", counts, err)
		}
		if total != s.limits.Total || user > s.limits.PerUser || client > s.limits.PerClient {
			t.Fatalf("%d States, at most %d of one user and %d of one client; want %d, %d, %d",
				total, user, client, s.limits.Total, s.limits.PerUser, s.limits.PerClient)
		}
	})

	t.Run("no bound", func(t *testing.T) {
		err := s.nodes[0].PutState(ctx, []byte("0123456789abcdef"), "alice", "vpn", nil, s.base, store.StateLimits{PerUser: 3})
		if err == nil {
			t.Fatal("a put with a zero bound (that would delete every State) was taken")
		}
	})
}
