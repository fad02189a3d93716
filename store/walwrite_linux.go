package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// On Linux the log is written with direct I/O: a second descriptor opened
// O_DIRECT|O_DSYNC, one pwrite per batch, which returns once the blocks
// and the device's cache flush are done.
//
// Why: a buffered write plus fdatasync costs more process CPU than this
// (copying into and writing back the page cache) for no less wall time.
// Native AIO with RWF_DSYNC, waited for in Go's poller, is no substitute:
// such a write completes, flush included, in a kworker thread, which
// starves when every CPU is busy, so it breaks down under overload. Here
// the flush runs on the writing thread.
//
// Where direct I/O is missing (tmpfs) or refused (a file system wanting
// bigger alignment), the log falls back to syncWriter, at open or at the
// first write refused.
type directWriter struct {
	fd       int // the log opened O_DIRECT|O_DSYNC
	fallback syncWriter
	direct   atomic.Bool // false after the kernel refused a direct write
	log      *slog.Logger
}

// newWALWriter returns a directWriter for the log f, or syncWriter where
// direct I/O is not available.
func newWALWriter(f *os.File, log *slog.Logger) walWriter {
	if d, err := newDirectWriter(f, log); err == nil {
		return d
	}
	return syncWriter{f}
}

func newDirectWriter(f *os.File, log *slog.Logger) (*directWriter, error) {
	if !directAligned(f) {
		return nil, errors.New("direct I/O alignment unknown or above one block")
	}
	fd, err := unix.Open(f.Name(), unix.O_RDWR|unix.O_CLOEXEC|unix.O_DIRECT|unix.O_DSYNC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open direct: %w", err)
	}
	d := &directWriter{fd: fd, fallback: syncWriter{f}, log: log}
	d.direct.Store(true)
	return d, nil
}

// directAligned says whether direct I/O on f takes walBlock-aligned
// writes. Kernels before 6.1 do not say (statx without DIOALIGN); they get
// the benefit of the doubt, and a refused write falls back.
func directAligned(f *os.File) bool {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, f.Name(), 0, unix.STATX_DIOALIGN, &st); err != nil {
		return false
	}
	if st.Mask&unix.STATX_DIOALIGN == 0 {
		return true
	}
	return st.Dio_offset_align != 0 && walBlock%st.Dio_offset_align == 0 &&
		st.Dio_mem_align != 0 && walBlock%st.Dio_mem_align == 0
}

func (d *directWriter) kind() string {
	if d.direct.Load() {
		return LogWriterDirect
	}
	return d.fallback.kind()
}

func (d *directWriter) writeDurable(p []byte, off int64) error {
	if !d.direct.Load() {
		return d.fallback.writeDurable(p, off)
	}
	var n int
	var err error
	for {
		n, err = unix.Pwrite(d.fd, p, off)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case errors.Is(err, unix.EINVAL):
		// Alignment refused: never again, and write this batch the
		// portable way.
		d.direct.Store(false)
		d.log.Warn("store: the kernel refused a direct write to the write-ahead log; writing it through the page cache with fdatasync from now on",
			"log", d.fallback.f.Name(), "err", err)
		return d.fallback.writeDurable(p, off)
	case err != nil:
		return fmt.Errorf("direct write: %w", err)
	case n != len(p):
		// Only a full disk or a damaged device writes short; what was
		// written is not trusted, and the next append overwrites it.
		return fmt.Errorf("direct write: %w (%d of %d bytes)", io.ErrShortWrite, n, len(p))
	}
	return nil
}

func (d *directWriter) close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
