package importer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/totp"
)

// rfcSecret is the RFC 6238 test key; b32 its base32 form.
var rfcSecret = []byte("12345678901234567890")

const b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

func cheapArgon2(t *testing.T, pw string) string {
	t.Helper()
	h, err := password.Hash(pw, password.Params{MemKiB: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseCSV(t *testing.T) {
	argon := cheapArgon2(t, "pw")
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHash := string(bc)
	tests := []struct {
		name string
		in   string
		want []admin.ImportUser
	}{
		{
			name: "header and rows",
			in: "name,password,totp_secret,groups\n" +
				"alice,s3cret," + b32 + ",vpn;admins\n" +
				"bob,,,\n",
			want: []admin.ImportUser{
				{Name: "alice", Password: "s3cret", Secret: rfcSecret, Groups: []string{"vpn", "admins"}},
				{Name: "bob"},
			},
		},
		{
			name: "no header, CRLF, blank lines",
			in:   "alice,pw,,vpn\r\n\r\nbob,pw2,,\r\n",
			want: []admin.ImportUser{
				{Name: "alice", Password: "pw", Groups: []string{"vpn"}},
				{Name: "bob", Password: "pw2"},
			},
		},
		{
			name: "header with byte order mark",
			in:   "\ufeffname,password,totp_secret,groups\nalice,,,\n",
			want: []admin.ImportUser{{Name: "alice"}},
		},
		{
			name: "secret lower case, grouped, padded",
			in: "a,," + strings.ToLower("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ") + ",\n" +
				"b,,GEZDGNBVGY3TQOJQGEZDGNBVGY======,\n",
			want: []admin.ImportUser{
				{Name: "a", Secret: rfcSecret},
				{Name: "b", Secret: []byte("1234567890123456")},
			},
		},
		{
			name: "supported hashes kept as they are",
			in:   "a,\"" + argon + "\",,\nb," + bcryptHash + ",,\n",
			want: []admin.ImportUser{{Name: "a", Password: argon}, {Name: "b", Password: bcryptHash}},
		},
		{
			name: "quoted fields with commas, quotes and spaces",
			in:   `alice,"pa,ss ""word"" ",,"vpn; ops ;;vpn"` + "\n",
			want: []admin.ImportUser{{Name: "alice", Password: `pa,ss "word" `, Groups: []string{"vpn", "ops"}}},
		},
		{
			name: "plaintext with dollars is not a hash",
			in:   "alice,$money,,\nbob,pa$$word,,\n",
			want: []admin.ImportUser{{Name: "alice", Password: "$money"}, {Name: "bob", Password: "pa$$word"}},
		},
		{
			name: "unicode name",
			in:   "jürgen,,,\n",
			want: []admin.ImportUser{{Name: "jürgen"}},
		},
		{name: "empty file", in: "", want: nil},
		{name: "header only", in: "name,password,totp_secret,groups\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCSV(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseCSV: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseCSV =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	const shadow = "$6$rounds=5000$saltsalt$Wm0Tz0cKWCM1yA5vHcAGr0W7zn8LQw2cRPLl1H6m1"
	tests := []struct {
		name   string
		in     string
		want   string // exact error text
		secret string // must not appear in the error
	}{
		{
			name: "secret not base32",
			in:   "name,password,totp_secret,groups\na,,,\nb,,,\nc,,,\nd,,,\ne,,,\ng,pw,NOT-BASE32-1189,\n",
			want: "importer: line 7: totp_secret: not base32", secret: "1189",
		},
		{
			name: "secret too short",
			in:   "alice,,GEZDGNBVGY3TQOJQ,\n",
			want: "importer: line 1: totp_secret: secret shorter than 16 bytes (128 bits, the RFC 4226 minimum)", secret: "GEZDGNBVGY3TQOJQ",
		},
		{
			name: "duplicate name",
			in:   "alice,,,\nbob,,,\nalice,,,\n",
			want: `importer: line 3: name "alice" already on line 1`,
		},
		{
			name: "duplicate name after header",
			in:   "name,password,totp_secret,groups\nalice,,,\nbob,,,\nalice,,,\n",
			want: `importer: line 4: name "alice" already on line 2`,
		},
		{
			name: "too few columns",
			in:   "alice,,,\nbob,pw\n",
			want: "importer: line 2: 2 columns, want 4 (name,password,totp_secret,groups)",
		},
		{
			name:   "unquoted argon2id hash",
			in:     "alice,$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo,,\n",
			want:   "importer: line 1: 6 columns, want 4 (name,password,totp_secret,groups); an argon2id hash contains commas, so put it in double quotes",
			secret: "aGFzaGhh",
		},
		{
			name: "too many columns",
			in:   "alice,,,,\n",
			want: "importer: line 1: 5 columns, want 4 (name,password,totp_secret,groups)",
		},
		{
			name: "wrong header",
			in:   "name,password,secret,groups\nalice,,,\n",
			want: "importer: line 1: a header row must be exactly name,password,totp_secret,groups",
		},
		{
			name: "header not first",
			in:   "alice,,,\nname,password,totp_secret,groups\n",
			want: "importer: line 2: totp_secret: not base32",
		},
		{
			name: "empty name",
			in:   "alice,,,\n,pw,,\n",
			want: "importer: line 2: name: empty",
		},
		{
			name: "name with spaces around",
			in:   " alice,,,\n",
			want: `importer: line 1: name: " alice" has leading or trailing spaces`,
		},
		{
			name: "name with control character",
			in:   "al\x01ice,,,\n",
			want: `importer: line 1: name: "al\x01ice" contains a control character`,
		},
		{
			name: "name not UTF-8",
			in:   "al\xffice,,,\n",
			want: "importer: line 1: name: not valid UTF-8",
		},
		{
			name:   "crypt hash from /etc/shadow",
			in:     "alice,,,\nbob," + shadow + ",,\n",
			want:   "importer: line 2: password: looks like a password hash in an unsupported format (supported: argon2id PHC string, bcrypt $2a$/$2b$/$2y$); give the plaintext or a supported hash",
			secret: "Wm0Tz0c",
		},
		{
			name:   "LDAP hash",
			in:     "alice,{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=,,\n",
			want:   "importer: line 1: password: looks like a password hash in an unsupported format (supported: argon2id PHC string, bcrypt $2a$/$2b$/$2y$); give the plaintext or a supported hash",
			secret: "W6ph5",
		},
		{
			name:   "broken bcrypt",
			in:     "alice,$2b$10$tooshort,,\n",
			want:   "importer: line 1: password: looks like a password hash in an unsupported format (supported: argon2id PHC string, bcrypt $2a$/$2b$/$2y$); give the plaintext or a supported hash",
			secret: "tooshort",
		},
		{
			name: "bare quote",
			in:   "alice,,,\nbob,pa\"ss,,\n",
			want: `importer: line 2: csv: bare " in non-quoted-field`,
		},
		{
			name: "unterminated quote",
			in:   "alice,,,\nbob,\"pass,,\n",
			want: `importer: line 2: csv: extraneous or missing " in quoted-field`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCSV(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("ParseCSV succeeded with %d users, want error %q", len(got), tt.want)
			}
			if got != nil {
				t.Errorf("ParseCSV returned %d users with an error", len(got))
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n %q\nwant\n %q", err.Error(), tt.want)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("error reveals %q", tt.secret)
			}
		})
	}
}

// TestParseCSVLarge parses 100,000 rows with secrets and groups.
func TestParseCSVLarge(t *testing.T) {
	const n = 100_000
	var b bytes.Buffer
	b.WriteString("name,password,totp_secret,groups\n")
	for i := range n {
		fmt.Fprintf(&b, "user%d,password%d,%s,vpn;group%d\n", i, i, b32, i%7)
	}
	start := time.Now()
	users, err := ParseCSV(&b)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != n {
		t.Fatalf("%d users, want %d", len(users), n)
	}
	last := users[n-1]
	if last.Name != "user99999" || last.Password != "password99999" || !bytes.Equal(last.Secret, rfcSecret) ||
		!reflect.DeepEqual(last.Groups, []string{"vpn", "group" + strconv.Itoa((n-1)%7)}) {
		t.Fatalf("last user %+v", last)
	}
	t.Logf("parsed %d rows in %v", n, elapsed)
	if elapsed > 10*time.Second {
		t.Fatalf("parsing %d rows took %v", n, elapsed)
	}
}

const gaFile = `326HKGA43YQPSQ737HWDVVZYHI
" RATE_LIMIT 3 30 1700000000 1700000010
" WINDOW_SIZE 17
" DISALLOW_REUSE 56666666 56666667
" STEP_SIZE 30
" TOTP_AUTH
42621998
42721242
63907279
`

func TestParseGoogleAuthenticator(t *testing.T) {
	secret, err := enroll.DecodeSecret("326HKGA43YQPSQ737HWDVVZYHI")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		want     admin.ImportUser
	}{
		{"full file", gaFile, admin.ImportUser{Name: "alice", Secret: secret, RecoveryCodes: []string{"42621998", "42721242", "63907279"}}},
		{"CRLF", strings.ReplaceAll(gaFile, "\n", "\r\n"), admin.ImportUser{Name: "alice", Secret: secret, RecoveryCodes: []string{"42621998", "42721242", "63907279"}}},
		{"secret only, no newline", "326HKGA43YQPSQ737HWDVVZYHI", admin.ImportUser{Name: "alice", Secret: secret}},
		{"lower-case secret, minimal options", "326hkga43yqpsq737hwdvvzyhi\n\" TOTP_AUTH\n", admin.ImportUser{Name: "alice", Secret: secret}},
		{"repeated scratch code kept once", "326HKGA43YQPSQ737HWDVVZYHI\n12345678\n12345678\n87654321\n", admin.ImportUser{Name: "alice", Secret: secret, RecoveryCodes: []string{"12345678", "87654321"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGoogleAuthenticator(strings.NewReader(tt.in), "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseGoogleAuthenticatorErrors(t *testing.T) {
	const s = "326HKGA43YQPSQ737HWDVVZYHI\n"
	tests := []struct {
		name, in, user, want string
	}{
		{"HOTP", s + "\" WINDOW_SIZE 3\n\" HOTP_COUNTER 1\n64813792\n", "alice",
			"importer: google-authenticator file: line 3: HOTP_COUNTER: this is a counter-based (HOTP) token; otpgate supports only time-based (TOTP) tokens, so enroll the user again with: otpgate enroll NAME"},
		{"step 60", s + "\" STEP_SIZE 60\n\" TOTP_AUTH\n", "alice",
			"importer: google-authenticator file: line 2: STEP_SIZE 60: otpgate uses 30-second codes only; enroll the user again with: otpgate enroll NAME"},
		{"step without value", s + "\" STEP_SIZE\n", "alice",
			"importer: google-authenticator file: line 2: STEP_SIZE : otpgate uses 30-second codes only; enroll the user again with: otpgate enroll NAME"},
		{"unknown option", s + "\" TOTP_AUTH\n\" FROBNICATE 1\n", "alice",
			`importer: google-authenticator file: line 3: unknown option "FROBNICATE"`},
		{"empty option", s + "\" \n", "alice",
			"importer: google-authenticator file: line 2: empty option line"},
		{"seven-digit scratch code", s + "1234567\n", "alice",
			`importer: google-authenticator file: line 2: neither an option (" NAME ...) nor an 8-digit scratch code`},
		{"dashed scratch code", s + "1234-5678\n", "alice",
			`importer: google-authenticator file: line 2: neither an option (" NAME ...) nor an 8-digit scratch code`},
		{"our recovery shape", s + "abcd-efgh-ijkl-mn23\n", "alice",
			`importer: google-authenticator file: line 2: neither an option (" NAME ...) nor an 8-digit scratch code`},
		{"secret not base32", "NOT BASE32 1189\n", "alice",
			"importer: google-authenticator file: line 1: secret: not base32"},
		{"old 80-bit secret", "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n", "alice",
			"importer: google-authenticator file: line 1: secret: secret shorter than 16 bytes (128 bits, the RFC 4226 minimum)"},
		{"option first", "\" TOTP_AUTH\n" + s, "alice",
			"importer: google-authenticator file: line 1: secret: not base32"},
		{"empty file", "", "alice",
			"importer: google-authenticator file: empty (the first line must be the secret)"},
		{"empty user", s, "",
			"importer: google-authenticator: user: empty"},
		{"too many lines", s + strings.Repeat("12345678\n", 1000), "alice",
			"importer: google-authenticator file: line 1001: too many lines (at most 1000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGoogleAuthenticator(strings.NewReader(tt.in), tt.user)
			if err == nil {
				t.Fatalf("succeeded with %+v, want error %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n %q\nwant\n %q", err.Error(), tt.want)
			}
			if got.Name != "" || got.Secret != nil || got.RecoveryCodes != nil {
				t.Fatalf("returned a partial user with the error: %+v", got)
			}
			for _, leak := range []string{"326HKGA", "JBSWY3", "1189", "64813792"} {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("error reveals %q", leak)
				}
			}
		})
	}
}

// gaWrite runs the real google-authenticator command non-interactively and
// returns the file it wrote.
func gaWrite(t *testing.T, extra ...string) (path string, content []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "google_authenticator")
	args := append([]string{"-f", "-w", "3", "-Q", "NONE", "-e", "5", "-q", "-s", path, "-l", "otpgate-test"}, extra...)
	testtool.Run(t, "google-authenticator", args...)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, content
}

// TestGoogleAuthenticatorReal parses a file written by the real
// google-authenticator command and checks its secret against oathtool.
func TestGoogleAuthenticatorReal(t *testing.T) {
	testtool.Require(t, "oathtool")
	_, content := gaWrite(t, "-t", "-d", "-r", "3", "-R", "30")
	lines := strings.Split(strings.TrimSpace(string(content)), "\n")
	var scratch []string
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, `"`) {
			scratch = append(scratch, l)
		}
	}
	if len(scratch) != 5 {
		t.Fatalf("google-authenticator wrote %d scratch codes, want 5:\n%s", len(scratch), content)
	}

	u, err := ParseGoogleAuthenticator(bytes.NewReader(content), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || !reflect.DeepEqual(u.RecoveryCodes, scratch) {
		t.Fatalf("user %q, recovery codes %v, want %v", u.Name, u.RecoveryCodes, scratch)
	}
	if len(u.Secret) < 16 {
		t.Fatalf("secret of %d bytes", len(u.Secret))
	}
	now := time.Now()
	for _, off := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
		at := now.Add(off)
		want := strings.TrimSpace(testtool.Run(t, "oathtool", "--totp", "-b", lines[0], "--now", "@"+strconv.FormatInt(at.Unix(), 10)))
		got, err := totp.Default.CodeAt(u.Secret, at)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("offset %v: code from the imported secret %q, oathtool %q", off, got, want)
		}
	}
}

// TestGoogleAuthenticatorRealRefused checks the refusals against files the
// real command writes.
func TestGoogleAuthenticatorRealRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"HOTP", []string{"-c", "-u"}, "HOTP_COUNTER: this is a counter-based (HOTP) token"},
		{"60-second steps", []string{"-t", "-d", "-u", "-S", "60"}, "STEP_SIZE 60: otpgate uses 30-second codes only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, content := gaWrite(t, tt.args...)
			_, err := ParseGoogleAuthenticator(bytes.NewReader(content), "alice")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q\nfile:\n%s", err, tt.want, content)
			}
		})
	}
	// 30-second steps written explicitly are fine.
	_, content := gaWrite(t, "-t", "-d", "-u", "-S", "30")
	if _, err := ParseGoogleAuthenticator(bytes.NewReader(content), "alice"); err != nil {
		t.Fatalf("STEP_SIZE 30 file refused: %v", err)
	}
}
