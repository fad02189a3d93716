//go:build !linux

package store

import "os"

func walWriterKinds() []string { return []string{"write+fdatasync"} }

func testWALWriter(f *os.File, kind string) (walWriter, error) { return syncWriter{f}, nil }
