// Command otpgate-pam checks a PAM login against otpgated over RADIUS. It is
// run by pam_exec:
//
//	auth required pam_exec.so expose_authtok quiet /usr/sbin/otpgate-pam
//
// Exit codes: 0 accept, 1 reject, 2 no server answered or bad config.
// otpgate-pam -version prints the version (outside PAM only).
// See package pamhelper for the contract.
package main

import (
	"os"

	"github.com/otpgate/otpgate/pamhelper"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() { os.Exit(pamhelper.Main(version)) }
