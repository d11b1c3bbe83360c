package ajp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo answers with what it saw of the request, as JSON-ish lines.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-URI", r.RequestURI)
	w.Header().Set("X-Query", r.URL.Query().Get("q"))
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-Remote", r.RemoteAddr)
	w.Header().Set("X-Header", r.Header.Get("X-Test"))
	w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
	w.Header().Set("X-Body-Sha256", hex.EncodeToString(sum[:]))
	w.Header().Set("X-Body-Len", strconv.Itoa(len(body)))
	info, ok := InfoFromRequest(r)
	w.Header().Set("X-Route", fmt.Sprint(ok, " ", info.Attributes.Route, " ", info.Attributes.Secret == ""))
	if r.TLS != nil {
		w.Header().Set("X-TLS", tls.CipherSuiteName(r.TLS.CipherSuite))
	}
	fmt.Fprintf(w, "hello %s", r.URL.Path)
}

func TestRoundTripGET(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	c, tr := newClient(t, func(tr *Transport) { tr.Route = "n1" })
	req, _ := http.NewRequest("GET", "ajp://"+s.addr+"/a/b;jsessionid=abc.n1?q=x%20y&r=1", nil)
	req.Host = "shop.example:8443"
	req.Header.Set("X-Test", "value")
	req.RemoteAddr = "198.51.100.4:5555" // a proxied request: the client's address travels
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for k, want := range map[string]string{
		"X-Method": "GET", "X-Uri": "/a/b;jsessionid=abc.n1?q=x%20y&r=1", "X-Query": "x y",
		"X-Host": "shop.example:8443", "X-Remote": "198.51.100.4:5555", "X-Header": "value",
		"X-Length": "0", "X-Route": "true n1 true", "Content-Type": "text/plain; charset=utf-8",
		"Content-Length": strconv.Itoa(len("hello /a/b;jsessionid=abc.n1")),
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if resp.Status != "200 OK" || string(b) != "hello /a/b;jsessionid=abc.n1" {
		t.Errorf("got %q %q", resp.Status, b)
	}
	if n := idleConns(tr, s.addr); n != 1 {
		t.Errorf("%d idle connections after a complete exchange, want 1", n)
	}
}

func TestRoundTripBodies(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	c, _ := newClient(t, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(big)
	for _, tc := range []struct {
		name   string
		body   func() io.Reader
		length int64
	}{
		{"small with length", func() io.Reader { return bytes.NewReader(big[:100]) }, 100},
		{"exactly one packet", func() io.Reader { return bytes.NewReader(big[:8186]) }, 8186},
		{"large with length", func() io.Reader { return bytes.NewReader(big) }, int64(len(big))},
		{"large without length (chunked)", func() io.Reader { return io.MultiReader(bytes.NewReader(big[:1000]), bytes.NewReader(big[1000:])) }, -1},
		{"empty without length", func() io.Reader { return strings.NewReader("") }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "ajp://"+s.addr+"/up", tc.body())
			req.ContentLength = tc.length
			if tc.length < 0 {
				req.ContentLength = 0 // with a non-nil body: unknown length
				req.Body = io.NopCloser(tc.body())
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := int64(len(big))
			switch tc.name {
			case "small with length":
				want = 100
			case "exactly one packet":
				want = 8186
			case "empty without length":
				want = 0
			}
			if got := resp.Header.Get("X-Body-Len"); got != strconv.FormatInt(want, 10) {
				t.Fatalf("server read %s bytes, want %d (status %d)", got, want, resp.StatusCode)
			}
			if tc.length == -1 && resp.Header.Get("X-Length") != "-1" {
				t.Errorf("ContentLength seen by the handler %s, want -1", resp.Header.Get("X-Length"))
			}
			if want == int64(len(big)) && resp.Header.Get("X-Body-Sha256") != hex.EncodeToString(sum[:]) {
				t.Error("body corrupted on the way")
			}
		})
	}

	t.Run("large response", func(t *testing.T) {
		s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(big) // no length set: sent packet by packet
		}), nil)
		resp, body := get(t, c, "ajp://"+s.addr+"/")
		if body != string(big) || resp.ContentLength != -1 {
			t.Errorf("got %d bytes (ContentLength %d), want %d and -1", len(body), resp.ContentLength, len(big))
		}
	})
}

func TestRoundTripNoBodyResponses(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("X-Leak", "from a previous response")
			w.Header().Set("Set-Cookie", "JSESSIONID=secret.n1")
			io.WriteString(w, "a body of 27 bytes, or so..")
		}
	}), nil)
	c, tr := newClient(t, nil)
	for _, path := range []string{"/full", "/204", "/full", "/304", "/full"} {
		resp, body := get(t, c, "ajp://"+s.addr+path)
		if path == "/full" {
			if resp.StatusCode != 200 || body == "" || resp.Header.Get("X-Leak") == "" {
				t.Fatalf("%s: %s %q %v", path, resp.Status, body, resp.Header)
			}
			continue
		}
		// CVE-2023-34981: nothing of the previous response.
		if len(resp.Header) != 0 || body != "" {
			t.Errorf("%s: headers %v body %q, want none", path, resp.Header, body)
		}
		if want := path[1:] + " " + http.StatusText(resp.StatusCode); resp.Status != want || path[1:] != strconv.Itoa(resp.StatusCode) {
			t.Errorf("%s: status %q, want %q", path, resp.Status, want)
		}
	}
	resp, err := c.Head("ajp://" + s.addr + "/full")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 27 || len(b) != 0 || err != nil {
		t.Errorf("HEAD: %s ContentLength %d body %q %v, want 200, 27 and no body", resp.Status, resp.ContentLength, b, err)
	}
	if n := s.ln.n.Load(); n != 1 {
		t.Errorf("%d connections for 6 sequential requests, want 1 reused", n)
	}
	if n := idleConns(tr, s.addr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// TestServerHeadersNeverReused checks CVE-2023-34981 on the wire: the
// SEND_HEADERS of a response without headers carries none.
func TestServerHeadersNeverReused(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/with" {
			w.Header().Set("X-Private", "alice")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), nil)
	c := rawConn(t, s.addr)
	var got [][]byte
	for _, path := range []string{"/with", "/without"} {
		if _, err := c.Write(forward(t, "GET", path)); err != nil {
			t.Fatal(err)
		}
		for {
			p, err := ReadPacket(c, ToWebServer, make([]byte, DefaultPacketSize))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, bytes.Clone(p))
			if p[0] == TypeEndResponse {
				break
			}
		}
	}
	var heads []*SendHeaders
	for _, p := range got {
		if p[0] == TypeSendHeaders {
			h, err := ParseSendHeaders(p)
			if err != nil {
				t.Fatal(err)
			}
			heads = append(heads, h)
		}
	}
	if len(heads) != 2 {
		t.Fatalf("%d SEND_HEADERS for 2 requests", len(heads))
	}
	if heads[0].Reason != "OK" || len(heads[0].Headers) != 2 { // X-Private and Content-Length: 0
		t.Errorf("first: %+v", heads[0])
	}
	if heads[1].Status != 204 || heads[1].Reason != "No Content" || len(heads[1].Headers) != 0 {
		t.Errorf("second: %+v, want 204 No Content without headers", heads[1])
	}
	if reuse, _ := ParseEndResponse(got[len(got)-1]); !reuse {
		t.Error("END_RESPONSE does not allow reuse")
	}
}

func TestRoundTripKeepAliveAndConcurrency(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	c, tr := newClient(t, func(tr *Transport) { tr.MaxIdleConnsPerHost = 4 })
	for i := range 20 {
		if _, body := get(t, c, fmt.Sprintf("ajp://%s/seq/%d", s.addr, i)); body != fmt.Sprintf("hello /seq/%d", i) {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := s.ln.n.Load(); n != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*10)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				path := fmt.Sprintf("/c/%d/%d", g, i)
				body := strings.Repeat(path, 500)
				resp, err := c.Post("ajp://"+s.addr+path, "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "hello "+path || resp.Header.Get("X-Body-Len") != strconv.Itoa(len(body)) {
					errs <- fmt.Errorf("%s: %q %v %s", path, b, err, resp.Header.Get("X-Body-Len"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.ln.n.Load(); n > 9 {
		t.Errorf("%d connections for 8 concurrent clients, want at most 9", n)
	}
	if n := idleConns(tr, s.addr); n < 1 || n > 4 {
		t.Errorf("%d idle connections, want 1 to MaxIdleConnsPerHost=4", n)
	}
}

func TestSecret(t *testing.T) {
	checkGoroutines(t)
	var served int
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }), nil)
	for _, tc := range []struct {
		name, secret string
		want         int
		log          string
	}{
		{"right", testSecret, 200, ""},
		{"wrong", "guess", 403, "ajp: request refused: wrong secret"},
		{"none", "", 403, "ajp: request refused: no secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.log.String()
			c, tr := newClient(t, func(tr *Transport) { tr.Secret = tc.secret })
			resp, _ := get(t, c, "ajp://"+s.addr+"/")
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			logged := strings.TrimPrefix(s.log.String(), before)
			if tc.log == "" {
				if logged != "" {
					t.Errorf("logged %q", logged)
				}
				return
			}
			if hasLine(logged, tc.log) != 1 || !strings.Contains(logged, "peer=127.0.0.1:") || strings.Contains(logged, "guess") {
				t.Errorf("log %q: want one line %q with the peer and without the secret", logged, tc.log)
			}
			if n := idleConns(tr, s.addr); n != 0 {
				t.Errorf("the refused connection is pooled (%d)", n)
			}
		})
	}
	if served != 1 {
		t.Errorf("handler ran %d times, want 1", served)
	}
}

func TestServeRefusesWithoutSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *Server
		want error
	}{
		{"no secret", &Server{Handler: http.NotFoundHandler()}, ErrNoSecret},
		{"both", &Server{Handler: http.NotFoundHandler(), Secret: "x", InsecureNoSecret: true}, nil},
		{"no handler", &Server{Secret: "x"}, nil},
		{"packet size", &Server{Handler: http.NotFoundHandler(), Secret: "x", PacketSize: 1000}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := &countingListener{Listener: mustListen(t)}
			err := tc.s.Serve(ln)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Serve = %v, want an error (%v)", err, tc.want)
			}
		})
	}
	// Explicitly insecure: it serves.
	s := startServer(t, http.HandlerFunc(echo), func(s *Server) { s.Secret, s.InsecureNoSecret = "", true })
	c, _ := newClient(t, func(tr *Transport) { tr.Secret = "" })
	if resp, _ := get(t, c, "ajp://"+s.addr+"/"); resp.StatusCode != 200 {
		t.Errorf("InsecureNoSecret: %s", resp.Status)
	}
}

func TestFlushStreams(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, "second")
	}), nil)
	c, _ := newClient(t, nil)
	resp, err := c.Get("ajp://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first;" {
		t.Fatalf("before release: %q %v", buf, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("after release: %q %v", rest, err)
	}
}

func TestStatusLine(t *testing.T) {
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Path[1:])
		w.WriteHeader(code)
	}), nil)
	c, _ := newClient(t, nil)
	for code, want := range map[int]string{200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable", 599: "599 status code 599"} {
		if resp, _ := get(t, c, fmt.Sprintf("ajp://%s/%d", s.addr, code)); resp.Status != want {
			t.Errorf("status %q, want %q", resp.Status, want)
		}
	}
}

func TestPanicAndStoredMethod(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			io.WriteString(w, "purged")
			return
		}
		panic("boom")
	}), nil)
	c, _ := newClient(t, nil)
	if resp, _ := get(t, c, "ajp://"+s.addr+"/"); resp.StatusCode != 500 {
		t.Errorf("panic: %s, want 500", resp.Status)
	}
	if !strings.Contains(s.log.String(), "handler panicked") {
		t.Errorf("panic not logged: %s", s.log)
	}
	req, _ := http.NewRequest("PURGE", "ajp://"+s.addr+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "purged" {
		t.Errorf("PURGE: %q", b)
	}
}

func TestTLSAttributes(t *testing.T) {
	s := startServer(t, http.HandlerFunc(echo), nil)
	c, _ := newClient(t, nil)
	req, _ := http.NewRequest("GET", "ajp://"+s.addr+"/", nil)
	req.TLS = &tls.ConnectionState{CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Tls"); got != "TLS_AES_128_GCM_SHA256" {
		t.Errorf("handler saw TLS cipher %q", got)
	}
}

func TestPing(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), nil)
	_, tr := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if err := tr.Ping(ctx, s.addr); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.ln.n.Load(); n != 1 {
		t.Errorf("%d connections for 3 pings, want 1", n)
	}
	// Something that is not an AJP container.
	ln := mustListen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
		io.Copy(io.Discard, c)
	}()
	err := tr.Ping(ctx, ln.Addr().String())
	if !errors.Is(err, ErrBadMagic) {
		t.Errorf("Ping of an HTTP server = %v, want ErrBadMagic", err)
	}
	// Nobody answers: the context bounds the wait.
	silent := mustListen(t)
	sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer scancel()
	if err := tr.Ping(sctx, silent.Addr().String()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping of a silent peer = %v, want DeadlineExceeded", err)
	}
}

func TestTransportNeverPoolsHalfUsedConns(t *testing.T) {
	checkGoroutines(t)
	big := strings.Repeat("x", 100_000)
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		io.WriteString(w, big)
	}), nil)
	c, tr := newClient(t, nil)

	// Body closed half-read.
	resp, err := c.Get("ajp://" + s.addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	if n := idleConns(tr, s.addr); n != 0 {
		t.Errorf("half-read: %d idle connections, want 0", n)
	}

	// Context cancelled while the body is awaited.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "ajp://"+s.addr+"/slow", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read after the deadline: %v, want DeadlineExceeded", err)
	}
	if n := idleConns(tr, s.addr); n != 0 {
		t.Errorf("cancelled: %d idle connections, want 0", n)
	}

	// The next request works on a new connection.
	if _, body := get(t, c, "ajp://"+s.addr+"/big"); body != big {
		t.Errorf("after: %d bytes", len(body))
	}
	if n := idleConns(tr, s.addr); n != 1 {
		t.Errorf("after a whole exchange: %d idle connections, want 1", n)
	}
}

func TestTransportRetriesStaleConn(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, http.HandlerFunc(echo), func(s *Server) { s.IdleTimeout = 50 * time.Millisecond })
	c, _ := newClient(t, nil)
	get(t, c, "ajp://"+s.addr+"/1")
	time.Sleep(150 * time.Millisecond) // the server closes the idle connection
	if resp, body := get(t, c, "ajp://"+s.addr+"/2"); resp.StatusCode != 200 || body != "hello /2" {
		t.Errorf("after the server closed the idle connection: %s %q", resp.Status, body)
	}
}

func TestShutdownLetsRequestsFinish(t *testing.T) {
	checkGoroutines(t)
	started, release := make(chan struct{}), make(chan struct{})
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)
	c, tr := newClient(t, nil)
	get(t, c, "ajp://"+s.addr+"/idle") // leaves an idle connection in the pool
	result := make(chan string, 1)
	go func() {
		resp, err := c.Get("ajp://" + s.addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if got := <-result; got != "done" {
		t.Errorf("request in flight during Shutdown: %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := idleConns(tr, s.addr); n != 0 {
		t.Errorf("%d idle connections after the server said no reuse, want 0", n)
	}
}
