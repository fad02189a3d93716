package safefile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// maxLinks bounds the symbolic links followed in one path, as the kernel's
// ELOOP limit does.
const maxLinks = 40

// UnsafeError says which directory lets someone else change what otpgate
// relies on, why, and the command that fixes it.
type UnsafeError struct {
	Path   string // the directory at fault
	Reason string // "is writable by group or others (mode 0777)"
	Fix    string // "chmod go-w /srv/otpgate"
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s %s; fix: %s", e.Path, e.Reason, e.Fix)
}

// Dir is a directory a program keeps its files in: What names it in
// errors ("data_dir"), Mode is what it is created with.
type Dir struct {
	What, Path string
	Mode       os.FileMode
}

// EnsureDirs creates each missing directory of dirs and checks it with
// SecureDir(trusted...); why ends the error of an unsafe one, saying what
// the rule protects. A path that exists but is not a directory is skipped:
// opening what is meant to be in it reports that better. A path listed
// twice is created with the wider mode, so that both of its uses work (the
// self-enrollment socket's directory must be enterable by others, even
// when it is the admin socket's too).
func EnsureDirs(dirs []Dir, why string, trusted ...int) error {
	modes := map[string]os.FileMode{}
	for _, d := range dirs {
		modes[d.Path] |= d.Mode
	}
	for _, d := range dirs {
		mode, first := modes[d.Path]
		if !first {
			continue
		}
		delete(modes, d.Path)
		if fi, err := os.Stat(d.Path); err == nil && !fi.IsDir() {
			continue
		}
		if err := os.MkdirAll(d.Path, mode); err != nil {
			return fmt.Errorf("%s %s: %w", d.What, d.Path, err)
		}
		if err := SecureDir(d.Path, trusted...); err != nil {
			return fmt.Errorf("%s %s: %w (%s)", d.What, d.Path, err, why)
		}
	}
	return nil
}

// SecureDir checks, as sshd's StrictModes does for ~/.ssh, that nobody but
// root and the users in trusted can change dir or what is in it: dir and
// every directory above it must be owned by root or a trusted user, and
// none may be writable by group or others. Two exceptions: a directory
// above dir may be world-writable with the sticky bit set (/tmp: others
// can add entries but not replace ours), and a directory may be writable
// by its owner's private group (a group of that name with no other
// members, which umask 002 gives every new directory). Symbolic links on
// the way are followed, and the directories they live in and point into
// are checked too. A missing dir gives an error wrapping fs.ErrNotExist;
// an unsafe one an *UnsafeError.
func SecureDir(dir string, trusted ...int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c := dirChecker{trusted: append([]int{0}, trusted...)}
	return c.walk(abs)
}

type dirChecker struct {
	trusted []int
	links   int
}

// walk resolves path one component at a time, as the kernel does, and
// checks every directory it passes through.
func (c *dirChecker) walk(path string) error {
	if err := c.check("/", false); err != nil {
		return err
	}
	cur := "/"
	todo := strings.Split(strings.Trim(path, "/"), "/")
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no symbolic link: lexical is right
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// The link itself can only be changed by whoever can write
			// cur, which was checked; its target is walked next.
			if c.links++; c.links > maxLinks {
				return fmt.Errorf("%s: too many levels of symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
			continue
		}
		if err := c.check(next, len(todo) == 0); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

// check checks one directory; last is the directory asked about, which may
// not rely on the sticky bit.
func (c *dirChecker) check(path string, last bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if !slices.Contains(c.trusted, int(st.Uid)) {
		want := loginName(c.trusted[len(c.trusted)-1])
		return &UnsafeError{Path: path,
			Reason: fmt.Sprintf("is owned by %s, not by %s", UserName(int(st.Uid)), c.trustedNames()),
			Fix:    fmt.Sprintf("chown %s %s, or run this as %s, or use another directory", want, path, loginName(int(st.Uid)))}
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if !last && fi.Mode()&fs.ModeSticky != 0 {
		return nil // /tmp
	}
	if perm&0o002 == 0 && privateGroup(st.Uid, st.Gid) {
		return nil
	}
	return &UnsafeError{Path: path,
		Reason: fmt.Sprintf("is writable by group or others (mode %04o)", perm),
		Fix:    "chmod go-w " + path}
}

func (c *dirChecker) trustedNames() string {
	var names []string
	for _, uid := range c.trusted {
		if uid != 0 && !slices.Contains(names, UserName(uid)) {
			names = append(names, UserName(uid))
		}
	}
	return strings.Join(append([]string{"root"}, names...), " or ")
}

// Owner returns the user id that owns path (after symbolic links).
func Owner(path string) (int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return -1, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, errors.New("no owner information")
	}
	return int(st.Uid), nil
}

// loginName is the user's name, or the uid as a string for an unknown user:
// what chown takes.
func loginName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// UserName names uid for a message: "alice (uid 1000)", or "uid 1000"
// for an unknown user.
func UserName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return "uid " + id
}

// groupFile is where privateGroup reads group members (a variable for tests).
var groupFile = "/etc/group"

// privateGroup reports whether gid is uid's private group: the user's
// primary group, with the user's name and no other member. Groups that
// /etc/group does not list (LDAP, ...) are not trusted.
func privateGroup(uid, gid uint32) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil || u.Gid != strconv.FormatUint(uint64(gid), 10) {
		return false
	}
	f, err := os.Open(groupFile)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 4 || fields[2] != u.Gid {
			continue
		}
		if fields[0] != u.Username {
			return false
		}
		for _, m := range strings.Split(fields[3], ",") {
			if m = strings.TrimSpace(m); m != "" && m != u.Username {
				return false
			}
		}
		return true
	}
	return false
}
