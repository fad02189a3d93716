package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// TestChallengeFloodKeepsOthersStates: 11,000 challenges for one user from
// client A do not evict the State another user is answering on client B.
func TestChallengeFloodKeepsOthersStates(t *testing.T) {
	e := newEnv(t, nil)
	d := e.auth(Request{User: "digit", Mode: ModeChallenge, Client: "B", Password: "summer123456"})
	if d.Result != Challenge {
		t.Fatalf("victim's challenge: %s/%s", d.Result, d.Reason)
	}
	victim := d.State
	for i := range 11000 {
		if d := e.auth(Request{User: "alice", Mode: ModeChallenge, Client: "A", Password: "correct horse"}); d.Result != Challenge {
			t.Fatalf("flood %d: %s/%s", i, d.Result, d.Reason)
		}
	}
	if d := e.auth(Request{User: "digit", Mode: ModeChallenge, Client: "B", State: victim, Password: e.code("digit", 0)}); d.Result != Accept {
		t.Fatalf("victim's answer after the flood: %s/%s, want accept", d.Result, d.Reason)
	}
}

// TestChallengeStatesCapped: pending States are capped per user and per
// client, and when the table is full the client holding the most loses its
// oldest, so a flood from one client (or one user) evicts only its own.
func TestChallengeStatesCapped(t *testing.T) {
	c := newChallengeTable(time.Minute, stateLimits)
	victimB := c.issue("victim", "B", stateInfo{}, t0)
	victimA := c.issue("victim", "A", stateInfo{}, t0)
	// 11,000 challenges from client A for many users, and from one user.
	for i := range 11000 {
		c.issue(fmt.Sprintf("u%d", i%3000), "A", stateInfo{}, t0)
	}
	for range 11000 {
		c.issue("mallory", "C", stateInfo{}, t0)
	}
	if n := c.len(); n > maxChallengeStates {
		t.Fatalf("%d pending States, more than %d", n, maxChallengeStates)
	}
	if n := c.byUser["mallory"].Len(); n != maxStatesPerUser {
		t.Fatalf("mallory holds %d States, want the cap %d", n, maxStatesPerUser)
	}
	if n := c.byClient["A"].Len(); n != maxStatesPerClient {
		t.Fatalf("client A holds %d States, want the cap %d", n, maxStatesPerClient)
	}
	if u, cl, _, ok := c.take(victimB, t0.Add(time.Second)); !ok || u != "victim" || cl != "B" {
		t.Fatal("client B's pending State was evicted by client A's flood")
	}
	// The victim's State on A was A's oldest: A's own flood pushed it out.
	if _, _, _, ok := c.take(victimA, t0.Add(time.Second)); ok {
		t.Fatal("client A kept more than its cap")
	}
	// A full table evicts from the client holding the most.
	small := newChallengeTable(time.Minute, store.StateLimits{Total: 4, PerClient: 3, PerUser: 3})
	b := small.issue("x", "B", stateInfo{}, t0)
	for i := range 3 {
		small.issue(fmt.Sprintf("y%d", i), "A", stateInfo{}, t0)
	}
	small.issue("z", "C", stateInfo{}, t0)
	if _, _, _, ok := small.take(b, t0); !ok {
		t.Fatal("a full table evicted from a client that holds one State")
	}
}

// recordingStates is a StateStore in a map that keeps the limits it is
// given.
type recordingStates struct {
	mu     sync.Mutex
	m      map[string][3]string
	limits []store.StateLimits
}

func (r *recordingStates) PutState(_ context.Context, state []byte, user, client string, info []byte, _ time.Time, limits store.StateLimits) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[string(state)] = [3]string{user, client, string(info)}
	r.limits = append(r.limits, limits)
	return nil
}

func (r *recordingStates) TakeState(_ context.Context, state []byte, _ time.Time) (string, string, []byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[string(state)]
	delete(r.m, string(state))
	return v[0], v[1], []byte(v[2]), ok, nil
}

// TestSharedStatesBoundedAsInMemory: a StateStore is handed the bounds of
// the in-memory table with every State, so a cluster bounds States as one
// node does.
func TestSharedStatesBoundedAsInMemory(t *testing.T) {
	shared := &recordingStates{m: map[string][3]string{}}
	e := newEnv(t, func(o *Options) { o.States = shared })
	d := e.auth(Request{User: "digit", Mode: ModeChallenge, Client: "B", Password: "summer123456"})
	if d.Result != Challenge {
		t.Fatalf("challenge: %s/%s", d.Result, d.Reason)
	}
	want := store.StateLimits{PerUser: maxStatesPerUser, PerClient: maxStatesPerClient, Total: maxChallengeStates}
	if len(shared.limits) != 1 || shared.limits[0] != want {
		t.Fatalf("the store was given %+v, want %+v", shared.limits, want)
	}
	if d := e.auth(Request{User: "digit", Mode: ModeChallenge, Client: "B", State: d.State, Password: e.code("digit", 0)}); d.Result != Accept {
		t.Fatalf("answer through the store: %s/%s, want accept", d.Result, d.Reason)
	}
}

// TestSharedStatesKeepNothingUsable: what a StateStore holds answers no
// challenge and shows no enrollment link. A row is filed under a hash of
// the State with its info sealed by the State, so only the State the NAS
// sends back opens it, and a row's info moved under another State does not
// open.
func TestSharedStatesKeepNothingUsable(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	rec := &recordingStates{m: map[string][3]string{}}
	s := sharedStates{s: rec, ttl: time.Minute, limits: store.StateLimits{PerUser: 9, PerClient: 9, Total: 9}}
	const link = "https://enroll.example/l#the-secret-token"
	want := stateInfo{step: stepEnrollCode, tries: 2, link: link}
	st, err := s.issue(ctx, "alice", "vpn", want, now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.issue(ctx, "bob", "vpn", stateInfo{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for key, row := range rec.m {
		if strings.Contains(key, string(st)) || strings.Contains(key, string(other)) {
			t.Errorf("the store files a row under the State itself (%x)", key)
		}
		if strings.Contains(row[2], "the-secret-token") {
			t.Errorf("the store holds the enrollment link in clear: %q", row[2])
		}
	}

	// Swap the two rows' sealed info: neither State opens the other's.
	idA, _ := stateKeys(st)
	idB, _ := stateKeys(other)
	a, b := rec.m[string(idA)], rec.m[string(idB)]
	a[2], b[2] = b[2], a[2]
	rec.m[string(idA)], rec.m[string(idB)] = a, b
	if _, _, _, ok, err := s.take(ctx, other, now); ok || err != nil {
		t.Fatalf("a State opened info sealed for another: ok %v, err %v", ok, err)
	}
	a[2], b[2] = b[2], a[2]
	rec.m[string(idA)] = a

	user, client, got, ok, err := s.take(ctx, st, now)
	if err != nil || !ok || user != "alice" || client != "vpn" || got != want {
		t.Fatalf("take = %q %q %+v %v %v; want alice vpn %+v", user, client, got, ok, err, want)
	}
}
