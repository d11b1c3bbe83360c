package wire

import (
	"encoding/binary"
	"time"

	"github.com/shoal-go/shoal/session"
)

// Encoding of the field types (see the package doc). Each appendX has a
// matching xLen giving the bytes it appends, so that AppendFrame can grow
// its buffer once, and a decoder method reading it back.

// zeroUnixMilli is time.Time{}.UnixMilli(): the zero time's instant in Unix
// milliseconds, which the encoding spells 0.
const zeroUnixMilli = -62135596800000

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// timeCode returns the uvarint a time is sent as: 0 for the zero time (and
// for the instants in its millisecond), else zigzag(Unix ms) + 1.
func timeCode(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms == zeroUnixMilli {
		return 0
	}
	return zigzag(ms) + 1
}

func appendTime(b []byte, t time.Time) []byte { return binary.AppendUvarint(b, timeCode(t)) }

func timeLen(t time.Time) int { return uvarintLen(timeCode(t)) }

func appendDuration(b []byte, d time.Duration) []byte {
	return binary.AppendUvarint(b, zigzag(int64(d)))
}

func durationLen(d time.Duration) int { return uvarintLen(zigzag(int64(d))) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func appendBytes(b []byte, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func bytesLen(v []byte) int { return uvarintLen(uint64(len(v))) + len(v) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendAttrs(b []byte, attrs []session.Attr) []byte {
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, a := range attrs {
		b = appendString(b, a.Key)
		b = appendBytes(b, a.Value)
	}
	return b
}

func attrsLen(attrs []session.Attr) int {
	n := uvarintLen(uint64(len(attrs)))
	for _, a := range attrs {
		n += stringLen(a.Key) + bytesLen(a.Value)
	}
	return n
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func stringsLen(ss []string) int {
	n := uvarintLen(uint64(len(ss)))
	for _, s := range ss {
		n += stringLen(s)
	}
	return n
}

// A record is Key, Attrs, Created, LastAccess, IdleTimeout,
// AbsoluteDeadline, Version.
func appendRecord(b []byte, r *session.Record) []byte {
	b = appendString(b, r.Key)
	b = appendAttrs(b, r.Attrs)
	b = appendTime(b, r.Created)
	b = appendTime(b, r.LastAccess)
	b = appendDuration(b, r.IdleTimeout)
	b = appendTime(b, r.AbsoluteDeadline)
	return binary.AppendUvarint(b, r.Version)
}

// RecordSize returns the bytes r takes in a Create or Records payload, so
// that a sender can fill Records batches up to a frame size.
func RecordSize(r *session.Record) int {
	return stringLen(r.Key) + attrsLen(r.Attrs) + timeLen(r.Created) + timeLen(r.LastAccess) +
		durationLen(r.IdleTimeout) + timeLen(r.AbsoluteDeadline) + uvarintLen(r.Version)
}

// A delta is Set, Removed, Access, IdleTimeout, NewKey, BaseVersion.
func appendDelta(b []byte, d *session.Delta) []byte {
	b = appendAttrs(b, d.Set)
	b = appendStrings(b, d.Removed)
	b = appendTime(b, d.Access)
	b = appendDuration(b, d.IdleTimeout)
	b = appendString(b, d.NewKey)
	return binary.AppendUvarint(b, d.BaseVersion)
}

func deltaLen(d *session.Delta) int {
	return attrsLen(d.Set) + stringsLen(d.Removed) + timeLen(d.Access) + durationLen(d.IdleTimeout) +
		stringLen(d.NewKey) + uvarintLen(d.BaseVersion)
}
