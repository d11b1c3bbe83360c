package ajp

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestForwardRequestRoundTrip(t *testing.T) {
	fr := &ForwardRequest{Method: "MKACTIVITY", Protocol: "HTTP/1.1", URI: "/a", RemoteAddr: "192.0.2.1", RemoteHost: "h",
		ServerName: "s", ServerPort: 8443, IsSSL: true,
		Headers: []Header{{"Accept", "*/*"}, {"User-Agent", "t"}, {"Host", "s"}, {"X-Other", "o"}},
		Attributes: Attributes{Context: "c", ServletPath: "sp", RemoteUser: "u", AuthType: "Basic", QueryString: "q=1", Route: "n1",
			SSLCert: "cert", SSLCipher: "c", SSLSession: "sess", SSLKeySize: 256, Secret: "x", Request: []Header{{"A", "1"}, {"B", "2"}}}}
	b, err := fr.AppendPacket(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Coded names take 2 bytes: Accept is 0xA001, User-Agent 0xA00E, Host 0xA00B.
	for _, code := range [][]byte{{0xA0, 0x01}, {0xA0, 0x0E}, {0xA0, 0x0B}} {
		if !bytes.Contains(b, code) {
			t.Errorf("no coded name % x in % x", code, b)
		}
	}
	if b[5] != 27 { // MKACTIVITY's code
		t.Errorf("method code %d, want 27", b[5])
	}
	p, err := ReadPacket(bytes.NewReader(b), ToContainer, make([]byte, DefaultPacketSize))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseForwardRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fr) {
		t.Errorf("got %+v\nwant %+v", got, fr)
	}
	// A method outside the table travels as stored_method.
	fr.Method = "PURGE"
	b, _ = fr.AppendPacket(nil, 0)
	p, _ = ReadPacket(bytes.NewReader(b), ToContainer, make([]byte, DefaultPacketSize))
	if got, err := ParseForwardRequest(p); err != nil || got.Method != "PURGE" || b[5] != 0xFF {
		t.Errorf("stored method: %v %v code %#x", got, err, b[5])
	}
}

func TestSendHeadersCodedNames(t *testing.T) {
	h := &SendHeaders{Status: 302, Reason: "Found", Headers: []Header{{"Location", "/x"}, {"Set-Cookie", "a=b"}, {"WWW-Authenticate", "Basic"}, {"X-Y", "z"}}}
	b, err := h.AppendPacket(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range [][]byte{{0xA0, 0x06}, {0xA0, 0x07}, {0xA0, 0x0B}} {
		if !bytes.Contains(b, code) {
			t.Errorf("no coded name % x", code)
		}
	}
	p, _ := ReadPacket(bytes.NewReader(b), ToWebServer, make([]byte, DefaultPacketSize))
	got, err := ParseSendHeaders(p)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Errorf("got %+v %v", got, err)
	}
}

func TestNullString(t *testing.T) {
	// A null string (length 0xFFFF, nothing after it) reads as "".
	h := []byte{TypeSendHeaders, 0, 200, 0xFF, 0xFF, 0, 0}
	got, err := ParseSendHeaders(h)
	if err != nil || got.Reason != "" || got.Status != 200 {
		t.Errorf("%+v %v", got, err)
	}
}

func TestPacketLimits(t *testing.T) {
	big := strings.Repeat("x", DefaultPacketSize)
	fr := &ForwardRequest{Method: "GET", Protocol: "HTTP/1.1", URI: "/", Headers: []Header{{"X-Big", big}}}
	if _, err := fr.AppendPacket(nil, 0); !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("8 KiB header in a default packet: %v", err)
	}
	if _, err := fr.AppendPacket(nil, MaxPacketSize); err != nil {
		t.Errorf("8 KiB header in a 64 KiB packet: %v", err)
	}
	if _, err := AppendBodyChunk(nil, make([]byte, DefaultPacketSize-chunkOverhead+1), 0); !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("body chunk one byte too large: %v", err)
	}
	if _, err := AppendData(nil, make([]byte, DefaultPacketSize-dataOverhead+1), 0); !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("data one byte too large: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader([]byte{0x12, 0x34, 0x20, 0x00}), ToContainer, make([]byte, DefaultPacketSize)); !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("8192-byte payload: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader(nil), ToContainer, make([]byte, DefaultPacketSize)); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestTooLargeHeaders(t *testing.T) {
	big := strings.Repeat("x", 9000)
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", big)
		w.Header().Set("X-Node", "n1")
		io.WriteString(w, "body that must not be sent")
	}), nil)
	c, _ := newClient(t, nil)
	resp, body := get(t, c, "ajp://"+s.addr+"/")
	if resp.StatusCode != 500 || body != "" || resp.Header.Get("X-Node") != "" {
		t.Errorf("headers over the packet size: %s %q %v, want a bare 500", resp.Status, body, resp.Header)
	}
	if !strings.Contains(s.log.String(), "response headers cannot be sent") {
		t.Error("not logged")
	}
	req, _ := http.NewRequest("GET", "ajp://"+s.addr+"/", nil)
	req.Header.Set("X-Big", big)
	if _, err := c.Do(req); !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("request headers over the packet size: %v, want ErrPacketTooLarge", err)
	}
	// Both ends configured for 64 KiB packets: it passes.
	s2 := startServer(t, http.HandlerFunc(echo), func(s *Server) { s.PacketSize = MaxPacketSize })
	c2, _ := newClient(t, func(tr *Transport) { tr.PacketSize = MaxPacketSize })
	req, _ = http.NewRequest("GET", "ajp://"+s2.addr+"/", nil)
	req.Header.Set("X-Test", big)
	resp, err := c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Header") != big {
		t.Error("64 KiB packets: header lost")
	}
}
