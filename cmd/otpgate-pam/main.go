// Command otpgate-pam checks a PAM login against otpgated over RADIUS. It is
// run by pam_exec:
//
//	auth required pam_exec.so expose_authtok quiet /usr/sbin/otpgate-pam
//
// Exit codes: 0 accept, 1 reject, 2 no server answered or bad config.
// See package pamhelper for the contract.
package main

import (
	"os"

	"github.com/otpgate/otpgate/pamhelper"
)

func main() { os.Exit(pamhelper.Main()) }
