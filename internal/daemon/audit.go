package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/internal/safefile"
)

// auditReportEvery bounds how often a failing audit write is reported in
// the operational log (a full disk fails every write).
const auditReportEvery = time.Minute

// auditSink is the audit log destination: stderr, nothing ("off"), or a
// file opened 0600 for append. Reopen switches it, so SIGHUP after
// logrotate moved the file starts a new one. Write failures (a full disk)
// are reported in the operational log, at most once a minute, with the
// number of records lost: slog drops a handler's write error silently.
type auditSink struct {
	mu     sync.Mutex
	stderr io.Writer
	log    *slog.Logger // operational log; never receives audit content
	target string
	f      *os.File
	off    atomic.Bool // target == "off": the handler skips formatting

	lost       int       // records lost since the last report
	lastReport time.Time // when a failure was last reported
	now        func() time.Time
}

func newAuditSink(target string, stderr io.Writer, log *slog.Logger) (*auditSink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &auditSink{stderr: stderr, log: log, now: time.Now}
	if err := s.Reopen(target); err != nil {
		return nil, err
	}
	return s, nil
}

// Reopen points the sink at target ("stderr", "off" or a path). On error
// the sink keeps writing where it did. A symlink, a hard link or a file
// owned by another user at target is refused (safefile.OpenFile). A file
// that already exists with a mode looser than 0600 is used but logged: the
// audit log names users and clients.
func (s *auditSink) Reopen(target string) error {
	var f *os.File
	if target != "stderr" && target != "off" {
		var err error
		// Never through a symlink, nor into a file another user made.
		f, err = safefile.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			s.log.Warn("audit log: the file is accessible by group or others; it names users and clients", "path", target,
				"mode", fmt.Sprintf("%04o", fi.Mode().Perm()), "fix", "chmod 600 "+target)
		}
	}
	s.mu.Lock()
	old := s.f
	s.f, s.target = f, target
	s.off.Store(target == "off")
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (s *auditSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		n   int
		err error
	)
	switch {
	case s.f != nil:
		n, err = s.f.Write(p)
	case s.target == "stderr":
		n, err = s.stderr.Write(p)
	default:
		return len(p), nil
	}
	if err != nil {
		s.lost++
		if now := s.now(); s.lastReport.IsZero() || now.Sub(s.lastReport) >= auditReportEvery {
			s.log.Error("audit log: write failed; audit records are being lost", "target", s.target, "lost", s.lost, "err", err)
			s.lastReport, s.lost = now, 0
		}
	}
	return n, err
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
	s.off.Store(true)
	return err
}

// newAuditLogger returns the JSON audit logger over sink. While the sink
// is "off" its records are not even formatted (formatting is a noticeable
// part of the CPU per Accept under load); a reload that turns it on takes
// effect at once.
func newAuditLogger(sink *auditSink) *slog.Logger {
	return slog.New(&auditHandler{Handler: slog.NewJSONHandler(sink, nil), sink: sink})
}

type auditHandler struct {
	slog.Handler
	sink *auditSink
}

func (h *auditHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.sink.off.Load() && h.Handler.Enabled(ctx, l)
}

func (h *auditHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &auditHandler{Handler: h.Handler.WithAttrs(as), sink: h.sink}
}

func (h *auditHandler) WithGroup(name string) slog.Handler {
	return &auditHandler{Handler: h.Handler.WithGroup(name), sink: h.sink}
}
