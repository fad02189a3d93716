package pamhelper

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadAuthtok(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"plain, as Debian 12 pam_exec writes it", "hunter2123456", "hunter2123456", nil},
		{"NUL-terminated", "hunter2123456\x00", "hunter2123456", nil},
		{"only one NUL is dropped", "pw\x00\x00", "", ErrAuthtokNUL},
		{"NUL inside", "pw\x00123456", "", ErrAuthtokNUL},
		{"spaces and newline are kept", " pw 123456\n", " pw 123456\n", nil},
		{"empty", "", "", ErrAuthtokEmpty},
		{"only a NUL", "\x00", "", ErrAuthtokEmpty},
		{"exactly at the bound", strings.Repeat("a", MaxAuthtok), strings.Repeat("a", MaxAuthtok), nil},
		{"bound with its NUL", strings.Repeat("a", MaxAuthtok-1) + "\x00", strings.Repeat("a", MaxAuthtok-1), nil},
		{"one over the bound", strings.Repeat("a", MaxAuthtok+1), "", ErrAuthtokTooLong},
		{"far over the bound", strings.Repeat("a", 1<<20), "", ErrAuthtokTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// OneByteReader: the pipe may deliver the authtok in pieces.
			got, err := ReadAuthtok(iotest.OneByteReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAuthtok(%d bytes) error = %v; want %v", len(tt.in), err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("ReadAuthtok(%d bytes) = %d bytes; want %d", len(tt.in), len(got), len(tt.want))
			}
		})
	}
}

func TestReadAuthtokReadError(t *testing.T) {
	_, err := ReadAuthtok(iotest.ErrReader(errors.New("boom")))
	if err == nil || errors.Is(err, ErrAuthtokEmpty) {
		t.Fatalf("ReadAuthtok(failing reader) error = %v; want a read error", err)
	}
	_, err = ReadAuthtok(iotest.TimeoutReader(bytes.NewReader([]byte("abc"))))
	if err == nil {
		t.Fatal("ReadAuthtok(reader failing after 1 read) succeeded; want an error")
	}
}
