package auth

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestDecodeStaticChallenge(t *testing.T) {
	tests := []struct {
		name, field string
		pw, resp    string
		ok          bool
	}{
		// The example of OpenVPN's management-notes.txt.
		{"management notes", "SCRV1:YmFy:ODY3NTMwOQ==", "bar", "8675309", true},
		{"password and code", "SCRV1:aHVudGVyMg==:NDkyMDM5", "hunter2", "492039", true},
		{"password with colon and spaces", "SCRV1:YTpiIGM=:MTIzNDU2", "a:b c", "123456", true},
		{"empty response", "SCRV1:aHVudGVyMg==:", "hunter2", "", true},
		{"empty password", "SCRV1::MTIzNDU2", "", "123456", true},
		{"recovery code", "SCRV1:cHc=:YWJjZC1lZmdo", "pw", "abcd-efgh", true},
		{"plain password", "hunter2492039", "", "", false},
		{"no second part", "SCRV1:aHVudGVyMg==", "", "", false},
		{"three parts", "SCRV1:YQ==:Yg==:Yw==", "", "", false},
		{"bad base64 password", "SCRV1:not base64:MTIz", "", "", false},
		{"bad base64 response", "SCRV1:YQ==:***", "", "", false},
		{"lower-case prefix", "scrv1:YQ==:Yg==", "", "", false},
		{"dynamic challenge is not static", "CRV1::c3RhdGU=::123456", "", "", false},
		{"prefix only", "SCRV1:", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pw, resp, ok := decodeStaticChallenge(tt.field)
			if pw != tt.pw || resp != tt.resp || ok != tt.ok {
				t.Errorf("decodeStaticChallenge(%q) = %q, %q, %v; want %q, %q, %v", tt.field, pw, resp, ok, tt.pw, tt.resp, tt.ok)
			}
		})
	}
}

// scrv1 is the field OpenVPN sends for password pw and response resp.
func scrv1(pw string, resp func(e *env) string) func(e *env) string {
	return func(e *env) string {
		return "SCRV1:" + base64.StdEncoding.EncodeToString([]byte(pw)) + ":" + base64.StdEncoding.EncodeToString([]byte(resp(e)))
	}
}

func codeOf(user string, offset int) func(*env) string {
	return func(e *env) string { return e.code(user, offset) }
}

func wrongCodeOf(user string) func(*env) string {
	return func(e *env) string { return e.wrongCode(user) }
}

// TestStaticChallengeDecisions: on append and auto clients an OpenVPN
// static-challenge field is read as password and code; on challenge
// clients it stays a literal password.
func TestStaticChallengeDecisions(t *testing.T) {
	tests := []struct {
		name  string
		opt   func(*Options)
		steps []step
	}{
		{name: "auto/accept, replay, wrong code", steps: []step{
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", codeOf("alice", 0)), want: Accept, reason: ReasonOK, check: wantLastStep("alice", 0)},
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", codeOf("alice", 0)), before: advance(5 * time.Second), want: Reject, reason: ReasonCodeReused},
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", wrongCodeOf("alice")), want: Reject, reason: ReasonBadCode},
		}},
		{name: "append/accept", steps: []step{
			{mode: ModeAppend, user: "alice", field: scrv1("correct horse", codeOf("alice", 0)), want: Accept, reason: ReasonOK},
		}},
		{name: "append/wrong password", steps: []step{
			{mode: ModeAppend, user: "alice", field: scrv1("correct hors", codeOf("alice", 0)), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "append/empty response", steps: []step{
			{mode: ModeAppend, user: "alice", field: scrv1("correct horse", lit("")), want: Reject, reason: ReasonBadCode},
		}},
		{name: "auto/empty response is a challenge", steps: []step{
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", lit("")), want: Challenge, reason: ReasonOK, check: wantChallenge},
		}},
		{name: "auto/not a code", steps: []step{
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", lit("12345")), want: Reject, reason: ReasonBadCode},
		}},
		{name: "auto/recovery code", steps: []step{
			{mode: ModeAuto, user: "alice", field: scrv1("correct horse", lit(rcAlice1)), want: Accept, reason: ReasonRecoveryCode},
		}},
		// No split: a password ending in six digits is no problem here.
		{name: "auto/password ending in digits", steps: []step{
			{mode: ModeAuto, user: "digit", field: scrv1("summer123456", codeOf("digit", 0)), want: Accept, reason: ReasonOK},
		}},
		// An OTP-only user logs in only on otp-only clients, in this form too.
		{name: "auto/user without password", steps: []step{
			{mode: ModeAuto, user: "otto", field: scrv1("", codeOf("otto", 0)), want: Reject, reason: ReasonNoPassword},
		}},
		{name: "auto/no token, password decoded", steps: []step{
			{mode: ModeAuto, user: "carol", field: scrv1("carolpw", lit("123456")), want: Reject, reason: ReasonNotEnrolled},
			{mode: ModeAuto, user: "carol", field: scrv1("wrong", lit("123456")), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "auto/unknown user", steps: []step{
			{mode: ModeAuto, user: "nobody", field: scrv1("pw", lit("123456")), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "challenge/literal password", steps: []step{
			{mode: ModeChallenge, user: "alice", field: scrv1("correct horse", codeOf("alice", 0)), want: Reject, reason: ReasonBadPassword},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opt)
			for i, s := range tc.steps {
				if s.before != nil {
					s.before(e)
				}
				d := e.auth(Request{User: s.user, Mode: s.mode, Password: s.field(e)})
				if d.Result != s.want || d.Reason != s.reason {
					t.Fatalf("step %d (%s %s): got %s/%s, want %s/%s", i, s.mode, s.user, d.Result, d.Reason, s.want, s.reason)
				}
				if s.check != nil {
					s.check(t, e, d)
				}
			}
		})
	}
}
