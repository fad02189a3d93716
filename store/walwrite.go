package store

import (
	"fmt"
	"os"
	"unsafe"
)

// walBlock is the unit of the log's writes: each append writes whole,
// aligned blocks (the last one's durable head again, zeros after the new
// records), so that the log can be written with direct I/O, which wants
// offsets, lengths and memory aligned to the device's logical block.
// 4096 covers every common block size; a file system that wants more is
// written through the page cache instead (walwrite_linux.go).
const walBlock = 4096

// walWriter makes log writes durable. The committer goroutine is its only
// writer; kind may be called from any goroutine.
type walWriter interface {
	// writeDurable writes p (whole blocks, walBlock-aligned in memory) at
	// off and returns once they are on stable storage.
	writeDurable(p []byte, off int64) error
	// kind names the method, for tests and diagnostics.
	kind() string
	close() error
}

// syncWriter is the portable walWriter: write through the page cache, then
// fdatasync.
type syncWriter struct{ f *os.File }

func (s syncWriter) writeDurable(p []byte, off int64) error {
	if _, err := s.f.WriteAt(p, off); err != nil {
		return err
	}
	if err := fdatasync(s.f); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func (syncWriter) kind() string { return LogWriterSync }
func (syncWriter) close() error { return nil } // the file is the wal's

// alignedBlocks returns a zeroed buffer of n bytes (a multiple of walBlock)
// whose first byte is walBlock-aligned in memory. Go's heap does not move
// objects, so the alignment holds for the buffer's life.
func alignedBlocks(n int) []byte {
	b := make([]byte, n+walBlock)
	skip := (walBlock - int(uintptr(unsafe.Pointer(&b[0]))%walBlock)) % walBlock
	return b[skip : skip+n : skip+n]
}

// roundUpBlock rounds n up to a multiple of walBlock.
func roundUpBlock(n int64) int64 { return (n + walBlock - 1) &^ (walBlock - 1) }
