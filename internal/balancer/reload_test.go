package balancer

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReloadRefusesBadConfig(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	cfg := testConfig(t, n1.member(), n2.member())
	tb := startBalancer(t, cfg)
	before := tb.Members()
	bad := []struct {
		name string
		edit func(*Config)
	}{
		{"route twice", func(c *Config) { c.Members = append(c.Members, c.Members[0]) }},
		{"no member", func(c *Config) { c.Members = nil }},
		{"unknown method", func(c *Config) { c.Method = "fastest" }},
		{"bad sticky", func(c *Config) { c.Sticky = "a b" }},
		{"negative retry", func(c *Config) { c.Retry = -time.Second }},
		{"bad status", func(c *Config) { c.FailOnStatus = []int{99} }},
		{"bad health", func(c *Config) { c.Health = HealthConfig{Path: "x"} }},
		{"bad member URL", func(c *Config) { c.Members[1].URL = "ftp://x" }},
	}
	for _, tt := range bad {
		c := cfg
		c.Members = append([]MemberConfig(nil), cfg.Members...)
		c.Members[0].Weight = 7 // would change n1 if anything were applied
		tt.edit(&c)
		err := tb.Reload(c)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Reload = %v, want ErrInvalidConfig", tt.name, err)
		}
	}
	after := tb.Members()
	if len(after) != 2 || after[0] != before[0] || after[1] != before[1] || after[0].Weight() != 1 {
		t.Fatalf("a refused reload changed the members: %v", memberRoutes(after))
	}
	if r := tb.get(t, "/"); r.code != 200 {
		t.Errorf("after refused reloads: %d", r.code)
	}
}

func TestReloadMembers(t *testing.T) {
	n1, n2, n3 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "n3")
	tb := startBalancer(t, testConfig(t, n1.member(), n2.member()))
	for range 4 {
		tb.get(t, "/")
	}
	m1 := tb.member("n1")
	m1.SetDraining(true) // a change made at run time (the manager)
	reqs := m1.Status().Requests

	// n1 stays (weight 3), n2 goes, n3 comes.
	if err := tb.Reload(testConfig(t, n1.member("weight=3"), n3.member())); err != nil {
		t.Fatal(err)
	}
	ms := tb.Members()
	if got := strings.Join(memberRoutes(ms), ","); got != "n1,n3" {
		t.Fatalf("members %s, want n1,n3", got)
	}
	if ms[0] != m1 {
		t.Fatal("n1 is a new *Member: its counters and state are lost")
	}
	if m1.Weight() != 3 || m1.Status().Requests != reqs {
		t.Errorf("n1: weight %v requests %d, want 3 and %d", m1.Weight(), m1.Status().Requests, reqs)
	}
	if m1.Status().State != StateDraining {
		t.Errorf("n1 is %s: a reload that does not change drain undid the manager's drain", m1.Status().State)
	}
	hits2 := n2.hits.Load()
	for range 6 {
		if r := tb.get(t, "/"); r.code != 200 || r.body != "n3" { // n1 drains: only n3 takes new requests
			t.Fatalf("got %d %q, want 200 from n3", r.code, r.body)
		}
	}
	if r := tb.get(t, "/", "Cookie: JSESSIONID=x.n1"); r.body != "n1" {
		t.Errorf("n1's session went to %q", r.body)
	}
	if n2.hits.Load() != hits2 {
		t.Error("a removed member got requests")
	}

	// The config now says drain, then not: both are applied.
	if err := tb.Reload(testConfig(t, n1.member("weight=3", "drain"), n3.member())); err != nil {
		t.Fatal(err)
	}
	if err := tb.Reload(testConfig(t, n1.member("weight=3"), n3.member("standby"))); err != nil {
		t.Fatal(err)
	}
	if st := m1.Status().State; st != StateOK {
		t.Errorf("n1 is %s after the config dropped drain, want ok", st)
	}
	if !tb.member("n3").Standby() {
		t.Error("n3 is not a standby")
	}
	for range 3 {
		if r := tb.get(t, "/"); r.body != "n1" {
			t.Errorf("got %q, want n1 (n3 is a standby)", r.body)
		}
	}
}

func TestReloadMemberURL(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	tb := startBalancer(t, testConfig(t, "n1="+a.srv.URL))
	if r := tb.get(t, "/"); r.body != "a" {
		t.Fatalf("got %q, want a", r.body)
	}
	m := tb.member("n1")
	if err := tb.Reload(testConfig(t, "n1="+b.srv.URL)); err != nil {
		t.Fatal(err)
	}
	if tb.member("n1") != m {
		t.Fatal("a new URL made a new *Member")
	}
	for range 3 {
		if r := tb.get(t, "/"); r.body != "b" {
			t.Fatalf("got %q, want b (the new URL)", r.body)
		}
	}
	if m.URL().String() != b.srv.URL {
		t.Errorf("URL() = %s, want %s", m.URL(), b.srv.URL)
	}
}

func TestReloadSettings(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	cfg := testConfig(t, n1.member(), n2.member())
	tb := startBalancer(t, cfg)
	if r := tb.get(t, "/", "Cookie: JSESSIONID=x.n2"); r.body != "n2" {
		t.Fatalf("sticky: got %q", r.body)
	}
	off := cfg
	off.Sticky = ""
	off.Method = "hash"
	off.HashKey = "header:X-User"
	if err := tb.Reload(off); err != nil {
		t.Fatal(err)
	}
	first := tb.get(t, "/", "X-User: alice").body
	for range 4 {
		if r := tb.get(t, "/", "X-User: alice", "Cookie: JSESSIONID=x.n2"); r.body != first {
			t.Fatalf("hash after reload: %q then %q (the cookie must be ignored, the key must stick)", first, r.body)
		}
	}
	n2.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	fail := cfg
	fail.FailOnStatus = []int{503}
	fail.Method = "byrequests"
	if err := tb.Reload(fail); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if r := tb.get(t, "/"); r.code != 200 || r.body != "n1" {
			t.Fatalf("failonstatus after reload: %d %q, want 200 from n1", r.code, r.body)
		}
	}
}

func TestReloadWaitsForRequestsInFlight(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	started, release := make(chan struct{}), make(chan struct{})
	n2.handle(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "n2 slow")
	})
	tb := startBalancer(t, testConfig(t, n1.member(), n2.member()))
	got := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest("GET", tb.front.URL+"/", nil)
		req.Header.Set("Cookie", "JSESSIONID=x.n2")
		res, err := testClient.Do(req)
		if err != nil {
			got <- reply{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got <- reply{code: res.StatusCode, body: string(b)}
	}()
	<-started
	if err := tb.Reload(testConfig(t, n1.member())); err != nil {
		t.Fatal(err)
	}
	if r := tb.get(t, "/", "Cookie: JSESSIONID=x.n2"); r.body != "n1" {
		t.Errorf("a new request went to %q after n2 was removed", r.body)
	}
	close(release)
	if r := <-got; r.code != 200 || r.body != "n2 slow" {
		t.Errorf("the request in flight on the removed member got %d %q, want 200 \"n2 slow\"", r.code, r.body)
	}
}

// TestReloadUnderLoad reloads in a loop while clients send requests:
// every request must succeed, and -race must see no race.
func TestReloadUnderLoad(t *testing.T) {
	n1, n2, n3 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "n3")
	base := testConfig(t, n1.member(), n2.member())
	tb := startBalancer(t, base)

	configs := []func() Config{
		func() Config { return base },
		func() Config {
			c := testConfig(t, n1.member("weight=2"), n2.member(), n3.member())
			c.Method = "p2c"
			return c
		},
		func() Config { c := testConfig(t, n2.member(), n3.member()); c.Method = "bybusyness"; return c },
		func() Config {
			c := testConfig(t, n1.member(), n3.member("standby"))
			c.Method, c.HashKey, c.Sticky = "hash", "cookie:JSESSIONID", ""
			return c
		},
		func() Config {
			c := testConfig(t, n1.member(), n2.member())
			c.FailOnStatus, c.MaxAttempts, c.ConnectTimeout, c.Retry = []int{502}, 2, 2*time.Second, time.Second
			return c
		},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	deadline := time.Now().Add(1500 * time.Millisecond)
	for c := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && i < 5000; i++ {
				var body io.Reader
				method := "GET"
				if i%3 == 0 {
					method, body = "POST", strings.NewReader(fmt.Sprintf("client %d request %d", c, i))
				}
				req, _ := http.NewRequest(method, tb.front.URL+"/", body)
				if i%2 == 0 {
					req.Header.Set("Cookie", fmt.Sprintf("JSESSIONID=s%d.n%d", c, 1+i%3))
				}
				res, err := testClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				ok.Add(1)
			}
		})
	}
	reloads := 0
	wg.Go(func() {
		for i := 0; time.Now().Before(deadline); i++ {
			if err := tb.Reload(configs[i%len(configs)]()); err != nil {
				msg := "reload: " + err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				failed.Add(1)
			}
			reloads++
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	wg.Wait()
	close(stop)
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed under %d reloads; first: %s", failed.Load(), failed.Load()+ok.Load(), reloads, *firstErr.Load())
	}
	if ok.Load() < 50 || reloads < 10 {
		t.Fatalf("only %d requests and %d reloads: the test proved little", ok.Load(), reloads)
	}
	t.Logf("%d requests, %d reloads, no error", ok.Load(), reloads)
	for _, m := range tb.Members() {
		if n := m.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after the load", m.Route(), n)
		}
	}
}
