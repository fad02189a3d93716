package store

import (
	"bytes"
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
		if got.TOTP != nil && len(got.TOTP.Secret) == 0 && !bytes.Contains(data, []byte("sealed_seed")) {
			t.Fatal("TOTP without a sealed seed decoded")
		}
	})
}
