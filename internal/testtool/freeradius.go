package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreeRADIUS is Debian's FreeRADIUS a test started on a loopback port, as
// the RADIUS server that checks passwords (NPS's role).
type FreeRADIUS struct {
	Addr string // 127.0.0.1:PORT, authentication
	srv  *server
	log  *Buffer
}

// FreeRADIUSUser is an entry of its users file.
type FreeRADIUSUser struct{ Name, Password string }

// StartFreeRADIUS runs `freeradius -X` on a minimal configuration written
// into a temp dir (never the system's /etc/freeradius or its service): one
// client, 127.0.0.1 with secret, that must send a Message-Authenticator,
// and users checked by PAP. With signAnswers, the Accept and the Reject
// carry a Message-Authenticator: FreeRADIUS before 3.2.5 sends one only
// when the configuration adds it (update reply), which otpgate requires of
// an upstream server. It is stopped when the test ends.
func StartFreeRADIUS(t testing.TB, secret string, signAnswers bool, users ...FreeRADIUSUser) *FreeRADIUS {
	t.Helper()
	bin := Require(t, "freeradius")
	dir := t.TempDir()
	port := FreePort(t, "udp")

	var usersFile strings.Builder
	for _, u := range users {
		fmt.Fprintf(&usersFile, "%s Cleartext-Password := %q\n", u.Name, u.Password)
	}
	sign := ""
	if signAnswers {
		sign = `	update reply {
		Message-Authenticator := 0x00
	}
	Post-Auth-Type REJECT {
		update reply {
			Message-Authenticator := 0x00
		}
	}
`
	}
	conf := fmt.Sprintf(`prefix = /usr
exec_prefix = /usr
sysconfdir = %[1]s
localstatedir = %[1]s
sbindir = /usr/sbin
logdir = %[1]s
raddbdir = %[1]s
radacctdir = %[1]s
name = freeradius
confdir = %[1]s
modconfdir = %[1]s
run_dir = %[1]s
db_dir = %[1]s
libdir = /usr/lib/freeradius
pidfile = %[1]s/radiusd.pid
max_request_time = 10
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}
thread pool {
	start_servers = 1
	max_servers = 2
	min_spare_servers = 1
	max_spare_servers = 2
	max_requests_per_server = 0
}
modules {
	pap {
	}
	files {
		filename = %[1]s/users
	}
}
client otpgate {
	ipaddr = 127.0.0.1
	secret = %[2]q
	require_message_authenticator = yes
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[3]d
	}
	authorize {
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
	post-auth {
%[4]s	}
}
`, dir, secret, port, sign)
	for name, text := range map[string]string{"radiusd.conf": conf, "users": usersFile.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := &FreeRADIUS{Addr: fmt.Sprintf("127.0.0.1:%d", port), log: &Buffer{}}
	// -X: debug mode, in the foreground, one thread, the log on stdout
	// (shown when the test fails).
	f.srv = startServer(t, "freeradius", exec.Command(bin, "-X", "-d", dir), f.log)
	t.Cleanup(f.Stop)
	showLogOnFailure(t, "freeradius", f.log)
	f.srv.awaitReady(t, 20*time.Second, "freeradius ready on "+f.Addr, func() bool {
		return strings.Contains(f.log.String(), "Ready to process requests")
	})
	return f
}

// Log is what FreeRADIUS wrote so far.
func (f *FreeRADIUS) Log() string { return f.log.String() }

// Stop kills FreeRADIUS and waits for it.
func (f *FreeRADIUS) Stop() { f.srv.stop(os.Kill) }
