package session

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func TestCBORShared(t *testing.T) {
	if CBOR() != CBOR() {
		t.Fatal("CBOR() returns a different value each call")
	}
	if n := testing.AllocsPerRun(100, func() { _ = CBOR() }); n != 0 {
		t.Errorf("CBOR(): %v allocations, want 0", n)
	}
}

type cborUser struct {
	Name     string
	Email    string
	Roles    []string
	LoggedIn time.Time
	ID       int64
	Prefs    map[string]string
	Manager  *cborUser
}

// cborRoundTrip encodes v and decodes it into a new value of v's type.
func cborRoundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := CBOR().Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	p := reflect.New(reflect.TypeOf(v))
	if err := CBOR().Unmarshal(b, p.Interface()); err != nil {
		t.Fatalf("Unmarshal(%T) of %x: %v", v, b, err)
	}
	return p.Elem().Interface()
}

func TestCBORRoundTrip(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	tests := []struct {
		name string
		v    any
	}{
		{"zero", 0},
		{"int", -42},
		{"int64 max", int64(math.MaxInt64)},
		{"int64 min", int64(math.MinInt64)},
		{"uint64 max", uint64(math.MaxUint64)},
		{"int8", int8(-128)},
		{"float", 3.25},
		{"inf", math.Inf(-1)},
		{"bool", true},
		{"empty string", ""},
		{"string", "héllo, 世界"},
		{"invalid UTF-8 string", "a\xff\xfeb"},
		{"bytes", []byte{0, 1, 2}},
		{"nil bytes", []byte(nil)},
		{"empty bytes", []byte{}},
		{"nil slice", []string(nil)},
		{"empty slice", []string{}},
		{"slice", []int{1, 2, 3}},
		{"array", [3]int{4, 5, 6}},
		{"map", map[string]int{"a": 1, "b": 2}},
		{"nil map", map[string]int(nil)},
		{"int-keyed map", map[int]string{1: "a", -2: "b"}},
		{"nested", map[string][]map[string]int{"x": {{"a": 1}, nil}}},
		{"struct", cborUser{Name: "Ann", Email: "a@example.com", Roles: []string{"admin"},
			LoggedIn: time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC), ID: 7,
			Prefs: map[string]string{"lang": "fr"}}},
		{"pointer to struct", &cborUser{Name: "Bob", Manager: &cborUser{Name: "Ann"}}},
		{"binary marshaler", encBin{3, "x"}},
		{"big.Int", *huge},
		{"*big.Int", huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cborRoundTrip(t, tt.v)
			if !reflect.DeepEqual(got, tt.v) {
				t.Errorf("round trip of %T:\n got %#v\nwant %#v", tt.v, got, tt.v)
			}
		})
	}
}

func TestCBORTime(t *testing.T) {
	kolkata := time.FixedZone("IST", 5*3600+1800)
	for _, tm := range []time.Time{
		time.Now(), // with a monotonic reading and the Local zone
		time.Date(2025, 1, 2, 3, 4, 5, 999999999, time.UTC),
		time.Date(2025, 1, 2, 3, 4, 5, 1, kolkata),
		time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), // before the epoch
		{}, // the zero time
	} {
		got := cborRoundTrip(t, tm).(time.Time)
		if !got.Equal(tm) || got.Nanosecond() != tm.Nanosecond() {
			t.Errorf("%v came back as %v", tm, got)
		}
		_, wantOff := tm.Zone()
		if _, off := got.Zone(); off != wantOff {
			t.Errorf("%v: offset %d, want %d", tm, off, wantOff)
		}
		if got.IsZero() != tm.IsZero() {
			t.Errorf("%v: IsZero %v, want %v", tm, got.IsZero(), tm.IsZero())
		}
	}
}

func TestCBORAny(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	v := map[string]any{
		"int":    7,
		"neg":    int8(-3),
		"uint":   uint64(math.MaxUint64),
		"float":  1.5,
		"string": "s",
		"bool":   true,
		"nil":    nil,
		"bytes":  []byte("b"),
		"time":   at,
		"list":   []any{1, "two", []any{3.0}},
		"map":    map[string]any{"deep": map[string]any{"x": 1}},
		"struct": struct{ A int }{A: 1},
	}
	var got any
	b, err := CBOR().Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := CBOR().Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"int":    int64(7),
		"neg":    int64(-3),
		"uint":   *new(big.Int).SetUint64(math.MaxUint64),
		"float":  1.5,
		"string": "s",
		"bool":   true,
		"nil":    nil,
		"bytes":  []byte("b"),
		"time":   at,
		"list":   []any{int64(1), "two", []any{3.0}},
		"map":    map[string]any{"deep": map[string]any{"x": int64(1)}},
		"struct": map[string]any{"A": int64(1)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded into any:\n got %#v\nwant %#v", got, want)
	}

	// An `any` field of a struct decodes the same way.
	type holder struct{ V any }
	h := cborRoundTrip(t, holder{V: []any{"a", 1, at}}).(holder)
	if !reflect.DeepEqual(h.V, []any{"a", int64(1), at}) {
		t.Errorf("any field: got %#v", h.V)
	}
}

func TestCBORUnmarshalHostile(t *testing.T) {
	valid, err := CBOR().Marshal(cborUser{Name: "Ann", Roles: []string{"a", "b"}, LoggedIn: time.Now(),
		Prefs: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	tooMany := append([]byte{0x9a, 0x00, 0x01, 0x00, 0x01}, make([]byte, 1<<16+1)...) // 65537 zeros
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"deeply nested arrays", append(bytes.Repeat([]byte{0x81}, 100_000), 0x00)},
		{"deeply nested maps", append(bytes.Repeat([]byte{0xa1, 0x61, 0x6b}, 10_000), 0x00)},
		{"deeply nested tags", append(bytes.Repeat([]byte{0xd8, 0x64}, 10_000), 0x00)},
		{"array of 2^64-1 elements", []byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}},
		{"array of 2^31-1 elements", []byte{0x9a, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00}},
		{"map of 2^32-1 pairs", []byte{0xba, 0xff, 0xff, 0xff, 0xff, 0x61, 0x61, 0x00}},
		{"byte string of 2^63 bytes", []byte{0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x00}},
		{"text string of 2^32 bytes", []byte{0x7b, 0, 0, 0, 1, 0, 0, 0, 0, 'a'}},
		{"more elements than the limit", tooMany},
		{"indefinite-length array", []byte{0x9f, 0x01, 0xff}},
		{"indefinite-length byte string", []byte{0x5f, 0x41, 0x61, 0xff}},
		{"duplicate map key", []byte{0xa2, 0x64, 'N', 'a', 'm', 'e', 0x61, 'a', 0x64, 'N', 'a', 'm', 'e', 0x61, 'b'}},
		{"time tag holding a map", []byte{0xc1, 0xa0}},
		{"reserved additional information", []byte{0x1c}},
		{"lone break", []byte{0xff}},
		{"trailing data", append(append([]byte{}, valid...), 0x00)},
	}
	for i := 1; i < len(valid); i += 7 {
		tests = append(tests, struct {
			name string
			data []byte
		}{"truncated", valid[:i]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a any
			if err := CBOR().Unmarshal(tt.data, &a); err == nil {
				t.Errorf("into any: no error, got %#v", a)
			}
			var u cborUser
			if err := CBOR().Unmarshal(tt.data, &u); err == nil {
				t.Errorf("into a struct: no error")
			}
		})
	}

	// The limits are the ones documented, with fxamacker's error types.
	var nested *cbor.MaxNestedLevelError
	if err := CBOR().Unmarshal(append(bytes.Repeat([]byte{0x81}, cborMaxNestedLevels+1), 0), new(any)); !errors.As(err, &nested) {
		t.Errorf("nesting %d: %v, want MaxNestedLevelError", cborMaxNestedLevels+1, err)
	}
	if err := CBOR().Unmarshal(append(bytes.Repeat([]byte{0x81}, cborMaxNestedLevels), 0), new(any)); err != nil {
		t.Errorf("nesting %d: %v, want no error", cborMaxNestedLevels, err)
	}
	var many *cbor.MaxArrayElementsError
	if err := CBOR().Unmarshal(tooMany, new(any)); !errors.As(err, &many) {
		t.Errorf("%d elements: %v, want MaxArrayElementsError", 1<<16+1, err)
	}
	var dup *cbor.DupMapKeyError
	if err := CBOR().Unmarshal([]byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}, new(map[string]int)); !errors.As(err, &dup) {
		t.Errorf("duplicate key: %v, want DupMapKeyError", err)
	}
}

func TestCBORMarshalRefusesWhatItCannotRead(t *testing.T) {
	// A list longer than the decoder's limit is refused when it is put,
	// not stored and then unreadable.
	if _, err := CBOR().Marshal(make([]int, cborMaxContainerLen+1)); err == nil {
		t.Error("Marshal of a too long slice succeeded")
	}
	if _, err := CBOR().Marshal(make([]int, cborMaxContainerLen)); err != nil {
		t.Errorf("Marshal of a slice at the limit: %v", err)
	}
	// And what fxamacker cannot encode at all is an error, not a panic.
	for _, v := range []any{func() {}, make(chan int), complex(1, 2), []any{func() {}}} {
		if _, err := CBOR().Marshal(v); err == nil {
			t.Errorf("Marshal(%T) succeeded", v)
		}
	}
}

func TestCBORConcurrent(t *testing.T) {
	c := CBOR()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				u := cborUser{Name: "n", ID: int64(i*1000 + j), Roles: []string{"r"}}
				b, err := c.Marshal(u)
				if err != nil {
					t.Error(err)
					return
				}
				var got cborUser
				if err := c.Unmarshal(b, &got); err != nil || got.ID != u.ID {
					t.Errorf("got %v, %v", got.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
