package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/shoal-go/shoal/internal/replication/wire"
)

// smallSamples returns the sample messages whose encodings are small
// enough to seed the fuzzers.
func smallSamples() []namedMessage {
	var out []namedMessage
	for _, tc := range sampleMessages() {
		if wire.PayloadSize(tc.m) <= 4096 {
			out = append(out, tc)
		}
	}
	return out
}

// FuzzDecode decodes arbitrary payloads of arbitrary types: Decode must
// not panic, must fail with ErrMalformed or ErrUnknownType, and what it
// accepts must be the one encoding of the message it returns (re-encoding
// gives the same bytes, which decode to an equal message). The seed corpus
// in testdata/fuzz/FuzzDecode holds a valid payload of each type.
func FuzzDecode(f *testing.F) {
	for _, tc := range smallSamples() {
		f.Add(byte(tc.m.Type()), tc.m.AppendTo(nil))
	}
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		m, err := wire.Decode(wire.Type(typ), payload)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned %+v with error %v", m, err)
			}
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnknownType) {
				t.Fatalf("Decode error %v wraps neither ErrMalformed nor ErrUnknownType", err)
			}
			return
		}
		if m.Type() != wire.Type(typ) {
			t.Fatalf("Decode(%v) returned a %v", wire.Type(typ), m.Type())
		}
		again := m.AppendTo(nil)
		if !bytes.Equal(again, payload) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", again, payload)
		}
		if n := wire.PayloadSize(m); n != len(again) {
			t.Fatalf("size() = %d, encoding is %d bytes", n, len(again))
		}
		if c, ok := m.(*wire.Create); ok {
			if n := wire.RecordSize(&c.Rec); n != len(again) {
				t.Fatalf("RecordSize = %d, encoding is %d bytes", n, len(again))
			}
		}
		if err := wire.Validate(m); err != nil {
			t.Fatalf("Validate of a decoded message: %v", err)
		}
		m2, err := wire.Decode(m.Type(), again)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decoded twice:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzReadFrame reads frames from an arbitrary stream: the Reader must not
// panic, must fail only with the documented errors, and each frame it
// returns must be the next bytes of the stream in their one encoding. The
// seed corpus in testdata/fuzz/FuzzReadFrame holds streams of valid
// frames, and broken ones.
func FuzzReadFrame(f *testing.F) {
	var all []byte
	for i, tc := range smallSamples() {
		frame := wire.AppendFrame(nil, uint64(i*1000), tc.m)
		f.Add(frame)
		all = append(all, frame...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 1 << 16
		r := wire.NewReader(bytes.NewReader(stream), limit)
		rest := stream
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				switch {
				case err == io.EOF:
					if len(rest) != 0 {
						t.Fatalf("io.EOF with %d bytes left", len(rest))
					}
				case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrMalformedFrame):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			body := append([]byte{byte(fr.Type)}, uv(fr.ID)...)
			body = append(body, fr.Payload...)
			raw := append(uv(uint64(len(body))), body...)
			if len(body) > limit || !bytes.HasPrefix(rest, raw) {
				t.Fatalf("frame % x is not the next bytes of the stream % x", raw, rest)
			}
			rest = rest[len(raw):]
			m, err := wire.Decode(fr.Type, fr.Payload)
			if err == nil {
				if again := wire.AppendFrame(nil, fr.ID, m); !bytes.Equal(again, raw) {
					t.Fatalf("re-encoded frame % x, read % x", again, raw)
				}
			}
		}
	})
}
