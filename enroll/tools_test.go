package enroll

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// zbarDecode decodes the QR code in png with zbarimg and returns the text.
func zbarDecode(t *testing.T, png []byte) string {
	t.Helper()
	testtool.Require(t, "zbarimg")
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(testtool.Run(t, "zbarimg", "--raw", "-q", path), "\n")
}

// oathtool returns oathtool's TOTP code for secret at t (SHA1, 6 digits, 30 s).
func oathtool(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	out := testtool.Run(t, "oathtool", "--totp", "-b", EncodeSecret(secret), "--now", "@"+strconv.FormatInt(at.Unix(), 10))
	return strings.TrimSpace(out)
}
