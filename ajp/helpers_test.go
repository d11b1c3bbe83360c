package ajp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "s3cret-for-tests"

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// logBuffer is a slog destination tests can read.
type logBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer is a Server on a loopback port.
type testServer struct {
	*Server
	addr string
	ln   *countingListener
	log  *logBuffer
}

// startServer serves h over AJP on 127.0.0.1 with the test secret;
// configure may change the Server before it starts. It is shut down
// when the test ends.
func startServer(t testing.TB, h http.Handler, configure func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuffer{}
	s := &Server{Handler: h, Secret: testSecret, Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if configure != nil {
		configure(s)
	}
	cl := &countingListener{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- s.Serve(cl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String(), ln: cl, log: lb}
}

// newClient returns an http.Client over a Transport with the test
// secret, its idle connections closed when the test ends.
func newClient(t testing.TB, configure func(*Transport)) (*http.Client, *Transport) {
	tr := &Transport{Secret: testSecret}
	if configure != nil {
		configure(tr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// get sends a GET and returns the response and its whole body.
func get(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(b)
}

// idleConns is how many pooled connections tr holds for addr.
func idleConns(tr *Transport, addr string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle[addr])
}

// checkGoroutines fails the test if, within 5 s after the test's other
// cleanups, more goroutines run than before it.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines, %d before the test; stacks:\n%s", n, base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// rawConn dials addr for tests that write packets by hand.
func rawConn(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads what the peer sends until it closes, bounded by the
// connection's deadline.
func readUntilClose(c net.Conn) ([]byte, error) {
	return io.ReadAll(c)
}

// packets splits a stream of packets of direction d into payloads.
func packets(t testing.TB, d Direction, b []byte) [][]byte {
	t.Helper()
	r := bytes.NewReader(b)
	var out [][]byte
	for r.Len() > 0 {
		p, err := ReadPacket(r, d, make([]byte, MaxPacketSize))
		if err != nil {
			t.Fatalf("packet %d: %v", len(out), err)
		}
		out = append(out, bytes.Clone(p))
	}
	return out
}

// forward returns a forward request packet for a GET of uri with the
// test secret.
func forward(t testing.TB, method, uri string, headers ...Header) []byte {
	t.Helper()
	f := &ForwardRequest{Method: method, Protocol: "HTTP/1.1", URI: uri, RemoteAddr: "192.0.2.7", RemoteHost: "192.0.2.7",
		ServerName: "example.test", ServerPort: 80, Headers: headers, Attributes: Attributes{Secret: testSecret}}
	b, err := f.AppendPacket(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hasLine(log, substr string) int { return strings.Count(log, substr) }

// mustListen listens on a loopback port, closed when the test ends.
func mustListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
