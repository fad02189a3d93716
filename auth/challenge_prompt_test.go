package auth

import "testing"

// TestChallengePromptEndsWithColon: the Reply-Message of an
// Access-Challenge is shown as the prompt (pam_radius_auth, VPN clients),
// so it ends with ": " and the code is typed after it, as after
// "Password: ".
func TestChallengePromptEndsWithColon(t *testing.T) {
	e := newEnv(t, nil)
	d := e.auth(Request{User: "alice", Password: "correct horse", Mode: ModeChallenge})
	if d.Result != Challenge {
		t.Fatalf("result %v (%s), want a challenge", d.Result, d.Reason)
	}
	if want := "Enter the 6-digit code from your authenticator app: "; d.Message != want {
		t.Errorf("challenge message %q, want %q", d.Message, want)
	}
}
