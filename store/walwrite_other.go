//go:build !linux

package store

import (
	"log/slog"
	"os"
)

// newWALWriter returns the portable writer: direct I/O is Linux only here.
func newWALWriter(f *os.File, _ *slog.Logger) walWriter { return syncWriter{f} }
