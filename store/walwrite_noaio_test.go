//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64))

package store

import "os"

func walWriterKinds() []string { return []string{"write+fdatasync"} }

func testWALWriter(f *os.File, kind string) (walWriter, error) { return syncWriter{f}, nil }
