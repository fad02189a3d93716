package pamhelper

import (
	"context"
	"io"
	"log/slog"
	"log/syslog"
	"strings"
)

// NewSyslogHandler returns a slog.Handler that writes text records to syslog
// (the journal on systemd hosts) with facility LOG_AUTHPRIV and tag, mapping
// slog levels to syslog severities. The time is left to syslog.
func NewSyslogHandler(tag string, level slog.Leveler) (slog.Handler, error) {
	w, err := syslog.New(syslog.LOG_AUTHPRIV|syslog.LOG_INFO, tag)
	if err != nil {
		return nil, err
	}
	return newSyslogHandler(w, level), nil
}

func newSyslogHandler(w *syslog.Writer, level slog.Leveler) slog.Handler {
	opt := &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}
	return &syslogHandler{
		debug: slog.NewTextHandler(lineWriter(w.Debug), opt),
		info:  slog.NewTextHandler(lineWriter(w.Info), opt),
		warn:  slog.NewTextHandler(lineWriter(w.Warning), opt),
		err:   slog.NewTextHandler(lineWriter(w.Err), opt),
	}
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// lineWriter adapts a syslog.Writer method to io.Writer, one record a call.
type lineWriter func(string) error

func (f lineWriter) Write(p []byte) (int, error) {
	if err := f(strings.TrimRight(string(p), "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = lineWriter(nil)

type syslogHandler struct{ debug, info, warn, err slog.Handler }

func (h *syslogHandler) pick(l slog.Level) slog.Handler {
	switch {
	case l >= slog.LevelError:
		return h.err
	case l >= slog.LevelWarn:
		return h.warn
	case l >= slog.LevelInfo:
		return h.info
	default:
		return h.debug
	}
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{h.debug.WithAttrs(as), h.info.WithAttrs(as), h.warn.WithAttrs(as), h.err.WithAttrs(as)}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{h.debug.WithGroup(name), h.info.WithGroup(name), h.warn.WithGroup(name), h.err.WithGroup(name)}
}
