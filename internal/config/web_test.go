package config

import (
	"strings"
	"testing"
)

func TestWebConfig(t *testing.T) {
	tests := []struct {
		name string
		web  string
		want string // "" = loads
	}{
		{"off", "", ""},
		{"loopback http", "listen = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n", ""},
		{"loopback behind a proxy", "listen = \"[::1]:8080\"\npublic_url = \"https://otp.example.com\"\n", ""},
		{"tls anywhere", "listen = \":8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\npublic_url = \"https://otp.example.com:8443\"\n", ""},
		{"plain http on all addresses", "listen = \":8080\"\npublic_url = \"https://otp.example.com\"\n", "web.listen: \":8080\" serves plain HTTP"},
		{"plain http public", "listen = \"192.0.2.1:8080\"\npublic_url = \"https://otp.example.com\"\n", "only a loopback address"},
		{"no public url", "listen = \"127.0.0.1:8080\"\n", "web.public_url: required"},
		{"http public url", "listen = \"127.0.0.1:8080\"\npublic_url = \"http://otp.example.com\"\n", "use https://"},
		{"bad public url", "listen = \"127.0.0.1:8080\"\npublic_url = \"otp.example.com\"\n", "must be an http(s) URL"},
		{"query in public url", "listen = \"127.0.0.1:8080\"\npublic_url = \"https://otp.example.com/?a=b\"\n", "no query"},
		{"cert without key", "listen = \":8443\"\ntls_cert = \"c.pem\"\npublic_url = \"https://otp.example.com\"\n", "tls_cert and tls_key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := minimal
			if tt.web != "" {
				text += "[web]\n" + tt.web
			}
			c, err := Load(writeConfig(t, text))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Web.TLSCert != "" && !strings.HasPrefix(c.Web.TLSCert, "/") {
					t.Errorf("tls_cert %q not made absolute", c.Web.TLSCert)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	c, err := Load(writeConfig(t, minimal+"[control]\nenroll_socket = \"run/enroll.sock\"\n"))
	if err != nil || !strings.HasSuffix(c.Control.EnrollSocket, "/run/enroll.sock") || !strings.HasPrefix(c.Control.EnrollSocket, "/") {
		t.Fatalf("enroll_socket = %q, %v", c.Control.EnrollSocket, err)
	}
}
