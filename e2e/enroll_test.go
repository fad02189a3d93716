package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// This file is the enroll helper's: the QR codes otpgate prints are checked
// the way a phone sees them, through a real terminal (tmux) and zbarimg.

var (
	sgrRe     = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	uriLineRe = regexp.MustCompile(`URI:\s+(otpauth://\S+)`)
)

// screenQR extracts the half-block QR code between the "Scan this QR code"
// and "Can't scan it?" lines of a captured screen and returns its modules
// (true = dark). Missing trailing spaces (tmux trims them) are light.
func screenQR(t *testing.T, plain string) [][]bool {
	t.Helper()
	lines := strings.Split(plain, "\n")
	start, end := -1, -1
	for i, l := range lines {
		if strings.Contains(l, "Scan this QR code") && start < 0 {
			start = i + 1
		}
		if strings.Contains(l, "Can't scan it?") && start >= 0 {
			end = i
			break
		}
	}
	if start < 0 || end < 0 {
		t.Fatalf("no QR code block on the screen:\n%s", plain)
	}
	rows := lines[start:end]
	width := 0
	for _, l := range rows {
		width = max(width, len([]rune(l)))
	}
	var grid [][]bool
	for n, l := range rows {
		top, bottom := make([]bool, width), make([]bool, width)
		for i, r := range []rune(l) {
			switch r {
			case ' ':
			case '█':
				top[i], bottom[i] = true, true
			case '▀':
				top[i] = true
			case '▄':
				bottom[i] = true
			default:
				t.Fatalf("QR line %d has %q:\n%s", n, r, l)
			}
		}
		grid = append(grid, top, bottom)
	}
	return grid
}

// gridPNG renders modules at 8 px each inside a 32 px white border.
func gridPNG(t *testing.T, grid [][]bool) string {
	t.Helper()
	const scale, border = 8, 32
	img := image.NewGray(image.Rect(0, 0, len(grid[0])*scale+2*border, len(grid)*scale+2*border))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y, row := range grid {
		for x, dark := range row {
			if dark {
				for d := 0; d < scale*scale; d++ {
					img.SetGray(border+x*scale+d%scale, border+y*scale+d/scale, color.Gray{})
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "screen-qr.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func zbarimg(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(requireTool(t, "zbarimg"), "--raw", "-q", path).Output()
	if err != nil {
		t.Fatalf("zbarimg %s: %v", path, err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// TestEnrollQRScannedFromTerminal runs `otpgate enroll --png` in tmux,
// decodes the QR code as drawn on the terminal screen and the PNG file with
// zbarimg, and finishes the enrollment with oathtool's code for the scanned
// secret.
func TestEnrollQRScannedFromTerminal(t *testing.T) {
	requireTool(t, "zbarimg")
	requireTool(t, "oathtool")
	e := newCLIEnv(t, "")
	e.mustOtpgate("", "user", "add", "alice", "--no-password")
	pngPath := filepath.Join(t.TempDir(), "alice.png")

	s := startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "enroll", "alice", "--png", pngPath))
	s.waitFor(codePromptRe, 1)
	colored := s.run("capture-pane", "-p", "-e", "-J", "-t", "cli", "-S", "-1000")
	plain := sgrRe.ReplaceAllString(colored, "")

	m := uriLineRe.FindStringSubmatch(plain)
	if m == nil {
		t.Fatalf("no URI line on the screen:\n%s", plain)
	}
	uri := m[1]

	// The QR code is drawn with explicit colours (black on white), so it
	// scans the same on dark and light terminal themes.
	if !regexp.MustCompile(`\x1b\[(?:[0-9;]*;)?30(?:;[0-9;]*)?m`).MatchString(colored) ||
		!regexp.MustCompile(`\x1b\[(?:[0-9;]*;)?47(?:;[0-9;]*)?m`).MatchString(colored) {
		t.Errorf("QR code not drawn black on white (no SGR 30 and 47 on the screen)")
	}

	if got := zbarimg(t, gridPNG(t, screenQR(t, plain))); got != uri {
		t.Fatalf("QR code on the screen decodes to\n %q\nthe URI line says\n %q", got, uri)
	}
	st, err := os.Stat(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (it holds the secret)", pngPath, st.Mode().Perm())
	}
	if got := zbarimg(t, pngPath); got != uri {
		t.Fatalf("PNG decodes to %q, want %q", got, uri)
	}

	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/E2E VPN:alice" || u.Query().Get("issuer") != "E2E VPN" {
		t.Errorf("URI label %q, issuer %q", u.Path, u.Query().Get("issuer"))
	}
	// Finish as a phone would: with a code for the scanned secret.
	s.typeLine(oathtoolCode(t, u.Query().Get("secret")))
	scr := s.waitFor(exitRe, 1)
	if got := exitRe.FindStringSubmatch(scr)[1]; got != "0" {
		t.Fatalf("enroll exited %s:\n%s", got, scr)
	}
	if n := len(recoveryCodeRe.FindAllString(scr, -1)); n != 10 {
		t.Errorf("%d recovery codes on the screen, want 10", n)
	}
}
