package enroll

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"

	"github.com/mdp/qrterminal/v3"
	"rsc.io/qr"
)

// Terminal QR rendering.
//
// A QR code must be dark modules on a light background: many phone scanners
// do not read an inverted (light-on-dark) code. qrterminal's default
// half-block characters draw "white" with the terminal's foreground colour,
// which is right on a dark terminal and inverted on a light one. So
// WriteTerminalQR pins both colours with ANSI SGR codes at the start of each
// line, foreground black (30) and background white (47), and picks the
// characters for that pairing: a space is two light modules, a full block
// '█' two dark ones, '▀' dark over light and '▄' light over dark. The code
// then looks the same on dark and light terminals. Colours are reset before
// each newline so no background colour bleeds into the rest of the screen.
// Each character cell holds two modules (half blocks), which keeps a
// typical otpauth URI (about 120 bytes: version 6 at level L, 41 modules)
// within 25 lines and 49 columns.
// A 4-module quiet zone (the QR minimum) surrounds the code so phones find
// its edges.
const (
	sgrQR    = "\x1b[30;47m" // black foreground on white background
	sgrReset = "\x1b[0m"

	cellLight     = " " // top light, bottom light
	cellDark      = "█" // top dark, bottom dark
	cellDarkLight = "▀" // top dark, bottom light
	cellLightDark = "▄" // top light, bottom dark

	quietZone = 4 // modules, the minimum ISO/IEC 18004 asks for
)

// WriteTerminalQR writes uri as a QR code (error correction level L: the
// screen does not get dirty and smaller codes have bigger modules) for a
// terminal, in half blocks with fixed black-on-white colours (see above).
func WriteTerminalQR(w io.Writer, uri string) error {
	// qrterminal ignores qr.Encode's error and would panic on a nil code.
	if _, err := qr.Encode(uri, qr.L); err != nil {
		return fmt.Errorf("enroll: terminal qr: %w", err)
	}
	var raw bytes.Buffer
	qrterminal.GenerateWithConfig(uri, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         &raw,
		HalfBlocks:     true,
		WhiteChar:      cellLight,
		BlackChar:      cellDark,
		BlackWhiteChar: cellDarkLight,
		WhiteBlackChar: cellLightDark,
		QuietZone:      quietZone,
	})
	lines := strings.Split(strings.TrimSuffix(raw.String(), "\n"), "\n")
	if len(lines) < 3 {
		return fmt.Errorf("enroll: terminal qr: unexpected output from qrterminal (%d lines)", len(lines))
	}
	// The first and last lines lie wholly in the quiet zone, but qrterminal
	// draws a half-dark "edge" line there meant for its default colours
	// (where dark is the terminal background). With pinned colours that
	// would be a dark bar, so print them as plain light lines.
	width := len([]rune(lines[1]))
	blank := strings.Repeat(cellLight, width)
	lines[0], lines[len(lines)-1] = blank, blank

	bw := bufio.NewWriter(w)
	for _, l := range lines {
		bw.WriteString(sgrQR)
		bw.WriteString(l)
		bw.WriteString(sgrReset)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("enroll: terminal qr: %w", err)
	}
	return nil
}

// DefaultPNGSize is the image size WritePNG uses for size <= 0.
const DefaultPNGSize = 400

// WritePNG writes uri as a size x size pixel PNG QR code (error correction
// level M, for printed or photographed copies): black modules on white, a
// quiet zone of at least 4 modules, whole pixels per module (the code is
// centred and the margin absorbs the remainder). size <= 0 means
// DefaultPNGSize; a size too small for one pixel per module is an error.
// The image holds the secret: write it only to a private file.
func WritePNG(w io.Writer, uri string, size int) error {
	code, err := qr.Encode(uri, qr.M)
	if err != nil {
		return fmt.Errorf("enroll: png qr: %w", err)
	}
	if size <= 0 {
		size = DefaultPNGSize
	}
	modules := code.Size + 2*quietZone
	scale := size / modules
	if scale < 1 {
		return fmt.Errorf("enroll: png qr: size %d too small, need at least %d pixels", size, modules)
	}
	offset := (size - code.Size*scale) / 2
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if !code.Black(x, y) {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				row := img.Pix[(offset+y*scale+dy)*img.Stride:]
				for dx := 0; dx < scale; dx++ {
					row[offset+x*scale+dx] = 1
				}
			}
		}
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("enroll: png qr: %w", err)
	}
	return nil
}
