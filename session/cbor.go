package session

import (
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits of the CBOR codec. Encoded values come from other nodes
// and from Redis, so the decoder treats them as untrusted: these bounds cap
// what one value can make the decoder do, whatever its bytes say. Marshal
// checks its own output against the same limits, so a value that Put
// accepts can always be read back (see cborCodec.Marshal).
const (
	// cborMaxNestedLevels bounds how deeply arrays, maps and tags nest
	// (fxamacker's default is 32). The decoder recurses once per level, so
	// the bound keeps its stack small even for hostile input; a few hundred
	// bytes of stack per level makes 128 levels tens of KiB. Session values
	// are rarely more than a handful of levels deep (a cart: map, struct,
	// list, struct), but a recursive type (a tree or a linked list of
	// pointers) nests one level per node, and 128 leaves room for modest
	// ones.
	cborMaxNestedLevels = 128

	// cborMaxContainerLen bounds the elements of one array and the pairs of
	// one map (fxamacker's default is 131072). Before decoding, the input
	// is checked to be well formed, so a declared length can never exceed
	// the bytes that follow; the bound caps the memory one container can
	// make the decoder allocate (elements into []any take 16 bytes each,
	// map entries more). 65536 elements is at least 64 KiB encoded in one
	// list, far past what a session attribute should hold; a larger value
	// is refused by Put, not silently truncated.
	cborMaxContainerLen = 1 << 16
)

// cborCodec is the Codec that CBOR returns. It holds modes built once:
// fxamacker modes are immutable and safe for concurrent use.
type cborCodec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

// defaultCBOR is built at package initialisation: building the modes is
// cheap, cannot fail with these fixed options unless the library changes
// (in which case failing at start is right), and makes CBOR() a plain
// load.
var defaultCBOR = newCBORCodec()

// CBOR returns the default Codec: CBOR (RFC 8949) through
// github.com/fxamacker/cbor/v2. It is cheap to call: every call returns
// the same shared, concurrency-safe value.
//
// Encoding: a time.Time is written as an RFC 3339 string with nanoseconds
// and its UTC offset, under tag 0, so it comes back as the same instant to
// the nanosecond (the zone's name and the monotonic clock reading are not
// kept), and as a time.Time even inside an `any`. Nil slices and maps stay
// nil; types implementing cbor.Marshaler or encoding.BinaryMarshaler
// encode through those methods.
//
// Decoding is hardened for input from other nodes or from Redis: nesting,
// array and map sizes are bounded (see cborMaxNestedLevels and
// cborMaxContainerLen), a map with a duplicate key is refused rather than
// resolved silently in favour of one of the values, and indefinite-length
// items (which this encoder never writes) are refused. Into an `any`,
// integers decode as int64 (a big.Int beyond int64), maps as
// map[string]any, arrays as []any, byte strings as []byte.
//
// Marshal does not detect cycles (fxamacker would recurse until the stack
// overflows, which kills the process): Session.Put runs checkEncodable
// first, and other callers must not pass values that refer to themselves.
func CBOR() Codec { return defaultCBOR }

func newCBORCodec() *cborCodec {
	enc, err := cbor.EncOptions{
		// RFC 3339 with nanoseconds keeps the instant exactly; the Unix
		// modes either round to the second or go through a float64.
		Time: cbor.TimeRFC3339Nano,
		// Tag 0 marks the string as a time, so that a time.Time inside an
		// `any` decodes back as a time.Time instead of a string.
		TimeTag: cbor.EncTagRequired,
		// The decoder refuses indefinite lengths; never write them.
		IndefLength: cbor.IndefLengthForbidden,
		// Nil stays nil: a nil slice or map is null, not an empty one.
		NilContainers: cbor.NilContainerAsNull,
	}.EncMode()
	if err != nil {
		panic(fmt.Sprintf("session: building CBOR encode mode: %v", err))
	}
	dec, err := cbor.DecOptions{
		// A map with a repeated key is either an attack or corruption;
		// refuse it instead of keeping one of the values.
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  cborMaxNestedLevels,
		MaxArrayElements: cborMaxContainerLen,
		MaxMapPairs:      cborMaxContainerLen,
		IndefLength:      cbor.IndefLengthForbidden,
		// Usable types inside `any`: int64 rather than uint64 for
		// non-negative integers (big.Int only beyond int64, so no value is
		// lost), and map[string]any, which is what code (and
		// encoding/json) expects, rather than map[any]any. checkEncodable
		// refuses maps with non-string keys inside interface values,
		// which could not decode into map[string]any.
		IntDec:         cbor.IntDecConvertSignedOrBigInt,
		DefaultMapType: reflect.TypeFor[map[string]any](),
		// Go strings may hold any bytes, and the encoder writes them as
		// they are; accept them back instead of failing a value that Put
		// accepted. Invalid UTF-8 in a Go string is not a safety issue.
		UTF8: cbor.UTF8DecodeInvalid,
		// Tags 0 and 1 decode to time.Time inside `any` (the default,
		// spelled out because the encoder relies on it).
		TimeTagToAny: cbor.TimeTagToTime,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("session: building CBOR decode mode: %v", err))
	}
	return &cborCodec{enc: enc, dec: dec}
}

// Marshal encodes v. It also checks the encoded bytes against the
// decoder's limits (a linear scan, no allocation), so that a value too
// deeply nested or with too large a list is refused here, when it is put,
// instead of being stored and then failing on every read.
func (c *cborCodec) Marshal(v any) ([]byte, error) {
	b, err := c.enc.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := c.dec.Wellformed(b); err != nil {
		return nil, fmt.Errorf("encoded value would not decode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes data into v, which must be a non-nil pointer. It
// returns an error, never panics, on malformed or hostile data, and keeps
// no reference to data.
func (c *cborCodec) Unmarshal(data []byte, v any) error {
	return c.dec.Unmarshal(data, v)
}
