package daemon

import (
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
	dirs := []safefile.Dir{
		{What: "data_dir", Path: cfg.DataDir, Mode: 0o700},
		{What: "key_file directory", Path: filepath.Dir(cfg.KeyPath()), Mode: 0o700},
		{What: "control.socket directory", Path: filepath.Dir(cfg.SocketPath()), Mode: 0o700},
	}
	if p := cfg.Control.EnrollSocket; p != "" {
		dirs = append(dirs, safefile.Dir{What: "control.enroll_socket directory", Path: filepath.Dir(p), Mode: 0o755})
	}
	return safefile.EnsureDirs(dirs, "otpgated uses only directories that nobody but root and its own user can change", os.Geteuid())
}
