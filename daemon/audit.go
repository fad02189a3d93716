package daemon

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// auditSink is the audit log destination: stderr, nothing ("off"), or a
// file opened 0600 for append. Reopen switches it, so SIGHUP after
// logrotate moved the file starts a new one.
type auditSink struct {
	mu     sync.Mutex
	stderr io.Writer
	target string
	f      *os.File
}

func newAuditSink(target string, stderr io.Writer) (*auditSink, error) {
	s := &auditSink{stderr: stderr}
	if err := s.Reopen(target); err != nil {
		return nil, err
	}
	return s, nil
}

// Reopen points the sink at target ("stderr", "off" or a path). On error
// the sink keeps writing where it did.
func (s *auditSink) Reopen(target string) error {
	var f *os.File
	if target != "stderr" && target != "off" {
		var err error
		f, err = os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
	}
	s.mu.Lock()
	old := s.f
	s.f, s.target = f, target
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (s *auditSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.f != nil:
		return s.f.Write(p)
	case s.target == "stderr":
		return s.stderr.Write(p)
	default:
		return len(p), nil
	}
}

// Close closes an audit file.
func (s *auditSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	s.target = "off"
	return err
}
