package rawnet_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/sysconn"
	"github.com/shoal-go/shoal/rawnet"
)

type connKey struct{}

// serve runs srv on a rawnet listener on loopback and returns its URL.
// Every connection the server gets is checked to be a raw one.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := rawnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if _, ok := c.(*sysconn.Conn); !ok {
			t.Errorf("the server got a %T, want a *sysconn.Conn", c)
		}
		return context.WithValue(ctx, connKey{}, c)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// Keep-alive requests, a large request body echoed back, and a large file
// (ReadFrom, sendfile) all arrive intact over one raw connection each.
func TestHTTPServer(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	var newConns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /n", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Query().Get("i")) })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}}
	url := serve(t, srv)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	for i := range 100 {
		resp, err := client.Get(url + "/n?i=" + string(rune('a'+i%26)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != string(rune('a'+i%26)) {
			t.Fatalf("request %d: body %q, %v", i, b, err)
		}
	}
	if n := newConns.Load(); n != 1 {
		t.Errorf("100 sequential keep-alive requests used %d connections, want 1", n)
	}

	resp, err := client.Post(url+"/echo", "application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("echo of 4 MiB: got %d bytes (%v), want the same 4 MiB", len(got), err)
	}

	resp, err = client.Get(url + "/file")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("file of 4 MiB: got %d bytes (%v), want the file", len(got), err)
	}
}

// The server's timeouts are deadlines on the raw connection: a client
// that stops inside its request head is cut off after ReadHeaderTimeout.
func TestReadHeaderTimeout(t *testing.T) {
	url := serve(t, &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // and no end of head
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Fatalf("the server did not close a connection stuck in its head: after %v, err %v", took, err)
	}
}

// A client that goes away cancels its request's context: the server's
// background read of the raw connection sees it.
func TestClientGoneCancels(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	url := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(5 * time.Second):
		}
	})})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the request's context was not cancelled within 5 s of the client closing")
	}
}

// A hijacked connection is the raw one, and works both ways.
func TestHijack(t *testing.T) {
	url := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		if c != r.Context().Value(connKey{}) {
			t.Errorf("hijack gave %T, not the server's connection", c)
		}
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			t.Errorf("reading after the hijack: %v", err)
			return
		}
		c.Write([]byte("echo " + line))
	})})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("after the upgrade: %q, %v; want \"echo hello\\n\"", line, err)
	}
}

// Connections that are not TCP pass through unchanged.
func TestListenerNotTCP(t *testing.T) {
	ln, err := rawnet.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", ln.Addr().String())
		if err == nil {
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*net.UnixConn); !ok {
		t.Fatalf("a unix socket's connection is a %T, want it as it was (*net.UnixConn)", c)
	}
}

// TLS runs over the raw connections: an httptest server on a rawnet
// listener, started with TLS, answers over HTTPS and HTTP/2.
func TestTLS(t *testing.T) {
	var raw atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	ts.Listener = rawnet.Listener(ts.Listener)
	ts.EnableHTTP2 = true
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*tls.Conn); ok {
			if _, ok := tc.NetConn().(*sysconn.Conn); ok {
				raw.Add(1)
			}
		}
		return ctx
	}
	ts.StartTLS()
	defer ts.Close()
	client := ts.Client()
	for range 3 {
		resp, err := client.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "HTTP/2.0" {
			t.Fatalf("answer %q, %v; want HTTP/2.0", b, err)
		}
	}
	if raw.Load() == 0 {
		t.Fatal("no TLS connection ran over a raw one")
	}
}
