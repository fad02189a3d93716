package store

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeRecord: arbitrary stored bytes must give a User or an error,
// never a panic, and a decoded seed must be one the key really sealed.
func FuzzDecodeRecord(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	k, err := newKeyring(key)
	if err != nil {
		f.Fatal(err)
	}
	u := totpUser("alice", []byte("12345678901234567890"))
	good, err := encodeRecord(k, &u)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("alice", good)
	f.Add("alice", encodeRecordJSON(f, k, &u))
	f.Add("alice", good[:len(good)/2])
	f.Add("alice", []byte{binaryRecordV2, 5, 'a', 'l', 'i', 'c', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add("alice", []byte(`{"name":"alice"}`))
	f.Add("alice", []byte(`{"name":"alice","totp":{}}`))
	f.Add("alice", []byte(`{"name":"alice","sealed_seed":"AAAA"}`))
	f.Add("alice", []byte(`{"name":"alice","totp":{"digits":6},"sealed_seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add("bob", good)
	f.Add("", []byte(`null`))
	f.Add("x", []byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		got, err := decodeRecord(k, name, data)
		if err != nil {
			return
		}
		if got.Name != name {
			t.Fatalf("decoded %q under key %q", got.Name, name)
		}
		if got.TOTP != nil && len(got.TOTP.Secret) == 0 {
			t.Fatal("TOTP without a seed decoded")
		}
		// What decoded encodes (when valid) and decodes to the same user.
		again, err := encodeRecord(k, &got)
		if err != nil {
			return
		}
		back, err := decodeRecord(k, name, again)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoded record: %v\n got  %+v\n want %+v", err, back, got)
		}
	})
}
