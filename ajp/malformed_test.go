package ajp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// setLen rewrites a packet's length field to match its bytes.
func setLen(p []byte) []byte {
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)-headerLen))
	return p
}

func withSecretAttr(t *testing.T) []byte { return forward(t, "GET", "/") }

// TestServerRefusesMalformed sends each kind of bad input on its own
// connection and checks that the server answers as it should (400, or
// nothing), closes the connection, logs why, leaks no goroutine, and
// still serves a good request afterwards.
func TestServerRefusesMalformed(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	good := withSecretAttr(t)
	fr := &ForwardRequest{Method: "POST", Protocol: "HTTP/1.1", URI: "/", RemoteAddr: "192.0.2.1", ServerName: "x", ServerPort: 80,
		Headers: []Header{{"Content-Length", "5"}}, Attributes: Attributes{Secret: testSecret}}
	post, err := fr.AppendPacket(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		send   []byte
		status int    // the response's status; 0: the connection is closed without one
		log    string // in the log line
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, "bad packet magic"},
		{"web server magic towards the container", append([]byte("AB"), good[2:]...), 0, "bad packet magic"},
		{"oversized", []byte{0x12, 0x34, 0x30, 0x00}, 0, "packet too large"},
		{"maximum length", []byte{0x12, 0x34, 0xFF, 0xFF}, 0, "packet too large"},
		{"truncated payload", good[:len(good)/2], 0, "truncated packet"},
		{"truncated header", good[:3], 0, "truncated packet"},
		{"empty packet", []byte{0x12, 0x34, 0, 0}, 0, "empty packet"},
		{"unknown type", []byte{0x12, 0x34, 0, 1, 0x55}, 0, "unexpected packet type"},
		{"shutdown", []byte{0x12, 0x34, 0, 1, TypeShutdown}, 0, "shutdown packet refused"},
		{"cping with a tail", []byte{0x12, 0x34, 0, 2, TypeCPing, 0}, 0, "CPing of 2 bytes"},
		{"no 0xFF terminator", setLen(bytes.Clone(good[:len(good)-1])), 400, "attribute code"},
		{"string without NUL", func() []byte {
			p := bytes.Clone(good)
			// The protocol string "HTTP/1.1" starts at payload offset 2:
			// header 4 + type 1 + method 1, then its length (2 bytes).
			i := headerLen + 2 + 2 + len("HTTP/1.1")
			if p[i] != 0 {
				t.Fatalf("byte %d is %#x, want the NUL", i, p[i])
			}
			p[i] = 'X'
			return p
		}(), 400, "no NUL"},
		{"string length past the end", func() []byte {
			p := bytes.Clone(good)
			binary.BigEndian.PutUint16(p[headerLen+2:], 0x7000)
			return p
		}(), 400, "runs past"},
		{"num_headers lies", func() []byte {
			f := &ForwardRequest{Method: "GET", Protocol: "HTTP/1.1", URI: "/", Attributes: Attributes{Secret: testSecret}}
			p, _ := f.AppendPacket(nil, 0)
			// header, type, method, "HTTP/1.1", "/", 3 empty strings,
			// server_port, is_ssl: then num_headers.
			i := headerLen + 1 + 1 + (2 + 8 + 1) + (2 + 1 + 1) + 3*3 + 2 + 1
			if p[i] != 0 || p[i+1] != 0 {
				t.Fatalf("num_headers at %d is not 0: % x", i, p)
			}
			binary.BigEndian.PutUint16(p[i:], 1000)
			return p
		}(), 400, "num_headers 1000"},
		{"header with CRLF", func() []byte {
			p := forward(t, "GET", "/", Header{"X-A", "aaaa"})
			i := bytes.Index(p, []byte("aaaa"))
			copy(p[i:], "a\r\nb")
			return p
		}(), 400, "control byte"},
		{"unknown attribute", func() []byte {
			p := bytes.Clone(good)
			return setLen(append(p[:len(p)-1], 0x42, 0xFF))
		}(), 400, "unknown attribute code 0x42"},
		{"secret twice", func() []byte {
			p := bytes.Clone(good)
			p = append(p[:len(p)-1], attrSecret, 0, 1, 'x', 0, 0xFF)
			return setLen(p)
		}(), 400, "given twice"},
		{"body packet lies about its length", append(bytes.Clone(post), 0x12, 0x34, 0, 7, 0, 20, 'a', 'b', 'c', 'd', 'e'), 0, "says 20 bytes"},
		{"body longer than Content-Length", append(bytes.Clone(post), 0x12, 0x34, 0, 12, 0, 10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), 0, "10 bytes, 5 were asked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.log.String())
			c := rawConn(t, s.addr)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.name == "truncated payload" || tc.name == "truncated header" {
				c.(*net.TCPConn).CloseWrite()
			}
			got, err := readUntilClose(c)
			if err != nil {
				t.Fatalf("the server did not close the connection: %v (got %q)", err, got)
			}
			status := 0
			if len(got) > 0 {
				ps := packets(t, ToWebServer, got)
				h, err := ParseSendHeaders(ps[0])
				if err != nil {
					t.Fatal(err)
				}
				status = h.Status
				if reuse, err := ParseEndResponse(ps[len(ps)-1]); err != nil || reuse {
					t.Errorf("END_RESPONSE reuse=%v (%v), want false", reuse, err)
				}
			}
			if status != tc.status {
				t.Errorf("status %d, want %d (0: none)", status, tc.status)
			}
			logged := s.log.String()[before:]
			if !strings.Contains(logged, tc.log) {
				t.Errorf("log %q does not say %q", logged, tc.log)
			}
		})
	}
	c, _ := newClient(t, nil)
	if resp, body := get(t, c, "ajp://"+s.addr+"/after"); resp.StatusCode != 200 || body != "hello /after" {
		t.Errorf("a good request after the bad ones: %s %q", resp.Status, body)
	}
}

// TestServerOversizedWithoutWaiting checks that a packet announcing
// more than the packet size is refused from its header alone: the
// server does not wait for (or buffer) the payload.
func TestServerOversizedWithoutWaiting(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	c := rawConn(t, s.addr)
	c.Write([]byte{0x12, 0x34, 0xFF, 0xF0})
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after an oversized header: %v, want EOF (closed at once)", err)
	}
}

// fakeContainer accepts one connection, reads the forward request,
// writes reply and closes.
func fakeContainer(t *testing.T, reply []byte) string {
	ln := mustListen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := ReadPacket(c, ToContainer, make([]byte, DefaultPacketSize)); err != nil {
			t.Errorf("fake container: %v", err)
			return
		}
		c.Write(reply)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func headersPacket(t *testing.T, h SendHeaders) []byte {
	b, err := h.AppendPacket(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTransportRefusesMalformed sends each kind of bad answer from a
// fake container and checks the error RoundTrip or the body read
// returns, that the connection is not pooled, and that no goroutine is
// left.
func TestTransportRefusesMalformed(t *testing.T) {
	checkGoroutines(t)
	ok := headersPacket(t, SendHeaders{Status: 200, Reason: "OK", Headers: []Header{{"Content-Length", "5"}}})
	chunked := headersPacket(t, SendHeaders{Status: 200, Reason: "OK"})
	end := AppendEndResponse(nil, true)
	chunk := func(data string) []byte { b, _ := AppendBodyChunk(nil, []byte(data), 0); return b }
	cat := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	for _, tc := range []struct {
		name   string
		reply  []byte
		want   error
		inBody bool // the error comes from reading the body
	}{
		{"HTTP instead of AJP", []byte("HTTP/1.1 200 OK\r\n\r\n"), ErrBadMagic, false},
		{"container magic towards the web server", []byte{0x12, 0x34, 0, 1, TypeCPong}, ErrBadMagic, false},
		{"oversized", []byte{'A', 'B', 0x40, 0}, ErrPacketTooLarge, false},
		{"truncated", ok[:len(ok)-3], ErrTruncated, false},
		{"closed before answering", nil, ErrTruncated, false},
		{"end response without headers", end, ErrMalformed, false},
		{"body chunk before headers", chunk("hi"), ErrMalformed, false},
		{"cpong instead of headers", AppendCPong(nil), ErrMalformed, false},
		{"status 0", func() []byte { p := bytes.Clone(chunked); p[5], p[6] = 0, 0; return p }(), ErrMalformed, false},
		{"lying reason length", func() []byte { p := bytes.Clone(chunked); p[7], p[8] = 0x10, 0; return p }(), ErrMalformed, false},
		{"header value with CRLF", func() []byte {
			p := headersPacket(t, SendHeaders{Status: 200, Reason: "OK", Headers: []Header{{"X-A", "aaaa"}}})
			i := bytes.Index(p, []byte("aaaa"))
			copy(p[i:], "a\r\nb")
			return p
		}(), ErrMalformed, false},
		{"unknown coded header", func() []byte {
			p := headersPacket(t, SendHeaders{Status: 200, Reason: "OK", Headers: []Header{{"Content-Type", "x"}}})
			i := bytes.Index(p, []byte{0xA0, 0x01})
			p[i+1] = 0x33
			return p
		}(), ErrMalformed, false},
		{"second headers", cat(chunked, chunked), ErrMalformed, true},
		{"chunk lies about its length", cat(chunked, []byte{'A', 'B', 0, 5, TypeSendBodyChunk, 0, 40, 'x', 0}), ErrMalformed, true},
		{"body longer than Content-Length", cat(ok, chunk("0123456789")), ErrMalformed, true},
		{"body shorter than Content-Length", cat(ok, chunk("01"), end), io.ErrUnexpectedEOF, true},
		{"closed inside the body", cat(chunked, chunk("01")), ErrTruncated, true},
		{"end response with reuse 7", cat(chunked, []byte{'A', 'B', 0, 2, TypeEndResponse, 7}), ErrMalformed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeContainer(t, tc.reply)
			tr := &Transport{Secret: testSecret}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "ajp://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				if !tc.inBody {
					t.Fatalf("RoundTrip succeeded (%s), want %v", resp.Status, tc.want)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			} else if tc.inBody {
				t.Logf("refused at RoundTrip already: %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if n := idleConns(tr, addr); n != 0 {
				t.Errorf("%d pooled connections after an error", n)
			}
		})
	}
}
