package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/session"
)

// A session key as shoal generates them (24 characters) and a time in
// 2026, at millisecond precision and in UTC, as Decode returns times.
var (
	testKey  = "q3VtZ8-xLk2PwA0rYb7nHc4D"
	testKey2 = "Zx9Lm2Qw8Er5Ty1Ui3Op6As0"
	testTime = time.UnixMilli(1_780_000_000_123).UTC()
)

// The demo app's attributes, encoded by the session codec (CBOR): "user"
// is the text "alice", "count" the integer 1.
var (
	cborAlice = []byte{0x65, 'a', 'l', 'i', 'c', 'e'}
	cborOne   = []byte{0x01}
	cborTwo   = []byte{0x02}
)

// demoRecord is the record of a demo session after login and one counter
// request, as a primary sends it in Create.
func demoRecord() session.Record {
	return session.Record{
		Key:         testKey,
		Attrs:       []session.Attr{{Key: "count", Value: cborOne}, {Key: "user", Value: cborAlice}},
		Created:     testTime,
		LastAccess:  testTime,
		IdleTimeout: 30 * time.Minute,
		Version:     1,
	}
}

// counterApply is the Apply a primary sends to a backup after a counter
// request: one attribute, a 1-byte value.
func counterApply() *wire.Apply {
	return &wire.Apply{
		Key: testKey,
		Delta: session.Delta{
			Set:         []session.Attr{{Key: "count", Value: cborTwo}},
			Access:      testTime.Add(time.Second),
			BaseVersion: 1,
		},
		Version: 2,
	}
}

func bigRecord() session.Record {
	r := session.Record{
		Key:              strings.Repeat("k", wire.MaxKeyLen),
		Created:          testTime.Add(-time.Hour),
		LastAccess:       testTime,
		IdleTimeout:      -1,
		AbsoluteDeadline: testTime.Add(8 * time.Hour),
		Version:          math.MaxUint64,
	}
	for i := range 300 {
		r.Attrs = append(r.Attrs, session.Attr{Key: fmt.Sprintf("attr%04d", i), Value: bytes.Repeat([]byte{byte(i)}, i)})
	}
	r.Attrs[0].Value = []byte{} // empty values decode as empty, not nil
	r.Attrs = append(r.Attrs, session.Attr{Key: strings.Repeat("z", wire.MaxAttrKeyLen), Value: bytes.Repeat([]byte("v"), 200_000)})
	return r
}

type namedMessage struct {
	name string
	m    wire.Message
}

// sampleMessages returns messages of every type, in the canonical form
// Decode returns (times in UTC at millisecond precision, nil for empty
// slices).
func sampleMessages() []namedMessage {
	before1970 := time.UnixMilli(-86_400_123).UTC()
	return []namedMessage{
		{"hello", &wire.Hello{Protocol: wire.ProtocolVersion, Cluster: "prod", Node: "node-1", Role: 1}},
		{"hello/empty", &wire.Hello{}},
		{"hello/max", &wire.Hello{Protocol: math.MaxUint16, Cluster: strings.Repeat("c", wire.MaxNameLen), Node: strings.Repeat("n", wire.MaxNameLen), Role: 255}},
		{"create/demo", &wire.Create{Rec: demoRecord()}},
		{"create/no-attrs-zero-times", &wire.Create{Rec: session.Record{Key: "k"}}},
		{"create/epoch-and-before", &wire.Create{Rec: session.Record{Key: "k", Created: time.Unix(0, 0).UTC(), LastAccess: before1970, IdleTimeout: math.MinInt64, AbsoluteDeadline: time.UnixMilli(math.MaxInt64).UTC()}}},
		{"create/large", &wire.Create{Rec: bigRecord()}},
		{"apply/counter", counterApply()},
		{"apply/renew-id", &wire.Apply{Key: testKey, Delta: session.Delta{
			Set:         []session.Attr{{Key: "", Value: []byte{}}, {Key: "a", Value: []byte("x")}, {Key: "c", Value: cborAlice}},
			Removed:     []string{"b", "d", "e"},
			IdleTimeout: -1,
			NewKey:      testKey2,
			BaseVersion: 41,
		}, Version: 42}},
		{"apply/touch-only", &wire.Apply{Key: testKey, Delta: session.Delta{Access: testTime, IdleTimeout: time.Hour + time.Nanosecond, BaseVersion: 7}, Version: 8}},
		{"apply/remove-only", &wire.Apply{Key: testKey, Delta: session.Delta{Removed: []string{"user"}, Access: before1970}, Version: 1}},
		{"forward", &wire.Forward{Key: testKey, Delta: session.Delta{Set: []session.Attr{{Key: "user", Value: cborAlice}}, Access: testTime, IdleTimeout: 5 * time.Minute, NewKey: testKey2, BaseVersion: 3}}},
		{"forward/empty-delta", &wire.Forward{Key: testKey}},
		{"delete", &wire.Delete{Key: testKey, Reason: 2, Version: 300}},
		{"fetch", &wire.Fetch{Key: testKey}},
		{"records/empty-last", &wire.Records{Last: true}},
		{"records/two", &wire.Records{Recs: []session.Record{demoRecord(), {Key: "k", Version: 1}}, Last: true}},
		{"records/three", &wire.Records{Recs: []session.Record{demoRecord(), {Key: "k"}, bigRecord()}}},
		{"expired", &wire.Expired{Keys: []string{testKey, testKey2, "k"}}},
		{"expired/none", &wire.Expired{}},
		{"ack/ok", &wire.Ack{Status: wire.StatusOK, Version: 2}},
		{"ack/refused", &wire.Ack{Status: wire.StatusRefused, Message: "protocol 2 not supported (speak 1)"}},
		{"ack/error-long", &wire.Ack{Status: wire.StatusError, Version: 1 << 40, Message: strings.Repeat("m", wire.MaxMessageLen)}},
		{"ping", &wire.Ping{}},
		{"pong", &wire.Pong{}},
		{"pull", &wire.Pull{Node: "n4", Part: 31}},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[wire.Type]bool{}
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			seen[tc.m.Type()] = true
			const id = 1<<35 + 5
			frame := wire.AppendFrame(nil, id, tc.m)
			if err := wire.Validate(tc.m); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			r := wire.NewReader(bytes.NewReader(frame), 0)
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if f.Type != tc.m.Type() || f.ID != id {
				t.Fatalf("frame type %v id %d, want %v %d", f.Type, f.ID, tc.m.Type(), uint64(id))
			}
			if n := wire.PayloadSize(tc.m); n != len(f.Payload) {
				t.Errorf("size() = %d, payload is %d bytes", n, len(f.Payload))
			}
			got, err := wire.Decode(f.Type, f.Payload)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.m)
			}
			// Decode copied: clobbering the payload changes nothing.
			clear(f.Payload)
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("decoded message aliases the payload")
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after the frame: %v, want io.EOF", err)
			}
		})
	}
	for typ := wire.TypeHello; typ <= wire.TypePong; typ++ {
		if !seen[typ] {
			t.Errorf("no sample of %v", typ)
		}
	}
}

// TestTimes checks times that are not in Decode's canonical form: they
// come back as the same instant at millisecond precision.
func TestTimes(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"zero", time.Time{}, time.Time{}},
		{"unix epoch", time.Unix(0, 0), time.Unix(0, 0).UTC()},
		{"local with ns and monotonic", time.Now(), time.UnixMilli(time.Now().UnixMilli())},
		{"sub-ms dropped", time.Unix(10, 999_999), time.Unix(10, 0).UTC()},
		{"before 1970 floors", time.Unix(-1, 500_000), time.Unix(-1, 0).UTC()},
		{"in the zero time's ms", time.Time{}.Add(time.Microsecond), time.Time{}},
		{"just before the zero time", time.Time{}.Add(-time.Microsecond), time.Time{}.Add(-time.Millisecond)},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if tc.name == "local with ns and monotonic" {
				want = time.UnixMilli(tc.in.UnixMilli())
			}
			m := &wire.Create{Rec: session.Record{Key: "k", Created: tc.in}}
			got := decode(t, m).(*wire.Create).Rec.Created
			if !got.Equal(want) || got.IsZero() != want.IsZero() {
				t.Fatalf("got %v, want %v", got, want)
			}
			if got.Location() != time.UTC {
				t.Fatalf("location %v, want UTC", got.Location())
			}
		})
	}
}

func TestIdleTimeoutExact(t *testing.T) {
	for _, d := range []time.Duration{0, 1, -1, time.Millisecond + 1, -30 * time.Minute, 30 * time.Minute, math.MaxInt64, math.MinInt64} {
		m := &wire.Apply{Key: "k", Delta: session.Delta{IdleTimeout: d}}
		if got := decode(t, m).(*wire.Apply).Delta.IdleTimeout; got != d {
			t.Errorf("IdleTimeout %d came back %d", d, got)
		}
	}
}

// decode encodes m and decodes it back.
func decode(t *testing.T, m wire.Message) wire.Message {
	t.Helper()
	got, err := wire.Decode(m.Type(), m.AppendTo(nil))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return got
}

// TestFrameSizes pins the size on the wire (before TLS) of the two
// commonest frames: the Apply of a counter update and the Create of a new
// demo session.
func TestFrameSizes(t *testing.T) {
	tests := []struct {
		name string
		m    wire.Message
		want int
	}{
		{"Apply one-attribute counter update", counterApply(), 48},
		{"Create demo session (user, count)", &wire.Create{Rec: demoRecord()}, 69},
	}
	for _, tc := range tests {
		frame := wire.AppendFrame(nil, 7, tc.m)
		t.Logf("%s: %d bytes (24-character key, request id < 128, times in 2026): % x", tc.name, len(frame), frame)
		if len(frame) != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, len(frame), tc.want)
		}
	}
}

// cuts returns the lengths to cut an encoding of n bytes to: all of them,
// or for large encodings the first 2,000, the last 200 and some between.
func cuts(n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if n > 4_000 && i >= 2_000 && i < n-200 {
			i = min(i+997, n-200)
		}
		out = append(out, i)
	}
	return out
}

func TestTruncated(t *testing.T) {
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			frame := wire.AppendFrame(nil, 300, tc.m)
			for _, i := range cuts(len(frame)) {
				_, err := wire.NewReader(bytes.NewReader(frame[:i]), 0).ReadFrame()
				want := io.ErrUnexpectedEOF
				if i == 0 {
					want = io.EOF
				}
				if !errors.Is(err, want) {
					t.Fatalf("frame cut at %d of %d: %v, want %v", i, len(frame), err, want)
				}
			}
			payload := tc.m.AppendTo(nil)
			for _, i := range cuts(len(payload)) {
				if _, err := wire.Decode(tc.m.Type(), payload[:i]); !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("payload cut at %d of %d: %v, want ErrMalformed", i, len(payload), err)
				}
			}
		})
	}
}

func TestTrailingBytes(t *testing.T) {
	for _, tc := range sampleMessages() {
		payload := append(tc.m.AppendTo(nil), 0)
		_, err := wire.Decode(tc.m.Type(), payload)
		if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), "1 bytes left") {
			t.Errorf("%s with a trailing byte: %v", tc.name, err)
		}
	}
}

func TestUnknownType(t *testing.T) {
	for _, typ := range []wire.Type{0, 13, 0x2a, 255} {
		_, err := wire.Decode(typ, nil)
		if !errors.Is(err, wire.ErrUnknownType) || !strings.Contains(err.Error(), fmt.Sprintf("Type(0x%02x)", uint8(typ))) {
			t.Errorf("Decode(%d): %v", typ, err)
		}
	}
}

// uv returns the uvarint encoding of x.
func uv(x uint64) []byte { return binary.AppendUvarint(nil, x) }

// str returns the encoding of a string field.
func str(s string) []byte { return append(uv(uint64(len(s))), s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeErrors(t *testing.T) {
	// delta returns a delta's encoding with the given Set and Removed
	// encodings and zero other fields.
	delta := func(set, removed []byte) []byte { return cat(set, removed, []byte{0, 0, 0, 0}) }
	apply := func(set, removed []byte) []byte { return cat(str("k"), delta(set, removed), []byte{1}) }
	tests := []struct {
		name    string
		typ     wire.Type
		payload []byte
		want    string
	}{
		{"empty key", wire.TypeFetch, str(""), "Key: empty session key"},
		{"key too long", wire.TypeFetch, str(strings.Repeat("k", wire.MaxKeyLen+1)), "length 257 over the limit of 256"},
		{"lying length", wire.TypeFetch, cat(uv(16), []byte("abc")), "length 16 but 3 bytes left"},
		{"huge length", wire.TypeFetch, cat(uv(1<<62), []byte("abc")), "over the limit"},
		{"non-minimal varint", wire.TypeFetch, []byte{0x81, 0x00, 'a'}, "non-minimal varint"},
		{"varint overflow", wire.TypeAck, cat([]byte{0}, bytes.Repeat([]byte{0xff}, 10), []byte{1}), "overflows 64 bits"},
		{"truncated varint", wire.TypeAck, []byte{0, 0x80}, "truncated varint"},
		{"protocol over 16 bits", wire.TypeHello, cat(uv(1<<16), str(""), str(""), []byte{0}), "overflows 16 bits"},
		{"name too long", wire.TypeHello, cat(uv(1), str(strings.Repeat("c", wire.MaxNameLen+1)), str(""), []byte{0}), "Cluster: length 257"},
		{"unknown status", wire.TypeAck, cat([]byte{7}, uv(0), str("")), "unknown status 7"},
		{"message too long", wire.TypeAck, cat([]byte{0}, uv(0), str(strings.Repeat("m", wire.MaxMessageLen+1))), "Message: length 65537 over the limit"},
		{"bool not 0 or 1", wire.TypeRecords, []byte{2, 0}, "boolean byte 2"},
		{"unsorted attrs", wire.TypeApply, apply(cat(uv(2), str("b"), str("1"), str("a"), str("2")), uv(0)), `Delta.Set: key "a" after "b"`},
		{"duplicate attrs", wire.TypeCreate, cat(str("k"), uv(2), str("a"), str("1"), str("a"), str("2"), []byte{0, 0, 0, 0, 1}), `Record.Attrs: key "a" after "a"`},
		{"unsorted removed", wire.TypeApply, apply(uv(0), cat(uv(2), str("b"), str("a"))), `Delta.Removed: key "a" after "b"`},
		{"removed also set", wire.TypeApply, apply(cat(uv(2), str("a"), str("1"), str("c"), str("2")), cat(uv(2), str("b"), str("c"))), `key "c" is also in Delta.Set`},
		{"attr key too long", wire.TypeForward, cat(str("k"), delta(cat(uv(1), str(strings.Repeat("a", wire.MaxAttrKeyLen+1)), str("")), uv(0))), "Delta.Set key: length 257"},
		{"too many attrs", wire.TypeForward, cat(str("k"), uv(wire.MaxAttrs+1)), "count 10001 over the limit of 10000"},
		{"attr count over bytes", wire.TypeForward, cat(str("k"), uv(1000), bytes.Repeat([]byte{0}, 100)), "count 1000 but 100 bytes left"},
		{"record count over bytes", wire.TypeRecords, cat([]byte{0}, uv(100), bytes.Repeat([]byte{0}, 100)), "count 100 but 100 bytes left"},
		{"too many records", wire.TypeRecords, cat([]byte{0}, uv(wire.MaxBatch+1)), "count 10001 over the limit"},
		{"empty expired key", wire.TypeExpired, cat(uv(1), str(""), []byte{0}), "Keys: empty session key"},
		{"zero time spelled out", wire.TypeCreate, cat(str("k"), uv(0), uv(uint64(-62135596800000*-2-1)+1), []byte{0, 0, 0, 1}), "zero time not spelled 0"},
		{"missing byte", wire.TypeDelete, str("k"), "Reason: missing"},
		{"ping with payload", wire.TypePing, []byte{0}, "1 bytes left"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := wire.Decode(tc.typ, tc.payload)
			if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, %v; want an ErrMalformed containing %q", m, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.typ.String()) {
				t.Errorf("error %q does not name the message type", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    wire.Message
		want error
		text string
	}{
		{"unsorted", &wire.Apply{Key: "k", Delta: session.Delta{Set: []session.Attr{{Key: "b"}, {Key: "a"}}}}, wire.ErrMalformed, "Delta.Set"},
		{"empty key", &wire.Create{}, wire.ErrMalformed, "Record.Key"},
		{"attr key too long", &wire.Create{Rec: session.Record{Key: "k", Attrs: []session.Attr{{Key: strings.Repeat("a", 300)}}}}, wire.ErrMalformed, "Record.Attrs key: length 300"},
		{"unknown status", &wire.Ack{Status: 9}, wire.ErrMalformed, "unknown status"},
		{"frame too large", &wire.Create{Rec: session.Record{Key: "k", Attrs: []session.Attr{{Key: "a", Value: make([]byte, wire.MaxFrameSize)}}}}, wire.ErrFrameTooLarge, "Create frame of"},
	}
	for _, tc := range tests {
		err := wire.Validate(tc.m)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Validate = %v, want %v containing %q", tc.name, err, tc.want, tc.text)
		}
	}
}

func TestStrings(t *testing.T) {
	if got := wire.TypeApply.String(); got != "Apply" {
		t.Errorf("TypeApply = %q", got)
	}
	if got := wire.Type(0).String(); got != "Type(0x00)" {
		t.Errorf("Type(0) = %q", got)
	}
	if got := wire.StatusNeedFull.String(); got != "NeedFull" {
		t.Errorf("StatusNeedFull = %q", got)
	}
	if got := wire.Status(200).String(); got != "Status(0xc8)" {
		t.Errorf("Status(200) = %q", got)
	}
}

func TestRecordSize(t *testing.T) {
	for _, r := range []session.Record{demoRecord(), {Key: "k"}, bigRecord()} {
		if got, want := wire.RecordSize(&r), len((&wire.Create{Rec: r}).AppendTo(nil)); got != want {
			t.Errorf("RecordSize = %d, encoding is %d bytes", got, want)
		}
	}
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race adds allocations")
	}
	apply := counterApply()
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = wire.AppendFrame(buf[:0], 1, apply) }); n != 0 {
		t.Errorf("AppendFrame into a big enough buffer: %v allocations, want 0", n)
	}
	recs := &wire.Records{}
	for range 10 {
		recs.Recs = append(recs.Recs, bigRecord())
	}
	if n := testing.AllocsPerRun(5, func() { _ = wire.AppendFrame(nil, 1, recs) }); n != 1 {
		t.Errorf("AppendFrame of a 2 MB Records into nil: %v allocations, want 1", n)
	}
	payload := apply.AppendTo(nil)
	n := testing.AllocsPerRun(100, func() {
		if _, err := wire.Decode(wire.TypeApply, payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("Decode of the counter Apply: %v allocations", n)
	if n > 4 { // the Apply, its strings, its values, Delta.Set
		t.Errorf("Decode of the counter Apply: %v allocations, want 4", n)
	}
	payload = (&wire.Create{Rec: bigRecord()}).AppendTo(nil)
	n = testing.AllocsPerRun(20, func() {
		if _, err := wire.Decode(wire.TypeCreate, payload); err != nil {
			t.Fatal(err)
		}
	})
	if n > 4 { // the Create, its strings, its values, Attrs
		t.Errorf("Decode of a 301-attribute Create: %v allocations, want 4", n)
	}
}
