// Package middleware benchmarks shoal's session middleware against
// alexedwards/scs v2 with its memory store, on the same handlers in the
// same run. Run:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./bench/middleware/
//
// See bench/README.md for the figures.
package middleware

import (
	"encoding/gob"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

// User is the small struct a typical login stores.
type User struct {
	Name     string
	Email    string
	Roles    []string
	LoggedIn time.Time
	ID       int64
}

func init() {
	// scs stores gob-encoded map[string]any: interface values need their
	// types registered (shoal's codec does not).
	gob.Register(User{})
}

var alice = User{Name: "alice", Email: "alice@example.com", Roles: []string{"user", "admin"}, LoggedIn: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), ID: 42}

// discard is a minimal ResponseWriter, reset between iterations, so that
// the benchmark measures the middleware rather than httptest.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) reset() {
	clear(d.h)
	d.code = 0
}

func cookieFrom(t testing.TB, h http.Header, name string) string {
	for _, sc := range h.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(sc, name+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v
		}
	}
	t.Fatalf("no %s cookie in %v", name, h)
	return ""
}

// app is one pair of handlers (login, then the measured request) for one
// session library.
type app struct {
	login, read, write, none http.Handler
	cookie                   string
	close                    func()
}

func shoalApp(tb testing.TB) *app {
	m, err := session.New(session.Config{Store: memstore.New(), Route: "n1"})
	if err != nil {
		tb.Fatal(err)
	}
	a := &app{cookie: "JSESSIONID", close: func() { m.Close() }}
	a.login = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := s.Put("user", alice); err != nil {
			tb.Fatal(err)
		}
		if err := s.Put("count", 0); err != nil {
			tb.Fatal(err)
		}
	}))
	a.read = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := session.Get[User](session.FromContext(r.Context()), "user")
		if err != nil || !ok || u.ID != 42 {
			tb.Fatalf("read: %v %v %v", u, ok, err)
		}
		w.Write([]byte("ok"))
	}))
	a.write = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _, err := session.Get[int](s, "count")
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Put("count", n+1); err != nil {
			tb.Fatal(err)
		}
		w.Write([]byte("ok"))
	}))
	a.none = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	return a
}

func scsApp(tb testing.TB, idle time.Duration) *app {
	sm := scs.New()
	sm.IdleTimeout = idle
	a := &app{cookie: sm.Cookie.Name, close: func() {}}
	a.login = sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "user", alice)
		sm.Put(r.Context(), "count", 0)
	}))
	a.read = sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := sm.Get(r.Context(), "user").(User)
		if !ok || u.ID != 42 {
			tb.Fatalf("read: %v", u)
		}
		w.Write([]byte("ok"))
	}))
	a.write = sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "count", sm.GetInt(r.Context(), "count")+1)
		w.Write([]byte("ok"))
	}))
	a.none = sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	return a
}

var apps = []struct {
	name string
	make func(testing.TB) *app
}{
	{"shoal", shoalApp},
	{"scs", func(tb testing.TB) *app { return scsApp(tb, 0) }},
	// scs with an idle timeout, the feature shoal has on by default:
	// scs then re-encodes and stores the session on every request.
	{"scs-idle", func(tb testing.TB) *app { return scsApp(tb, 30*time.Minute) }},
}

// bare is the same handler without any session middleware: the floor.
var bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

func loggedInRequest(b *testing.B, a *app) *http.Request {
	w := &discard{h: http.Header{}}
	r, _ := http.NewRequest("POST", "http://example.test/login", nil)
	a.login.ServeHTTP(w, r)
	r, _ = http.NewRequest("GET", "http://example.test/", nil)
	r.Header.Set("Cookie", a.cookie+"="+cookieFrom(b, w.h, a.cookie))
	return r
}

func benchmark(b *testing.B, pick func(*app) http.Handler) {
	b.Run("bare", func(b *testing.B) {
		r, _ := http.NewRequest("GET", "http://example.test/", nil)
		w := &discard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			bare.ServeHTTP(w, r)
		}
	})
	for _, lib := range apps {
		b.Run(lib.name, func(b *testing.B) {
			a := lib.make(b)
			defer a.close()
			r := loggedInRequest(b, a)
			h := pick(a)
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkRead: a logged-in request that reads the user struct.
func BenchmarkRead(b *testing.B) { benchmark(b, func(a *app) http.Handler { return a.read }) }

// BenchmarkWrite: a logged-in request that increments a counter.
func BenchmarkWrite(b *testing.B) { benchmark(b, func(a *app) http.Handler { return a.write }) }

// BenchmarkUntouched: a logged-in request whose handler does not use the
// session (static content behind the middleware).
func BenchmarkUntouched(b *testing.B) { benchmark(b, func(a *app) http.Handler { return a.none }) }

// BenchmarkReadParallel: reads of many sessions from all cores at once.
func BenchmarkReadParallel(b *testing.B) {
	for _, lib := range apps {
		b.Run(lib.name, func(b *testing.B) {
			a := lib.make(b)
			defer a.close()
			reqs := make([]*http.Request, 64)
			for i := range reqs {
				reqs[i] = loggedInRequest(b, a)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &discard{h: http.Header{}}
				i := 0
				for pb.Next() {
					w.reset()
					a.read.ServeHTTP(w, reqs[i%len(reqs)])
					i++
				}
			})
		})
	}
}

// BenchmarkIdleSessionMemory creates 100,000 logged-in sessions (the User
// struct above) and reports the heap they hold, per session.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const n = 100_000
	for _, lib := range apps[:2] {
		b.Run(lib.name, func(b *testing.B) {
			for b.Loop() {
				a := lib.make(b)
				w := &discard{h: http.Header{}}
				r, _ := http.NewRequest("POST", "http://example.test/login", nil)
				before := heap()
				for range n {
					w.reset()
					a.login.ServeHTTP(w, r)
				}
				after := heap()
				b.ReportMetric(float64(after-before)/n, "B/session")
				runtime.KeepAlive(a)
				a.close()
			}
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
