package auth

import (
	"fmt"
	"testing"
	"time"
)

// lockStation makes five wrong-password requests for user from station, so
// the station is in backoff for that user.
func lockStation(e *env, user, station string) {
	e.t.Helper()
	for i := range 5 {
		d := e.auth(Request{User: user, Mode: ModeAppend, Station: station, Password: "wrong guess" + e.code("alice", 0)})
		if d.Result != Reject {
			e.t.Fatalf("wrong guess %d: %s/%s", i, d.Result, d.Reason)
		}
	}
}

// TestStationBackoffRefusesTheRightPassword: while a station is in backoff
// even the right password is refused and not evaluated, so probing after a
// guess cannot tell whether the guess reset the backoff; once the backoff
// ends the right password passes.
func TestStationBackoffRefusesTheRightPassword(t *testing.T) {
	e := newEnv(t, nil)
	lockStation(e, "alice", "192.0.2.10")
	for i := range 3 {
		if d := e.auth(Request{User: "alice", Mode: ModeAppend, Password: "correct horse" + e.code("alice", 0)}); d.Reason != ReasonLocked {
			t.Fatalf("right password %d during the backoff: %s/%s, want reject/locked", i, d.Result, d.Reason)
		}
	}
	if u := e.user("alice"); u.TOTP.LastStep != 0 || u.CodeFailures != 0 {
		t.Fatalf("a refused request reached the code check: last step %d, failures %d", u.TOTP.LastStep, u.CodeFailures)
	}
	e.clk.Advance(30 * time.Second)
	if d := e.auth(Request{User: "alice", Mode: ModeAppend, Password: "correct horse" + e.code("alice", 0)}); d.Result != Accept {
		t.Fatalf("after the backoff: %s/%s", d.Result, d.Reason)
	}
}

// TestStationPortsAreOneStation: strongSwan sends the client's source port
// in Calling-Station-Id ("10.99.0.2[58214]"); a new port per request must
// not be a new station, or rotating ports bypasses the backoff.
func TestStationPortsAreOneStation(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		d := e.auth(Request{User: "alice", Mode: ModeAppend, Station: fmt.Sprintf("10.99.0.2[%d]", 58214+i), Password: "guess" + e.code("alice", 0)})
		if d.Reason != ReasonBadPassword {
			t.Fatalf("guess %d: %s", i, d.Reason)
		}
	}
	if d := e.auth(Request{User: "alice", Mode: ModeAppend, Station: "10.99.0.2[60001]", Password: "correct horse" + e.code("alice", 0)}); d.Reason != ReasonLocked {
		t.Fatalf("a new source port after 5 failures: %s/%s, want reject/locked", d.Result, d.Reason)
	}
	if d := e.auth(Request{User: "alice", Mode: ModeAppend, Station: "10.99.0.3[58214]", Password: "correct horse" + e.code("alice", 0)}); d.Result != Accept {
		t.Fatalf("another address: %s/%s, want accept", d.Result, d.Reason)
	}
}

// TestStationRotationGainsNothing: a guesser who invents a new
// Calling-Station-Id for every guess gets its own backoff bucket for the
// first maxStationsPerUser stations only; every further station of that
// user shares one bucket, which backs off like any other. Other users are
// not affected.
func TestStationRotationGainsNothing(t *testing.T) {
	e := newEnv(t, nil)
	evaluated := 0
	for i := range 1000 {
		d := e.auth(Request{User: "alice", Mode: ModeAppend, Station: fmt.Sprintf("rotating-%d", i), Password: "guess" + e.code("alice", 0)})
		switch d.Reason {
		case ReasonBadPassword:
			evaluated++
		case ReasonLocked:
		default:
			t.Fatalf("guess %d: %s", i, d.Reason)
		}
	}
	const threshold = 5
	if want := maxStationsPerUser + threshold; evaluated != want {
		t.Fatalf("%d of 1000 guesses from rotating stations were evaluated; want %d (one per own station, then the shared bucket's %d)",
			evaluated, want, threshold)
	}
	// One of the first stations, with one failure, is not in backoff.
	if d := e.auth(Request{User: "alice", Mode: ModeAppend, Station: "rotating-0", Password: "correct horse" + e.code("alice", 0)}); d.Result != Accept {
		t.Fatalf("alice from an own station: %s/%s", d.Result, d.Reason)
	}
	// Another user is not affected by alice's rotation.
	if d := e.auth(Request{User: "digit", Mode: ModeAppend, Station: "rotating-999", Password: "summer123456" + e.code("digit", 0)}); d.Result != Accept {
		t.Fatalf("digit from a station alice's guesser used: %s/%s", d.Result, d.Reason)
	}
}

func TestNormalizeStation(t *testing.T) {
	tests := []struct{ in, want string }{
		// strongSwan appends the client's source port in brackets.
		{"10.99.0.2[58214]", "10.99.0.2"},
		{"10.99.0.2[1]", "10.99.0.2"},
		{"2001:db8::2[4500]", "2001:db8::2"},
		// address:port where the port is unambiguous.
		{"192.0.2.1:58214", "192.0.2.1"},
		{"[2001:DB8::1]:58214", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		// A bare IPv6 address keeps all its groups.
		{"2001:db8::1:5", "2001:db8::1:5"},
		{"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{" 192.0.2.1 ", "192.0.2.1"},
		// MAC addresses, however they are written.
		{"00-10-A4-23-19-C0", "00-10-a4-23-19-c0"},
		{"00:10:a4:23:19:c0", "00-10-a4-23-19-c0"},
		{"0010.A423.19C0", "00-10-a4-23-19-c0"},
		{"0010A42319C0", "00-10-a4-23-19-c0"},
		// Anything else is only trimmed and lower-cased.
		{"+4930123456", "+4930123456"},
		{"VPN-Host.Example.ORG", "vpn-host.example.org"},
		{"host[abc]", "host[abc]"},
		{"[58214]", "[58214]"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := normalizeStation(tc.in); got != tc.want {
			t.Errorf("normalizeStation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestStationOverflowBucket: past maxStationsPerUser own stations, a user's
// further stations share one bucket; a success does not reset that shared
// bucket, but does reset (and keep) a station of the user's own; forgotten
// stations free their slot.
func TestStationOverflowBucket(t *testing.T) {
	const perUser = 2
	st := newStationTable(testOptions(), 100, perUser)
	fail := func(station string, at time.Time) bool { return st.settle("u", station, pwFailed, at) }
	fail("own1", t0)
	fail("own2", t0)
	for i := range 5 {
		if fail(fmt.Sprintf("rot%d", i), t0) {
			t.Fatalf("shared bucket locked after %d failures", i)
		}
	}
	if !st.settle("u", "rot-new", pwPassed, t0) {
		t.Fatal("a new station of a user past the cap is not in the shared bucket's backoff")
	}
	if st.settle("u", "own1", pwPassed, t0) {
		t.Fatal("an own station shares the overflow backoff")
	}
	// The shared bucket's backoff ends; a success there does not reset it,
	// so the next failure locks it again at once (failure 6: 1 min).
	at := t0.Add(30 * time.Second)
	if st.settle("u", "rot-new", pwPassed, at) {
		t.Fatal("shared bucket still locked after its backoff")
	}
	if fail("rot-other", at); !st.settle("u", "rot-x", pwNeutral, at.Add(59*time.Second)) {
		t.Fatal("a success reset the shared bucket")
	}
	// own1 passed: its entry stays (failures forgotten), so own1 keeps its
	// own bucket.
	for range 4 {
		fail("own1", at)
	}
	if st.settle("u", "own1", pwNeutral, at) {
		t.Fatal("own1's failures were not forgotten by its success")
	}
	// A day later the stations are forgotten and the slots free again.
	later := at.Add(stationForgetAfter + time.Hour)
	fail("fresh", later)
	if us := st.users["u"]; us == nil || us.own["fresh"] == nil {
		t.Fatal("a forgotten station's slot was not freed")
	}
	// Other users have their own slots.
	if st.settle("v", "rot-new", pwFailed, at) {
		t.Fatal("another user shares u's bucket")
	}
}
