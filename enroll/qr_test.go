package enroll

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"rsc.io/qr"

	"github.com/otpgate/otpgate/totp"
)

var qrURIs = []struct{ name, issuer, account string }{
	{"plain", "otpgate", "alice"},
	{"spaces", "ACME VPN", "john.doe@example.com"},
	{"metacharacters", "A&B=C+D", "x/y?z#w%"},
	{"long", strings.Repeat("Issuer ", 12), strings.Repeat("account.", 12)},
}

func testURI(t *testing.T, issuer, account string) string {
	t.Helper()
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	uri, err := URI(issuer, account, secret, totp.Default)
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

func TestWritePNGDecodes(t *testing.T) {
	for _, tt := range qrURIs {
		t.Run(tt.name, func(t *testing.T) {
			uri := testURI(t, tt.issuer, tt.account)
			var buf bytes.Buffer
			if err := WritePNG(&buf, uri, 0); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != DefaultPNGSize || b.Dy() != DefaultPNGSize {
				t.Errorf("image is %v, want %dx%d", b, DefaultPNGSize, DefaultPNGSize)
			}
			if got := zbarDecode(t, buf.Bytes()); got != uri {
				t.Fatalf("zbarimg decoded\n %q\nwant\n %q", got, uri)
			}
		})
	}
}

func TestWritePNGSize(t *testing.T) {
	uri := testURI(t, "otpgate", "alice")
	code, err := qr.Encode(uri, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	m := code.Size + 8 // modules plus the quiet zone
	tests := []struct {
		size    int
		wantErr bool
	}{
		{m, false},
		{200, false},
		{1000, false},
		{m - 1, true},
		{0, false},
		{-1, false},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := WritePNG(&buf, uri, tt.size)
		if (err != nil) != tt.wantErr {
			t.Errorf("WritePNG(size %d) err = %v, wantErr %v", tt.size, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		want := tt.size
		if want <= 0 {
			want = DefaultPNGSize
		}
		if img.Bounds().Dx() != want {
			t.Errorf("WritePNG(size %d) width %d", tt.size, img.Bounds().Dx())
		}
		// The border (quiet zone) must be white all round.
		q := want / m * 4
		for i := 0; i < want; i++ {
			for _, p := range [][2]int{{i, 0}, {0, i}, {i, want - 1}, {want - 1, i}, {i, q - 1}, {q - 1, i}} {
				if r, _, _, _ := img.At(p[0], p[1]).RGBA(); r != 0xffff {
					t.Fatalf("WritePNG(size %d): pixel %v in the quiet zone is not white", tt.size, p)
				}
			}
		}
	}
	if err := WritePNG(&bytes.Buffer{}, strings.Repeat("x", 5000), 0); err == nil {
		t.Error("WritePNG accepted a text too long for a QR code")
	}
}

// parseTerminalQR turns WriteTerminalQR output back into modules: each
// character cell is two pixels stacked (true = dark). It spells out the
// characters and colour codes itself (black foreground on white background,
// so a block glyph is dark) rather than trusting the package's constants.
const (
	wantSGR   = "\x1b[30;47m"
	wantReset = "\x1b[0m"
)

func parseTerminalQR(t *testing.T, out string) [][]bool {
	t.Helper()
	var grid [][]bool
	for n, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, wantSGR) || !strings.HasSuffix(line, wantReset) {
			t.Fatalf("line %d is not wrapped in colour codes: %q", n, line)
		}
		cells := strings.TrimSuffix(strings.TrimPrefix(line, wantSGR), wantReset)
		if strings.Contains(cells, "\x1b") {
			t.Fatalf("line %d has stray escape codes: %q", n, line)
		}
		top, bottom := []bool{}, []bool{}
		for _, r := range cells {
			var a, b bool
			switch r {
			case ' ':
			case '█': // full block
				a, b = true, true
			case '▀': // upper half block
				a = true
			case '▄': // lower half block
				b = true
			default:
				t.Fatalf("line %d: unexpected character %q", n, r)
			}
			top, bottom = append(top, a), append(bottom, b)
		}
		if len(grid) > 0 && len(top) != len(grid[0]) {
			t.Fatalf("line %d is %d cells wide, line 0 is %d", n, len(top), len(grid[0]))
		}
		grid = append(grid, top, bottom)
	}
	return grid
}

// renderGrid draws modules as a PNG, scale pixels each, inside a white border.
func renderGrid(grid [][]bool, scale, border int) []byte {
	w, h := len(grid[0])*scale+2*border, len(grid)*scale+2*border
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y, row := range grid {
		for x, dark := range row {
			if !dark {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				for dx := 0; dx < scale; dx++ {
					img.SetGray(border+x*scale+dx, border+y*scale+dy, color.Gray{})
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestWriteTerminalQRDecodes(t *testing.T) {
	for _, tt := range qrURIs {
		t.Run(tt.name, func(t *testing.T) {
			uri := testURI(t, tt.issuer, tt.account)
			var buf bytes.Buffer
			if err := WriteTerminalQR(&buf, uri); err != nil {
				t.Fatal(err)
			}
			grid := parseTerminalQR(t, buf.String())

			// A quiet zone of at least 4 light modules on every side.
			rows, cols := len(grid), len(grid[0])
			for y := 0; y < rows; y++ {
				for x := 0; x < cols; x++ {
					edge := y < quietZone || y >= rows-quietZone || x < quietZone || x >= cols-quietZone
					if edge && grid[y][x] {
						t.Fatalf("dark module at (%d,%d) inside the quiet zone of a %dx%d grid", x, y, cols, rows)
					}
				}
			}
			// No border here: the printed quiet zone must be enough.
			if got := zbarDecode(t, renderGrid(grid, 8, 0)); got != uri {
				t.Fatalf("zbarimg decoded the terminal QR as\n %q\nwant\n %q", got, uri)
			}
			if got := zbarDecode(t, renderGrid(grid, 6, 24)); got != uri {
				t.Fatalf("zbarimg (with border) decoded\n %q\nwant\n %q", got, uri)
			}
		})
	}
}

func TestWriteTerminalQRErrors(t *testing.T) {
	if err := WriteTerminalQR(&bytes.Buffer{}, strings.Repeat("x", 5000)); err == nil {
		t.Error("WriteTerminalQR accepted a text too long for a QR code")
	}
	if err := WriteTerminalQR(failWriter{}, "otpauth://totp/a:b?secret=AAAA"); err == nil {
		t.Error("WriteTerminalQR ignored a write error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFailWriter }

var errFailWriter = &writeError{}

type writeError struct{}

func (*writeError) Error() string { return "write failed" }
