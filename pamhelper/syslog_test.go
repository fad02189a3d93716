package pamhelper

import (
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyslogHandler checks facility LOG_AUTHPRIV, the severity mapping and
// the tag against a unixgram socket standing in for /dev/log.
func TestSyslogHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := syslog.Dial("unixgram", sock, syslog.LOG_AUTHPRIV|syslog.LOG_INFO, "otpgate-pam")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log := slog.New(newSyslogHandler(w, slog.LevelInfo)).With("user", "alice")
	log.Debug("hidden")
	log.Info("accepted", "server", "127.0.0.1:1812")
	log.Warn("denied: challenge")
	log.Error("denied: no server")

	// PRI = facility*8 + severity; LOG_AUTHPRIV is 10.
	want := []string{"<86>", "<84>", "<83>"}
	buf := make([]byte, 2048)
	for i, pri := range want {
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, pri) || !strings.Contains(msg, "otpgate-pam[") || !strings.Contains(msg, "user=alice") {
			t.Errorf("message %d = %q; want prefix %s, tag otpgate-pam and user=alice", i, msg, pri)
		}
		if strings.Contains(msg, "time=") || strings.Contains(msg, "hidden") {
			t.Errorf("message %d = %q; want no time= and no debug line", i, msg)
		}
	}
}
