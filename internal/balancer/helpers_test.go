package balancer

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/refusing"
)

// backend is a member's server in a test. By default it answers 200 with
// its name, and echoes the request body's length and what it saw of the
// request in headers.
type backend struct {
	name    string
	srv     *httptest.Server
	hits    atomic.Int64 // requests other than health checks
	handler atomic.Pointer[http.HandlerFunc]
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	be := &backend{name: name}
	be.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz/ready" {
			writePlain(w, http.StatusOK, "ready")
			return
		}
		be.hits.Add(1)
		if h := be.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Member", name)
		w.Header().Set("X-Body", string(body))
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, name)
	}))
	t.Cleanup(be.srv.Close)
	return be
}

// handle replaces the backend's answer to requests other than health
// checks.
func (be *backend) handle(h http.HandlerFunc) { be.handler.Store(&h) }

func (be *backend) member(opts ...string) string {
	return strings.Join(append([]string{be.name + "=" + be.srv.URL}, opts...), ",")
}

// deadURL returns the URL of a loopback port that refuses connections
// until the test ends (package refusing: no other test can be given it).
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + refusing.Addr(t)
}

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex // guards b
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

// lines returns the log lines that contain all of substrs.
func (l *logBuffer) lines(substrs ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		ok := true
		for _, s := range substrs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// testBalancer is a Balancer in front of test backends, served on
// loopback by a Frontend (the fast path, and net/http for the rest), or
// by an httptest.Server over Balancer.ServeHTTP alone while
// viaHandler is set.
type testBalancer struct {
	*Balancer
	front    *testFront
	frontend *Frontend // nil via the handler
	log      *logBuffer
}

// testFront is where a test balancer listens.
type testFront struct {
	URL   string
	Addr  string
	close func()
}

func (f *testFront) Close() { f.close() }

// viaHandler makes startBalancer serve with an httptest.Server over
// Balancer.ServeHTTP instead of a Frontend. TestViaHandler sets it to
// run the proxy tests over the net/http path too; tests do not run in
// parallel.
var viaHandler bool

// testConfig returns DefaultConfig without health checks, with the given
// member specs.
func testConfig(t *testing.T, members ...string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Health.Path = ""
	for _, spec := range members {
		mc, err := ParseMember(spec)
		if err != nil {
			t.Fatalf("member %s: %v", spec, err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	return cfg
}

func startBalancer(t *testing.T, cfg Config) *testBalancer {
	t.Helper()
	lb := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBalancer{Balancer: b, log: lb}
	if viaHandler {
		srv := httptest.NewServer(b)
		tb.front = &testFront{URL: srv.URL, Addr: srv.Listener.Addr().String(), close: srv.Close}
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tb.frontend = NewFrontend(b, cfg.Logger)
		served := make(chan struct{})
		go func() {
			defer close(served)
			tb.frontend.Serve(ln)
		}()
		tb.front = &testFront{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), close: func() {
			tb.frontend.Close()
			<-served
		}}
	}
	t.Cleanup(func() {
		tb.front.Close()
		b.Close()
	})
	return tb
}

func (tb *testBalancer) member(route string) *Member { return tb.set.Load().byRoute[route] }

var testClient = &http.Client{Timeout: 10 * time.Second}

// reply is what a client got.
type reply struct {
	code   int
	body   string
	header http.Header
}

// do sends a request through the balancer; extra are "Name: value"
// headers.
func (tb *testBalancer) do(t *testing.T, method, target string, body io.Reader, extra ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, tb.front.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range extra {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return reply{res.StatusCode, string(b), res.Header}
}

// get is do for a GET without a body.
func (tb *testBalancer) get(t *testing.T, target string, extra ...string) reply {
	t.Helper()
	return tb.do(t, "GET", target, nil, extra...)
}

// waitFor polls cond every few milliseconds until it holds, failing the
// test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
