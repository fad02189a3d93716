//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64))

package store

import "os"

// newWALWriter returns the portable writer; direct, asynchronous writes
// are Linux only.
func newWALWriter(f *os.File) walWriter { return syncWriter{f} }
