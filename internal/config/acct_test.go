package config

import (
	"slices"
	"strings"
	"testing"
)

// TestAcctListen: radius.acct_listen defaults to the accounting port, may
// be empty (no accounting), and is checked like radius.listen.
func TestAcctListen(t *testing.T) {
	good := []struct {
		name, text string
		want       []string
	}{
		{"default", minimal, []string{":1813"}},
		{"default with listen set", minimal + "[radius]\nlisten = [\"127.0.0.1:1812\"]\n", []string{":1813"}},
		{"explicit", minimal + "[radius]\nacct_listen = [\"127.0.0.1:1813\", \"[::1]:1813\"]\n", []string{"127.0.0.1:1813", "[::1]:1813"}},
		{"off", minimal + "[radius]\nacct_listen = []\n", []string{}},
		{"both on port 0", minimal + "[radius]\nlisten = [\"127.0.0.1:0\"]\nacct_listen = [\"127.0.0.1:0\"]\n", []string{"127.0.0.1:0"}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Radius.AcctListen, tt.want) {
				t.Errorf("radius.acct_listen = %q, want %q", c.Radius.AcctListen, tt.want)
			}
		})
	}
	bad := []struct {
		name, text, want string
	}{
		{"no port", "[radius]\nacct_listen = [\"127.0.0.1\"]\n", `radius.acct_listen[0]: "127.0.0.1": missing port in address`},
		{"bad port", "[radius]\nacct_listen = [\"127.0.0.1:70000\"]\n", `radius.acct_listen[0]: "127.0.0.1:70000": port "70000"`},
		{"hostname", "[radius]\nacct_listen = [\"radius.example.com:1813\"]\n", `radius.acct_listen[0]: "radius.example.com:1813": host "radius.example.com" is not an IP address`},
		{"duplicate", "[radius]\nacct_listen = [\":1813\", \":1813\"]\n", `radius.acct_listen[1]: ":1813" repeats radius.acct_listen[0]`},
		{"same as listen", "[radius]\nlisten = [\"127.0.0.1:1812\"]\nacct_listen = [\"127.0.0.1:1812\"]\n", `radius.acct_listen[0]: "127.0.0.1:1812" is also radius.listen[0]`},
		{"wrong type", "[radius]\nacct_listen = \":1813\"\n", "radius.acct_listen"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, minimal+tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
