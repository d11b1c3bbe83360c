package balancer

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// healthBackend is a backend whose readiness answer the test sets.
type healthBackend struct {
	*backend
	status atomic.Int64 // what /healthz/ready answers; 0 means hang up
	checks atomic.Int64 // health checks answered
}

func newHealthBackend(t *testing.T, name string) *healthBackend {
	hb := &healthBackend{backend: newBackend(t, name)}
	hb.status.Store(200)
	inner := hb.srv.Config.Handler
	hb.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz/ready" {
			inner.ServeHTTP(w, r)
			return
		}
		hb.checks.Add(1)
		code := int(hb.status.Load())
		if code == 0 {
			panic(http.ErrAbortHandler) // the connection is cut
		}
		writePlain(w, code, http.StatusText(code))
	})
	return hb
}

func healthConfig(t *testing.T, members ...string) Config {
	cfg := testConfig(t, members...)
	cfg.Health = HealthConfig{Path: "/healthz/ready", Interval: 5 * time.Millisecond, Timeout: 5 * time.Second, Rise: 2, Fall: 3}
	return cfg
}

func TestHealthFallAndRise(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failure int64
	}{{"status 500", 500}, {"connection cut", 0}} {
		failure := tc.failure
		t.Run(tc.name, func(t *testing.T) {
			n1, n2 := newHealthBackend(t, "n1"), newHealthBackend(t, "n2")
			tb := startBalancer(t, healthConfig(t, n1.member(), n2.member()))
			m := tb.member("n1")
			waitFor(t, "first checks", func() bool { return n1.checks.Load() >= 2 })

			n1.status.Store(failure)
			from := n1.checks.Load()
			waitFor(t, "n1 in error", func() bool { return m.Status().State == StateError })
			if n := n1.checks.Load() - from; n < 3 {
				t.Errorf("n1 in error after %d failed checks, want 3", n)
			}
			if len(tb.log.lines(`msg="member failed health checks"`, "member=n1", "fails=3")) != 1 {
				t.Errorf("want one \"member failed health checks\" line; log:\n%s", tb.log)
			}
			for range 4 {
				if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.body != "n2" {
					t.Errorf("n1 failing its checks got a request (even a sticky one must not)")
				}
			}

			n1.status.Store(200)
			from = n1.checks.Load()
			waitFor(t, "n1 back", func() bool { return m.Status().State == StateOK })
			if n := n1.checks.Load() - from; n < 2 {
				t.Errorf("n1 back after %d passed checks, want 2", n)
			}
			if len(tb.log.lines(`msg="member passed health checks"`, "member=n1", "passes=2")) != 1 {
				t.Errorf("want one \"member passed health checks\" line; log:\n%s", tb.log)
			}
			if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.body != "n1" {
				t.Errorf("n1 back: sticky request went to %s", r.body)
			}
		})
	}
}

func TestHealthNotReadyDrains(t *testing.T) {
	n1, n2 := newHealthBackend(t, "n1"), newHealthBackend(t, "n2")
	tb := startBalancer(t, healthConfig(t, n1.member(), n2.member()))
	m := tb.member("n1")
	n1.status.Store(503)
	waitFor(t, "n1 draining", func() bool { return m.Status().State == StateDraining })
	if st := m.Status(); st.Reason != "not ready" {
		t.Errorf("n1 draining because %q, want \"not ready\"", st.Reason)
	}
	for range 6 {
		if r := tb.get(t, "/"); r.body != "n2" {
			t.Errorf("a new session went to the draining n1")
		}
	}
	if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.body != "n1" {
		t.Errorf("a sticky request of n1's went to %s, want n1 (draining keeps its sessions)", r.body)
	}
	n1.status.Store(200)
	waitFor(t, "n1 ready", func() bool { return m.Status().State == StateOK })
	if len(tb.log.lines(`msg="member not ready`, "member=n1")) != 1 || len(tb.log.lines(`msg="member ready"`, "member=n1")) != 1 {
		t.Errorf("want one line for not ready and one for ready; log:\n%s", tb.log)
	}
}

func TestApplyHealth(t *testing.T) {
	// The exact counts, step by step: Fall=3, Rise=2.
	cfg := testConfig(t, "n1=http://127.0.0.1:1")
	cfg.Health = HealthConfig{Path: "/h", Interval: time.Hour, Timeout: time.Second, Rise: 2, Fall: 3}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // stop the checks: the test drives applyHealth itself
	m := b.Members()[0]
	m.down.Store(false)
	m.notReady.Store(false)
	var h healthCounts
	steps := []struct {
		res  healthResult
		want State
	}{
		{healthFail, StateOK},
		{healthFail, StateOK},
		{healthPass, StateOK}, // a pass resets the failures
		{healthFail, StateOK},
		{healthFail, StateOK},
		{healthFail, StateError},
		{healthPass, StateError},
		{healthFail, StateError}, // a failure resets the passes
		{healthPass, StateError},
		{healthNotReady, StateDraining}, // alive: counts as a pass, and drains
		{healthPass, StateOK},
		{healthNotReady, StateDraining},
		{healthFail, StateDraining},
		{healthPass, StateOK},
	}
	fails := uint64(0)
	for i, s := range steps {
		b.applyHealth(m, &h, s.res, "test")
		if got := m.Status().State; got != s.want {
			t.Fatalf("step %d (%v): state %s, want %s", i, s.res, got, s.want)
		}
		if s.res == healthFail {
			fails++
		}
	}
	if got := m.stats.errors[failHealth].Load(); got != fails {
		t.Errorf("errors{reason=health} = %d, want %d (one per failed check)", got, fails)
	}
}

func TestHealthRecoveryEndsError(t *testing.T) {
	// A member in error after failed requests that then fails and passes
	// its checks is usable at once, not only after Retry.
	cfg := testConfig(t, "n1=http://127.0.0.1:1")
	cfg.Health = HealthConfig{Path: "/h", Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	m := b.Members()[0]
	m.markError(time.Now().UnixNano(), time.Hour, "refused")
	var h healthCounts
	b.applyHealth(m, &h, healthFail, "refused")
	b.applyHealth(m, &h, healthPass, "")
	if st := m.Status(); st.State != StateOK {
		t.Errorf("after the checks recovered: %s (%s), want ok", st.State, st.Reason)
	}
}
