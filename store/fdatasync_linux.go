package store

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the size, if it changed) but not its
// other metadata, like bbolt's own commits on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
