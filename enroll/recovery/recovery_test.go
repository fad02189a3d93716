package recovery

import (
	"encoding/base32"
	"regexp"
	"strings"
	"testing"
)

var shape = regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr bool
	}{
		{"zero", 0, false},
		{"one", 1, false},
		{"ten", 10, false},
		{"many", 1000, false},
		{"negative", -1, true},
		{"too many", 1001, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codes, err := Generate(tt.n)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Generate(%d) = nil error, want error", tt.n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Generate(%d): %v", tt.n, err)
			}
			if len(codes) != tt.n {
				t.Fatalf("Generate(%d) returned %d codes", tt.n, len(codes))
			}
			seen := map[string]bool{}
			for _, c := range codes {
				if !shape.MatchString(c) {
					t.Errorf("code %q does not match %v", c, shape)
				}
				if seen[c] {
					t.Errorf("duplicate code %q", c)
				}
				seen[c] = true
				n, ok := Normalize(c)
				if !ok || len(n) != 16 || n != strings.ReplaceAll(c, "-", "") {
					t.Errorf("Normalize(%q) = %q, %v", c, n, ok)
				}
				// 16 base32 chars decode to exactly 10 bytes = 80 bits.
				raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(n))
				if err != nil || len(raw) != 10 {
					t.Errorf("code %q decodes to %d bytes, err %v", c, len(raw), err)
				}
				p, s, ok := SplitSuffix("pw" + c)
				if !ok || p != "pw" || s != n {
					t.Errorf("SplitSuffix(pw+%q) = %q, %q, %v", c, p, s, ok)
				}
			}
		})
	}
}

// TestGenerateUsesWholeAlphabet guards against a biased or truncated alphabet:
// 1000 codes * 16 chars should hit all 32 symbols.
func TestGenerateUsesWholeAlphabet(t *testing.T) {
	codes, err := Generate(1000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[rune]int{}
	for _, c := range codes {
		for _, r := range strings.ReplaceAll(c, "-", "") {
			counts[r]++
		}
	}
	if len(counts) != 32 {
		t.Fatalf("saw %d distinct symbols, want 32: %v", len(counts), counts)
	}
	// Expected 500 each; a uniform source is essentially never below 350.
	for r, n := range counts {
		if n < 350 || n > 650 {
			t.Errorf("symbol %q appears %d times, expected about 500", r, n)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"abcd-efgh-ijkl-mn23", "abcdefghijklmn23", true},
		{"ABCD-EFGH-IJKL-MN23", "abcdefghijklmn23", true},
		{"abcd efgh ijkl mn23", "abcdefghijklmn23", true},
		{"abcdefghijklmn23", "abcdefghijklmn23", true},
		{" abcd-efgh-ijkl-mn23 ", "abcdefghijklmn23", true},
		{"2345-6777-aaaa-zzzz", "23456777aaaazzzz", true},
		{"12345678", "12345678", true},
		{"1234-5678", "12345678", true},
		{"1234 5678", "12345678", true},
		{"", "", false},
		{"123456", "123456", false},                        // a TOTP code, not a recovery code
		{"1234567", "1234567", false},                      // 7 digits
		{"123456789", "123456789", false},                  // 9 digits
		{"1234567a", "1234567a", false},                    // mixed, 8 chars
		{"abcd-efgh-ijkl-mn21", "abcdefghijklmn21", false}, // '1' not base32
		{"abcd-efgh-ijkl-mn28", "abcdefghijklmn28", false}, // '8' not base32
		{"abcd-efgh-ijkl-mn0o", "abcdefghijklmn0o", false}, // '0'
		{"abcd-efgh-ijkl-mn2", "abcdefghijklmn2", false},   // 15 chars
		{"abcd-efgh-ijkl-mn234", "abcdefghijklmn234", false},
		{"abcd_efgh_ijkl_mn23", "abcd_efgh_ijkl_mn23", false},
		{"abcd\tefgh-ijkl-mn23", "abcd\tefghijklmn23", false},
		{"１２３４５６７８", "１２３４５６７８", false}, // full-width digits
		{"abcd-efgh-ijkl-mn2é", "abcdefghijklmn2é", false},
		{strings.Repeat("a", 200), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := Normalize(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("Normalize(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSplitSuffix(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantPrefix string
		wantCode   string
		wantOK     bool
	}{
		{"password and code", "s3cret!abcd-efgh-ijkl-mn23", "s3cret!", "abcdefghijklmn23", true},
		{"upper case code", "pwABCD-EFGH-IJKL-MN23", "pw", "abcdefghijklmn23", true},
		{"code alone", "abcd-efgh-ijkl-mn23", "", "abcdefghijklmn23", true},
		{"prefix with dashes", "a-b-c-abcd-efgh-ijkl-mn23", "a-b-c-", "abcdefghijklmn23", true},
		{"password then totp", "s3cret!123456", "", "", false},
		{"scratch code is not split", "s3cret!12345678", "", "", false},
		{"undashed code is not split", "pwabcdefghijklmn23", "", "", false},
		{"spaces instead of dashes", "pwabcd efgh ijkl mn23", "", "", false},
		{"bad char in code", "pwabcd-efgh-ijkl-mn21", "", "", false},
		{"dash misplaced", "pwabc-defgh-ijkl-mn23", "", "", false},
		{"trailing space", "pwabcd-efgh-ijkl-mn23 ", "", "", false},
		{"too short", "bcd-efgh-ijkl-mn23", "", "", false},
		{"empty", "", "", "", false},
		{"non-ascii in code", "pwabcd-efgh-ijkl-mné", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c, ok := SplitSuffix(tt.in)
			if p != tt.wantPrefix || c != tt.wantCode || ok != tt.wantOK {
				t.Fatalf("SplitSuffix(%q) = %q, %q, %v; want %q, %q, %v",
					tt.in, p, c, ok, tt.wantPrefix, tt.wantCode, tt.wantOK)
			}
			if ok {
				if n, nok := Normalize(c); !nok || n != c {
					t.Fatalf("code %q from SplitSuffix is not canonical: Normalize = %q, %v", c, n, nok)
				}
			}
		})
	}
}

func FuzzNormalizeSplit(f *testing.F) {
	f.Add("pwabcd-efgh-ijkl-mn23")
	f.Add("12345678")
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := Normalize(s)
		if ok && !(len(n) == 16 || len(n) == 8) {
			t.Fatalf("Normalize(%q) ok with %q", s, n)
		}
		p, c, ok := SplitSuffix(s)
		if ok {
			if len(c) != 16 || !strings.HasPrefix(s, p) || len(p)+DashedLen != len(s) {
				t.Fatalf("SplitSuffix(%q) = %q, %q", s, p, c)
			}
		}
	})
}
