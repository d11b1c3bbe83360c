package ajp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// fuzzConn is a net.Conn whose reads come from a fixed input and whose
// writes are counted and dropped: a peer that sends exactly the fuzzer's
// bytes, then closes.
type fuzzConn struct {
	r       *bytes.Reader
	written int
}

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { c.written += len(p); return len(p), nil }
func (c *fuzzConn) Close() error                { return nil }
func (c *fuzzConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8009} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

func newFuzzConn(data []byte) *fuzzConn { return &fuzzConn{r: bytes.NewReader(data)} }

// fuzzSeedsToContainer are streams a container receives: good ones,
// to be mutated.
func fuzzSeedsToContainer(t testing.TB) [][]byte {
	get := forward(t, "GET", "/counter", Header{"Cookie", "JSESSIONID=abc.n1"}, Header{"X-Custom", "v"})
	fr := &ForwardRequest{Method: "POST", Protocol: "HTTP/1.1", URI: "/login", RemoteAddr: "192.0.2.1", RemoteHost: "client",
		ServerName: "shop", ServerPort: 443, IsSSL: true, Headers: []Header{{"Content-Length", "10"}, {"Content-Type", "application/x-www-form-urlencoded"}},
		Attributes: Attributes{Secret: testSecret, Route: "n1", QueryString: "a=b", RemoteUser: "alice", AuthType: "Basic", SSLCipher: "TLS_AES_128_GCM_SHA256",
			SSLSession: "abcd", SSLKeySize: 128, Request: []Header{{"AJP_REMOTE_PORT", "5555"}}}}
	post, _ := fr.AppendPacket(nil, 0)
	post, _ = AppendData(post, []byte("user=alice"), 0)
	fr.Headers = []Header{{"Transfer-Encoding", "chunked"}}
	fr.Method = "PURGE"
	chunked, _ := fr.AppendPacket(nil, 0)
	chunked = append(chunked, AppendGetBodyChunk(nil, 0)...) // noise the server must refuse
	chunked2, _ := fr.AppendPacket(nil, 0)
	chunked2, _ = AppendData(chunked2, []byte("part one"), 0)
	chunked2, _ = AppendData(chunked2, nil, 0)
	return [][]byte{
		get,
		append(AppendCPing(nil), get...),
		post,
		chunked,
		chunked2,
		append(bytes.Clone(get), get...),
		{0x12, 0x34, 0, 1, TypeShutdown},
		{0x12, 0x34, 0xFF, 0xFF},
	}
}

// FuzzServerConn feeds arbitrary bytes to a server connection as the
// web server's side of the stream. It must neither panic nor hang, and
// must stop reading at the first malformed packet.
func FuzzServerConn(f *testing.F) {
	for _, s := range fuzzSeedsToContainer(f) {
		f.Add(s)
	}
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header().Set("X-Path", r.URL.Path)
			io.WriteString(w, r.Method)
		}),
		Secret: testSecret,
		Logger: slog.New(slog.DiscardHandler),
	}
	s.conns = map[*serverConn]connState{}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := newFuzzConn(data)
		c := s.newConn(fc)
		s.wg.Add(1)
		c.serve()
	})
}

// fuzzSeedsToWebServer are streams a web server receives.
func fuzzSeedsToWebServer(t testing.TB) [][]byte {
	h, _ := (&SendHeaders{Status: 200, Reason: "OK", Headers: []Header{{"Content-Type", "text/plain"}, {"Content-Length", "5"},
		{"Set-Cookie", "JSESSIONID=abc.n1; Path=/"}, {"X-Node", "n1"}}}).AppendPacket(nil, 0)
	body, _ := AppendBodyChunk(nil, []byte("hello"), 0)
	end := AppendEndResponse(nil, true)
	h204, _ := (&SendHeaders{Status: 204, Reason: "No Content"}).AppendPacket(nil, 0)
	return [][]byte{
		bytes.Join([][]byte{h, body, end}, nil),
		bytes.Join([][]byte{AppendGetBodyChunk(nil, 8186), AppendGetBodyChunk(nil, 100), h, body, end}, nil),
		bytes.Join([][]byte{h204, end}, nil),
		bytes.Join([][]byte{h, AppendGetBodyChunk(nil, 3), body, end}, nil),
		AppendCPong(nil),
		end,
	}
}

// FuzzTransportConn feeds arbitrary bytes to a Transport as the
// container's answer to a POST with a body. It must neither panic nor
// hang, and must never pool a connection whose exchange did not end
// with an END_RESPONSE.
func FuzzTransportConn(f *testing.F) {
	for _, s := range fuzzSeedsToWebServer(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := newFuzzConn(data)
		tr := &Transport{Secret: testSecret, MaxIdleConnsPerHost: 1, IdleConnTimeout: -1,
			DialContext: func(context.Context, string, string) (net.Conn, error) { return fc, nil }}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "ajp://fuzz:8009/x", bytes.NewReader([]byte("0123456789")))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			if idleConns(tr, "fuzz:8009") != 0 {
				t.Fatal("connection pooled after an error")
			}
			return
		}
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil && idleConns(tr, "fuzz:8009") != 0 {
			t.Fatalf("connection pooled after a body error: %v", err)
		}
	})
}

// FuzzParseForwardRequest checks that a forward request the parser
// accepts encodes to a packet that parses to the same request.
func FuzzParseForwardRequest(f *testing.F) {
	for _, s := range fuzzSeedsToContainer(f) {
		if p, err := ReadPacket(bytes.NewReader(s), ToContainer, make([]byte, MaxPacketSize)); err == nil {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fr, err := ParseForwardRequest(payload)
		if err != nil {
			return
		}
		roundTrip(t, fr, func(b []byte) (any, error) { return ParseForwardRequest(b) },
			func(v any) ([]byte, error) { return v.(*ForwardRequest).AppendPacket(nil, MaxPacketSize) }, ToContainer)
	})
}

// FuzzParseSendHeaders is FuzzParseForwardRequest for SEND_HEADERS.
func FuzzParseSendHeaders(f *testing.F) {
	for _, s := range fuzzSeedsToWebServer(f) {
		if p, err := ReadPacket(bytes.NewReader(s), ToWebServer, make([]byte, MaxPacketSize)); err == nil {
			f.Add(p)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := ParseSendHeaders(payload)
		if err != nil {
			return
		}
		roundTrip(t, h, func(b []byte) (any, error) { return ParseSendHeaders(b) },
			func(v any) ([]byte, error) { return v.(*SendHeaders).AppendPacket(nil, MaxPacketSize) }, ToWebServer)
	})
}

// roundTrip checks that v, parsed from fuzz input, survives encoding and
// parsing: the parser accepted it, so the encoder must take it, and the
// result must parse back to an equal value (after one normalization: a
// null string reads as "", a lower-case coded name as its canonical
// form).
func roundTrip(t *testing.T, v any, parse func([]byte) (any, error), encode func(any) ([]byte, error), d Direction) {
	t.Helper()
	b1, err := encode(v)
	if err != nil {
		t.Fatalf("parsed %+v but cannot encode it: %v", v, err)
	}
	p1, err := ReadPacket(bytes.NewReader(b1), d, make([]byte, MaxPacketSize))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := parse(p1)
	if err != nil {
		t.Fatalf("encoded %+v to % x, which does not parse: %v", v, b1, err)
	}
	b2, err := encode(v1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("not a fixed point:\n% x\n% x", b1, b2)
	}
	p2, _ := ReadPacket(bytes.NewReader(b2), d, make([]byte, MaxPacketSize))
	v2, _ := parse(p2)
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("%+v != %+v", v1, v2)
	}
}
