//go:build !linux

package store

import "os"

// newWALWriter returns the portable writer: direct I/O is Linux only here.
func newWALWriter(f *os.File) walWriter { return syncWriter{f} }
