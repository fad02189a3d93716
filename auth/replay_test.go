package auth

import (
	"fmt"
	"testing"
	"time"
)

// TestReplayedCodeIsNotAGuess: a replayed code (a captured request re-sent
// from new source ports, past the reply cache) is refused as code_reused
// and does not count toward the lock: it reveals nothing to a guesser, and
// counting it would let anyone who saw one login lock the user out.
func TestReplayedCodeIsNotAGuess(t *testing.T) {
	for _, mode := range []Mode{ModeAppend, ModeOTPOnly} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, nil)
			field := e.code("alice", 0)
			if mode == ModeAppend {
				field = "correct horse" + field
			}
			if d := e.auth(Request{User: "alice", Mode: mode, Password: field}); d.Result != Accept {
				t.Fatalf("first use: %s/%s", d.Result, d.Reason)
			}
			for i := range 20 {
				d := e.auth(Request{User: "alice", Mode: mode, Station: fmt.Sprintf("198.51.100.7[%d]", 40000+i), Password: field})
				if d.Result != Reject || d.Reason != ReasonCodeReused {
					t.Fatalf("replay %d: %s/%s, want reject/code_reused", i, d.Result, d.Reason)
				}
			}
			if u := e.user("alice"); u.CodeFailures != 0 || !u.LockedUntil.IsZero() || !u.LastFailure.IsZero() {
				t.Fatalf("replays counted: failures %d, last failure %v, locked until %v", u.CodeFailures, u.LastFailure, u.LockedUntil)
			}
			e.clk.Advance(30 * time.Second)
			next := e.code("alice", 0)
			if mode == ModeAppend {
				next = "correct horse" + next
			}
			if d := e.auth(Request{User: "alice", Mode: mode, Password: next}); d.Result != Accept {
				t.Fatalf("the real user after 20 replays: %s/%s", d.Result, d.Reason)
			}
		})
	}
}
