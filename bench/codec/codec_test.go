// Package codec compares the codecs a session store could use for
// attribute values: CBOR (fxamacker/cbor, as session.CBOR() configures it,
// the default), msgpack (vmihailenco/msgpack), encoding/gob and
// encoding/json. It holds benchmarks only; bench/README.md ("Codec
// choice") has the command and the results.
//
// Each value is encoded on its own, as a session store keeps it: one
// attribute is one self-contained byte slice, decoded later, maybe on
// another node, with nothing shared between values. For gob that means a
// fresh Encoder and Decoder per value, so every encoded value carries its
// type description; that is gob's real cost here, not a handicap added by
// the benchmark.
package codec

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoal-go/shoal/session"
)

type User struct {
	Name     string
	Email    string
	Roles    []string
	LoggedIn time.Time
	ID       int64
}

type Item struct {
	SKU   string
	Qty   int
	Price float64
}

type Cart struct {
	Items  []Item
	Coupon string
}

type codec struct {
	name      string
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}

// gobMarshal encodes v as a self-contained gob stream: a new Encoder, so
// the type description is written along with the value.
func gobMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gobUnmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

var codecs = []codec{
	{"cbor", session.CBOR().Marshal, session.CBOR().Unmarshal},
	{"msgpack", msgpack.Marshal, msgpack.Unmarshal},
	{"gob", gobMarshal, gobUnmarshal},
	{"json", json.Marshal, json.Unmarshal},
}

type value struct {
	name  string
	v     any
	new   func() any               // a pointer to a fresh value to decode into
	equal func(got, want any) bool // got is what new returned, decoded
}

var values = func() []value {
	user := User{
		Name:     "Ada Lovelace",
		Email:    "ada@example.com",
		Roles:    []string{"admin", "editor"},
		LoggedIn: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
		ID:       1815,
	}
	cart := Cart{Coupon: "SPRING25"}
	for i := range 10 {
		cart.Items = append(cart.Items, Item{SKU: fmt.Sprintf("SKU-%06d", 1000+i*37), Qty: 1 + i%3, Price: 4.99 + float64(i)})
	}
	return []value{
		{"int", 1234567,
			func() any { return new(int) },
			func(got, want any) bool { return *got.(*int) == want.(int) }},
		{"user", user,
			func() any { return new(User) },
			func(got, want any) bool {
				g, w := *got.(*User), want.(User)
				return g.Name == w.Name && g.Email == w.Email && fmt.Sprint(g.Roles) == fmt.Sprint(w.Roles) &&
					g.LoggedIn.Equal(w.LoggedIn) && g.ID == w.ID
			}},
		{"cart", cart,
			func() any { return new(Cart) },
			func(got, want any) bool { return fmt.Sprint(*got.(*Cart)) == fmt.Sprint(want.(Cart)) }},
	}
}()

func BenchmarkMarshal(b *testing.B) {
	for _, val := range values {
		for _, c := range codecs {
			b.Run("value="+val.name+"/codec="+c.name, func(b *testing.B) {
				data := roundTrip(b, c, val)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.marshal(val.v); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(data)), "B-encoded")
			})
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, val := range values {
		for _, c := range codecs {
			b.Run("value="+val.name+"/codec="+c.name, func(b *testing.B) {
				data := roundTrip(b, c, val)
				b.ReportAllocs()
				for b.Loop() {
					// A fresh value each time, as Session.Get decodes.
					if err := c.unmarshal(data, val.new()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(data)), "B-encoded")
			})
		}
	}
}

// roundTrip encodes val with c, checks that it decodes back to an equal
// value (so that no codec is timed doing less than the others), and
// returns the encoding.
func roundTrip(b *testing.B, c codec, val value) []byte {
	b.Helper()
	data, err := c.marshal(val.v)
	if err != nil {
		b.Fatalf("%s: marshal %s: %v", c.name, val.name, err)
	}
	got := val.new()
	if err := c.unmarshal(data, got); err != nil {
		b.Fatalf("%s: unmarshal %s: %v", c.name, val.name, err)
	}
	if !val.equal(got, val.v) {
		b.Fatalf("%s: %s came back as %+v", c.name, val.name, got)
	}
	return data
}

// BenchmarkCBORWellformed measures the part of session.CBOR().Marshal that
// is not encoding: the check of the output against the decoder's limits,
// which makes Put refuse a value that could not be read back. The decode
// mode here has CBOR()'s limits.
func BenchmarkCBORWellformed(b *testing.B) {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  128,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      1 << 16,
		IndefLength:      cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		b.Fatal(err)
	}
	for _, val := range values {
		b.Run("value="+val.name, func(b *testing.B) {
			data, err := session.CBOR().Marshal(val.v)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := dm.Wellformed(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
