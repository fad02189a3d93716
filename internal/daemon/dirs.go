package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/safefile"
)

// checkDirs creates data_dir, the key file's directory and the control
// socket's directory when missing (mode 0700; the self-enrollment socket's
// 0755, as others must enter it) and refuses them, as sshd's
// StrictModes refuses a ~/.ssh others can change, when anyone but root and
// otpgated's own user could change them or a directory above them: such a
// user could swap in their own database and key, or a socket of theirs that
// receives the passwords root types into the CLI, or users' enrollments.
func checkDirs(cfg *config.Config) error {
	euid := os.Geteuid()
	seen := map[string]bool{}
	type dir struct {
		what, dir string
		mode      os.FileMode
	}
	dirs := []dir{
		{"data_dir", cfg.DataDir, 0o700},
		{"key_file directory", filepath.Dir(cfg.KeyPath()), 0o700},
		{"control.socket directory", filepath.Dir(cfg.SocketPath()), 0o700},
	}
	if p := cfg.Control.EnrollSocket; p != "" {
		dirs = append(dirs, dir{"control.enroll_socket directory", filepath.Dir(p), 0o755})
	}
	for _, d := range dirs {
		if seen[d.dir] {
			continue
		}
		seen[d.dir] = true
		if fi, err := os.Stat(d.dir); err == nil && !fi.IsDir() {
			continue // not a safety matter: the store or the socket reports it
		}
		if err := os.MkdirAll(d.dir, d.mode); err != nil {
			return fmt.Errorf("%s %s: %w", d.what, d.dir, err)
		}
		if err := safefile.SecureDir(d.dir, euid); err != nil {
			return fmt.Errorf("%s %s: %w (otpgated uses only directories that nobody but root and its own user can change)", d.what, d.dir, err)
		}
	}
	return nil
}
