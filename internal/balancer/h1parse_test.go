package balancer

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzRequestHead checks the fast path's request parser on any input:
// it must not panic, and a head it accepts must be unambiguous and come
// out of the balancer's rewriting as a head it accepts again, with the
// same request and framing, and none of the fields a proxy must drop.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nHost: x:80\r\nContent-Length: 5\r\nCookie: a=b; JSESSIONID=\"abc.n1\"\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close, X-A\r\nX-A: 1\r\nTE: trailers\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	o := headOpts{cookie: "JSESSIONID", hashHeader: "x-user", hashCookie: "u"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := headEnd(raw, 0)
		if err != nil {
			return
		}
		var h reqHead
		if err := parseRequestHead(raw[:n], &o, &h); err != nil {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted with both Content-Length and chunked")
		}
		if h.handoff {
			return // net/http's to parse
		}
		if !isToken(h.method.of(h.raw)) || h.target.of(h.raw)[0] != '/' {
			t.Fatalf("accepted request line %q", h.raw)
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		writeRequestHead(w, &h, "/p", "127.0.0.1", false)
		w.Flush()
		m, err := headEnd(out.Bytes(), 0)
		if err != nil || m != out.Len() {
			t.Fatalf("rewritten head does not end where it should (%v):\n%q", err, out.Bytes())
		}
		var h2 reqHead
		if err := parseRequestHead(out.Bytes(), &o, &h2); err != nil {
			t.Fatalf("rewritten head refused (%v):\n%q\nfrom\n%q", err, out.Bytes(), raw[:n])
		}
		if h2.chunked != h.chunked || h2.contentLength != h.contentLength || h2.handoff ||
			string(h2.method.of(h2.raw)) != string(h.method.of(h.raw)) ||
			string(h2.target.of(h2.raw)) != "/p"+string(h.target.of(h.raw)) ||
			string(h2.host.of(h2.raw)) != string(h.host.of(h.raw)) ||
			string(h2.sessionCookie.of(h2.raw)) != string(h.sessionCookie.of(h.raw)) {
			t.Fatalf("rewriting changed the request:\n%q\nbecame\n%q", raw[:n], out.Bytes())
		}
		if h2.nConn != 0 || h2.close {
			t.Fatalf("Connection survived the rewriting:\n%q", out.Bytes())
		}
		for _, name := range []string{"\r\nkeep-alive:", "\r\nproxy-connection:", "\r\nforwarded:", "\r\nupgrade:"} {
			if strings.Contains(strings.ToLower(out.String()), name) {
				t.Fatalf("%s survived the rewriting:\n%q", name, out.Bytes())
			}
		}
	})
}

func TestParseChunkSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int64
		isOK bool
	}{
		{"0", 0, true}, {"a", 10, true}, {"FF", 255, true}, {"5;x=y", 5, true}, {"5 ;x", 5, true},
		{"", 0, false}, {"g", 0, false}, {"-1", 0, false}, {"5x", 0, false}, {"1000000000000000", 0, false},
		{"5;\x00", 0, false},
	} {
		n, ok := parseChunkSize([]byte(tc.in))
		if ok != tc.isOK || (ok && n != tc.n) {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.isOK)
		}
	}
}

func TestParseResponseHead(t *testing.T) {
	for _, tc := range []struct {
		in     string
		status int
		cl     int64
		chunk  bool
		close  bool
		ok     bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, 3, false, false, true},
		{"HTTP/1.1 204\r\n\r\n", 204, -1, false, false, true},
		{"HTTP/1.0 200 OK\r\n\r\n", 200, -1, false, true, true},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, 1, false, false, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 200, -1, true, false, true},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 200, -1, false, true, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 0, 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 0, false, false, false},
		{"HTTP/1.1 200 OK\r\n folded\r\n\r\n", 0, 0, false, false, false},
		{"HTTP/2 200\r\n\r\n", 0, 0, false, false, false},
		{"HTTP/1.1 20 OK\r\n\r\n", 0, 0, false, false, false},
	} {
		var h respHead
		err := parseResponseHead([]byte(tc.in), &h)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if err == nil && (h.status != tc.status || h.contentLength != tc.cl || h.chunked != tc.chunk || h.close != tc.close) {
			t.Errorf("%q: status %d cl %d chunked %v close %v", tc.in, h.status, h.contentLength, h.chunked, h.close)
		}
	}
}
