package auth

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// TestUserBackoffSettle walks one user's backoff through the rules, step
// by step: the threshold, the doubling, a station in backoff refusing even
// the right password, a success forgetting its own station but not the
// overflow bucket, and quiet buckets being forgotten.
func TestUserBackoffSettle(t *testing.T) {
	type step struct {
		at      time.Duration // since t0
		station string
		o       pwOutcome
		locked  bool // what settle must return
	}
	fails := func(at time.Duration, station string, n int) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{at, station, pwFailed, false}
		}
		return s
	}
	join := func(parts ...[]step) []step { return slices.Concat(parts...) }
	tests := []struct {
		name     string
		steps    []step
		own      []string // the stations with a bucket of their own at the end
		overflow bool     // whether the overflow bucket exists at the end
	}{
		{
			name: "five failures, then a 30 s backoff",
			steps: join(fails(0, "a", 5), []step{
				{0, "a", pwFailed, true},
				{29 * time.Second, "a", pwFailed, true},
				{30 * time.Second, "a", pwPassed, false},
			}),
			own: []string{"a"},
		},
		{
			name: "the right password is refused in backoff and does not end it",
			steps: join(fails(0, "a", 5), []step{
				{time.Second, "a", pwPassed, true},
				{29 * time.Second, "a", pwPassed, true},
				{30 * time.Second, "a", pwFailed, false}, // the 6th: 60 s
				{31 * time.Second, "a", pwPassed, true},
				{89 * time.Second, "a", pwPassed, true},
				{90 * time.Second, "a", pwPassed, false},
			}),
			own: []string{"a"},
		},
		{
			name: "a success forgets its own station's failures",
			steps: join(fails(0, "a", 4), []step{{0, "a", pwPassed, false}}, fails(0, "a", 4), []step{
				{0, "a", pwFailed, false}, // the 5th since the success sets the lock
				{0, "a", pwPassed, true},
			}),
			own: []string{"a"},
		},
		{
			name: "a neutral outcome neither counts nor forgets",
			steps: join(fails(0, "a", 4), []step{
				{0, "a", pwNeutral, false},
				{0, "a", pwNeutral, false},
				{0, "a", pwFailed, false},
				{0, "a", pwNeutral, true},
			}),
			own: []string{"a"},
		},
		{
			name:  "a neutral outcome of a station without failures records nothing",
			steps: []step{{0, "a", pwNeutral, false}, {0, "b", pwPassed, false}},
		},
		{
			name:  "another station of the same user is not in backoff",
			steps: join(fails(0, "a", 5), []step{{0, "a", pwPassed, true}, {0, "b", pwPassed, false}}),
			own:   []string{"a"},
		},
		{
			name: "past perUser own stations, the rest share the overflow bucket",
			steps: join(fails(0, "own1", 1), fails(0, "own2", 1),
				[]step{
					{0, "rot1", pwFailed, false}, {0, "rot2", pwFailed, false}, {0, "rot3", pwFailed, false},
					{0, "rot4", pwFailed, false}, {0, "rot5", pwFailed, false},
					{0, "rot6", pwPassed, true}, // a new station: the bucket's backoff
					{0, "own1", pwPassed, false},
				}),
			own: []string{"own1", "own2"}, overflow: true,
		},
		{
			name: "a success does not forget the overflow bucket",
			steps: join(fails(0, "own1", 1), fails(0, "own2", 1), fails(0, "rot", 5), []step{
				{30 * time.Second, "rot", pwPassed, false},
				{30 * time.Second, "rot-x", pwFailed, false}, // the bucket's 6th: 60 s
				{89 * time.Second, "rot-y", pwNeutral, true},
			}),
			own: []string{"own1", "own2"}, overflow: true,
		},
		{
			name: "a station quiet for a day starts over",
			steps: join(fails(0, "a", 4), []step{
				{stationForgetAfter, "a", pwFailed, false},
				{stationForgetAfter, "a", pwFailed, false}, // the 2nd, not the 6th
				{stationForgetAfter, "a", pwPassed, false},
			}),
			own: []string{"a"},
		},
		{
			name: "a station quiet for less than a day does not",
			steps: join(fails(0, "a", 4), []step{
				{stationForgetAfter - time.Second, "a", pwFailed, false}, // the 5th
				{stationForgetAfter - time.Second, "a", pwPassed, true},
			}),
			own: []string{"a"},
		},
		{
			name: "quiet stations free their slots, and the overflow bucket goes",
			steps: join(fails(0, "own1", 1), fails(0, "own2", 1), fails(0, "rot", 1), []step{
				{stationForgetAfter + time.Hour, "fresh", pwFailed, false},
			}),
			own: []string{"fresh"},
		},
	}
	rules := backoffRulesOf(testOptions(), 2)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b userBackoff
			for i, s := range tc.steps {
				if got := b.settle(rules, s.station, s.o, t0.Add(s.at)); got != s.locked {
					t.Fatalf("step %d (%s at %s, outcome %d): locked = %v, want %v", i, s.station, s.at, s.o, got, s.locked)
				}
			}
			own := make([]string, 0, len(b.own))
			for s := range b.own {
				own = append(own, s)
			}
			slices.Sort(own)
			if !slices.Equal(own, tc.own) || (b.overflow != nil) != tc.overflow {
				t.Fatalf("buckets at the end: own %q, overflow %v; want own %q, overflow %v", own, b.overflow != nil, tc.own, tc.overflow)
			}
		})
	}
}

// TestUserBackoffForgetAt: a user's backoff may be dropped once every
// bucket has been quiet for a day and is out of backoff.
func TestUserBackoffForgetAt(t *testing.T) {
	rules := backoffRulesOf(testOptions(), 2)
	var b userBackoff
	b.settle(rules, "a", pwFailed, t0)
	b.settle(rules, "b", pwFailed, t0.Add(time.Hour))
	if got, want := b.forgetAt(rules), t0.Add(time.Hour+stationForgetAfter); !got.Equal(want) {
		t.Fatalf("forgetAt = %s, want the last failure + a day (%s)", got, want)
	}
	rules.base, rules.cap = 48*time.Hour, 48*time.Hour // a lock that outlasts the quiet day
	for range 5 {
		b.settle(rules, "a", pwFailed, t0.Add(2*time.Hour))
	}
	if got, want := b.forgetAt(rules), t0.Add(50*time.Hour); !got.Equal(want) {
		t.Fatalf("forgetAt = %s, want the end of the lock (%s)", got, want)
	}
}

// TestUserBackoffEncoding: what a PasswordBackoffStore keeps decodes to
// the same backoff and encodes to the same bytes (so an unchanged value
// need not be written), and anything else is refused rather than read as
// no failures.
func TestUserBackoffEncoding(t *testing.T) {
	rules := backoffRulesOf(testOptions(), 2)
	var b userBackoff
	for i, st := range []string{"192.0.2.1", "00-10-a4-23-19-c0", "rot1", "rot2", "rot3", "rot4", "rot5", ""} {
		b.settle(rules, st, pwFailed, t0.Add(time.Duration(i)*time.Second))
	}
	enc := b.encode()
	got, err := decodeUserBackoff(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.encode(), enc) {
		t.Fatal("decode then encode changed the bytes")
	}
	for s, c := range b.own {
		g := got.own[s]
		if g == nil || g.failures != c.failures || !g.last.Equal(c.last) || !g.lockedUntil.Equal(c.lockedUntil) {
			t.Fatalf("station %q: decoded %+v, want %+v", s, g, c)
		}
	}
	if got.overflow == nil || got.overflow.failures != 5 || !got.overflow.lockedUntil.Equal(b.overflow.lockedUntil) {
		t.Fatalf("overflow decoded %+v, want %+v", got.overflow, b.overflow)
	}
	if most, err := decodeUserBackoff(append(binary.AppendUvarint([]byte{backoffFormat, 0, 1}, math.MaxInt32), 0, 0)); err != nil || most.overflow.failures != math.MaxInt32 {
		t.Fatalf("MaxInt32 failures: %v, %+v", err, most.overflow)
	}
	if empty, err := decodeUserBackoff(nil); err != nil || empty.len() != 0 {
		t.Fatalf("nil: %v, %d buckets; want no failures", err, empty.len())
	}
	for name, bad := range map[string][]byte{
		"empty":          {},
		"another format": append([]byte{2}, enc[1:]...),
		"truncated":      enc[:len(enc)-1],
		"trailing bytes": append(slices.Clone(enc), 0),
		"bad overflow":   {backoffFormat, 0, 7},
		"long station":   {backoffFormat, 1, 200, 'a'},
		"duplicate":      {backoffFormat, 2, 1, 'a', 1, 0, 0, 1, 'a', 1, 0, 0, 0},
		// int(f) would be negative where int has 32 bits.
		"failures over int32": append(binary.AppendUvarint([]byte{backoffFormat, 0, 1}, 1<<31), 0, 0),
	} {
		if _, err := decodeUserBackoff(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// fakeBackoffStore is a PasswordBackoffStore in memory with the store's
// contract: a write lands only if nobody wrote since the read, else fn
// runs again.
type fakeBackoffStore struct {
	mu      sync.Mutex
	rows    map[string]fakeBackoffRow
	version int
	err     error // returned by every call when set
	// race, if set, runs between fn and the write: a write it makes
	// forces fn to run again.
	race func()
}

type fakeBackoffRow struct {
	data     []byte
	forgetAt time.Time
	version  int
}

func newFakeBackoffStore() *fakeBackoffStore {
	return &fakeBackoffStore{rows: map[string]fakeBackoffRow{}}
}

func (f *fakeBackoffStore) UpdatePasswordBackoff(ctx context.Context, user string, fn func(old []byte) ([]byte, time.Time, error)) error {
	for {
		f.mu.Lock()
		row, err, race := f.rows[user], f.err, f.race
		f.mu.Unlock()
		if err != nil {
			return err
		}
		next, forgetAt, err := fn(row.data)
		if err != nil {
			return err
		}
		if race != nil {
			race()
		}
		f.mu.Lock()
		if f.rows[user].version != row.version {
			f.mu.Unlock()
			continue
		}
		if next == nil {
			delete(f.rows, user)
		} else {
			f.version++
			f.rows[user] = fakeBackoffRow{data: next, forgetAt: forgetAt, version: f.version}
		}
		f.mu.Unlock()
		return nil
	}
}

// nodes are Authenticators on one store and one shared backoff store: the
// nodes of a cluster.
func (e *env) nodes(n int, shared PasswordBackoffStore) []*Authenticator {
	e.t.Helper()
	nodes := make([]*Authenticator, n)
	for i := range nodes {
		opt := testOptions()
		opt.Now = e.clk.Now
		opt.PasswordBackoff = shared
		a, err := New(opt, e.st, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		nodes[i] = a
	}
	return nodes
}

// TestSharedBackoffAcrossNodes: wrong passwords from one station spread
// over two nodes add up; the station is then refused the right password on
// both, and another station still logs in.
func TestSharedBackoffAcrossNodes(t *testing.T) {
	e := newEnv(t, nil)
	nodes := e.nodes(2, newFakeBackoffStore())
	login := func(node int, station, pw string) Decision {
		return nodes[node].Authenticate(context.Background(),
			Request{User: "alice", Client: "vpn", Mode: ModeAppend, Station: station, Password: pw + e.code("alice", 0)})
	}
	for i := range 5 {
		if d := login(i%2, "192.0.2.10", "wrong guess"); d.Reason != ReasonBadPassword {
			t.Fatalf("guess %d on node %d: %s/%s", i, i%2+1, d.Result, d.Reason)
		}
	}
	for node := range nodes {
		if d := login(node, "192.0.2.10", "correct horse"); d.Reason != ReasonLocked {
			t.Fatalf("the right password on node %d after 5 guesses over both: %s/%s, want reject/locked", node+1, d.Result, d.Reason)
		}
	}
	if d := login(1, "192.0.2.99", "correct horse"); d.Result != Accept {
		t.Fatalf("another station: %s/%s, want accept", d.Result, d.Reason)
	}
}

// TestSharedBackoffConcurrentGuesses: guesses from one station arriving
// at once on two nodes, with every write racing another, are all counted:
// exactly threshold of them are evaluated, the rest are refused.
func TestSharedBackoffConcurrentGuesses(t *testing.T) {
	e := newEnv(t, nil)
	shared := newFakeBackoffStore()
	nodes := e.nodes(2, shared)
	var races int
	shared.race = func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if races < 20 { // a foreign write under the first 20 attempts
			races++
			shared.version++
			if row, ok := shared.rows["alice"]; ok {
				row.version = shared.version
				shared.rows["alice"] = row
			}
		}
	}
	const guesses = 40
	var wg sync.WaitGroup
	reasons := make([]Reason, guesses)
	for i := range guesses {
		wg.Go(func() {
			reasons[i] = nodes[i%2].Authenticate(context.Background(),
				Request{User: "alice", Client: fmt.Sprintf("vpn%d", i%4), Mode: ModeAppend, Station: "192.0.2.10", Password: "wrong guess" + e.code("alice", 0)}).Reason
		})
	}
	wg.Wait()
	counts := map[Reason]int{}
	for _, r := range reasons {
		counts[r]++
	}
	if counts[ReasonBadPassword] != 5 || counts[ReasonLocked] != guesses-5 {
		t.Fatalf("%d concurrent guesses over two nodes: %v; want 5 bad_password and %d locked", guesses, counts, guesses-5)
	}
}

// TestSharedBackoffFailsClosed: when the shared backoff cannot be read,
// even the right password is not let in: an unreachable store drops the
// request (the NAS fails over), anything else rejects it.
func TestSharedBackoffFailsClosed(t *testing.T) {
	e := newEnv(t, nil)
	shared := newFakeBackoffStore()
	node := e.nodes(1, shared)[0]
	right := Request{User: "alice", Client: "vpn", Mode: ModeAppend, Station: "192.0.2.10", Password: "correct horse" + e.code("alice", 0)}
	for _, tc := range []struct {
		name   string
		err    error
		row    []byte
		result Result
		reason Reason
	}{
		{"unreachable", fmt.Errorf("store: password backoff: %w: connection refused", store.ErrUnavailable), nil, Drop, ReasonUnavailable},
		{"another error", errors.New("store: password backoff: disk full"), nil, Reject, ReasonInternal},
		{"a value that is not ours", nil, []byte{9, 9, 9}, Reject, ReasonInternal},
	} {
		shared.err = tc.err
		shared.rows["alice"] = fakeBackoffRow{data: tc.row, version: 1}
		if d := node.Authenticate(context.Background(), right); d.Result != tc.result || d.Reason != tc.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tc.name, d.Result, d.Reason, tc.result, tc.reason)
		}
	}
	if u := e.user("alice"); u.TOTP.LastStep != 0 {
		t.Fatal("a request refused for its backoff reached the code check")
	}
}

// TestSharedBackoffMatchesMemory runs one random series of password
// outcomes through the in-memory table and through a shared store: the
// same rules, so the same answers, and the store is left only what still
// matters.
func TestSharedBackoffMatchesMemory(t *testing.T) {
	opt := testOptions()
	mem := memoryBackoff{newStationTable(opt, maxStations, maxStationsPerUser)}
	fake := newFakeBackoffStore()
	shared := sharedBackoff{s: fake, rules: backoffRulesOf(opt, maxStationsPerUser)}
	rng := rand.New(rand.NewPCG(1, 2))
	// Mostly bursts, now and then the end of a backoff, rarely a quiet
	// day that forgets everything.
	step := func() time.Duration {
		switch n := rng.IntN(1000); {
		case n < 2:
			return 25 * time.Hour
		case n < 10:
			return 4 * time.Hour
		case n < 100:
			return time.Duration(rng.IntN(600)) * time.Second
		default:
			return time.Duration(rng.IntN(2)) * time.Second
		}
	}
	now := t0
	ctx := context.Background()
	lockedSeen := 0
	for i := range 20000 {
		now = now.Add(step())
		user := []string{"u", "v", "w"}[rng.IntN(3)]
		station := fmt.Sprintf("s%d", rng.IntN(12))
		o := []pwOutcome{pwFailed, pwFailed, pwFailed, pwFailed, pwPassed, pwNeutral}[rng.IntN(6)]
		want, _ := mem.settle(ctx, user, station, o, now)
		got, err := shared.settle(ctx, user, station, o, now)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d (%s %s outcome %d): shared says locked=%v, memory %v", i, user, station, o, got, want)
		}
		if got {
			lockedSeen++
		}
		for name, row := range fake.rows {
			if b, _ := decodeUserBackoff(row.data); b.len() == 0 || !row.forgetAt.Equal(b.forgetAt(shared.rules)) {
				t.Fatalf("step %d: %s's row holds %d buckets, forgetAt %s", i, name, b.len(), row.forgetAt)
			}
		}
	}
	if lockedSeen < 1000 {
		t.Fatalf("the series met a backoff only %d times", lockedSeen)
	}
	t.Logf("%d of 20000 outcomes met a backoff", lockedSeen)
}
