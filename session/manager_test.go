package session_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

// recStore wraps a Store and records the calls that changed it, so tests
// can tell what was committed and when.
type recStore struct {
	session.Store
	mu        sync.Mutex
	commits   int
	creates   int
	failWrite error // returned by Create and Commit when set
	alive     map[string]bool
}

func (s *recStore) Create(ctx context.Context, r session.Record) error {
	s.mu.Lock()
	fail := s.failWrite
	s.creates++
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.Store.Create(ctx, r)
}

func (s *recStore) Commit(ctx context.Context, key string, d session.Delta) (uint64, error) {
	s.mu.Lock()
	fail := s.failWrite
	s.commits++
	s.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	return s.Store.Commit(ctx, key, d)
}

func (s *recStore) writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits + s.creates
}

// aliveStore adds the RouteChecker capability.
type aliveStore struct {
	*recStore
}

func (s aliveStore) RouteAlive(route string) bool { return s.alive[route] }

func newManager(t *testing.T, cfg session.Config) (*session.Manager, *recStore) {
	t.Helper()
	st := &recStore{Store: memstore.New()}
	if cfg.Store == nil {
		cfg.Store = st
	}
	if cfg.Route == "" {
		cfg.Route = "n1"
	}
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, st
}

// client sends requests to h and keeps the JSESSIONID cookie by hand.
type client struct {
	t      *testing.T
	h      http.Handler
	cookie string
}

func (c *client) do(method, target string, body io.Reader) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest(method, target, body)
	if body != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != "" {
		r.Header.Set("Cookie", "JSESSIONID="+c.cookie)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	for _, sc := range w.Result().Cookies() {
		if sc.Name == "JSESSIONID" {
			if sc.MaxAge < 0 {
				c.cookie = ""
			} else {
				c.cookie = sc.Value
			}
		}
	}
	return w
}

// kv is a tiny app: GET /get?k=K prints the value of K, /put?k=K&v=V puts
// it, /del?k=K deletes it, /renew renews the id, /invalidate invalidates.
func kv() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, ok, err := session.Get[string](session.FromContext(r.Context()), r.FormValue("k"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%v:%s", ok, v)
	})
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Put(r.FormValue("k"), r.FormValue("v")); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprint(w, session.FromContext(r.Context()).ID())
	})
	mux.HandleFunc("/del", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Delete(r.FormValue("k")); err != nil {
			http.Error(w, err.Error(), 400)
		}
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		keys, err := session.FromContext(r.Context()).Keys()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, strings.Join(keys, ","))
	})
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).RenewID(); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/invalidate", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := s.Invalidate(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if v := r.FormValue("then"); v != "" {
			if err := s.Put("after", v); err != nil {
				http.Error(w, err.Error(), 500)
			}
		}
	})
	return mux
}

func TestNewSessionCookie(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	c := &client{t: t, h: m.Handler(kv())}
	w := c.do("GET", "/get?k=a", nil)
	if got := w.Header().Values("Set-Cookie"); len(got) != 0 {
		t.Fatalf("a request that only read created a session: %q", got)
	}
	w = c.do("GET", "/put?k=a&v=1", nil)
	sc := w.Header().Get("Set-Cookie")
	id, err := session.ParseID(c.cookie)
	if err != nil {
		t.Fatalf("cookie %q: %v", sc, err)
	}
	if len(id.Base) != session.BaseLen || id.Route != "n1" || strings.Contains(id.Base, ".") {
		t.Fatalf("id = %q, want <24-char base>.n1", c.cookie)
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, attr) {
			t.Errorf("Set-Cookie %q lacks %s", sc, attr)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Secure on a plain-HTTP request: %q", sc)
	}
	if w.Body.String() != c.cookie {
		t.Errorf("Session.ID() = %q, cookie %q", w.Body.String(), c.cookie)
	}
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("next request read %q", got)
	}
	if got := c.do("GET", "/get?k=a", nil).Header().Get("Set-Cookie"); got != "" {
		t.Errorf("cookie re-sent on an unchanged session: %q", got)
	}

	// TLS requests get Secure.
	r := httptest.NewRequest("GET", "https://example.test/put?k=a&v=1", nil)
	w = httptest.NewRecorder()
	m.Handler(kv()).ServeHTTP(w, r)
	if sc := w.Header().Get("Set-Cookie"); !strings.Contains(sc, "; Secure") {
		t.Errorf("TLS request's cookie lacks Secure: %q", sc)
	}
}

func TestPutGetDeleteKeys(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=b&v=2", nil)
	c.do("GET", "/put?k=a&v=1", nil)
	c.do("GET", "/put?k=c&v=3", nil)
	if got := c.do("GET", "/keys", nil).Body.String(); got != "a,b,c" {
		t.Fatalf("keys = %q", got)
	}
	c.do("GET", "/del?k=b", nil)
	c.do("GET", "/put?k=a&v=10", nil)
	if got := c.do("GET", "/keys", nil).Body.String(); got != "a,c" {
		t.Fatalf("keys after delete = %q", got)
	}
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:10" {
		t.Fatalf("a = %q", got)
	}
	if got := c.do("GET", "/get?k=b", nil).Body.String(); got != "false:" {
		t.Fatalf("deleted b = %q", got)
	}
}

func TestGetWrongType(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := s.Put("n", "not a number"); err != nil {
			t.Fatal(err)
		}
		_, ok, err := session.Get[int](s, "n")
		if err == nil || ok {
			t.Errorf("Get[int] of a string = ok %v, err %v; want an error", ok, err)
		} else if !strings.Contains(err.Error(), `"n"`) || !strings.Contains(err.Error(), "int") {
			t.Errorf("error %q does not name the key and the type", err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

type withFunc struct {
	Name  string
	Items []item
}

type item struct {
	SKU      string
	OnChange func()
}

func TestPutRefusesUnencodable(t *testing.T) {
	m, st := newManager(t, session.Config{})
	var putErr error
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		putErr = session.FromContext(r.Context()).Put("cart", withFunc{Name: "x", Items: []item{{SKU: "a"}}})
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	var ee *session.EncodeError
	if !errors.As(putErr, &ee) {
		t.Fatalf("Put = %v, want an *EncodeError", putErr)
	}
	msg := putErr.Error()
	for _, want := range []string{`"cart"`, "session_test.withFunc", ".Items[0].OnChange", "func()"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %s", msg, want)
		}
	}
	if st.writes() != 0 || w.Header().Get("Set-Cookie") != "" {
		t.Errorf("a refused Put still created a session")
	}
}

func TestMaxSessionBytes(t *testing.T) {
	m, _ := newManager(t, session.Config{MaxSessionBytes: 100})
	c := &client{t: t, h: m.Handler(kv())}
	if w := c.do("GET", "/put?k=a&v="+strings.Repeat("x", 40), nil); w.Code != 200 {
		t.Fatalf("first put: %d %s", w.Code, w.Body)
	}
	w := c.do("GET", "/put?k=b&v="+strings.Repeat("y", 60), nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "too large") || !strings.Contains(w.Body.String(), `"b"`) {
		t.Fatalf("put over the limit: %d %q", w.Code, w.Body)
	}
	// Replacing a value counts the new size, not both.
	if w := c.do("GET", "/put?k=a&v="+strings.Repeat("z", 90), nil); w.Code != 200 {
		t.Fatalf("replacing within the limit: %d %s", w.Code, w.Body)
	}
	if got := c.do("GET", "/keys", nil).Body.String(); got != "a" {
		t.Fatalf("keys = %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestMaxSessions(t *testing.T) {
	var logs syncBuffer
	m, _ := newManager(t, session.Config{MaxSessions: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	// The handler ignores Put's error, as careless handlers do: the
	// middleware must still answer 503.
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Put("a", 1)
		fmt.Fprint(w, "ok")
	}))
	for i := range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 {
			t.Fatalf("session %d: %d", i, w.Code)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "ok") {
		t.Fatalf("third session: %d %q, want 503 without the handler's body", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "too many live sessions") || !strings.Contains(logs.String(), "max=2") {
		t.Errorf("no log line for the refusal: %q", logs.String())
	}
}

func TestRenewID(t *testing.T) {
	var events []string
	l := session.Listener{SessionIDChanged: func(_ context.Context, e session.Event) {
		events = append(events, "changed:"+e.OldKey+">"+e.Key)
	}}
	m, _ := newManager(t, session.Config{Listeners: []session.Listener{l}})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=user&v=alice", nil)
	before := c.cookie
	c.do("GET", "/renew", nil)
	after := c.cookie
	if after == before || after == "" {
		t.Fatalf("id %q -> %q, want a new id", before, after)
	}
	b1, _ := session.ParseID(before)
	b2, _ := session.ParseID(after)
	if want := "changed:" + b1.Base + ">" + b2.Base; len(events) != 1 || events[0] != want {
		t.Fatalf("events = %q, want %q", events, want)
	}
	if got := c.do("GET", "/get?k=user", nil).Body.String(); got != "true:alice" {
		t.Fatalf("data after renew = %q", got)
	}
	old := &client{t: t, h: c.h, cookie: before}
	if got := old.do("GET", "/get?k=user", nil).Body.String(); got != "false:" {
		t.Fatalf("the old id still works: %q", got)
	}
}

func TestInvalidate(t *testing.T) {
	var events []string
	l := session.Listener{SessionDestroyed: func(_ context.Context, e session.Event) {
		var u string
		ok, err := e.Decode("user", &u)
		events = append(events, fmt.Sprintf("destroyed:%s:%v:%s:%v", e.Reason, ok, u, err))
	}}
	m, _ := newManager(t, session.Config{Listeners: []session.Listener{l}})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=user&v=alice", nil)
	old := c.cookie
	w := c.do("GET", "/invalidate", nil)
	if sc := w.Header().Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("invalidate did not clear the cookie: %q", sc)
	}
	if want := "destroyed:invalidated:true:alice:<nil>"; len(events) != 1 || events[0] != want {
		t.Fatalf("events = %q, want %q", events, want)
	}
	c.cookie = old
	if got := c.do("GET", "/get?k=user", nil).Body.String(); got != "false:" {
		t.Fatalf("invalidated session still readable: %q", got)
	}

	// Invalidate then Put: a new session with a new id.
	c.cookie = ""
	c.do("GET", "/put?k=user&v=bob", nil)
	old = c.cookie
	c.do("GET", "/invalidate?then=flash", nil)
	if c.cookie == "" || c.cookie == old {
		t.Fatalf("invalidate+put: cookie %q (old %q), want a new session", c.cookie, old)
	}
	if got := c.do("GET", "/keys", nil).Body.String(); got != "after" {
		t.Fatalf("new session holds %q, want only the new key", got)
	}
}

func TestListenerOrder(t *testing.T) {
	var events []string
	rec := func(name string) func(context.Context, session.Event) {
		return func(_ context.Context, e session.Event) {
			s := name
			if e.Attr != "" {
				s += ":" + e.Attr
			}
			if e.Reason != 0 {
				s += ":" + e.Reason.String()
			}
			events = append(events, s)
		}
	}
	l := session.Listener{
		SessionCreated: rec("created"), SessionDestroyed: rec("destroyed"), SessionIDChanged: rec("idchanged"),
		AttributeAdded: rec("added"), AttributeReplaced: rec("replaced"), AttributeRemoved: rec("removed"),
	}
	second := session.Listener{SessionCreated: rec("created2")}
	m, _ := newManager(t, session.Config{Listeners: []session.Listener{l, second}})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		for _, op := range strings.Split(r.FormValue("ops"), ",") {
			var err error
			switch {
			case strings.HasPrefix(op, "put:"):
				err = s.Put(op[4:], "v")
			case strings.HasPrefix(op, "del:"):
				err = s.Delete(op[4:])
			case op == "renew":
				err = s.RenewID()
			case op == "invalidate":
				err = s.Invalidate()
			}
			if err != nil {
				t.Error(err)
			}
		}
	}))
	c := &client{t: t, h: h}
	step := func(ops string, want ...string) {
		t.Helper()
		events = nil
		c.do("GET", "/?ops="+ops, nil)
		if strings.Join(events, " ") != strings.Join(want, " ") {
			t.Fatalf("ops %s: events %q, want %q", ops, events, want)
		}
	}
	step("put:b,put:a,put:tmp,del:tmp", "created", "created2", "added:a", "added:b")
	step("put:a,del:b,put:c", "replaced:a", "removed:b", "added:c")
	step("renew,put:d", "idchanged", "added:d")
	step("del:nothere")
	step("invalidate,put:x", "destroyed:invalidated", "created", "created2", "added:x")
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var destroyed []string
		l := session.Listener{SessionDestroyed: func(_ context.Context, e session.Event) {
			mu.Lock()
			defer mu.Unlock()
			destroyed = append(destroyed, e.Reason.String())
		}}
		m, _ := newManager(t, session.Config{IdleTimeout: 10 * time.Minute, SweepInterval: time.Minute, Listeners: []session.Listener{l}})
		c := &client{t: t, h: m.Handler(kv())}
		c.do("GET", "/put?k=a&v=1", nil)
		time.Sleep(9 * time.Minute)
		if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
			t.Fatalf("after 9 idle minutes: %q", got)
		}
		// The read above extended the idle deadline.
		time.Sleep(9 * time.Minute)
		if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
			t.Fatalf("9 minutes after the last use: %q", got)
		}
		time.Sleep(12 * time.Minute) // the sweeper runs every minute
		synctest.Wait()
		mu.Lock()
		got := strings.Join(destroyed, ",")
		mu.Unlock()
		if got != "expired" {
			t.Fatalf("destroyed events after expiry = %q, want one expired", got)
		}
		if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "false:" {
			t.Fatalf("expired session still readable: %q", got)
		}
	})
}

func TestAbsoluteTimeoutOnLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var destroyed int
		l := session.Listener{SessionDestroyed: func(context.Context, session.Event) { destroyed++ }}
		m, _ := newManager(t, session.Config{AbsoluteTimeout: time.Hour, SweepInterval: -1, Listeners: []session.Listener{l}})
		c := &client{t: t, h: m.Handler(kv())}
		c.do("GET", "/put?k=a&v=1", nil)
		for range 5 { // busy, but not past the absolute timeout
			time.Sleep(10 * time.Minute)
			if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
				t.Fatalf("busy session lost early: %q", got)
			}
		}
		time.Sleep(11 * time.Minute)
		old := c.cookie
		if got := c.do("GET", "/put?k=b&v=2", nil).Body.String(); got == old {
			t.Fatalf("the expired id was reused")
		}
		if destroyed != 1 {
			t.Fatalf("destroyed fired %d times, want 1 (found expired on load)", destroyed)
		}
		if got := c.do("GET", "/keys", nil).Body.String(); got != "b" {
			t.Fatalf("new session holds %q", got)
		}
	})
}

func TestTouchCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st := newManager(t, session.Config{})
		c := &client{t: t, h: m.Handler(kv())}
		c.do("GET", "/put?k=a&v=1", nil)
		w0 := st.writes()
		for range 10 {
			c.do("GET", "/get?k=a", nil)
		}
		if got := st.writes() - w0; got != 0 {
			t.Fatalf("10 reads within a second wrote %d times, want 0", got)
		}
		time.Sleep(2 * time.Second)
		c.do("GET", "/get?k=a", nil)
		if got := st.writes() - w0; got != 1 {
			t.Fatalf("a read 2 s later wrote %d times, want 1 (access time)", got)
		}
	})
}

func TestBadIDsStartFresh(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	h := m.Handler(kv())
	known := &client{t: t, h: h}
	known.do("GET", "/put?k=a&v=1", nil)
	first := "X" // another first character than the real id's (which is random)
	if known.cookie[0] == 'X' {
		first = "Y"
	}
	for _, cookie := range []string{
		"garbage..$$", strings.Repeat("x", 5000), "AAAAAAAAAAAAAAAAAAAAAAAA.n1", // well-formed, unknown
		"\x00\xff", `"unterminated`, "." + known.cookie,
		first + known.cookie[1:], known.cookie[:len(known.cookie)-4] + "n1", // same route, wrong base
	} {
		c := &client{t: t, h: h, cookie: cookie}
		if w := c.do("GET", "/get?k=a", nil); w.Code != 200 || w.Body.String() != "false:" {
			t.Errorf("cookie %.30q: %d %q", cookie, w.Code, w.Body)
		}
		w := c.do("GET", "/put?k=a&v=2", nil)
		if w.Code != 200 || c.cookie == cookie || c.cookie == known.cookie {
			t.Errorf("cookie %.30q: put gave %d, cookie %.30q: want a fresh session", cookie, w.Code, c.cookie)
		}
	}
	if got := known.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("the real session changed: %q", got)
	}
}

func TestIDInURL(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	h := m.Handler(kv())
	c := &client{t: t, h: h}
	c.do("GET", "/put?k=a&v=1", nil)
	id := c.cookie
	noCookie := &client{t: t, h: h}
	if got := noCookie.do("GET", "/get;jsessionid="+id+"?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("path parameter: %q", got)
	}
	if got := noCookie.do("GET", "/get?k=a&jsessionid="+id, nil).Body.String(); got != "true:1" {
		t.Fatalf("query parameter: %q", got)
	}
	// The URL wins over the cookie, as in Apache.
	other := &client{t: t, h: h}
	other.do("GET", "/put?k=a&v=other", nil)
	if got := other.do("GET", "/get;jsessionid="+id+"?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("URL over cookie: %q", got)
	}
}

func TestEncodeURL(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	var got []string
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		got = append(got, s.EncodeURL("/next?x=1#f"))
		s.Put("a", 1)
		got = append(got, s.EncodeURL("/next?x=1#f"), s.ID())
	}))
	// A new session, a client that may take cookies: no id in URLs.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if got[0] != "/next?x=1#f" || got[1] != "/next?x=1#f" {
		t.Fatalf("EncodeURL for a new session = %q", got)
	}
	id := got[2]
	// A client that sends the id in its URL gets it in the URLs it is given.
	got = nil
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/page;jsessionid="+id, nil))
	if want := "/next;jsessionid=" + id + "?x=1#f"; got[0] != want {
		t.Fatalf("EncodeURL for a URL client = %q, want %q", got[0], want)
	}
	// A client that sends the cookie needs no id in its URLs.
	got = nil
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", w.Result().Cookies()[0].String())
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got[0] != "/next?x=1#f" {
		t.Fatalf("EncodeURL with a cookie = %q", got[0])
	}
}

func TestRebind(t *testing.T) {
	st := &recStore{Store: memstore.New(), alive: map[string]bool{"n2": true}}
	m1, err := session.New(session.Config{Store: st, Route: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	m9, err := session.New(session.Config{Store: aliveStore{st}, Route: "n9"})
	if err != nil {
		t.Fatal(err)
	}
	defer m9.Close()

	c := &client{t: t, h: m1.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil)
	id1, _ := session.ParseID(c.cookie)

	// A store that knows n1 is not alive: served by n9, the session is
	// rebound: same base, n9's route, same data.
	c.h = m9.Handler(kv())
	w := c.do("GET", "/get?k=a", nil)
	if w.Body.String() != "true:1" {
		t.Fatalf("read on n9 = %q", w.Body)
	}
	id9, _ := session.ParseID(c.cookie)
	if id9.Base != id1.Base || id9.Route != "n9" {
		t.Fatalf("rebound id = %q, want base %s route n9", c.cookie, id1.Base)
	}
	// A live route is kept: no churn on round robin.
	live := &client{t: t, h: c.h, cookie: id1.Base + ".n2"}
	if w := live.do("GET", "/get?k=a", nil); w.Header().Get("Set-Cookie") != "" || w.Body.String() != "true:1" {
		t.Fatalf("a live route was rebound: %q %q", w.Header().Get("Set-Cookie"), w.Body)
	}
	// Without a RouteChecker, a foreign route is always rebound.
	c.h = m1.Handler(kv())
	c.do("GET", "/get?k=a", nil)
	if id, _ := session.ParseID(c.cookie); id.Route != "n1" || id.Base != id1.Base {
		t.Fatalf("rebind to n1 = %q", c.cookie)
	}
}

// Commit-before-header: a writer that checks, at the moment the status
// line would go out, that the store already holds the change.
type checkingWriter struct {
	*httptest.ResponseRecorder
	check   func() bool
	checked []bool
}

func (w *checkingWriter) WriteHeader(code int) {
	w.checked = append(w.checked, w.check())
	w.ResponseRecorder.WriteHeader(code)
}

func (w *checkingWriter) Write(b []byte) (int, error) {
	if !w.ResponseRecorder.Flushed && w.Code == 200 && len(w.checked) == 0 {
		w.checked = append(w.checked, w.check())
	}
	return w.ResponseRecorder.Write(b)
}

func (w *checkingWriter) Flush() {
	if len(w.checked) == 0 {
		w.checked = append(w.checked, w.check())
	}
	w.ResponseRecorder.Flush()
}

func TestCommitBeforeHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(201) }},
		{"Write", func(w http.ResponseWriter) { w.Write([]byte("hi")) }},
		{"Flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }},
		{"ResponseController.Flush", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }},
		{"return", func(http.ResponseWriter) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, st := newManager(t, session.Config{})
			var id string
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := session.FromContext(r.Context())
				if err := s.Put("k", "v"); err != nil {
					t.Fatal(err)
				}
				id = s.ID()
				tc.write(w)
				if err := s.Put("late", "v"); !errors.Is(err, session.ErrCommitted) && tc.name != "return" {
					t.Errorf("Put after the response started = %v, want ErrCommitted", err)
				}
			}))
			cw := &checkingWriter{ResponseRecorder: httptest.NewRecorder()}
			cw.check = func() bool {
				pid, _ := session.ParseID(id)
				_, err := st.Load(context.Background(), pid.Base)
				return err == nil && cw.Header().Get("Set-Cookie") != ""
			}
			h.ServeHTTP(cw, httptest.NewRequest("GET", "/", nil))
			if tc.name == "return" {
				// net/http writes the implicit 200 after the handler
				// returns; by then the commit must be done.
				cw.WriteHeader(200)
			}
			if len(cw.checked) == 0 || !cw.checked[0] {
				t.Fatalf("status line went out before the commit (checks %v)", cw.checked)
			}
		})
	}
}

func TestCommitBeforeHijack(t *testing.T) {
	m, st := newManager(t, session.Config{})
	var committed bool
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Put("k", "v")
		id, _ := session.ParseID(s.ID())
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, err = st.Load(context.Background(), id.Base)
		committed = err == nil
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		buf.Flush()
	})))
	defer srv.Close()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !committed {
		t.Fatal("session not committed before Hijack returned")
	}
}

func TestPanicCommitsNothing(t *testing.T) {
	m, st := newManager(t, session.Config{})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil)
	w0 := st.writes()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		s.Put("a", "changed")
		s.Put("b", "new")
		panic("handler bug")
	}))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic was swallowed")
			}
		}()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "JSESSIONID="+c.cookie)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}()
	if st.writes() != w0 {
		t.Fatal("a panicking handler committed")
	}
	if got := c.do("GET", "/keys", nil).Body.String(); got != "a" {
		t.Fatalf("keys after panic = %q", got)
	}
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("a after panic = %q", got)
	}
}

func TestCommitFailure(t *testing.T) {
	m, st := newManager(t, session.Config{})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil)
	st.mu.Lock()
	st.failWrite = errors.New("store down")
	st.mu.Unlock()
	var writeErr error
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Put("a", "2")
		_, writeErr = w.Write([]byte("saved!"))
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "JSESSIONID="+c.cookie)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 500 || strings.Contains(w.Body.String(), "saved!") {
		t.Fatalf("failed commit answered %d %q, want 500 without the handler's body", w.Code, w.Body)
	}
	if writeErr == nil {
		t.Fatal("the handler's Write after a failed commit returned no error")
	}
	st.mu.Lock()
	st.failWrite = nil
	st.mu.Unlock()
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("a = %q after a failed commit", got)
	}
}

func TestConcurrentRequestsKeepBothChanges(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	h := m.Handler(kv())
	c := &client{t: t, h: h}
	c.do("GET", "/put?k=seed&v=1", nil)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			cc := &client{t: t, h: h, cookie: c.cookie}
			cc.do("GET", fmt.Sprintf("/put?k=k%02d&v=%d", i, i), nil)
		})
	}
	wg.Wait()
	keys := c.do("GET", "/keys", nil).Body.String()
	if n := len(strings.Split(keys, ",")); n != 21 {
		t.Fatalf("%d keys after 20 concurrent puts of different keys: %s", n, keys)
	}
}

func TestOutsideMiddleware(t *testing.T) {
	s := session.FromContext(context.Background())
	if err := s.Put("a", 1); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Put = %v", err)
	}
	if _, _, err := session.Get[int](s, "a"); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Get = %v", err)
	}
	if s.ID() != "" {
		t.Errorf("ID = %q", s.ID())
	}
}

func TestEvict(t *testing.T) {
	var reasons []string
	l := session.Listener{SessionDestroyed: func(_ context.Context, e session.Event) { reasons = append(reasons, e.Reason.String()) }}
	m, _ := newManager(t, session.Config{Listeners: []session.Listener{l}})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil)
	if err := m.Evict(context.Background(), c.cookie); err != nil {
		t.Fatal(err)
	}
	if err := m.Evict(context.Background(), c.cookie); err != nil {
		t.Fatalf("evicting twice: %v", err)
	}
	if strings.Join(reasons, ",") != "evicted" {
		t.Fatalf("reasons = %q", reasons)
	}
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "false:" {
		t.Fatalf("evicted session readable: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  session.Config
		want string
	}{
		{session.Config{}, "Store is nil"},
		{session.Config{Store: memstore.New(), Route: "a.b"}, "Route"},
		{session.Config{Store: memstore.New(), CookieName: "bad name"}, "CookieName"},
		{session.Config{Store: memstore.New(), MaxSessions: -1}, "MaxSessions"},
	} {
		if _, err := session.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
}

// keyStore chooses keys, as the cluster does to keep sessions local.
type keyStore struct {
	*recStore
	n int
}

func (s *keyStore) NewKey() string {
	s.n++
	return fmt.Sprintf("chosen-key-%013d", s.n)
}

func TestKeyGenerator(t *testing.T) {
	st := &keyStore{recStore: &recStore{Store: memstore.New()}}
	m, _ := newManager(t, session.Config{Store: st})
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil)
	if c.cookie != "chosen-key-0000000000001.n1" {
		t.Fatalf("new session id = %q, want the store's key", c.cookie)
	}
	c.do("GET", "/renew", nil)
	if c.cookie != "chosen-key-0000000000002.n1" {
		t.Fatalf("renewed id = %q, want the store's next key", c.cookie)
	}
	if got := c.do("GET", "/get?k=a", nil).Body.String(); got != "true:1" {
		t.Fatalf("after renew: %q", got)
	}
}

func TestPutKeyLimits(t *testing.T) {
	m, _ := newManager(t, session.Config{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		for _, k := range []string{"", strings.Repeat("k", session.MaxKeyLen+1)} {
			if err := s.Put(k, 1); !errors.Is(err, session.ErrBadKey) {
				t.Errorf("Put(key of %d bytes) = %v, want ErrBadKey", len(k), err)
			}
		}
		if err := s.Put(strings.Repeat("k", session.MaxKeyLen), 1); err != nil {
			t.Errorf("Put of a %d-byte key: %v", session.MaxKeyLen, err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}
