package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/totp"
)

var flowNow = time.Unix(1700000000, 0)

func mustCode(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	c, err := totp.Default.CodeAt(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifies reports whether code checks for a token with parameters p at
// flowNow, with the skew admin.Local.ActivateTOTP allows.
func verifies(p totp.Params, secret []byte, code string) bool {
	_, ok, err := p.Match(secret, code, flowNow, Skew)
	return ok && err == nil
}

// wrongCode returns a 6-digit code that is not valid for secret in the
// window around flowNow.
func wrongCode(t *testing.T, secret []byte, n int) string {
	t.Helper()
	for i := n; ; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		if !verifies(totp.Default, secret, c) {
			return c
		}
	}
}

// activateRecorder plays the server: it checks each code against secret at
// flowNow, as admin.Local.ActivateTOTP does, and records what it got.
type activateRecorder struct {
	params totp.Params
	secret []byte
	sent   []string // codes sent, in order
	codes  []string
	err    error // returned instead of checking, when set
}

func (a *activateRecorder) activate(_ context.Context, code string) ([]string, error) {
	a.sent = append(a.sent, code)
	if a.err != nil {
		return nil, a.err
	}
	if !verifies(a.params, a.secret, code) {
		return nil, fmt.Errorf("admin: activate token for %q: %w (2 more tries before the enrollment is discarded)", "alice", ErrWrongCode)
	}
	return a.codes, nil
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
	if verifies(totp.Default, secret, tooFar) {
		t.Fatal("test setup: code 3 steps ahead happens to verify")
	}
	activateErr := errors.New("admin: too many wrong codes; the enrollment was discarded")

	tests := []struct {
		name         string
		in           string
		user         string
		pendingOnEOF bool
		activateErr  error
		wantErr      error  // errors.Is target; nil = success
		wantErrText  string // substring of the error
		wantOut      []string
		wantNotOut   []string
		wantPrompts  int
		wantSent     []string // codes sent to Activate
	}{
		{
			name: "right first try", in: right + "\n",
			wantOut: []string{
				"Google Authenticator, Microsoft Authenticator, Authy or any TOTP app",
				"otpauth://totp/otpgate:alice?secret=" + EncodeSecret(secret),
				"Key:     " + FormatSecret(secret),
				"Can't scan it?",
				"\x1b[30;47m",
				"now active for alice",
				"store these somewhere safe; each works once",
				strings.Join(recoveryCodes, "\n  "),
			},
			wantNotOut:  []string{"not right", "pending"},
			wantPrompts: 1, wantSent: []string{right},
		},
		{
			name: "three wrong codes", in: wrong1 + "\n" + wrong2 + "\n" + wrong3 + "\n" + right + "\n",
			wantErr: ErrWrongCode, wantErrText: "3 times",
			wantOut: []string{
				"That code is not right; check the phone's clock and try again (2 tries left)",
				"That code is not right; check the phone's clock and try again (1 try left)",
			},
			wantNotOut:  []string{"recovery", "Recovery", "0 tries", recoveryCodes[0]},
			wantPrompts: 3, wantSent: []string{wrong1, wrong2, wrong3},
		},
		{
			name: "wrong then right", in: wrong1 + "\n" + right + "\n",
			wantOut:     []string{"(2 tries left)", "now active", recoveryCodes[9]},
			wantNotOut:  []string{"(1 try left)"},
			wantPrompts: 2, wantSent: []string{wrong1, right},
		},
		{
			name: "not digits is not sent", in: "hello\n" + right + "\n",
			wantOut:     []string{"A code is the 6 digits your app shows; try again (2 tries left)", "now active"},
			wantPrompts: 2, wantSent: []string{right},
		},
		{
			name: "code as the app shows it, CRLF", in: "  " + right[:3] + " " + right[3:] + "\r\n",
			wantOut: []string{"now active"}, wantPrompts: 1, wantSent: []string{right},
		},
		{
			name: "previous time step", in: prevStep + "\n",
			wantOut: []string{"now active"}, wantPrompts: 1, wantSent: []string{prevStep},
		},
		{
			name: "three steps ahead", in: tooFar + "\n",
			wantErr: ErrAborted, wantOut: []string{"not right"}, wantPrompts: 2, wantSent: []string{tooFar},
		},
		{
			name: "last line without newline", in: right,
			wantOut: []string{"now active"}, wantPrompts: 1, wantSent: []string{right},
		},
		{
			name: "EOF", in: "",
			wantErr: ErrAborted, wantErrText: "input ended", wantNotOut: []string{"recovery", "pending"}, wantPrompts: 1,
		},
		{
			name: "EOF without a terminal leaves it pending", in: "", pendingOnEOF: true,
			wantOut:     []string{"Key:     " + FormatSecret(secret), "The enrollment of alice is pending", "otpgate enroll alice --code CODE"},
			wantNotOut:  []string{"recovery", "now active"},
			wantPrompts: 1,
		},
		{
			name: "EOF after a wrong code", in: wrong1 + "\n", pendingOnEOF: true,
			wantErr: ErrAborted, wantOut: []string{"(2 tries left)"}, wantNotOut: []string{"pending"}, wantPrompts: 2, wantSent: []string{wrong1},
		},
		{
			name: "server ends the enrollment", in: right + "\n" + right + "\n", activateErr: activateErr,
			wantErr: activateErr, wantErrText: "activate \"alice\"",
			wantNotOut: []string{"now active", "Recovery", "not right"}, wantPrompts: 1, wantSent: []string{right},
		},
		{
			name: "colon in user", in: right + "\n", user: "dom:alice",
			wantErrText: "contains ':'", wantPrompts: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := &activateRecorder{secret: secret, codes: recoveryCodes, err: tt.activateErr}
			var out bytes.Buffer
			user := tt.user
			if user == "" {
				user = "alice"
			}
			f := Flow{
				In: strings.NewReader(tt.in), Out: &out,
				Issuer: "otpgate", User: user, Secret: secret, Activate: act.activate,
				PendingOnEOF: tt.pendingOnEOF, FinishHint: "otpgate enroll alice --code CODE",
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
				for _, secretText := range []string{EncodeSecret(secret), right} {
					if strings.Contains(err.Error(), secretText) {
						t.Fatalf("error %q reveals a secret or code", err)
					}
				}
			}
			if strings.Join(act.sent, ",") != strings.Join(tt.wantSent, ",") {
				t.Errorf("codes sent to Activate %q, want %q", act.sent, tt.wantSent)
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
		})
	}
}

// TestFlowStartFinish is the scripted two-step enrollment: Start shows the
// pending secret and says how to finish, Finish sends the code once.
func TestFlowStartFinish(t *testing.T) {
	secret := []byte("0123456789abcdefghij")
	right := mustCode(t, secret, flowNow)
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			act := &activateRecorder{secret: secret, codes: recoveryCodes}
			var out bytes.Buffer
			f := Flow{Out: &out, Issuer: "ACME VPN", User: "bob", Secret: secret, JSON: asJSON,
				FinishHint: "otpgate enroll bob --code CODE", Activate: act.activate}
			if err := f.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantURI, _ := URI("ACME VPN", "bob", secret, totp.Default)
			if asJSON {
				var got PendingResult
				decodeOne(t, out.Bytes(), &got)
				if got != (PendingResult{User: "bob", URI: wantURI, Secret: EncodeSecret(secret), Pending: true}) {
					t.Fatalf("JSON start %+v", got)
				}
				if strings.Contains(out.String(), "\\u0026") {
					t.Errorf("JSON escapes '&' in the URI: %s", out.String())
				}
			} else {
				for _, want := range []string{"Scan this QR code", "Key:     " + FormatSecret(secret), wantURI,
					"The enrollment of bob is pending", "  otpgate enroll bob --code CODE\n"} {
					if !strings.Contains(out.String(), want) {
						t.Errorf("start output lacks %q:\n%s", want, out.String())
					}
				}
				if strings.Contains(out.String(), "Enter the 6-digit code") {
					t.Error("Start asked for a code")
				}
			}
			if len(act.sent) != 0 {
				t.Fatal("Start sent a code")
			}

			// Finish: a wrong code, then the right one as the app shows it.
			f.Secret = nil // Finish needs no secret: the server holds it
			out.Reset()
			wrong := wrongCode(t, secret, 0)
			err := f.Finish(context.Background(), wrong)
			if !errors.Is(err, ErrWrongCode) || out.Len() != 0 {
				t.Fatalf("Finish(wrong) = %v, output %q", err, out.String())
			}
			if strings.Contains(err.Error(), wrong) {
				t.Errorf("error %q contains the code", err)
			}
			if err := f.Finish(context.Background(), right[:3]+" "+right[3:]); err != nil {
				t.Fatal(err)
			}
			if strings.Join(act.sent, ",") != wrong+","+right {
				t.Errorf("codes sent %q", act.sent)
			}
			if asJSON {
				var got Result
				decodeOne(t, out.Bytes(), &got)
				if got.User != "bob" || strings.Join(got.RecoveryCodes, ",") != strings.Join(recoveryCodes, ",") {
					t.Fatalf("JSON finish %+v", got)
				}
			} else if !strings.Contains(out.String(), "now active for bob") || !strings.Contains(out.String(), recoveryCodes[0]) {
				t.Errorf("finish output:\n%s", out.String())
			}
		})
	}
}

// decodeOne decodes exactly one JSON object with no unknown fields.
func decodeOne(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in output:\n%s", data)
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
	testtool.Require(t, "oathtool")
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "alice.png")
	if err := os.WriteFile(pngPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	act := &activateRecorder{secret: secret, codes: recoveryCodes}
	var out bytes.Buffer
	f := Flow{
		In: &keyReader{t: t, out: &out}, Out: &out, Issuer: "otpgate", User: "alice",
		PNGPath: pngPath, Secret: secret, Activate: act.activate,
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if len(act.sent) != 1 || len(act.secret) != SecretSize {
		t.Fatalf("Activate calls %d, secret %d bytes", len(act.sent), len(act.secret))
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
	uri, _ := URI("otpgate", "alice", act.secret, totp.Default)
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
	ok := Flow{In: strings.NewReader(""), Out: io.Discard, Issuer: "otpgate", User: "alice",
		Secret: []byte("0123456789abcdefghij"), Activate: act.activate}
	tests := []struct {
		name   string
		modify func(f *Flow)
		want   string
	}{
		{"no Activate", func(f *Flow) { f.Activate = nil }, "Activate and Out must be set"},
		{"no Out", func(f *Flow) { f.Out = nil }, "Activate and Out must be set"},
		{"no In", func(f *Flow) { f.In = nil }, "no input"},
		{"no secret", func(f *Flow) { f.Secret = nil }, "no secret"},
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
			if len(act.sent) != 0 {
				t.Fatal("Activate was called")
			}
		})
	}
}

// TestFlowOtherParams: a token with other parameters than the default (8
// digits, SHA256) is shown with them in the URI and the text, the flow asks
// for codes of its length, and the code oathtool computes for it activates.
func TestFlowOtherParams(t *testing.T) {
	testtool.Require(t, "oathtool")
	p, err := totp.NewParams("SHA256", 8, 30)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdefghij0123456789ab")
	code := strings.TrimSpace(testtool.Run(t, "oathtool", "--totp=sha256", "-d", "8", "-b", EncodeSecret(secret),
		"--now", fmt.Sprintf("@%d", flowNow.Unix())))
	act := &activateRecorder{params: p, secret: secret, codes: recoveryCodes}
	var out bytes.Buffer
	f := Flow{
		In: strings.NewReader(code[2:] + "\n" + code + "\n"), Out: &out, Issuer: "otpgate", User: "alice",
		Secret: secret, Params: p, Activate: act.activate,
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	// The 6-digit answer is refused by the flow; only the 8-digit one is sent.
	if len(act.sent) != 1 || act.sent[0] != code {
		t.Errorf("sent %q, want only oathtool's %q", act.sent, code)
	}
	uri, err := URI("otpgate", "alice", secret, p)
	if err != nil || !strings.HasSuffix(uri, "&algorithm=SHA256&digits=8&period=30") {
		t.Fatalf("URI %q, %v", uri, err)
	}
	for _, want := range []string{uri, "(time-based, 8 digits, every 30 seconds, algorithm SHA256)",
		"Enter the 8-digit code", "A code is the 8 digits your app shows", "now active for alice"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPNGReplacesPlantedSymlink: a symlink planted at the PNG path is
// replaced by the image, never written through.
func TestPNGReplacesPlantedSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	pngPath := filepath.Join(dir, "alice.png")
	if err := os.Symlink(victim, pngPath); err != nil {
		t.Fatal(err)
	}
	if err := writePNGFile(pngPath, "otpauth://totp/x:alice?secret=JBSWY3DPEHPK3PXP&issuer=x"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Error("the PNG was written through the planted symlink")
	}
	fi, err := os.Lstat(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("PNG is %v, want a regular 0600 file", fi.Mode())
	}
}
