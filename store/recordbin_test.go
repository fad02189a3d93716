package store

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestBinaryRecordRoundTrip: every field survives the binary form, and a
// JSON (schema 1) record of the same user decodes to the same User.
func TestBinaryRecordRoundTrip(t *testing.T) {
	k, err := newKeyring(bytes.Repeat([]byte{9}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	full := totpUser("alice@example.org", randomSeed(t))
	full.Disabled = true
	full.TOTP.LastStep = 59_000_123
	full.PendingTOTP = &TOTP{Secret: randomSeed(t), Algorithm: "SHA256", Digits: 8, Period: 60, Enrolled: at("2026-11-26T09:00:00.123456789Z")}
	full.PendingTries = 3
	full.CodeFailures = 12
	full.LockedUntil = at("2026-11-26T10:00:00Z")
	full.LastFailure = at("2026-11-26T09:59:59.5Z")
	full.LastSuccess = at("1999-12-31T23:59:59Z")
	tests := []struct {
		name string
		u    User
	}{
		{"every field", full},
		{"name only", User{Name: "bob"}},
		{"pending only", User{Name: "carol", PendingTOTP: &TOTP{Secret: randomSeed(t), Digits: 6}, Created: at("2026-01-01T00:00:00Z")}},
		{"long values", User{Name: strings.Repeat("n", 64), Groups: []string{strings.Repeat("g", 300), ""}, PasswordHash: strings.Repeat("h", 1000)}},
		{"before 1970", User{Name: "old", Created: at("1960-05-06T07:08:09.000000001Z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := encodeRecord(k, &tt.u)
			if err != nil {
				t.Fatal(err)
			}
			if !isBinaryRecord(data) {
				t.Fatalf("encodeRecord wrote %.20q, not the binary form", data)
			}
			got, err := decodeRecord(k, tt.u.Name, data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.u) {
				t.Fatalf("binary round trip:\n got  %+v\n want %+v", got, tt.u)
			}
			fromJSON, err := decodeRecord(k, tt.u.Name, encodeRecordJSON(t, k, &tt.u))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromJSON, got) {
				t.Fatalf("JSON and binary disagree:\n json   %+v\n binary %+v", fromJSON, got)
			}
			// Every strict prefix is an error, never a panic or a user.
			for n := range len(data) {
				if _, err := decodeRecord(k, tt.u.Name, data[:n]); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded", n, len(data))
				}
			}
			if _, err := decodeRecord(k, tt.u.Name, append(bytes.Clone(data), 0)); err == nil {
				t.Fatal("a trailing byte was accepted")
			}
		})
	}
}

// TestBinaryRecordRejectsHugeCounts: a count or length beyond the record
// is an error before anything is allocated for it.
func TestBinaryRecordRejectsHugeCounts(t *testing.T) {
	for _, data := range [][]byte{
		{binaryRecordV2, 0xff, 0xff, 0xff, 0xff, 0x0f},                     // name length 4 GiB
		{binaryRecordV2, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // group count
		{binaryRecordV2, 1, 'a', 0, 0x80},                                  // unknown flag
	} {
		var r record
		if err := unmarshalBinaryRecord(data, &r); err == nil {
			t.Errorf("%x decoded", data)
		}
	}
}
