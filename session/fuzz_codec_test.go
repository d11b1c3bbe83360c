package session

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// fuzzCBORTarget is a small struct with the kinds of fields sessions hold,
// for FuzzCBORUnmarshal to decode into.
type fuzzCBORTarget struct {
	Name  string
	N     int64
	U     uint16
	F     float64
	Tags  []string
	Attrs map[string]int
	At    time.Time
	Raw   []byte
	Big   *big.Int
	Any   any
	Next  *fuzzCBORTarget
}

// FuzzCBORUnmarshal feeds arbitrary bytes to the CBOR codec, as a node or
// Redis could: decoding must never panic (into a struct or into any), and a
// value decoded into any must encode again, and decode again, since a
// handler may read an attribute and put it back.
//
// Seeds are in testdata/fuzz/FuzzCBORUnmarshal (hostile shapes: deep
// nesting, huge declared lengths, duplicate keys, truncation) and below
// (valid encodings of typical values).
func FuzzCBORUnmarshal(f *testing.F) {
	c := CBOR()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("", 3600))
	for _, v := range []any{
		42,
		"hello",
		at,
		fuzzCBORTarget{Name: "n", N: -1, Tags: []string{"a"}, Attrs: map[string]int{"k": 1}, At: at,
			Raw: []byte{1}, Big: big.NewInt(3), Any: []any{1, "x"}, Next: &fuzzCBORTarget{Name: "m"}},
		map[string]any{"list": []any{1.5, true, nil}, "map": map[string]any{"t": at}},
	} {
		b, err := c.Marshal(v)
		if err != nil {
			f.Fatalf("seed %T: %v", v, err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s fuzzCBORTarget
		_ = c.Unmarshal(data, &s)

		var a any
		if err := c.Unmarshal(data, &a); err != nil {
			return
		}
		b, err := c.Marshal(a)
		if err != nil {
			// The one known exception: the decoder accepts times that RFC
			// 3339, the form the encoder writes, cannot hold. Tag 1 (an
			// epoch time, which this codec never writes) can be any year,
			// and Go's time.Parse accepts a "+24:00" offset in tag 0, but
			// RFC 3339 has years 0 to 9999 and offsets under 24 hours, so
			// fxamacker refuses to encode them (with an error, which Put
			// reports). Seeds far-epoch-time and offset-24h.
			var uv *cbor.UnsupportedValueError
			if errors.As(err, &uv) && hasTimeOutsideRFC3339(a) {
				return
			}
			t.Fatalf("decoded %x into %#v, which does not encode: %v", data, a, err)
		}
		var a2 any
		if err := c.Unmarshal(b, &a2); err != nil {
			t.Fatalf("re-encoded %#v as %x, which does not decode: %v", a, b, err)
		}
	})
}

// hasTimeOutsideRFC3339 reports whether v, decoded into an any, holds a
// time.Time that RFC 3339 cannot write: a year outside 0 to 9999, or a UTC
// offset of 24 hours or more.
func hasTimeOutsideRFC3339(v any) bool {
	switch v := v.(type) {
	case time.Time:
		_, off := v.Zone()
		return v.Year() < 0 || v.Year() > 9999 || off <= -24*3600 || off >= 24*3600
	case []any:
		for _, x := range v {
			if hasTimeOutsideRFC3339(x) {
				return true
			}
		}
	case map[string]any:
		for _, x := range v {
			if hasTimeOutsideRFC3339(x) {
				return true
			}
		}
	case cbor.Tag:
		return hasTimeOutsideRFC3339(v.Content)
	}
	return false
}
