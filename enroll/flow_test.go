package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var flowNow = time.Unix(1700000000, 0)

func mustCode(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	c, err := Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongCode returns a 6-digit code that is not valid for secret in the
// window around flowNow.
func wrongCode(t *testing.T, secret []byte, n int) string {
	t.Helper()
	for i := n; ; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		if _, ok := Verify(secret, c, flowNow, Skew); !ok {
			return c
		}
	}
}

type activateRecorder struct {
	calls  int
	secret []byte
	codes  []string
	err    error
}

func (a *activateRecorder) activate(_ context.Context, secret []byte) ([]string, error) {
	a.calls++
	a.secret = append([]byte(nil), secret...)
	return a.codes, a.err
}

var recoveryCodes = []string{
	"aaaa-bbbb-cccc-dddd", "eeee-ffff-gggg-hhhh", "iiii-jjjj-kkkk-llll", "mmmm-nnnn-oooo-pppp",
	"qqqq-rrrr-ssss-tttt", "uuuu-vvvv-wwww-xxxx", "yyyy-zzzz-2222-3333", "4444-5555-6666-7777",
	"abcd-efgh-ijkl-mnop", "qrst-uvwx-yz23-4567",
}

func TestFlowRun(t *testing.T) {
	secret := []byte("0123456789abcdefghij")
	right := mustCode(t, secret, flowNow)
	prevStep := mustCode(t, secret, flowNow.Add(-30*time.Second))
	wrong1, wrong2, wrong3 := wrongCode(t, secret, 0), wrongCode(t, secret, 1), wrongCode(t, secret, 2)
	tooFar := mustCode(t, secret, flowNow.Add(90*time.Second))
	if _, ok := Verify(secret, tooFar, flowNow, Skew); ok {
		t.Fatal("test setup: code 3 steps ahead happens to verify")
	}
	activateErr := errors.New("store: user not found")

	tests := []struct {
		name        string
		in          string
		code        string
		json        bool
		user        string
		activateErr error
		wantErr     error  // errors.Is target; nil = success
		wantErrText string // substring of the error
		wantOut     []string
		wantNotOut  []string
		wantPrompts int
	}{
		{
			name: "right first try", in: right + "\n",
			wantOut: []string{
				"Google Authenticator, Microsoft Authenticator, Authy or any TOTP app",
				"otpauth://totp/otpgate:alice?secret=" + EncodeSecret(secret),
				"Key:     " + FormatSecret(secret),
				"\x1b[30;47m",
				"now active for alice",
				"store these somewhere safe; each works once",
				strings.Join(recoveryCodes, "\n  "),
			},
			wantNotOut:  []string{"not right"},
			wantPrompts: 1,
		},
		{
			name: "three wrong codes", in: wrong1 + "\n" + wrong2 + "\n" + wrong3 + "\n" + right + "\n",
			wantErr: ErrWrongCode, wantErrText: "3 times",
			wantOut: []string{
				"That code is not right; check the phone's clock and try again (2 tries left)",
				"That code is not right; check the phone's clock and try again (1 try left)",
			},
			wantNotOut:  []string{"recovery", "Recovery", "0 tries", recoveryCodes[0]},
			wantPrompts: 3,
		},
		{
			name: "wrong then right", in: wrong1 + "\n" + right + "\n",
			wantOut:     []string{"(2 tries left)", "now active", recoveryCodes[9]},
			wantNotOut:  []string{"(1 try left)"},
			wantPrompts: 2,
		},
		{
			name: "not digits then right", in: "hello\n" + right + "\n",
			wantOut:     []string{"A code is the 6 digits your app shows; try again (2 tries left)", "now active"},
			wantPrompts: 2,
		},
		{
			name: "code as the app shows it, CRLF", in: "  " + right[:3] + " " + right[3:] + "\r\n",
			wantOut: []string{"now active"}, wantPrompts: 1,
		},
		{
			name: "previous time step", in: prevStep + "\n",
			wantOut: []string{"now active"}, wantPrompts: 1,
		},
		{
			name: "three steps ahead", in: tooFar + "\n",
			wantErr: ErrAborted, wantOut: []string{"not right"}, wantPrompts: 2,
		},
		{
			name: "last line without newline", in: right,
			wantOut: []string{"now active"}, wantPrompts: 1,
		},
		{
			name: "EOF", in: "",
			wantErr: ErrAborted, wantErrText: "input ended", wantNotOut: []string{"recovery"}, wantPrompts: 1,
		},
		{
			name: "EOF after a wrong code", in: wrong1 + "\n",
			wantErr: ErrAborted, wantOut: []string{"(2 tries left)"}, wantPrompts: 2,
		},
		{
			name: "--code right", code: right,
			wantOut: []string{"now active", recoveryCodes[0], "otpauth://"}, wantPrompts: 0,
		},
		{
			name: "--code wrong", code: wrong1, in: right + "\n",
			wantErr: ErrWrongCode, wantNotOut: []string{"now active", recoveryCodes[0]}, wantPrompts: 0,
		},
		{
			name: "--code not digits", code: "12345x",
			wantErr: ErrWrongCode, wantPrompts: 0,
		},
		{
			name: "JSON without code", json: true, in: right + "\n",
			wantErr: ErrCodeRequired, wantPrompts: 0,
		},
		{
			name: "JSON wrong code", json: true, code: wrong1,
			wantErr: ErrWrongCode, wantPrompts: 0,
		},
		{
			name: "activate fails", in: right + "\n", activateErr: activateErr,
			wantErr: activateErr, wantErrText: "activate \"alice\"",
			wantNotOut: []string{"now active", "Recovery"}, wantPrompts: 1,
		},
		{
			name: "colon in user", in: right + "\n", user: "dom:alice",
			wantErrText: "contains ':'", wantPrompts: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := &activateRecorder{codes: recoveryCodes, err: tt.activateErr}
			var out bytes.Buffer
			user := tt.user
			if user == "" {
				user = "alice"
			}
			f := Flow{
				In: strings.NewReader(tt.in), Out: &out,
				Issuer: "otpgate", User: user, Code: tt.code, JSON: tt.json,
				Secret: secret, Now: func() time.Time { return flowNow }, Activate: act.activate,
			}
			err := f.Run(context.Background())
			wantFail := tt.wantErr != nil || tt.wantErrText != ""
			switch {
			case !wantFail && err != nil:
				t.Fatalf("Run: %v\noutput:\n%s", err, out.String())
			case wantFail && err == nil:
				t.Fatalf("Run succeeded, want error %v %q\noutput:\n%s", tt.wantErr, tt.wantErrText, out.String())
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Run error %v, want errors.Is %v", err, tt.wantErr)
			case tt.wantErrText != "" && !strings.Contains(err.Error(), tt.wantErrText):
				t.Fatalf("Run error %q, want it to contain %q", err, tt.wantErrText)
			}
			if err != nil {
				for _, secretText := range []string{EncodeSecret(secret), right, tt.code} {
					if secretText != "" && strings.Contains(err.Error(), secretText) {
						t.Fatalf("error %q reveals a secret or code", err)
					}
				}
			}
			// Activate runs only after a correct code, with the secret shown.
			wantCalls := 0
			if !wantFail || errors.Is(tt.wantErr, activateErr) {
				wantCalls = 1
			}
			if act.calls != wantCalls {
				t.Fatalf("Activate called %d times, want %d", act.calls, wantCalls)
			}
			if act.calls == 1 && !bytes.Equal(act.secret, secret) {
				t.Fatalf("Activate got a different secret")
			}
			o := out.String()
			if got := strings.Count(o, "Enter the 6-digit code from your app: "); got != tt.wantPrompts {
				t.Errorf("%d prompts, want %d\noutput:\n%s", got, tt.wantPrompts, o)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(o, s) {
					t.Errorf("output lacks %q\noutput:\n%s", s, o)
				}
			}
			for _, s := range tt.wantNotOut {
				if strings.Contains(o, s) {
					t.Errorf("output contains %q\noutput:\n%s", s, o)
				}
			}
			if tt.json && o != "" && err != nil {
				t.Errorf("JSON mode wrote %q before failing", o)
			}
		})
	}
}

func TestFlowJSON(t *testing.T) {
	secret := []byte("0123456789abcdefghij")
	act := &activateRecorder{codes: recoveryCodes}
	var out bytes.Buffer
	f := Flow{
		In: strings.NewReader(""), Out: &out, Issuer: "ACME VPN", User: "bob",
		Code: mustCode(t, secret, flowNow), JSON: true, Secret: secret,
		Now: func() time.Time { return flowNow }, Activate: act.activate,
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	var got Result
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in output")
	}
	wantURI, _ := URI("ACME VPN", "bob", secret)
	if got.User != "bob" || got.URI != wantURI || got.Secret != EncodeSecret(secret) ||
		strings.Join(got.RecoveryCodes, ",") != strings.Join(recoveryCodes, ",") {
		t.Fatalf("JSON result %+v", got)
	}
	if strings.Contains(out.String(), "\\u0026") {
		t.Errorf("JSON escapes '&' in the URI: %s", out.String())
	}
}

// keyReader plays the user: when the flow asks for a code it reads the key
// printed on out (as a person would from the screen) and types its code.
type keyReader struct {
	t    *testing.T
	out  *bytes.Buffer
	done bool
}

var keyLine = regexp.MustCompile(`(?m)^  Key:     ([A-Z2-7 ]+)$`)

func (k *keyReader) Read(p []byte) (int, error) {
	if k.done {
		return 0, io.EOF
	}
	k.done = true
	m := keyLine.FindStringSubmatch(k.out.String())
	if m == nil {
		k.t.Errorf("no key line in output:\n%s", k.out.String())
		return 0, io.EOF
	}
	secret, err := DecodeSecret(m[1])
	if err != nil {
		k.t.Errorf("key line %q: %v", m[1], err)
		return 0, io.EOF
	}
	return copy(p, oathtool(k.t, secret, flowNow)+"\n"), nil
}

// TestFlowGeneratedSecretAndPNG runs the flow with a fresh random secret,
// answers with oathtool's code for the key shown, and checks the PNG file.
func TestFlowGeneratedSecretAndPNG(t *testing.T) {
	requireTool(t, "oathtool")
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "alice.png")
	if err := os.WriteFile(pngPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	act := &activateRecorder{codes: recoveryCodes}
	var out bytes.Buffer
	f := Flow{
		In: &keyReader{t: t, out: &out}, Out: &out, Issuer: "otpgate", User: "alice",
		PNGPath: pngPath, Now: func() time.Time { return flowNow }, Activate: act.activate,
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if act.calls != 1 || len(act.secret) != SecretSize {
		t.Fatalf("Activate calls %d, secret %d bytes", act.calls, len(act.secret))
	}
	if !strings.Contains(out.String(), "Key:     "+FormatSecret(act.secret)) {
		t.Fatal("activated secret is not the one shown")
	}
	st, err := os.Stat(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("PNG mode %v, want 0600", st.Mode().Perm())
	}
	png, err := os.ReadFile(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := URI("otpgate", "alice", act.secret)
	if got := zbarDecode(t, png); got != uri {
		t.Errorf("PNG decodes to %q, want %q", got, uri)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the PNG (temp file left?)", len(entries))
	}
}

func TestFlowSetupErrors(t *testing.T) {
	act := &activateRecorder{}
	ok := Flow{In: strings.NewReader(""), Out: io.Discard, Issuer: "otpgate", User: "alice", Activate: act.activate}
	tests := []struct {
		name   string
		modify func(f *Flow)
		want   string
	}{
		{"no Activate", func(f *Flow) { f.Activate = nil }, "Activate and Out must be set"},
		{"no Out", func(f *Flow) { f.Out = nil }, "Activate and Out must be set"},
		{"no In and no code", func(f *Flow) { f.In = nil }, "no input"},
		{"short secret", func(f *Flow) { f.Secret = make([]byte, 10) }, "shorter than 16 bytes"},
		{"empty issuer", func(f *Flow) { f.Issuer = "" }, "issuer is empty"},
		{"PNG in missing dir", func(f *Flow) { f.PNGPath = "/nonexistent-otpgate-dir/x.png" }, "write png"},
		{"cancelled", func(f *Flow) {}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.modify(&f)
			ctx, cancel := context.WithCancel(context.Background())
			if tt.name == "cancelled" {
				cancel()
			}
			defer cancel()
			err := f.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run err = %v, want %q", err, tt.want)
			}
			if act.calls != 0 {
				t.Fatal("Activate was called")
			}
		})
	}
}
