package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/internal/testtool"
)

// minimal is the smallest valid config; tests append to it.
const minimal = `version = 1
data_dir = "data"
[[client]]
name = "lo"
address = "127.0.0.1"
secret = "0123456789abcdefghijklmn"
`

// withTop puts top-level keys before minimal's tables.
func withTop(keys string) string {
	return strings.Replace(minimal, "version = 1\n", "version = 1\n"+keys, 1)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "radiusd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSample(t *testing.T) {
	// The sample holds its secret inline: loaded private, as make run
	// makes it (TestSampleRefusedWhileOthersCanRead has the 0644 case).
	sample := testtool.SampleConfig(t, "../../radiusd.toml", 0o600)
	c, err := Load(sample)
	if err != nil {
		t.Fatalf("the sample ../../radiusd.toml must load: %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("sample config has warnings: %q", c.Warnings)
	}
	root := filepath.Dir(sample)
	if want := filepath.Join(root, "data"); c.DataDir != want {
		t.Errorf("DataDir = %q, want %q", c.DataDir, want)
	}
	if c.SocketPath() != filepath.Join(root, "data", "control.sock") {
		t.Errorf("SocketPath = %q", c.SocketPath())
	}
	if len(c.Clients) != 1 || c.Clients[0].Name != "localhost" || c.Clients[0].Mode != "auto" {
		t.Errorf("clients = %+v", c.Clients)
	}
	if c.Metrics.Listen != "127.0.0.1:9812" {
		t.Errorf("metrics.listen = %q", c.Metrics.Listen)
	}
}

func TestDefaults(t *testing.T) {
	p := writeConfig(t, minimal)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Path", c.Path, p},
		{"DataDir", c.DataDir, filepath.Join(dir, "data")},
		{"DBPath", c.DBPath(), filepath.Join(dir, "data", "otpgate.db")},
		{"KeyPath", c.KeyPath(), filepath.Join(dir, "data", "seed.key")},
		{"SocketPath", c.SocketPath(), filepath.Join(dir, "data", "control.sock")},
		{"Issuer", c.Issuer, "otpgate"},
		{"Log.Level", c.Log.Level, "info"},
		{"Log.Audit", c.Log.Audit, "stderr"},
		{"Radius.Listen", strings.Join(c.Radius.Listen, ","), ":1812"},
		{"Radius.ReplyCacheTTL", c.Radius.ReplyCacheTTL.Duration, 30 * time.Second},
		{"Radius.ReplyCacheMax", c.Radius.ReplyCacheMax, 10000},
		{"Radius.ChallengeTTL", c.Radius.ChallengeTTL.Duration, 120 * time.Second},
		{"Radius.RejectDelay", c.Radius.RejectDelay.Duration, time.Second},
		{"Radius.Workers", c.Radius.Workers, runtime.NumCPU()},
		{"Radius.Queue", c.Radius.Queue, 256},
		{"Auth.Mode", c.Auth.Mode, "auto"},
		{"Auth.MFA", c.Auth.MFA, "required"},
		{"Auth.Skew", c.Auth.Skew, 1},
		{"Auth.LockoutThreshold", c.Auth.LockoutThreshold, 5},
		{"Auth.LockoutBase", c.Auth.LockoutBase.Duration, 30 * time.Second},
		{"Auth.LockoutMax", c.Auth.LockoutMax.Duration, 4 * time.Hour},
		{"Password.Argon2Time", c.Password.Argon2Time, password.DefaultParams.Time},
		{"Password.Argon2MemKiB", c.Password.Argon2MemKiB, password.DefaultParams.MemKiB},
		{"Password.Argon2Threads", c.Password.Argon2Threads, password.DefaultParams.Threads},
		{"Password.Params", c.Password.Params(), password.DefaultParams},
		{"Client.Mode", c.Clients[0].Mode, "auto"},
		{"Client.RequireMessageAuthenticator", *c.Clients[0].RequireMessageAuthenticator, true},
		{"Client.LimitProxyState", *c.Clients[0].LimitProxyState, true},
		{"Metrics.Listen", c.Metrics.Listen, ""},
		{"Warnings", len(c.Warnings), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
}

func TestExplicitValuesKept(t *testing.T) {
	c, err := Load(writeConfig(t, withTop(`issuer = "ACME VPN"
key_file = "/etc/otpgate/seed.key"
`)+`
[control]
socket = "run/ctl.sock"
[radius]
listen = ["127.0.0.1:0"]
workers = 3
queue = 7
reject_delay = "0s"
[auth]
skew = 0
mode = "challenge"
mfa = "optional"
mfa_groups = ["vpn"]
grace_until = "2030-01-31"
[password]
argon2_time = 3
argon2_memory_kib = 65536
argon2_threads = 2
[log]
audit = "audit.log"
level = "debug"
[metrics]
listen = "[::1]:9812"
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(c.Path)
	if c.Auth.Skew != 0 || c.Radius.Workers != 3 || c.Radius.Queue != 7 || c.Radius.RejectDelay.Duration != 0 {
		t.Errorf("explicit values replaced by defaults: %+v %+v", c.Auth, c.Radius)
	}
	if c.Clients[0].Mode != "challenge" {
		t.Errorf("client mode = %q, want the [auth] mode", c.Clients[0].Mode)
	}
	if c.KeyPath() != "/etc/otpgate/seed.key" || c.SocketPath() != filepath.Join(dir, "run", "ctl.sock") || c.Log.Audit != filepath.Join(dir, "audit.log") {
		t.Errorf("paths: key %q socket %q audit %q", c.KeyPath(), c.SocketPath(), c.Log.Audit)
	}
	if c.Auth.GraceUntil != "2030-01-31" || c.Auth.MFA != "optional" || len(c.Auth.MFAGroups) != 1 {
		t.Errorf("auth = %+v", c.Auth)
	}
	if c.Log.SlogLevel().String() != "DEBUG" {
		t.Errorf("SlogLevel = %v", c.Log.SlogLevel())
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings of the error, all required
	}{
		{"empty", ``, []string{`missing "version = 1"`}},
		{"no version", `data_dir = "x"`, []string{`missing "version = 1"`}},
		{"version 2", "version = 2\n", []string{"version = 2 is not supported"}},
		{"syntax", "version = 1\n[radius\n", []string{"radiusd.toml: toml: line 3: expected '.' or ']'"}},
		{"wrong type", minimal + "[radius]\nlisten = \"127.0.0.1:1812\"\n", []string{"radius.listen", "incompatible types"}},
		{"bad duration", minimal + "[radius]\nchallenge_ttl = \"2 minutes\"\n", []string{`last key "radius.challenge_ttl"`, `unknown unit`}},
		{"unknown top key", withTop("datadir = \"x\"\n"), []string{`unknown key "datadir"`}},
		{"unknown client key", strings.Replace(minimal, `secret =`, `secrt =`, 1), []string{`radiusd.toml: unknown key "client[0].secrt"`}},
		{"unknown keys everywhere", minimal + "[[client]]\nname=\"b\"\nfoo=1\n[radius]\nlistn=[]\n[nope]\nx=1\n",
			[]string{`unknown keys "client[1].foo", "radius.listn", "nope"`}},
		{"unknown key inline array", "version = 1\nclient = [{name = \"a\"}, {name = \"b\", secrt = \"x\"}]\n", []string{`unknown key "client[1].secrt"`}},
		{"unknown quoted key", withTop("\"a.b\" = 1\n"), []string{`unknown key "\"a.b\""`}},
		{"store backend", minimal + "[store]\nbackend = \"mysql\"\n", []string{`store.backend: "mysql" is not one of bbolt, postgres`}},
		{"postgres without dsn", minimal + "[store]\nbackend = \"postgres\"\n", []string{`needs dsn_file (or dsn)`}},
		{"postgres dsn_file missing", minimal + "[store]\nbackend = \"postgres\"\ndsn_file = \"/nonexistent/pg.dsn\"\n", []string{`store.dsn_file:`}},

		{"issuer colon", withTop("issuer = \"ACME:VPN\"\n"), []string{`issuer: "ACME:VPN" must not contain ':'`}},
		{"log level", minimal + "[log]\nlevel = \"loud\"\n", []string{`log.level: "loud" is not one of`}},
		{"control group name", minimal + "[control]\ngroup = \"a b\"\n", []string{`control.group: "a b" is not a valid group name`}},
		{"control group missing", minimal + "[control]\ngroup = \"no-such-group-otpgate\"\n", []string{`control.group: group "no-such-group-otpgate" not found`}},
		{"socket too long", minimal + "[control]\nsocket = \"/" + strings.Repeat("s", 120) + "\"\n", []string{"control.socket: control socket path", "at most 107"}},

		{"listen empty", minimal + "[radius]\nlisten = []\n", []string{"radius.listen: needs at least one address"}},
		{"listen no port", minimal + "[radius]\nlisten = [\"127.0.0.1\"]\n", []string{`radius.listen[0]: "127.0.0.1": missing port in address`}},
		{"listen bad port", minimal + "[radius]\nlisten = [\"127.0.0.1:99999\"]\n", []string{`radius.listen[0]: "127.0.0.1:99999": port "99999"`}},
		{"listen hostname", minimal + "[radius]\nlisten = [\"radius.example.com:1812\"]\n", []string{`radius.listen[0]`, `is not an IP address`}},
		{"listen duplicate", minimal + "[radius]\nlisten = [\"127.0.0.1:1812\", \"127.0.0.1:1812\"]\n", []string{`radius.listen[1]: "127.0.0.1:1812" repeats radius.listen[0]`}},
		{"reply cache ttl short", minimal + "[radius]\nreply_cache_ttl = \"1s\"\n", []string{"radius.reply_cache_ttl: 1s must be between 5s and 30s"}},
		{"reply cache ttl long", minimal + "[radius]\nreply_cache_ttl = \"1m\"\n", []string{"radius.reply_cache_ttl: 1m0s must be between 5s and 30s"}},
		{"reply cache max", minimal + "[radius]\nreply_cache_max = 0\n", []string{"radius.reply_cache_max: 0 must be between"}},
		{"challenge ttl", minimal + "[radius]\nchallenge_ttl = \"1h\"\n", []string{"radius.challenge_ttl: 1h0m0s must be between 10s and 10m0s"}},
		{"reject delay negative", minimal + "[radius]\nreject_delay = \"-1s\"\n", []string{"radius.reject_delay: -1s must be between"}},
		{"workers zero", minimal + "[radius]\nworkers = 0\n", []string{"radius.workers: 0 must be between 1 and 1024"}},
		{"queue negative", minimal + "[radius]\nqueue = -1\n", []string{"radius.queue: -1 must be between"}},

		{"client no name", "version = 1\n[[client]]\naddress = \"10.0.0.1\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{"client[0].name: is required"}},
		{"client bad name", strings.Replace(minimal, `"lo"`, `"lo cal"`, 1), []string{`client[0].name: "lo cal" must be`}},
		{"client dup name", minimal + "[[client]]\nname = \"lo\"\naddress = \"10.0.0.0/8\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{`client[1].name: "lo" is also the name of client[0]`}},
		{"client no address", "version = 1\n[[client]]\nname = \"a\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{"client[0].address: is required"}},
		{"client bad cidr", minimal + "[[client]]\nname = \"b\"\naddress = \"10.0.0.0/33\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{`client[1].address: "10.0.0.0/33": invalid CIDR`}},
		{"client bad ip", minimal + "[[client]]\nname = \"b\"\naddress = \"vpn.example.com\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{`client[1].address: "vpn.example.com": invalid IP address or CIDR`}},
		{"client host bits", minimal + "[[client]]\nname = \"b\"\naddress = \"10.0.0.1/8\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{`client[1].address: "10.0.0.1/8": host bits set (did you mean 10.0.0.0/8?)`}},
		{"client same prefix", minimal + "[[client]]\nname = \"b\"\naddress = \"127.0.0.1/32\"\nsecret = \"0123456789abcdefghijklmn\"\n", []string{`client[1].address: 127.0.0.1/32 is also the address of client[0] ("lo")`}},
		{"client no secret", "version = 1\n[[client]]\nname = \"a\"\naddress = \"10.0.0.1\"\n", []string{"client[0].secret: is required (or secret_file)"}},
		{"client short secret", strings.Replace(minimal, "0123456789abcdefghijklmn", "short", 1), []string{"client[0].secret: is 5 bytes; use at least 16"}},
		{"client both secrets", strings.Replace(minimal, "secret =", "secret_file = \"x\"\nsecret =", 1), []string{"client[0]: set only one of secret and secret_file"}},
		{"client secret file missing", strings.Replace(minimal, "secret =", "secret_file = \"nofile\"\n#", 1), []string{"client[0].secret_file: stat", "nofile: no such file"}},
		{"client mode", minimal + "mode = \"push\"\n", []string{`client[0].mode: "push" is not one of append, challenge, otp-only, auto`}},
		{"client blastradius", minimal + "require_message_authenticator = false\nlimit_proxy_state = false\n", []string{`client[0]: client "lo": require_message_authenticator and limit_proxy_state cannot both be false`}},

		{"auth mode", minimal + "[auth]\nmode = \"both\"\n", []string{`auth.mode: "both" is not one of`}},
		{"auth bad mode inherited", minimal + "[auth]\nmode = \"both\"\n", []string{`client[0].mode: "both"`}},
		{"auth mfa", minimal + "[auth]\nmfa = \"sometimes\"\n", []string{`auth.mfa: "sometimes" is not one of required, optional`}},
		{"auth mfa group empty", minimal + "[auth]\nmfa = \"optional\"\nmfa_groups = [\"\"]\n", []string{`auth.mfa_groups[0]: "" is not a valid group name`}},
		{"auth grace", minimal + "[auth]\ngrace_until = \"31.12.2026\"\n", []string{`auth.grace_until: "31.12.2026" is not a date in the form YYYY-MM-DD`}},
		{"auth skew", minimal + "[auth]\nskew = 3\n", []string{"auth.skew: 3 must be 0, 1 or 2"}},
		{"auth lockout threshold", minimal + "[auth]\nlockout_threshold = 0\n", []string{"auth.lockout_threshold: 0 must be between 1 and 100"}},
		{"auth lockout base", minimal + "[auth]\nlockout_base = \"0s\"\n", []string{"auth.lockout_base: 0s must be between 1s and 1h"}},
		{"auth lockout max", minimal + "[auth]\nlockout_base = \"10m\"\nlockout_max = \"1m\"\n", []string{"auth.lockout_max: 1m0s must be at least lockout_base (10m0s)"}},

		{"argon time", minimal + "[password]\nargon2_time = 0\n", []string{"password.argon2_time: 0 must be between 1 and 20"}},
		{"argon threads", minimal + "[password]\nargon2_threads = 0\n", []string{"password.argon2_threads: must be at least 1"}},
		{"argon memory", minimal + "[password]\nargon2_memory_kib = 4\n", []string{"password.argon2_memory_kib: 4 must be between 8 and"}},
		{"argon negative", minimal + "[password]\nargon2_time = -1\n", []string{"argon2_time"}},

		{"metrics public", minimal + "[metrics]\nlisten = \"0.0.0.0:9812\"\n", []string{`metrics.listen: "0.0.0.0:9812" must be a loopback address`}},
		{"metrics any", minimal + "[metrics]\nlisten = \":9812\"\n", []string{`metrics.listen: ":9812": needs an explicit host`}},
		{"metrics garbage", minimal + "[metrics]\nlisten = \"localhost\"\n", []string{`metrics.listen: "localhost": missing port`}},

		{"several problems", minimal + "[auth]\nskew = 9\n[radius]\nworkers = 0\n", []string{"2 problems:", "radius.workers:", "auth.skew:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want an error containing %q", c, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error =\n%v\nwant it to contain %q", err, w)
				}
			}
			if c != nil {
				t.Errorf("Load returned a config with an error")
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"short secret", strings.Replace(minimal, "0123456789abcdefghijklmn", "0123456789abcdefgh", 1), "client[0].secret: is 18 bytes; 24 or more are recommended"},
		{"mfa groups without optional", minimal + "[auth]\nmfa_groups = [\"vpn\"]\n", `auth.mfa_groups: has no effect unless mfa = "optional"`},
		{"no clients", "version = 1\n", "client: no [[client]] is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tt.want) {
				t.Errorf("Warnings = %q, want one containing %q", c.Warnings, tt.want)
			}
		})
	}
}

func TestSecretFile(t *testing.T) {
	const secret = "file-secret-0123456789abcdef"
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		want    string // secret, or the error substring when wantErr
		wantErr bool
	}{
		{"trailing newline trimmed once", secret + "\n", 0o600, secret, false},
		{"crlf trimmed", secret + "\r\n", 0o400, secret, false},
		{"only one newline trimmed", secret + "\n\n", 0o600, secret + "\n", false},
		{"inner spaces kept", "a b " + secret, 0o600, "a b " + secret, false},
		{"group readable (root:otpgate 0640)", secret, 0o640, secret, false},
		{"world readable", secret, 0o604, "is readable by others (mode 0604); run: chmod 640", true},
		{"group writable", secret, 0o660, "is writable by group or others", true},
		{"empty", "\n", 0o600, "is empty", true},
		{"short", "0123456789\n", 0o600, "client[0].secret_file: is 10 bytes; use at least 16", true},
		{"too big", strings.Repeat("x", 5000), 0o600, "larger than 4096 bytes", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "vpn.secret"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, "vpn.secret"), tt.mode); err != nil {
				t.Fatal(err)
			}
			text := "version = 1\n[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\nsecret_file = \"vpn.secret\"\n"
			p := filepath.Join(dir, "radiusd.toml")
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Load error = %v, want it to contain %q", err, tt.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Clients[0].Secret; got != tt.want {
				t.Errorf("Secret = %q, want %q", got, tt.want)
			}
			if got := c.Clients[0].SecretFile; got != filepath.Join(dir, "vpn.secret") {
				t.Errorf("SecretFile = %q, want it resolved against the config dir", got)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Load with secret_file: %v", err)
			}
		})
	}
}

func TestLoadWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	// A secret file this process can't read as a non-root admin would not
	// either: simulate with a missing file.
	text := withTop("") + "[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\nsecret_file = \"root-only.secret\"\n"
	p := filepath.Join(dir, "radiusd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Fatal("Load with an unreadable secret_file succeeded")
	}
	c, err := LoadWithoutSecrets(p)
	if err != nil {
		t.Fatalf("LoadWithoutSecrets: %v", err)
	}
	if c.Clients[1].Secret != "" || c.Clients[1].SecretFile != filepath.Join(dir, "root-only.secret") || c.DataDir != filepath.Join(dir, "data") {
		t.Errorf("clients = %+v, data_dir %q", c.Clients, c.DataDir)
	}
	// Everything else stays strict.
	if err := os.WriteFile(p, []byte(text+"typo = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWithoutSecrets(p); err == nil || !strings.Contains(err.Error(), `unknown key "client[1].typo"`) {
		t.Errorf("LoadWithoutSecrets with an unknown key = %v", err)
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	const secret = "SuperSecretValue123456"
	texts := []string{
		"version = 1\n[[client]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = " + secret + "\n",
		"version = 1\n[[client]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"" + secret + "\n",
		"version = 1\n[[client]]\nname = \"a b\"\naddress = \"x\"\nsecret = \"" + secret + "\"\nmode=\"x\"\n",
	}
	for i, text := range texts {
		_, err := Load(writeConfig(t, text))
		if err == nil {
			t.Fatalf("case %d: want an error", i)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "SuperSecret") {
			t.Errorf("case %d: error shows the secret: %v", i, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestValidateNamesPath(t *testing.T) {
	c, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	c.Auth.Skew = 5
	err = c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.HasPrefix(ve.Problems[0], "auth.skew:") {
		t.Fatalf("Validate = %v, want one auth.skew problem", err)
	}
	if !strings.HasPrefix(err.Error(), c.Path+": auth.skew") {
		t.Errorf("error %q does not start with the file path", err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	sys := filepath.Join(dir, "etc-radiusd.toml")
	cands := []string{sys, "radiusd.toml"} // as Find has them

	if got, err := FindAmong("/x/y.toml", cands...); err != nil || got != "/x/y.toml" {
		t.Errorf("FindAmong(flag) = %q, %v; want the flag", got, err)
	}
	_, err := FindAmong("", cands...)
	if err == nil || !strings.Contains(err.Error(), "tried "+sys+", ./radiusd.toml") {
		t.Errorf("FindAmong with no file = %v, want it to list both candidates", err)
	}
	if err := os.WriteFile("radiusd.toml", []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := FindAmong("", cands...); err != nil || got != "radiusd.toml" {
		t.Errorf("FindAmong = %q, %v; want ./radiusd.toml when it is the only one", got, err)
	}
	if err := os.WriteFile(sys, []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An installed system's config wins over a radiusd.toml in the current
	// directory (a source checkout): an admin who happens to stand in one
	// must not edit the wrong database.
	if got, err := FindAmong("", cands...); err != nil || got != sys {
		t.Errorf("FindAmong = %q, %v; want the system config %q first", got, err, sys)
	}
	// Find searches DefaultPath, then ./radiusd.toml: which one it picks
	// here depends on whether this machine has otpgate installed (CI runs
	// packaging/test-install.sh), so the expectation follows, and both
	// cases assert.
	want := "radiusd.toml"
	if _, err := os.Stat(DefaultPath); err == nil {
		want = DefaultPath
	}
	if got, err := Find(""); err != nil || got != want {
		t.Errorf("Find = %q, %v; want %q", got, err, want)
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		addr, want string
	}{
		{"10.0.0.1", "10.0.0.1/32"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"::1", "::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
	}
	for _, tt := range tests {
		p, err := ClientConfig{Address: tt.addr}.Prefix()
		if err != nil || p.String() != tt.want {
			t.Errorf("Prefix(%q) = %v, %v; want %s", tt.addr, p, err, tt.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "fe80::1%eth0", "10.0.0.1/24", "host"} {
		if p, err := (ClientConfig{Address: bad}).Prefix(); err == nil {
			t.Errorf("Prefix(%q) = %v, want an error", bad, p)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("../../radiusd.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("version = 1\nclient = [{name = \"a\", x = 1}]\n[[client.y]]\nz=1\n"))
	f.Add([]byte("version = 1\n[radius]\nlisten = [\"[::1]:1812\"]\nreply_cache_ttl = \"9s\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		c, err := parse("fuzz.toml", data, dir, true)
		if err == nil {
			if c.Version != 1 {
				t.Fatalf("accepted version %d", c.Version)
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate rejects: %v", verr)
			}
		} else if c != nil {
			t.Fatal("config returned with an error")
		}
	})
}

// TestSampleDocumentsEveryKey keeps ../../radiusd.toml a complete reference:
// every key of Config appears in it (set or in a comment).
func TestSampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../radiusd.toml")
	if err != nil {
		t.Fatal(err)
	}
	sample := string(b)
	for _, key := range knownKeys { // tables too: each needs its [header]
		last := key[strings.LastIndex(key, ".")+1:]
		if !regexp.MustCompile(`(?m)^#?\s*\[*` + regexp.QuoteMeta(last) + `\b`).MatchString(sample) {
			t.Errorf("radiusd.toml does not document %s", key)
		}
	}
}
