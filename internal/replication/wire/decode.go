package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shoal-go/shoal/session"
)

// decoder reads a payload. Decode runs a message's decode method twice over
// the same bytes:
//
//   - the first pass (fill false) checks everything, allocates nothing and
//     counts the bytes of strings (nstr) and attribute values (nval);
//   - the second pass (fill true) allocates one block for the strings and
//     one for the values, sized by the first pass, and copies into them;
//     slices of records and attributes are allocated at their exact counts.
//
// In the first pass string and value readers return zero values, so
// decode methods check order on the raw bytes, and assign fields in both
// passes (the second overwrites the first).
//
// The first error stops reading: every later read returns a zero value.
type decoder struct {
	typ  Type
	all  []byte // the whole payload, for error offsets
	b    []byte // the bytes not read yet
	err  error
	fill bool

	nstr, nval int // first pass: string and value bytes in the current scope

	strs strings.Builder // second pass: the strings block
	vals []byte          // second pass: the values block
}

// run decodes m and checks that no bytes follow it.
func (d *decoder) run(m Message) error {
	// A type switch rather than m.decode(d), so that d does not escape.
	switch m := m.(type) {
	case *Hello:
		m.decode(d)
	case *Create:
		m.decode(d)
	case *Apply:
		m.decode(d)
	case *Forward:
		m.decode(d)
	case *Delete:
		m.decode(d)
	case *Fetch:
		m.decode(d)
	case *Records:
		m.decode(d)
	case *Expired:
		m.decode(d)
	case *Ack:
		m.decode(d)
	case *Pull:
		m.decode(d)
	case *Ping, *Pong:
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("message ends with %d bytes left", len(d.b))
	}
	return d.err
}

// alloc allocates the blocks of a scope. A previous strings block stays
// valid (the strings cut from it keep it alive); it is only not written to
// any more.
func (d *decoder) alloc(nstr, nval int) {
	d.strs = strings.Builder{}
	d.strs.Grow(nstr)
	d.vals = make([]byte, 0, nval)
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s", ErrMalformed, d.typ, len(d.all)-len(d.b), fmt.Sprintf(format, args...))
	}
	d.b = nil
}

// uvarint reads a minimal unsigned varint.
func (d *decoder) uvarint(what string) uint64 {
	if len(d.b) > 0 && d.b[0] < 0x80 { // most are one byte
		x := d.b[0]
		d.b = d.b[1:]
		return uint64(x)
	}
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("%s: truncated varint", what)
		return 0
	case n < 0:
		d.fail("%s: varint overflows 64 bits", what)
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("%s: non-minimal varint", what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("%s: missing", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool(what string) bool {
	switch c := d.byte(what); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: boolean byte %d, want 0 or 1", what, c)
		return false
	}
}

func (d *decoder) uint16(what string) uint16 {
	x := d.uvarint(what)
	if x > math.MaxUint16 {
		d.fail("%s: %d overflows 16 bits", what, x)
		return 0
	}
	return uint16(x)
}

func (d *decoder) time(what string) time.Time {
	u := d.uvarint(what)
	if u == 0 {
		return time.Time{}
	}
	ms := unzigzag(u - 1)
	if ms == zeroUnixMilli {
		d.fail("%s: the zero time not spelled 0", what)
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (d *decoder) duration(what string) time.Duration {
	return time.Duration(unzigzag(d.uvarint(what)))
}

// raw reads a length-prefixed byte string of at most max bytes and returns
// it without copying.
func (d *decoder) raw(max int, what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("%s: length %d over the limit of %d", what, n, max)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s: length %d but %d bytes left", what, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// keep returns raw, read by d.raw, as a string in the strings block.
func (d *decoder) keep(raw []byte) string {
	if !d.fill {
		d.nstr += len(raw)
		return ""
	}
	if len(raw) == 0 {
		return ""
	}
	off := d.strs.Len()
	d.strs.Write(raw)
	return d.strs.String()[off:]
}

// string reads a string of at most max bytes.
func (d *decoder) string(max int, what string) string {
	return d.keep(d.raw(max, what))
}

// key reads a session key: 1 to MaxKeyLen bytes.
func (d *decoder) key(what string) string {
	raw := d.raw(MaxKeyLen, what)
	if d.err == nil && len(raw) == 0 {
		d.fail("%s: empty session key", what)
	}
	return d.keep(raw)
}

// value reads an attribute value into the values block. An empty value is
// non-nil.
func (d *decoder) value(what string) []byte {
	raw := d.raw(math.MaxInt, what)
	if !d.fill {
		d.nval += len(raw)
		return nil
	}
	off := len(d.vals)
	d.vals = append(d.vals, raw...)
	return d.vals[off:len(d.vals):len(d.vals)]
}

// count reads a number of elements of at least minSize bytes each: at most
// max, and no more than the bytes left can hold, so that a slice of that
// length may be allocated.
func (d *decoder) count(max, minSize int, what string) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.fail("%s: count %d over the limit of %d", what, n, max)
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("%s: count %d but %d bytes left", what, n, len(d.b))
		return 0
	}
	return int(n)
}

// attrs reads attributes, which must be sorted by key without duplicates.
func (d *decoder) attrs(what, keyWhat, valueWhat string) []session.Attr {
	n := d.count(MaxAttrs, 2, what)
	var out []session.Attr
	if d.fill && n > 0 {
		out = make([]session.Attr, n)
	}
	var prev []byte
	for i := 0; i < n && d.err == nil; i++ {
		k := d.raw(MaxAttrKeyLen, keyWhat)
		if i > 0 && d.err == nil && !d.fill && bytes.Compare(prev, k) >= 0 {
			d.fail("%s: key %q after %q: want keys sorted, without duplicates", what, k, prev)
		}
		prev = k
		key := d.keep(k)
		v := d.value(valueWhat)
		if d.fill {
			out[i] = session.Attr{Key: key, Value: v}
		}
	}
	return out
}

// removed reads Delta.Removed: sorted keys without duplicates, none of
// them also in Delta.Set, whose encoding (as checked by attrs) starts set.
func (d *decoder) removed(set []byte) []string {
	const what = "Delta.Removed"
	n := d.count(MaxAttrs, 1, what)
	var out []string
	if d.fill && n > 0 {
		out = make([]string, n)
	}
	// In the first pass, walk Set alongside: both are sorted.
	sd := decoder{b: set}
	nset := 0
	if !d.fill {
		nset = int(sd.uvarint(""))
	}
	var sk []byte // the current Set key, if have
	have := false
	next := func() {
		have = nset > 0
		if have {
			nset--
			sk = sd.raw(math.MaxInt, "")
			sd.raw(math.MaxInt, "")
		}
	}
	next()
	var prev []byte
	for i := 0; i < n && d.err == nil; i++ {
		k := d.raw(MaxAttrKeyLen, "Delta.Removed key")
		if d.err == nil && !d.fill {
			if i > 0 && bytes.Compare(prev, k) >= 0 {
				d.fail("%s: key %q after %q: want keys sorted, without duplicates", what, k, prev)
			}
			for have && bytes.Compare(sk, k) < 0 {
				next()
			}
			if have && bytes.Equal(sk, k) {
				d.fail("%s: key %q is also in Delta.Set", what, k)
			}
		}
		prev = k
		s := d.keep(k)
		if d.fill {
			out[i] = s
		}
	}
	return out
}

// record reads a record (see appendRecord).
func (d *decoder) record(r *session.Record) {
	r.Key = d.key("Record.Key")
	r.Attrs = d.attrs("Record.Attrs", "Record.Attrs key", "Record.Attrs value")
	r.Created = d.time("Record.Created")
	r.LastAccess = d.time("Record.LastAccess")
	r.IdleTimeout = d.duration("Record.IdleTimeout")
	r.AbsoluteDeadline = d.time("Record.AbsoluteDeadline")
	r.Version = d.uvarint("Record.Version")
}

// minRecordLen is the fewest bytes a record takes: a one-byte key and a
// byte for each other field.
const minRecordLen = 8

// ownRecord reads a record into blocks of its own, so that the records of a
// batch do not keep each other's memory alive. In the first pass its bytes
// do not count towards the enclosing scope.
func (d *decoder) ownRecord(r *session.Record) {
	nstr, nval := d.nstr, d.nval
	if d.fill {
		size := decoder{typ: d.typ, all: d.all, b: d.b}
		size.record(r)
		if size.err != nil { // cannot happen: the first pass checked
			d.err, d.b = size.err, nil
			return
		}
		d.alloc(size.nstr, size.nval)
	}
	d.record(r)
	d.nstr, d.nval = nstr, nval
}

// delta reads a delta (see appendDelta).
func (d *decoder) delta(x *session.Delta) {
	set := d.b
	x.Set = d.attrs("Delta.Set", "Delta.Set key", "Delta.Set value")
	x.Removed = d.removed(set)
	x.Access = d.time("Delta.Access")
	x.IdleTimeout = d.duration("Delta.IdleTimeout")
	x.NewKey = d.string(MaxKeyLen, "Delta.NewKey")
	x.BaseVersion = d.uvarint("Delta.BaseVersion")
}
