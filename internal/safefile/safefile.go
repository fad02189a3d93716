// Package safefile creates and opens the files otpgate writes (backups, QR
// code images, the seed key, the write-ahead log, the audit log) so that a
// symbolic link or a file another user planted at the path is never
// followed, truncated or trusted, and checks, as sshd's StrictModes does,
// that nobody but root and the trusted users can change the directories
// otpgate keeps its database and control socket in.
//
// It is a leaf: it imports nothing from otpgate, so the domain packages
// (store, enroll) may use it as well as the plumbing.
package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Pending is a new file written under a random temporary name in its
// target's directory. Commit or CommitNew puts it in place; until then the
// target is untouched.
type Pending struct {
	*os.File
	path string // the target
	tmp  string
	done bool
}

// Create starts a new file for path with mode perm (before the umask). The
// temporary file is created with O_EXCL and O_NOFOLLOW under a random name,
// so neither a symbolic link nor a file that is already there (planted by
// someone who can write the directory) is ever opened.
func Create(path string, perm os.FileMode) (*Pending, error) {
	dir := filepath.Dir(path)
	for range 10 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		tmp := filepath.Join(dir, ".otpgate-"+hex.EncodeToString(b[:])+".tmp")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			// Name the target: the temporary name means nothing to anyone.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		return &Pending{File: f, path: path, tmp: tmp}, nil
	}
	return nil, fmt.Errorf("create a temporary file for %s: too many name collisions", path)
}

// Commit syncs the file, renames it over the target and syncs the
// directory. A symbolic link at the target is replaced, not followed. On
// error the target is untouched and the temporary file removed.
func (p *Pending) Commit() error {
	return p.commit(func() error { return os.Rename(p.tmp, p.path) })
}

// CommitNew is Commit for a file that must never replace another (the seed
// key): it fails with an error wrapping fs.ErrExist when the target exists,
// even as a dangling symbolic link.
func (p *Pending) CommitNew() error {
	return p.commit(func() error {
		if err := os.Link(p.tmp, p.path); err != nil {
			return err
		}
		return os.Remove(p.tmp)
	})
}

func (p *Pending) commit(place func() error) error {
	if p.done {
		return fmt.Errorf("%s: already committed or aborted", p.path)
	}
	err := p.Sync()
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = place()
	}
	if err != nil {
		p.Abort()
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	p.done = true
	if err := SyncDir(filepath.Dir(p.path)); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", p.path, err)
	}
	return nil
}

// Abort closes and removes the temporary file. After Commit it does
// nothing, so it can be deferred.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	_ = p.Close()
	_ = os.Remove(p.tmp)
}

// WriteFile writes data to a new file at path through Create and Commit.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	p, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := p.Write(data); err != nil {
		p.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return p.Commit()
}

// OpenFile is os.OpenFile for a file that is reopened rather than replaced
// (an append-only log, the write-ahead log). It never follows a symbolic
// link at path (O_NOFOLLOW), never blocks on a FIFO, and refuses anything
// but a regular file with a single link owned by this process's user or by
// the owner of its directory (who could replace it anyway): a file another
// user created there, or a hard link to someone else's file, is not
// written to. O_TRUNC is applied only after those checks.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	trunc := flag&os.O_TRUNC != 0
	f, err := os.OpenFile(path, flag&^os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, perm)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("open %s: is a symbolic link; refusing to follow it", path)
	case errors.Is(err, syscall.ENXIO): // a FIFO nobody reads, or a device
		return nil, fmt.Errorf("open %s: not a regular file; refusing to use it", path)
	}
	if err != nil {
		return nil, err
	}
	if err := checkOpened(f, path); err != nil {
		f.Close()
		return nil, err
	}
	if trunc {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func checkOpened(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open %s: not a regular file (%s); refusing to use it", path, fi.Mode().Type())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if st.Nlink != 1 {
		return fmt.Errorf("open %s: has %d hard links; refusing to write through a link to another file (remove it)", path, st.Nlink)
	}
	if int(st.Uid) == os.Geteuid() {
		return nil
	}
	if dir, err := os.Stat(filepath.Dir(path)); err == nil {
		if ds, ok := dir.Sys().(*syscall.Stat_t); ok && ds.Uid == st.Uid {
			return nil
		}
	}
	return fmt.Errorf("open %s: owned by %s, not by this process's user (%s) or the directory's owner; refusing to use a file someone else created (remove it, or chown it)",
		path, UserName(int(st.Uid)), UserName(os.Geteuid()))
}

// SyncDir makes a file created, renamed or removed in dir durable (its
// directory entry survives a power loss). Errors name dir.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
