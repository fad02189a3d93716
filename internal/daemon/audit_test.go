package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAuditSink(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	s, err := newAuditSink("stderr", &stderr, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "one\n")
	p := filepath.Join(dir, "audit.log")
	if err := s.Reopen(p); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "two\n")
	// logrotate: move the file away, reopen, write.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(p); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "three\n")
	if err := s.Reopen("off"); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "four\n")
	if err := s.Reopen(filepath.Join(dir, "no", "such", "dir.log")); err == nil {
		t.Error("Reopen into a missing directory succeeded")
	}
	fmt.Fprint(s, "five\n") // still "off"
	s.Close()
	if stderr.String() != "one\n" || mustRead(t, p+".1") != "two\n" || mustRead(t, p) != "three\n" {
		t.Errorf("stderr %q, rotated %q, new %q", stderr.String(), mustRead(t, p+".1"), mustRead(t, p))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", fi.Mode().Perm())
	}
}

// failingWriter fails every write, like a full disk.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestAuditWriteFailureIsLogged: slog drops a handler's write error, so
// before the fix a full disk lost every audit record without a trace.
func TestAuditWriteFailureIsLogged(t *testing.T) {
	var opLog syncBuffer
	s, err := newAuditSink("stderr", failingWriter{}, slog.New(slog.NewTextHandler(&opLog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	audit := slog.New(slog.NewJSONHandler(s, nil))
	audit.Info("radius access", "user", "alice", "result", "accept")
	audit.Info("radius access", "user", "bob", "result", "reject")
	if got := strings.Count(opLog.String(), "audit records are being lost"); got != 1 {
		t.Fatalf("%d reports after two failed writes in the same minute; want 1:\n%s", got, opLog.String())
	}
	now = now.Add(auditReportEvery)
	audit.Info("radius access", "user", "carol", "result", "reject")
	if got := strings.Count(opLog.String(), "audit records are being lost"); got != 2 || !strings.Contains(opLog.String(), "lost=2") {
		t.Errorf("after a minute: %d reports; want 2, the second counting 2 lost:\n%s", got, opLog.String())
	}
	if strings.Contains(opLog.String(), "alice") || strings.Contains(opLog.String(), "carol") {
		t.Errorf("the operational log repeats audit content:\n%s", opLog.String())
	}
}

// TestAuditFileLooseModeWarns: an audit file someone created with a looser
// mode is used, but the operator is told.
func TestAuditFileLooseModeWarns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	var opLog syncBuffer
	s, err := newAuditSink(p, nil, slog.New(slog.NewTextHandler(&opLog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(opLog.String(), "accessible by group or others") || !strings.Contains(opLog.String(), "mode=0644") {
		t.Errorf("no warning for a 0644 audit file:\n%s", opLog.String())
	}
}

// TestAuditLoggerOffSkipsFormatting: with audit = "off" the audit logger
// reports itself disabled (records are not formatted); reopening to a file
// enables it at once, and records then reach the file.
func TestAuditLoggerOffSkipsFormatting(t *testing.T) {
	sink, err := newAuditSink("off", io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	l := newAuditLogger(sink)
	if l.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("audit logger enabled while the sink is off")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := sink.Reopen(path); err != nil {
		t.Fatal(err)
	}
	if !l.With("k", "v").Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("audit logger still disabled after reopening to a file")
	}
	l.Info("radius access", "user", "alice")
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"user":"alice"`) {
		t.Fatalf("audit file = %q, %v; want the record", b, err)
	}
	if err := sink.Reopen("off"); err != nil {
		t.Fatal(err)
	}
	if l.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("audit logger enabled after switching back to off")
	}
}
