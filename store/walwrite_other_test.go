//go:build !linux

package store

import (
	"errors"
	"os"
)

func walWriterKinds() []string { return []string{"write+fdatasync"} }

func testWALWriter(f *os.File, kind string) (walWriter, error) { return syncWriter{f}, nil }

// probeDirectIO: the log has no direct writer on this platform.
func probeDirectIO(string) error { return errors.New("no direct I/O writer on this platform") }
