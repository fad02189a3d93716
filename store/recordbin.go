package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Records are stored in a compact binary form since schema 2; schema 1
// records are JSON and are still read (a JSON record starts with '{', a
// binary one with binaryRecordV2), and rewritten in binary by their next
// write. The binary form exists for the hot path: decoding and encoding a
// user on every code check took a large share of the server's CPU in JSON,
// most of it reflection and allocation.
//
// Layout, in this order (uvarint/varint are encoding/binary's; a string or
// byte slice is a uvarint length and the bytes; a time is one byte 0 for the
// zero time, or 1 followed by varint Unix seconds and uvarint nanoseconds):
//
//	byte      binaryRecordV2
//	string    name
//	uvarint   number of groups, then each group as a string
//	byte      flags: flagDisabled, flagTOTP, flagPending
//	string    password hash
//	totp      if flagTOTP: see appendTOTP, then the sealed seed
//	totp      if flagPending: likewise, then the sealed pending seed
//	varint    pending tries
//	uvarint   number of recovery code hashes, then each as a string
//	varint    code failures
//	time      locked until, last failure, created, last success
//
// Nothing may follow. Decoding checks every length against what is left, so
// arbitrary bytes give an error, never a panic or a huge allocation.
const binaryRecordV2 = 0x02

const (
	flagDisabled = 1 << iota
	flagTOTP
	flagPending
	flagsKnown = flagDisabled | flagTOTP | flagPending
)

// isBinaryRecord reports whether a stored value is in the binary form.
func isBinaryRecord(v []byte) bool { return len(v) > 0 && v[0] == binaryRecordV2 }

// marshalBinaryRecord appends r in the binary form to dst.
func marshalBinaryRecord(dst []byte, r *record) []byte {
	b := append(dst, binaryRecordV2)
	b = appendString(b, r.Name)
	b = binary.AppendUvarint(b, uint64(len(r.Groups)))
	for _, g := range r.Groups {
		b = appendString(b, g)
	}
	var flags byte
	if r.Disabled {
		flags |= flagDisabled
	}
	if r.TOTP != nil {
		flags |= flagTOTP
	}
	if r.PendingTOTP != nil {
		flags |= flagPending
	}
	b = append(b, flags)
	b = appendString(b, r.PasswordHash)
	if r.TOTP != nil {
		b = appendTOTP(b, r.TOTP)
		b = appendBytes(b, r.SealedSeed)
	}
	if r.PendingTOTP != nil {
		b = appendTOTP(b, r.PendingTOTP)
		b = appendBytes(b, r.SealedPendingSeed)
	}
	b = binary.AppendVarint(b, int64(r.PendingTries))
	b = binary.AppendUvarint(b, uint64(len(r.RecoveryCodes)))
	for _, h := range r.RecoveryCodes {
		b = appendString(b, h)
	}
	b = binary.AppendVarint(b, int64(r.CodeFailures))
	for _, t := range [...]time.Time{r.LockedUntil, r.LastFailure, r.Created, r.LastSuccess} {
		b = appendTime(b, t)
	}
	return b
}

// appendTOTP writes a token's settings (not its secret, which is sealed
// separately): algorithm, digits, period, last step, enrolled.
func appendTOTP(b []byte, t *TOTP) []byte {
	b = appendString(b, t.Algorithm)
	b = binary.AppendVarint(b, int64(t.Digits))
	b = binary.AppendVarint(b, int64(t.Period))
	b = binary.AppendUvarint(b, t.LastStep)
	return appendTime(b, t.Enrolled)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// unmarshalBinaryRecord parses data (which starts with binaryRecordV2) into
// r. r shares no memory with data.
func unmarshalBinaryRecord(data []byte, r *record) error {
	d := decoder{b: data}
	if d.byte() != binaryRecordV2 {
		return errors.New("not a binary record")
	}
	r.Name = d.string()
	if n := d.count(); n > 0 {
		r.Groups = make([]string, n)
		for i := range r.Groups {
			r.Groups[i] = d.string()
		}
	}
	flags := d.byte()
	if flags&^flagsKnown != 0 && d.err == nil {
		d.err = fmt.Errorf("unknown flags %#x", flags)
	}
	r.Disabled = flags&flagDisabled != 0
	r.PasswordHash = d.string()
	if flags&flagTOTP != 0 {
		r.TOTP = d.totp()
		r.SealedSeed = d.bytes()
	}
	if flags&flagPending != 0 {
		r.PendingTOTP = d.totp()
		r.SealedPendingSeed = d.bytes()
	}
	r.PendingTries = d.int()
	if n := d.count(); n > 0 {
		r.RecoveryCodes = make([]string, n)
		for i := range r.RecoveryCodes {
			r.RecoveryCodes[i] = d.string()
		}
	}
	r.CodeFailures = d.int()
	r.LockedUntil = d.time()
	r.LastFailure = d.time()
	r.Created = d.time()
	r.LastSuccess = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the record", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("binary record: %w", d.err)
	}
	return nil
}

// decoder reads the binary record form; the first error sticks and every
// later read returns a zero value.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errors.New("bad uvarint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errors.New("bad varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a varint that must fit an int32, which every counter does.
func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("integer %d out of range", v))
		return 0
	}
	return int(v)
}

// count reads a number of strings to follow: each takes at least one byte,
// so a count above what is left is an error (and no allocation).
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b)))
		return 0
	}
	return int(n)
}

// raw returns the next length-prefixed bytes, still in d's buffer.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b)))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.raw()) }

// bytes returns a copy of the next length-prefixed bytes (nil if empty).
func (d *decoder) bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail(fmt.Errorf("nanoseconds %d out of range", nsec))
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		d.fail(errors.New("bad time marker"))
		return time.Time{}
	}
}

func (d *decoder) totp() *TOTP {
	t := &TOTP{Algorithm: d.string()}
	t.Digits = d.int()
	t.Period = d.int()
	t.LastStep = d.uvarint()
	t.Enrolled = d.time()
	return t
}
