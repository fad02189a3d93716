package config

import (
	"net"
	"net/url"
)

// validateWeb checks [web], the one-time enrollment link page, and
// control.enroll_socket.
func (c *Config) validateWeb(bad, warn func(key, format string, args ...any)) {
	if p := c.Control.EnrollSocket; p != "" && p == c.SocketPath() {
		bad("control.enroll_socket", "%q is the admin socket (control.socket); give the self-enrollment socket a path of its own", p)
	}
	w := c.Web
	if (w.TLSCert == "") != (w.TLSKey == "") {
		bad("web.tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
	if w.PublicURL != "" {
		u, err := url.Parse(w.PublicURL)
		switch {
		case err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad("web.public_url", "%q must be an http(s) URL with a host and no query, fragment or user, e.g. https://otp.example.com:8443", w.PublicURL)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			bad("web.public_url", "%q: links carry a credential; use https:// (plain http only for a loopback host)", w.PublicURL)
		}
	}
	if w.Listen == "" {
		if w.PublicURL != "" || w.TLSCert != "" {
			warn("web.listen", "not set: otpgated serves no enrollment page, so [web] public_url, tls_cert and tls_key have no effect")
		}
		return
	}
	if err := checkHostPort(w.Listen, true); err != nil {
		bad("web.listen", "%v", err)
		return
	}
	if host, _, _ := net.SplitHostPort(w.Listen); !w.TLS() && !isLoopback(host) {
		bad("web.listen", "%q serves plain HTTP: only a loopback address may (put a TLS proxy in front), or set tls_cert and tls_key", w.Listen)
	}
	if w.PublicURL == "" {
		bad("web.public_url", "required with web.listen: the start of every link, e.g. https://otp.example.com:8443")
	}
}
