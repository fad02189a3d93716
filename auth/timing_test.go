package auth

import (
	"sync/atomic"
	"testing"
	"time"
)

// countHashes makes e count the password hashes its requests cost.
func countHashes(e *env) *atomic.Int64 {
	var n atomic.Int64
	e.a.onHash = func() { n.Add(1) }
	return &n
}

// TestPasswordRejectsCostOneHash: every Reject on a password client costs
// exactly one password hash, whether the password was wrong, the user
// unknown, disabled, without a password, code-locked, or the station in
// backoff (with the right password or a wrong one). The timing of a Reject
// then tells nothing about the password or the backoff, whatever
// reject_delay is. Counted, not timed.
func TestPasswordRejectsCostOneHash(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		field  func(e *env) string
		setup  func(e *env)
		reason Reason
	}{
		{"wrong password", "alice", withCode("wrong", "alice", 0), nil, ReasonBadPassword},
		{"unknown user", "nobody", lit("whatever123456"), nil, ReasonUnknownUser},
		{"disabled", "bob", withCode("bobpw", "bob", 0), nil, ReasonDisabled},
		{"no password", "otto", withCode("", "otto", 0), nil, ReasonNoPassword},
		{"code-locked user", "alice", withCode("correct horse", "alice", 0), lockUser("alice", 9, time.Hour), ReasonLocked},
		{"station locked, wrong password", "alice", withCode("wrong", "alice", 0),
			func(e *env) { lockStation(e, "alice", "192.0.2.10") }, ReasonLocked},
		{"station locked, right password", "alice", withCode("correct horse", "alice", 0),
			func(e *env) { lockStation(e, "alice", "192.0.2.10") }, ReasonLocked},
		{"station locked, unknown user", "nobody", lit("whatever123456"),
			func(e *env) { lockStation(e, "nobody", "192.0.2.10") }, ReasonLocked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tc.setup != nil {
				tc.setup(e)
			}
			hashes := countHashes(e)
			d := e.auth(Request{User: tc.user, Mode: ModeAppend, Password: tc.field(e)})
			if d.Result != Reject || d.Reason != tc.reason {
				t.Fatalf("got %s/%s, want reject/%s", d.Result, d.Reason, tc.reason)
			}
			if n := hashes.Load(); n != 1 {
				t.Fatalf("the reject cost %d password hashes; a wrong password costs 1", n)
			}
		})
	}
}
