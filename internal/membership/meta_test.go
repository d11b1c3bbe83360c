package membership

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	long := strings.Repeat("h", 248) + ":8080" // 253 bytes, the most one address may have
	for _, mm := range []memberMeta{
		{Role: RoleNode, State: StateJoining, HTTPAddr: "10.0.0.5:8080", ReplAddr: "10.0.0.5:7070"},
		{Role: RoleNode, State: StateReady, HTTPAddr: "[2001:db8::1]:443", ReplAddr: "node-1.example:7070"},
		{Role: RoleNode, State: StateLeaving, Departing: true, HTTPAddr: long, ReplAddr: long},
		{Role: RoleObserver, State: StateReady},
		{Role: RoleObserver, State: StateJoining, HTTPAddr: "lb:80"},
	} {
		b, err := encodeMeta(mm)
		if err != nil {
			t.Fatalf("encodeMeta(%+v): %v", mm, err)
		}
		if len(b) > memberlist.MetaMaxSize {
			t.Fatalf("encodeMeta(%+v): %d bytes, over memberlist's %d", mm, len(b), memberlist.MetaMaxSize)
		}
		got, err := decodeMeta(b)
		if err != nil || got != mm {
			t.Errorf("decodeMeta(encodeMeta(%+v)) = %+v, %v", mm, got, err)
		}
		// A later version-1 writer may append fields: they are ignored.
		got, err = decodeMeta(append(b, 0xff, 0x00, 0x42))
		if err != nil || got != mm {
			t.Errorf("with trailing bytes: %+v, %v", got, err)
		}
	}
}

func TestEncodeMetaRefuses(t *testing.T) {
	for _, mm := range []memberMeta{
		{Role: 5, HTTPAddr: "a:1", ReplAddr: "a:2"},
		{Role: RoleNode, State: 9, HTTPAddr: "a:1", ReplAddr: "a:2"},
		{Role: RoleNode, HTTPAddr: "", ReplAddr: "a:2"},
		{Role: RoleNode, HTTPAddr: "a:1", ReplAddr: strings.Repeat("r", 300) + ":1"},
		{Role: RoleNode, HTTPAddr: ":8080", ReplAddr: "a:2"},
		{Role: RoleNode, HTTPAddr: "a:0", ReplAddr: "a:2"},
		{Role: RoleNode, HTTPAddr: "a b:1", ReplAddr: "a:2"},
	} {
		if b, err := encodeMeta(mm); err == nil || !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("encodeMeta(%+v) = %x, %v; want ErrInvalidMeta", mm, b, err)
		}
	}
}

func TestDecodeMetaRefuses(t *testing.T) {
	good, _ := encodeMeta(memberMeta{Role: RoleNode, HTTPAddr: "a:1", ReplAddr: "b:2"})
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"nil", nil, "empty"},
		{"version 2", append([]byte{2}, good[1:]...), "version 2"},
		{"version 0", append([]byte{0}, good[1:]...), "version 0"},
		{"header only", good[:metaHeaderLen], "too short"},
		{"truncated http", good[:6], "HTTP address truncated"},
		{"truncated repl", good[:len(good)-1], "replication address truncated"},
		{"unknown role", append([]byte{1, 9}, good[2:]...), "unknown role"},
		{"unknown state", append([]byte{1, 0, 9}, good[3:]...), "unknown state"},
		{"node without addresses", []byte{1, 0, 0, 0, 0, 0}, "needs a HTTP address"},
		{"json", []byte(`{"role":"node"}`), "format version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm, err := decodeMeta(tc.b)
			if !errors.Is(err, ErrInvalidMeta) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decodeMeta(%x) = %+v, %v; want ErrInvalidMeta mentioning %q", tc.b, mm, err, tc.want)
			}
			if mm != (memberMeta{}) {
				t.Errorf("decodeMeta returned %+v with an error", mm)
			}
		})
	}
}

// FuzzDecodeMeta feeds decodeMeta arbitrary peer metadata: it must never
// panic, and whatever it accepts must encode and decode back to itself.
// Seeds are in testdata/fuzz/FuzzDecodeMeta.
func FuzzDecodeMeta(f *testing.F) {
	for _, mm := range []memberMeta{
		{Role: RoleNode, State: StateReady, HTTPAddr: "10.0.0.5:8080", ReplAddr: "10.0.0.5:7070"},
		{Role: RoleObserver},
	} {
		b, err := encodeMeta(mm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mm, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("error %v does not wrap ErrInvalidMeta", err)
			}
			return
		}
		again, err := encodeMeta(mm)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", mm, err)
		}
		back, err := decodeMeta(again)
		if err != nil || back != mm {
			t.Fatalf("round trip of %+v: %+v, %v", mm, back, err)
		}
		if !bytes.HasPrefix(b, again[:1]) {
			t.Fatalf("version changed: %x -> %x", b[:1], again[:1])
		}
	})
}
