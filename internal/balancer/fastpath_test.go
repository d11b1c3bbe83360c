package balancer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingBackend is a member whose server records every byte it read
// from the balancer, and counts its connections and requests.
type recordingBackend struct {
	srv   *httptest.Server
	mu    sync.Mutex
	raw   bytes.Buffer
	conns atomic.Int64
	reqs  atomic.Int64
}

type recordingListener struct {
	net.Listener
	rb *recordingBackend
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.rb.conns.Add(1)
		c = &recordingConn{Conn: c, rb: l.rb}
	}
	return c, err
}

type recordingConn struct {
	net.Conn
	rb *recordingBackend
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rb.mu.Lock()
	c.rb.raw.Write(p[:n])
	c.rb.mu.Unlock()
	return n, err
}

// newRecordingBackend starts a member that answers with h, or by default
// 200 with the request body's length and SHA-256 in headers.
func newRecordingBackend(t *testing.T, h http.HandlerFunc, setup ...func(*http.Server)) *recordingBackend {
	t.Helper()
	rb := &recordingBackend{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.New()
			n, _ := io.Copy(sum, r.Body)
			w.Header().Set("X-Body-Len", fmt.Sprint(n))
			w.Header().Set("X-Body-Sum", fmt.Sprintf("%x", sum.Sum(nil)))
			w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
			w.Header().Set("X-CL", strings.Join(r.Header["Content-Length"], "|"))
			io.WriteString(w, "ok "+r.URL.Path)
		}
	}
	rb.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb.reqs.Add(1)
		h(w, r)
	}))
	rb.srv.Listener = recordingListener{Listener: rb.srv.Listener, rb: rb}
	for _, f := range setup {
		f(rb.srv.Config)
	}
	rb.srv.Start()
	t.Cleanup(rb.srv.Close)
	return rb
}

func (rb *recordingBackend) received() string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.raw.String()
}

// rawExchange sends raw to the balancer on a new connection and returns
// everything it answers until it closes the connection or 2 s pass.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	return string(got)
}

// statusOf returns the status code of the first response in s, or 0.
func statusOf(s string) int {
	var code int
	if _, err := fmt.Sscanf(s, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// dialFront connects to tb's front with a deadline for the whole test;
// the connection closes when the test ends.
func dialFront(t *testing.T, tb *testBalancer, d time.Duration) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(d))
	return c, bufio.NewReader(c)
}

// rawMember is a member without net/http: serve runs for each
// connection it accepts (closed after), with a reader of it.
func rawMember(tb testing.TB, serve func(c net.Conn, rd *hreader)) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, &hreader{c: c, buf: make([]byte, 4096)})
			}()
		}
	}()
	return ln
}

// TestSmuggling sends requests that parsers disagree on. Each must be
// refused (nothing reaches the member) or normalised (the member gets
// one unambiguous request), never forwarded as it came.
func TestSmuggling(t *testing.T) {
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	big := strings.Repeat("a", 70<<10)
	many := strings.Repeat("X-A: 1\r\n", 200)
	tests := []struct {
		name string
		raw  string
		code int // the balancer's answer to the first request
		// normalised cases: what the member must have received (all
		// of want, none of not); refused cases: nothing.
		want, not []string
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, nil, nil},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, 400, nil, nil},
		{"two different CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + smuggled, 400, nil, nil},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400, nil, nil},
		{"CL with sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400, nil, nil},
		{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400, nil, nil},
		{"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, nil, nil},
		{"two equal CL", "POST /eq HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 200,
			[]string{"POST /eq HTTP/1.1\r\n", "\r\nContent-Length: 5\r\n\r\nhello"}, []string{"Content-Length: 5\r\nContent-Length"}},
		{"TE chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501, nil, nil},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, nil, nil},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, nil, nil},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, nil, nil},
		{"TE space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", 400, nil, nil},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400, nil, nil},
		{"TE in any case, tab", "POST /te HTTP/1.1\r\nHost: x\r\ntransfer-encoding:\tChunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", 200,
			[]string{"POST /te HTTP/1.1\r\n", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"}, []string{"ext=1", "Chunked"}},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n b\r\n\r\n", 400, nil, nil},
		{"bare LF request line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400, nil, nil},
		{"bare LF header", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400, nil, nil},
		{"bare LF only", "GET / HTTP/1.1\nHost: x\n\n", 400, nil, nil},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", 400, nil, nil},
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, nil, nil},
		{"no Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, nil, nil},
		{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, nil, nil},
		{"oversized header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431, nil, nil},
		{"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + many + "\r\n", 431, nil, nil},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, nil, nil},
		{"space in name", "GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n", 400, nil, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400, nil, nil},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil, nil},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil, nil},
		{"bad version", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, nil, nil},
		{"no version", "GET /\r\nHost: x\r\n\r\n", 400, nil, nil},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, nil,
			[]string{"zz", "hello"}},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", 400, nil,
			[]string{"hello"}},
		{"chunk without CRLF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400, nil,
			[]string{"hello\r\n0"}},
		{"hop-by-hop and forwarded fields", "GET /h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n" +
			"Proxy-Connection: x\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nTE: trailers, deflate\r\n\r\n", 200,
			[]string{"GET /h HTTP/1.1\r\n", "X-Forwarded-For: 127.0.0.1\r\n", "Te: trailers\r\n"},
			[]string{"X-Secret", "Keep-Alive", "Proxy-Connection", "6.6.6.6", "deflate", "Connection:"}},
		{"CL body, then a second request", "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200,
			[]string{"POST /one HTTP/1.1\r\n", "Content-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newRecordingBackend(t, nil)
			tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
			got := rawExchange(t, tb.front.Addr, tt.raw)
			if code := statusOf(got); code != tt.code {
				t.Fatalf("answer %d, want %d:\n%.300s", code, tt.code, got)
			}
			rec := be.received()
			if tt.code >= 400 {
				if tt.not == nil && rec != "" {
					t.Fatalf("refused, yet the member received:\n%q", rec)
				}
				if !strings.Contains(got, "Connection: close") {
					t.Errorf("refused without closing the connection:\n%s", got)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(rec, w) {
					t.Errorf("the member did not receive %q; it received:\n%q", w, rec)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(rec, n) {
					t.Errorf("the member received %q:\n%q", n, rec)
				}
			}
			if strings.Contains(rec, "/smuggled") {
				t.Errorf("a smuggled request reached the member:\n%q", rec)
			}
		})
	}
}

func TestFastPathKeepAliveAndPipelining(t *testing.T) {
	be := newRecordingBackend(t, nil)
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 10*time.Second)
	// Sequential keep-alive requests: one member connection serves all.
	for i := range 20 {
		fmt.Fprintf(c, "GET /seq%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != fmt.Sprintf("ok /seq%d", i) {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d member connections, want 1 (kept alive)", n)
	}
	// Pipelined: three requests in one write, answered in order.
	io.WriteString(c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"HEAD /p3 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /p4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, want := range []struct {
		method, body, bodyLen string
	}{{"GET", "ok /p1", "0"}, {"POST", "ok /p2", "3"}, {"HEAD", "", "0"}, {"GET", "ok /p4", "0"}} {
		res, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("%s: %v", want.method, err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != want.body || res.Header.Get("X-Body-Len") != want.bodyLen {
			t.Errorf("%s: got %q (body len %s), want %q", want.method, body, res.Header.Get("X-Body-Len"), want.body)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: %v, want EOF", err)
	}
}

// TestFastPathRequestsArriveWhileServing sends requests whose bytes come
// while the connection is busy or in pieces: a plain TCP connection waits
// for its next request without first trying a read (serveRaw), which is
// only right if no byte that came meanwhile can go unnoticed. A missed
// one would hang the request until the deadline below.
func TestFastPathRequestsArriveWhileServing(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(150 * time.Millisecond)
		}
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body-Len", fmt.Sprint(n))
		io.WriteString(w, "ok "+r.URL.Path)
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 5*time.Second)
	send := func(parts ...string) {
		t.Helper()
		for i, p := range parts {
			if i > 0 {
				time.Sleep(30 * time.Millisecond)
			}
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(path, bodyLen string) {
		t.Helper()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("waiting for %s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "ok "+path || res.Header.Get("X-Body-Len") != bodyLen {
			t.Fatalf("want %s (body %s bytes), got %q (body %s bytes)", path, bodyLen, body, res.Header.Get("X-Body-Len"))
		}
	}
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

	// The next request comes while the member works on this one.
	send(get("/slow"), get("/during"))
	expect("/slow", "0")
	expect("/during", "0")
	// A head in three pieces.
	send("GET /pieces HT", "TP/1.1\r\nHost: x\r\n", "\r\n")
	expect("/pieces", "0")
	// A body after its head, a head and part of the next one, then the rest.
	send("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello")
	expect("/body", "5")
	send(get("/first")+"GET /second HTTP/1.1\r\n", "Host: x\r\n\r\n")
	expect("/first", "0")
	expect("/second", "0")
	// A body streamed to the member, the next request right behind it:
	// the connection stays open for it however the member's answer and
	// the end of the body's copy race.
	for i := range 30 {
		send("POST /streamed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello"+get(fmt.Sprintf("/behind%d", i)))
		expect("/streamed", "5")
		expect(fmt.Sprintf("/behind%d", i), "0")
	}
	// More pipelined requests than a read buffer holds, in one write.
	var many strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, "GET /m%d HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", i, strings.Repeat("p", 100))
	}
	if many.Len() <= clientBufSize {
		t.Fatalf("%d bytes of requests: not more than the %d-byte buffer", many.Len(), clientBufSize)
	}
	send(many.String())
	for i := range 40 {
		expect(fmt.Sprintf("/m%d", i), "0")
	}
	// Many quick keep-alive requests, each sent once the last is answered.
	for i := range 50 {
		send(get(fmt.Sprintf("/k%d", i)))
		expect(fmt.Sprintf("/k%d", i), "0")
	}
	// A last request, and the client's end of the stream with it.
	send(get("/last"))
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expect("/last", "0")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the client's end of stream: %v, want EOF", err)
	}
}

func TestFastPathChunkedBothWays(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		for _, part := range bytes.SplitAfter(body, []byte(" ")) {
			w.Write(part)
			http.NewResponseController(w).Flush() // one chunk each
		}
		w.Header().Set("X-Sum", fmt.Sprint(len(body)))
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	got := rawExchange(t, tb.front.Addr, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"6\r\nhello \r\n6;name=v\r\nchunk \r\n5\r\nworld\r\n0\r\nX-Client-Trailer: dropped\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatalf("%v:\n%s", err, got)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "hello chunk world" || res.Trailer.Get("X-Sum") != "17" {
		t.Errorf("got %q, trailer X-Sum %q; want the body back and 17", body, res.Trailer.Get("X-Sum"))
	}
	if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		t.Errorf("response Transfer-Encoding %v, want chunked", res.TransferEncoding)
	}
	if rec := be.received(); strings.Contains(rec, "X-Client-Trailer") || !strings.Contains(rec, "Transfer-Encoding: chunked\r\n") {
		t.Errorf("member received:\n%q", rec)
	}
}

func TestFastPathNoBodyResponses(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 10*time.Second)
	for _, tc := range []struct {
		method, path string
		code         int
		cl           string
	}{{"HEAD", "/", 200, "11"}, {"GET", "/204", 204, ""}, {"GET", "/304", 304, ""}, {"GET", "/", 200, "11"}} {
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", tc.method, tc.path)
		res, err := http.ReadResponse(br, &http.Request{Method: tc.method})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.code || res.Header.Get("Content-Length") != tc.cl {
			t.Errorf("%s %s: %d Content-Length %q, want %d %q", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Length"), tc.code, tc.cl)
		}
		if tc.method == "GET" && tc.code == 200 && string(body) != "hello world" {
			t.Errorf("GET after HEAD/204/304: body %q: the framing slipped", body)
		}
	}
}

func TestFastPathLargeBodies(t *testing.T) {
	const size = 8 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	sum := fmt.Sprintf("%x", sha256.Sum256(payload))
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			w.Write(payload) // no Content-Length: chunked from net/http
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Body-Len", fmt.Sprint(n))
		w.Header().Set("X-Body-Sum", fmt.Sprintf("%x", h.Sum(nil)))
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(payload)
		if chunked {
			body = io.MultiReader(body) // unknown length: the client sends it chunked
		}
		r := tb.do(t, "PUT", "/up", body)
		if r.code != 200 || r.header.Get("X-Body-Len") != fmt.Sprint(size) || r.header.Get("X-Body-Sum") != sum {
			t.Errorf("upload (chunked %v): %d, member read %s bytes", chunked, r.code, r.header.Get("X-Body-Len"))
		}
	}
	r := tb.get(t, "/down")
	if r.code != 200 || fmt.Sprintf("%x", sha256.Sum256([]byte(r.body))) != sum {
		t.Errorf("download: %d, %d bytes", r.code, len(r.body))
	}
}

// TestFastPathSlowReader gets large responses through a client that
// does not read at first, then reads slowly: the balancer writes a
// response to the socket directly (clientOut) until the socket is full,
// then the rest through the connection, which waits for room. A byte
// lost or sent twice where the one hands over to the other changes the
// digest; the next request on the same connection must still work.
func TestFastPathSlowReader(t *testing.T) {
	const size = 8 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	sum := sha256.Sum256(payload)
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(payload)
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 20*time.Second)
	buf := make([]byte, 16<<10)
	for i := range 3 {
		fmt.Fprintf(c, "GET /big%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		time.Sleep(200 * time.Millisecond) // the socket's buffers fill up
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		h := sha256.New()
		var n int64
		for {
			k, err := res.Body.Read(buf)
			h.Write(buf[:k])
			n += int64(k)
			if err != nil {
				break
			}
			if n < 256<<10 {
				time.Sleep(time.Millisecond) // slowly at first
			}
		}
		if n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Fatalf("response %d: %d bytes of %d, same digest: %v", i, n, size, bytes.Equal(h.Sum(nil), sum[:]))
		}
	}
}

func TestFastPathFailover(t *testing.T) {
	t.Run("refused, then the next member", func(t *testing.T) {
		n2 := newBackend(t, "n2")
		tb := startBalancer(t, testConfig(t, "n1="+deadURL(t), n2.member()))
		for range 3 {
			if r := tb.do(t, "POST", "/", strings.NewReader("form=1")); r.code != 200 || r.body != "n2" || r.header.Get("X-Body") != "form=1" {
				t.Fatalf("got %d %q body %q, want 200 from n2 with the body", r.code, r.body, r.header.Get("X-Body"))
			}
		}
		if st := tb.member("n1").Status(); st.State != StateError {
			t.Errorf("n1 %s, want error", st.State)
		}
	})
	// A member that reads the request, then drops the connection.
	dropper := func(be *backend) {
		be.handle(func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			panic(http.ErrAbortHandler)
		})
	}
	t.Run("POST whose body was sent is not replayed", func(t *testing.T) {
		n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
		dropper(n1)
		tb := startBalancer(t, testConfig(t, n1.member(), n2.member()))
		r := tb.do(t, "POST", "/", strings.NewReader("pay=100"), "Cookie: JSESSIONID=a.n1")
		if r.code != 502 || n2.hits.Load() != 0 {
			t.Errorf("got %d, n2 hit %d times; want 502 and n2 never asked", r.code, n2.hits.Load())
		}
		if n1.hits.Load() != 1 {
			t.Errorf("n1 got the POST %d times, want once", n1.hits.Load())
		}
	})
	t.Run("GET is sent again", func(t *testing.T) {
		n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
		dropper(n1)
		tb := startBalancer(t, testConfig(t, n1.member(), n2.member()))
		if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.code != 200 || r.body != "n2" {
			t.Errorf("got %d %q, want 200 from n2", r.code, r.body)
		}
	})
	t.Run("stale keep-alive connection", func(t *testing.T) {
		// The member closes idle connections at once: each request finds
		// its pooled connection closed, and must not fail nor mark the
		// member in error.
		be := newRecordingBackend(t, nil, func(s *http.Server) { s.IdleTimeout = time.Millisecond })
		tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
		for i := range 5 {
			if r := tb.get(t, "/"); r.code != 200 {
				t.Fatalf("request %d: %d", i, r.code)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st := tb.member("n1").Status(); st.State != StateOK {
			t.Errorf("n1 %s (%s), want ok", st.State, st.Reason)
		}
	})
}

func TestFastPathClientDisconnects(t *testing.T) {
	gotBody := make(chan error, 1)
	release := make(chan struct{})
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			_, err := io.ReadAll(r.Body)
			gotBody <- err
			return
		}
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		http.NewResponseController(w).Flush()
		<-release
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	m := tb.member("n1")

	// Mid-body: the member sees its request cut, not completed.
	c, err := net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 50000))
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-gotBody:
		if err == nil {
			t.Error("the member read a whole body the client never sent")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the member's request was not cut when the client went away")
	}
	waitFor(t, "in flight back to 0 after the client left mid-body", func() bool { return m.InFlight() == 0 })

	// Mid-response.
	c, err = net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 500)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	close(release)
	waitFor(t, "in flight back to 0 after the client left mid-response", func() bool { return m.InFlight() == 0 })
	if st := m.Status(); st.State != StateOK {
		t.Errorf("n1 %s (%s): a client leaving is not the member's fault", st.State, st.Reason)
	}
	if r := tb.do(t, "POST", "/", strings.NewReader("x")); r.code != 200 {
		t.Errorf("after the disconnects: %d", r.code)
	}
}

func TestFastPathHandsOff(t *testing.T) {
	n1 := newBackend(t, "n1")
	tb := startBalancer(t, testConfig(t, n1.member()))
	for _, tc := range []struct{ name, raw string }{
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"},
		{"Expect", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"},
		{"absolute form", "GET http://x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		{"after a fast-path request", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rawExchange(t, tb.front.Addr, tc.raw)
			if n := strings.Count(got, " 200 OK\r\n"); n != strings.Count(tc.raw, "GET ")+strings.Count(tc.raw, "POST ") || !strings.HasSuffix(got, "n1") {
				t.Errorf("got:\n%s", got)
			}
		})
	}
}

// TestFastPathRandomSplits sends runs of pipelined requests cut into
// pieces at random places and sent with random pauses, on one
// connection: however the bytes arrive, every request is answered, in
// order (a byte the connection's poller wait missed would stall it until
// the deadline). Bounded: 150 runs.
func TestFastPathRandomSplits(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body-Len", fmt.Sprint(n))
		io.WriteString(w, "ok "+r.URL.Path)
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 30*time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 150 {
		var stream strings.Builder
		type want struct{ method, path, bodyLen string }
		var wants []want
		for i := range 1 + rng.IntN(4) {
			path := fmt.Sprintf("/r%d-%d", run, i)
			switch rng.IntN(3) {
			case 0:
				body := strings.Repeat("b", rng.IntN(300))
				fmt.Fprintf(&stream, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
				wants = append(wants, want{"POST", path, fmt.Sprint(len(body))})
			case 1:
				fmt.Fprintf(&stream, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
				wants = append(wants, want{"HEAD", path, "0"})
			default:
				fmt.Fprintf(&stream, "GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", path, strings.Repeat("p", rng.IntN(200)))
				wants = append(wants, want{"GET", path, "0"})
			}
		}
		b := stream.String()
		for len(b) > 0 {
			k := 1 + rng.IntN(len(b))
			if _, err := io.WriteString(c, b[:k]); err != nil {
				t.Fatalf("run %d: %v; balancer log:\n%s", run, err, tb.log.String())
			}
			b = b[k:]
			if rng.IntN(2) == 0 {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
			}
		}
		for _, w := range wants {
			res, err := http.ReadResponse(br, &http.Request{Method: w.method})
			if err != nil {
				t.Fatalf("run %d, %s %s: %v", run, w.method, w.path, err)
			}
			body, _ := io.ReadAll(res.Body)
			wantBody := "ok " + w.path
			if w.method == "HEAD" {
				wantBody = ""
			}
			if string(body) != wantBody || res.Header.Get("X-Body-Len") != w.bodyLen {
				t.Fatalf("run %d, %s %s: got %q (body %s bytes)", run, w.method, w.path, body, res.Header.Get("X-Body-Len"))
			}
		}
	}
}

// TestFastPathSlowHeadThenSlowMember: the bound on a head's arrival is
// the head's own: one that passed while the member answered a slow head's
// request does not cut the next request, which comes in pieces too.
func TestFastPathSlowHeadThenSlowMember(t *testing.T) {
	old := readHeaderTimeout
	readHeaderTimeout = 300 * time.Millisecond
	t.Cleanup(func() { readHeaderTimeout = old })
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, br := dialFront(t, tb, 5*time.Second)
	io.WriteString(c, "GET /slow HTTP/1.1\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "Host: x\r\n\r\nGET /next HTTP/1.1\r\n")
	for _, path := range []string{"/slow", "/next"} {
		if path == "/next" {
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, "Host: x\r\n\r\n")
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		if string(body) != "ok "+path {
			t.Fatalf("%s: got %q", path, body)
		}
	}
}

// TestFrontendCloseWithRequestInFlight: Close ends every client
// connection at once, also one whose request waits for its member (a
// request served from inside the connection's poller wait holds the
// connection's read lock, which a plain Close would wait for).
func TestFrontendCloseWithRequestInFlight(t *testing.T) {
	got := make(chan struct{})
	release := make(chan struct{})
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		close(got)
		<-release
		io.WriteString(w, "late")
	})
	defer close(release)
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, err := net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the member never got the request")
	}
	closed := make(chan struct{})
	go func() {
		tb.frontend.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Frontend.Close waited for the request in flight")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil || isTimeoutErr(err) {
		t.Fatalf("the client's connection after Close: read %d bytes, %v; want its end", n, err)
	}
}

func TestFrontendShutdown(t *testing.T) {
	n1 := newBackend(t, "n1")
	started, release := make(chan struct{}), make(chan struct{})
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "n1")
	})
	b, err := New(testConfig(t, n1.member()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fe := NewFrontend(b, nil)
	served := make(chan error, 1)
	go func() { served <- fe.Serve(ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	res, err := http.ReadResponse(idleBR, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v", err)
	}
	io.ReadAll(res.Body)
	slow := make(chan string, 1)
	go func() {
		res, err := testClient.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- string(b)
	}()
	<-started
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- fe.Shutdown(ctx)
	}()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want closed (EOF)", err)
	}
	close(release)
	if got := <-slow; got != "n1" {
		t.Errorf("request in flight during shutdown: %q, want n1", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}
}

func TestConnPoolTrimIdle(t *testing.T) {
	p := &connPool{addr: "unused"}
	var ends []net.Conn
	for range 5 {
		a, b := net.Pipe()
		ends = append(ends, b)
		p.mu.Lock()
		p.open++
		p.mu.Unlock()
		p.put(&backendConn{c: a, pool: p})
	}
	p.trimIdle(2, time.Hour)
	if n := p.idleCount(); n != 2 || p.open != 2 {
		t.Fatalf("after trimIdle(2): %d idle, %d open; want 2, 2", n, p.open)
	}
	// The oldest were closed: their other ends see EOF.
	ends[0].SetReadDeadline(time.Now().Add(time.Second))
	if _, err := ends[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("oldest connection: %v, want closed", err)
	}
	p.trimIdle(10, 0) // all idle longer than 0
	if n := p.idleCount(); n != 0 || p.open != 0 {
		t.Fatalf("after trimIdle(10, 0): %d idle, %d open; want 0, 0", n, p.open)
	}
}

func TestFrontendTLS(t *testing.T) {
	n1 := newBackend(t, "n1")
	proto := make(chan string, 2)
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		proto <- r.Header.Get("X-Forwarded-Proto")
		io.WriteString(w, "n1")
	})
	b, err := New(testConfig(t, n1.member()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	certs := httptest.NewUnstartedServer(nil) // for its certificate and a client that trusts it
	certs.EnableHTTP2 = true
	certs.StartTLS()
	certs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fe := NewFrontend(b, nil)
	fe.TLSConfig = &tls.Config{Certificates: certs.TLS.Certificates}
	go fe.ServeTLS(ln, "", "")
	t.Cleanup(func() { fe.Close() })
	h2 := certs.Client()
	h1 := &http.Client{Transport: h2.Transport.(*http.Transport).Clone()}
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h1.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	for _, tc := range []struct {
		name   string
		client *http.Client
		major  int
	}{{"HTTP/2 (handed to net/http)", h2, 2}, {"HTTP/1.1 (fast path)", h1, 1}} {
		res, err := tc.client.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if p := <-proto; res.ProtoMajor != tc.major || string(body) != "n1" || p != "https" {
			t.Errorf("%s: got %s %q, X-Forwarded-Proto %q", tc.name, res.Proto, body, p)
		}
	}
}

// TestFastPathFullDuplex: a client that reads the answer to each part
// of its body before it sends the next is not stalled.
func TestFastPathFullDuplex(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(200)
		rc.Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "echo "+line)
			rc.Flush()
		}
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	c, err := net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /duplex HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bufio.NewReader(res.Body)
	for _, msg := range []string{"ping\n", "pong\n", "done\n"} {
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(msg), msg)
		got, err := body.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Fatalf("sent %q, got %q, %v", msg, got, err)
		}
	}
	io.WriteString(c, "0\r\n\r\n")
	if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
		t.Errorf("end of the response: %q, %v", rest, err)
	}
}

// TestFrontendSweep: the idle timeout and a long response header timeout
// are the housekeeper's, not read deadlines.
func TestFrontendSweep(t *testing.T) {
	oldEvery, oldMin := sweepEvery, coarseTimeoutMin
	sweepEvery, coarseTimeoutMin = 10*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { sweepEvery, coarseTimeoutMin = oldEvery, oldMin })

	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	cfg := testConfig(t, n1.member(), n2.member())
	cfg.ResponseHeaderTimeout = 100 * time.Millisecond // >= coarseTimeoutMin: swept
	tb := startBalancer(t, cfg)
	start := time.Now()
	r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1")
	if r.code != 200 || r.body != "n2" || time.Since(start) > 2*time.Second {
		t.Errorf("got %d %q after %v, want n2's answer once n1's 100 ms passed", r.code, r.body, time.Since(start))
	}
	if st := tb.member("n1").Status(); st.State != StateError || !strings.Contains(st.Reason, "timeout") {
		t.Errorf("n1 %s (%q), want error for the timeout", st.State, st.Reason)
	}
	if got := tb.member("n1").stats.errors[failTimeout].Load(); got != 1 {
		t.Errorf("errors{reason=timeout} = %d, want 1", got)
	}

	// An idle client connection is closed once idleTimeout has passed.
	c, err := net.Dial("tcp", tb.front.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID=a.n2\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	waitFor(t, "the connection idle", func() bool {
		tb.frontend.mu.Lock()
		defer tb.frontend.mu.Unlock()
		for cc := range tb.frontend.conns {
			if cc.state.Load() != connIdle {
				return false
			}
		}
		return true
	})
	tb.frontend.sweep(nanotime() + int64(idleTimeout) + 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the idle timeout: %v, want the connection closed", err)
	}
}

// A member's 103 Early Hints reaches the client before the final
// response, without its hop-by-hop fields; other interim responses are
// dropped; the framing of the next request on the connection holds.
func TestFastPathEarlyHints(t *testing.T) {
	be := newRecordingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.Header().Set("Keep-Alive", "timeout=5") // hop-by-hop: not passed on
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Keep-Alive")
			w.WriteHeader(http.StatusProcessing) // 102: not passed on
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	tb := startBalancer(t, testConfig(t, "n1="+be.srv.URL))
	got := rawExchange(t, tb.front.Addr,
		"GET /hints HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(got))
	first, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the first response: %v\n%s", err, got)
	}
	if first.StatusCode != http.StatusEarlyHints {
		t.Fatalf("first response %d, want 103 Early Hints:\n%s", first.StatusCode, got)
	}
	if l := first.Header.Get("Link"); l != "</style.css>; rel=preload; as=style" {
		t.Errorf("103's Link = %q", l)
	}
	if ka := first.Header.Get("Keep-Alive"); ka != "" {
		t.Errorf("103 passed on the hop-by-hop Keep-Alive: %q", ka)
	}
	if strings.Contains(got, " 102 ") {
		t.Errorf("102 Processing passed on:\n%s", got)
	}
	for _, want := range []string{"body of /hints", "body of /after"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response with %q: %v\n%s", want, err, got)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(body) != want {
			t.Errorf("got %d %q, want 200 %q", res.StatusCode, body, want)
		}
	}
}

// A request without a body is written and its answer awaited in one
// wait (backendConn.exchange): a response header timeout shorter than the
// housekeeper's still fails it over, and a member that reads the request
// and hangs up without answering does too (GET is idempotent).
func TestFastPathExchangeFailures(t *testing.T) {
	slow, n2 := newBackend(t, "slow"), newBackend(t, "n2")
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	// hangup reads a request head, then closes the connection.
	var heads atomic.Int64
	ln := rawMember(t, func(c net.Conn, rd *hreader) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := rd.readHead(maxHeadBytes); err == nil {
			heads.Add(1)
		}
	})
	cfg := testConfig(t, slow.member(), "hangup=http://"+ln.Addr().String(), n2.member())
	cfg.ResponseHeaderTimeout = 200 * time.Millisecond // under coarseTimeoutMin: a read deadline
	tb := startBalancer(t, cfg)
	if coarseTimeoutMin <= cfg.ResponseHeaderTimeout {
		t.Fatalf("coarseTimeoutMin %v: the test wants the read deadline path", coarseTimeoutMin)
	}
	for _, route := range []string{"slow", "hangup"} {
		start := time.Now()
		r := tb.get(t, "/", "Cookie: JSESSIONID=a."+route)
		if r.code != 200 || r.body != "n2" || time.Since(start) > 3*time.Second {
			t.Errorf("route %s: got %d %q after %v, want n2's answer", route, r.code, r.body, time.Since(start))
		}
		if st := tb.member(route).Status(); st.State != StateError {
			t.Errorf("%s is %s (%q), want error", route, st.State, st.Reason)
		}
	}
	if tb.member("slow").stats.errors[failTimeout].Load() != 1 {
		t.Errorf("slow: errors{reason=timeout} = %d, want 1", tb.member("slow").stats.errors[failTimeout].Load())
	}
	if heads.Load() == 0 {
		t.Error("the hanging-up member never received the request head")
	}
}
