package cli

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/internal/doctor"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

// loneNode returns a lone node's handler with its operational endpoints.
func loneNode(t *testing.T) (http.Handler, *session.Manager) {
	t.Helper()
	cfg := &nodeConfig{name: "n1"}
	store := memstore.New()
	mgr, err := session.New(session.Config{Store: store, Route: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	log := slog.New(slog.DiscardHandler)
	h, err := withNodeEndpoints(cfg, mgr, store, log, mgr.Handler(demoapp.New("n1", log)))
	if err != nil {
		t.Fatal(err)
	}
	return h, mgr
}

func serve(h http.Handler, method, target, cookie string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestProbe: written, read, deleted; a probe never reads a session that
// is not a probe, and ignores the cookie it is sent.
func TestProbe(t *testing.T) {
	h, _ := loneNode(t)
	// A user's session, whose cookie the probe must not touch.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/login", strings.NewReader("user=alice"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(w, r)
	var user struct{ Session string }
	if err := json.Unmarshal(w.Body.Bytes(), &user); err != nil || user.Session == "" {
		t.Fatalf("login: %s %v", w.Body, err)
	}

	w = serve(h, "POST", doctor.ProbePath, "JSESSIONID="+user.Session)
	var p doctor.Probe
	if err := json.Unmarshal(w.Body.Bytes(), &p); w.Code != 200 || err != nil {
		t.Fatalf("POST probe: %d %s %v", w.Code, w.Body, err)
	}
	if p.Session == user.Session || p.Node != "n1" || p.WrittenBy != "n1" || p.WrittenAt.IsZero() {
		t.Fatalf("probe %+v: want a new session written by n1", p)
	}
	w = serve(h, "GET", doctor.ProbePath+"?session="+url.QueryEscape(p.Session), "")
	var got doctor.Probe
	if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil || !got.WrittenAt.Equal(p.WrittenAt) {
		t.Fatalf("GET probe: %d %s %v, want written at %v", w.Code, w.Body, err, p.WrittenAt)
	}
	// A user's session is no probe: 404, as for no session at all.
	for _, id := range []string{user.Session, "AAAAAAAAAAAAAAAAAAAAAAAA.n1"} {
		if w := serve(h, "GET", doctor.ProbePath+"?session="+id, ""); w.Code != 404 {
			t.Errorf("GET probe of %s: %d %s, want 404", id, w.Code, w.Body)
		}
		if w := serve(h, "DELETE", doctor.ProbePath+"?session="+id, ""); w.Code != 404 {
			t.Errorf("DELETE probe of %s: %d %s, want 404", id, w.Code, w.Body)
		}
	}
	if w := serve(h, "GET", "/whoami", "JSESSIONID="+user.Session); w.Code != 200 || !strings.Contains(w.Body.String(), "alice") {
		t.Fatalf("the user's session after probes: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{"", "x", "a.b.c", strings.Repeat("A", 300)} {
		if w := serve(h, "GET", doctor.ProbePath+"?session="+bad, ""); w.Code != 400 {
			t.Errorf("GET probe ?session=%q: %d, want 400", bad, w.Code)
		}
	}
	if w := serve(h, "DELETE", doctor.ProbePath+"?session="+p.Session, ""); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE probe: %d %s", w.Code, w.Body)
	}
	if w := serve(h, "GET", doctor.ProbePath+"?session="+p.Session, ""); w.Code != 404 {
		t.Fatalf("GET probe after DELETE: %d", w.Code)
	}
}

// TestProbeRateLimited: probes cost no more than a few sessions a second.
func TestProbeRateLimited(t *testing.T) {
	h, mgr := loneNode(t)
	limited := 0
	for range 3 * probeWritesPerSecond {
		if serve(h, "POST", doctor.ProbePath, "").Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("%d probes in a row: none refused", 3*probeWritesPerSecond)
	}
	if got := mgr.Stats().Created.Load(); got > probeWritesPerSecond+1 {
		t.Fatalf("%d probe sessions created, want at most %d", got, probeWritesPerSecond+1)
	}
}

// TestOperationalEndpointsRefuseProxies: through a balancer (which adds
// X-Forwarded-For) the status, probe and metrics are refused; the app is
// not.
func TestOperationalEndpointsRefuseProxies(t *testing.T) {
	h, _ := loneNode(t)
	for _, c := range []struct{ method, path string }{
		{"GET", "/metrics"}, {"GET", doctor.StatusPath}, {"POST", doctor.ProbePath},
	} {
		if w := serve(h, c.method, c.path, "", "X-Forwarded-For", "192.0.2.1"); w.Code != http.StatusForbidden {
			t.Errorf("%s %s through a proxy: %d, want 403", c.method, c.path, w.Code)
		}
		if w := serve(h, c.method, c.path, "", "Forwarded", "for=192.0.2.1"); w.Code != http.StatusForbidden {
			t.Errorf("%s %s with Forwarded: %d, want 403", c.method, c.path, w.Code)
		}
	}
	if w := serve(h, "GET", "/", "", "X-Forwarded-For", "192.0.2.1"); w.Code != 200 {
		t.Errorf("the app through a proxy: %d", w.Code)
	}
	w := serve(h, "GET", doctor.StatusPath, "")
	var st doctor.NodeStatus
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Node != "n1" || st.Store != "memory" || st.Cookie != "JSESSIONID" {
		t.Fatalf("status: %s %v", w.Body, err)
	}
}

// TestMulticastReport: the node says why multicast cannot work on its host.
func TestMulticastReport(t *testing.T) {
	ifc := func(name string, flags net.Flags) net.Interface { return net.Interface{Name: name, Flags: flags} }
	cases := []struct {
		name    string
		ifs     []net.Interface
		route   error
		problem string
		want    []string
	}{
		{"ok", []net.Interface{ifc("lo", net.FlagUp|net.FlagLoopback), ifc("eth0", net.FlagUp|net.FlagMulticast)}, nil, "", []string{"eth0"}},
		{"no multicast flag", []net.Interface{ifc("lo", net.FlagUp|net.FlagLoopback|net.FlagMulticast), ifc("eth0", net.FlagUp)}, nil,
			"no interface is up with the MULTICAST flag", []string{}},
		{"interface down", []net.Interface{ifc("eth0", net.FlagMulticast)}, nil, "no interface is up with the MULTICAST flag", []string{}},
		{"no route", []net.Interface{ifc("eth0", net.FlagUp|net.FlagMulticast)}, errors.New("network is unreachable"),
			"no route to the multicast group: network is unreachable", []string{"eth0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dialed string
			rt := &nodeRuntime{
				interfaces: func() ([]net.Interface, error) { return c.ifs, nil },
				dialUDP:    func(addr string) error { dialed = addr; return c.route },
			}
			m := rt.multicast("multicast://228.0.0.4:45564")
			if m.Problem != c.problem || m.Group != "228.0.0.4:45564" || dialed != m.Group || m.Route != (c.route == nil) ||
				strings.Join(m.Interfaces, ",") != strings.Join(c.want, ",") {
				t.Errorf("report %+v, want problem %q, interfaces %v", m, c.problem, c.want)
			}
		})
	}
}
