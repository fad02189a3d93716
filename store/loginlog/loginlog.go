// Package loginlog is the store's login log: an append-only file of user
// records that logins changed, written through the page cache and synced
// about once a second, and folded into the database by a checkpoint.
//
// The file starts with a header that names the format and the database it
// belongs to, so a log is never replayed into another database:
//
//	[8]byte  magic "OTPGLOG\n"
//	uint32   format version (little endian), 1
//	[16]byte database id (store meta db_id)
//	uint32   CRC-32C of the 28 bytes before
//
// Records follow, back to back:
//
//	uint32   payload length (little endian)
//	uint32   CRC-32C of the payload
//	payload  uint64 sequence number, uvarint name length, name, value
//
// An append writes only past the end of the last acknowledged record, so a
// torn write at power loss can damage only records nobody was told about.
// After a checkpoint the log may be truncated back to its header and
// written again; the old records are then in the database, so Read needs
// only the records whose sequence numbers grow, up to the first torn or
// stale one, and the caller skips those the database already holds.
package loginlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/otpgate/otpgate/internal/safefile"
)

const (
	magic = "OTPGLOG\n"
	// Version is the format version this package writes and reads.
	Version   = 1
	IDLen     = 16
	HeaderLen = len(magic) + 4 + IDLen + 4
	recHead   = 8
	// MaxPayload bounds a record (a damaged length cannot make Read
	// allocate more); users are far smaller.
	MaxPayload = 1 << 20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Errors Read returns for a file that is not this database's log.
var (
	ErrNotALog        = errors.New("loginlog: not an otpgate login log")
	ErrNewerFormat    = errors.New("loginlog: log format is newer than this program")
	ErrOtherDatabase  = errors.New("loginlog: log belongs to another database")
	ErrRecordTooLarge = errors.New("loginlog: record too large")
)

// Record is one logged user record.
type Record struct {
	Seq  uint64
	Name string
	Data []byte
}

// File is what the log needs from its file; *os.File has it. Tests put a
// layer here that forgets unsynced writes, to play a power loss.
type File interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// FS opens files; OS is the real one.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
}

// OS opens files with safefile.OpenFile: never through a symbolic link, and
// only a regular file that this process's user (or the directory's owner)
// owns, so a log another local user planted is refused, not replayed.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return safefile.OpenFile(name, flag, perm)
}

// Log is an open log, ready for appends. It is not safe for concurrent
// Appends; Sync may run concurrently with them.
type Log struct {
	f   File
	off int64 // end of the last acknowledged record
	buf []byte
}

func header(id [IDLen]byte) []byte {
	h := make([]byte, 0, HeaderLen)
	h = append(h, magic...)
	h = binary.LittleEndian.AppendUint32(h, Version)
	h = append(h, id[:]...)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, crc32c))
}

// Create makes a new log at path for database id. It refuses to replace a
// file or follow a symbolic link (O_EXCL|O_NOFOLLOW), and syncs the header
// and the directory entry, so a power loss cannot lose the log itself.
func Create(fs FS, path string, id [IDLen]byte) (*Log, error) {
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("loginlog: create %s: %w", path, err)
	}
	if _, err := f.WriteAt(header(id), 0); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = safefile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("loginlog: create %s: %w", path, err)
	}
	return &Log{f: f, off: int64(HeaderLen)}, nil
}

// Read returns the records of the log at path for database id, in order,
// up to the first torn, damaged or stale one. A missing file is no records
// (err nil). The file is opened read-only, without following a link.
func Read(fs FS, path string, id [IDLen]byte) ([]Record, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loginlog: open %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return nil, fmt.Errorf("loginlog: read %s: %w", path, err)
	}
	if err := checkHeader(data, id); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) < HeaderLen {
		return nil, nil // its header never reached the disk (checkHeader)
	}
	return Parse(data[HeaderLen:]), nil
}

func checkHeader(data []byte, id [IDLen]byte) error {
	if len(data) < HeaderLen {
		if len(data) == 0 || bytes.HasPrefix([]byte(magic), data) {
			// Created but its header never reached the disk: nothing
			// was ever acknowledged from it.
			return nil
		}
		return ErrNotALog
	}
	h := data[:HeaderLen]
	if string(h[:len(magic)]) != magic || binary.LittleEndian.Uint32(h[HeaderLen-4:]) != crc32.Checksum(h[:HeaderLen-4], crc32c) {
		return ErrNotALog
	}
	if v := binary.LittleEndian.Uint32(h[len(magic):]); v != Version {
		return fmt.Errorf("%w: version %d, this program reads %d", ErrNewerFormat, v, Version)
	}
	if !bytes.Equal(h[len(magic)+4:len(magic)+4+IDLen], id[:]) {
		return ErrOtherDatabase
	}
	return nil
}

// Parse returns the records in data (the log after its header) whose
// sequence numbers grow, up to the first that is torn, damaged or not
// above the one before (left from before a truncation).
func Parse(data []byte) []Record {
	var recs []Record
	var prev uint64
	for len(data) >= recHead {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if n < 9 || n > MaxPayload || int64(n) > int64(len(data)-recHead) {
			break
		}
		p := data[recHead : recHead+int(n)]
		data = data[recHead+int(n):]
		if crc32.Checksum(p, crc32c) != sum {
			break
		}
		seq := binary.LittleEndian.Uint64(p)
		nameLen, k := binary.Uvarint(p[8:])
		if seq <= prev || k <= 0 || nameLen > uint64(len(p)-8-k) {
			break
		}
		prev = seq
		name := string(p[8+k : 8+k+int(nameLen)])
		recs = append(recs, Record{Seq: seq, Name: name, Data: bytes.Clone(p[8+k+int(nameLen):])})
	}
	return recs
}

// Append writes recs after the last acknowledged record, through the page
// cache (no sync: see Sync). On error nothing counts as written, and the
// next Append writes over the same, never acknowledged, bytes.
func (l *Log) Append(recs ...Record) error {
	buf := l.buf[:0]
	for _, r := range recs {
		at := len(buf)
		buf = append(buf, make([]byte, recHead)...)
		buf = binary.LittleEndian.AppendUint64(buf, r.Seq)
		buf = binary.AppendUvarint(buf, uint64(len(r.Name)))
		buf = append(buf, r.Name...)
		buf = append(buf, r.Data...)
		p := buf[at+recHead:]
		if len(p) > MaxPayload {
			return fmt.Errorf("%w: user %q, %d bytes", ErrRecordTooLarge, r.Name, len(p))
		}
		binary.LittleEndian.PutUint32(buf[at:], uint32(len(p)))
		binary.LittleEndian.PutUint32(buf[at+4:], crc32.Checksum(p, crc32c))
	}
	l.buf = buf
	if _, err := l.f.WriteAt(buf, l.off); err != nil {
		return fmt.Errorf("loginlog: append: %w", err)
	}
	l.off += int64(len(buf))
	return nil
}

// Size is the end of the last acknowledged record.
func (l *Log) Size() int64 { return l.off }

// Sync makes every record appended before it durable.
func (l *Log) Sync() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("loginlog: sync: %w", err)
	}
	return nil
}

// Reset empties the log back to its header; the caller has put every
// record into the database durably first. Not synced: records that come
// back after a power loss are ones the database already holds.
func (l *Log) Reset() error {
	if err := l.f.Truncate(int64(HeaderLen)); err != nil {
		return fmt.Errorf("loginlog: truncate: %w", err)
	}
	l.off = int64(HeaderLen)
	return nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }
