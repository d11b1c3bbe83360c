package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/refusing"
)

const testToken = "s3cret-Token_for.tests"

// env is a balancer in front of a test backend, and its manager, both
// served on loopback.
type env struct {
	b     *balancer.Balancer
	h     *Handler
	admin *httptest.Server // the manager
	front *httptest.Server // the balancer
	log   *syncLog
}

// newEnv starts a backend, a balancer with members n1 and n2 on it (and
// the extra member specs, where {backend} is the backend's URL), and the
// manager.
func newEnv(t *testing.T, extra ...string) *env {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "hello")
	}))
	t.Cleanup(backend.Close)
	cfg := balancer.DefaultConfig()
	cfg.Health.Path = ""
	for _, spec := range append([]string{"n1=" + backend.URL, "n2=" + backend.URL}, extra...) {
		mc, err := balancer.ParseMember(strings.ReplaceAll(spec, "{backend}", backend.URL))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	b, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	lg := &syncLog{}
	h, err := New(Config{Balancer: b, Token: testToken, Logger: lg.logger()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, h: h, admin: httptest.NewServer(h), front: httptest.NewServer(b), log: lg}
	t.Cleanup(e.admin.Close)
	t.Cleanup(e.front.Close)
	return e
}

// member returns the balancer's member of route.
func (e *env) member(t *testing.T, route string) *balancer.Member {
	t.Helper()
	for _, m := range e.b.Members() {
		if m.Route() == route {
			return m
		}
	}
	t.Fatalf("no member %q", route)
	return nil
}

// snapshot returns what a test compares to see that nothing changed:
// every member's state and weight.
func (e *env) snapshot() string {
	var b strings.Builder
	for _, m := range e.b.Members() {
		st := m.Status()
		b.WriteString(st.Route + " " + string(st.State) + " " + formatWeight(st.Weight) + ";")
	}
	return b.String()
}

var client = &http.Client{
	Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // tests look at the 303 itself
	},
}

// response is an answer read whole.
type response struct {
	code int
	hdr  http.Header
	body string
}

// do sends a request to the manager. hdr are header name, value pairs;
// the special name "auth" takes "bearer", "basic" or "" (none).
func (e *env) do(t *testing.T, method, path, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		switch k, v := hdr[i], hdr[i+1]; {
		case k == "auth" && v == "bearer":
			req.Header.Set("Authorization", "Bearer "+testToken)
		case k == "auth" && v == "basic":
			req.SetBasicAuth("admin", testToken)
		case k == "auth":
		default:
			req.Header.Set(k, v)
		}
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

const (
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

// formNonces returns the nonces of the page's forms for route, in order
// (the state form's, then the weight form's).
func formNonces(t *testing.T, page, route string) []string {
	t.Helper()
	re := regexp.MustCompile(`<form method="post" action="/members/` + regexp.QuoteMeta(route) + `" class="inline">\s*<input type="hidden" name="nonce" value="([^"]+)">`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	if len(out) != 2 {
		t.Fatalf("page has %d forms with a nonce for %s, want 2:\n%s", len(out), route, page)
	}
	return out
}

// proxy sends n GETs of path through the balancer.
func (e *env) proxy(t *testing.T, n int, path string) {
	t.Helper()
	for range n {
		res, err := client.Get(e.front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// deadURL returns the URL of a loopback port that refuses connections
// until the test ends (package refusing: no other test can be given it).
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + refusing.Addr(t)
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

// syncLog collects log lines; safe for concurrent use.
type syncLog struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
