package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/doctor"
)

// fakeNode serves a node's GET /healthz/cluster and GET /metrics from
// what the test sets.
type fakeNode struct {
	srv     *httptest.Server
	status  atomic.Pointer[string] // the JSON served
	metrics atomic.Pointer[string] // the text served
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	n := &fakeNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case doctor.StatusPath:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, *n.status.Load())
		case "/metrics":
			m := n.metrics.Load()
			if m == nil {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, *m)
		default:
			fmt.Fprint(w, "app")
		}
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) set(status, metrics string) {
	n.status.Store(&status)
	n.metrics.Store(&metrics)
}

// clusterStatus returns a node's status JSON: name and state, sessions,
// and the members it sees as name=state pairs (HTTP address: http).
func clusterStatus(t *testing.T, name, state string, primary, backup int, members ...string) string {
	t.Helper()
	st := doctor.NodeStatus{Node: name, State: state, Time: time.Now(), Cookie: "JSESSIONID", Store: "cluster",
		Cluster:  &doctor.ClusterStatus{Owners: "2", Replication: "sync", Members: []doctor.Member{}, Refusals: []doctor.Refusal{}},
		Sessions: doctor.SessionCounts{Primary: primary, Backup: backup}}
	for _, m := range members {
		name, state, _ := strings.Cut(m, "=")
		role := "node"
		if name == "balancer" {
			role = "observer"
		}
		st.Cluster.Members = append(st.Cluster.Members, doctor.Member{Name: name, Role: role, State: state, HTTP: "127.0.0.1:1"})
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lagMetrics returns metrics text with a lag histogram per peer (sum in
// seconds, count).
func lagMetrics(peers ...any) string {
	var b strings.Builder
	b.WriteString("# HELP shoal_replication_lag_seconds lag\n# TYPE shoal_replication_lag_seconds histogram\n")
	for i := 0; i+2 < len(peers); i += 3 {
		p, sum, count := peers[i], peers[i+1], peers[i+2]
		fmt.Fprintf(&b, "shoal_replication_lag_seconds_bucket{peer=%q,le=\"+Inf\"} %v\n", p, count)
		fmt.Fprintf(&b, "shoal_replication_lag_seconds_sum{peer=%q} %v\n", p, sum)
		fmt.Fprintf(&b, "shoal_replication_lag_seconds_count{peer=%q} %v\n", p, count)
	}
	b.WriteString("# TYPE shoal_node_ready gauge\nshoal_node_ready 1\n")
	return b.String()
}

func (e *env) clusterJSON(t *testing.T) clusterJSON {
	t.Helper()
	r := e.do(t, "GET", "/api/cluster", "", "auth", "bearer")
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/cluster = %d %s %s", r.code, r.hdr.Get("Content-Type"), r.body)
	}
	var out clusterJSON
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return out
}

func memberOf(t *testing.T, c clusterJSON, route string) clusterMemberJSON {
	t.Helper()
	for _, m := range c.Members {
		if m.Route == route {
			return m
		}
	}
	t.Fatalf("no %s in %+v", route, c.Members)
	return clusterMemberJSON{}
}

// TestClusterView: the page and GET /api/cluster show each member's
// sessions, cluster state and lag as its node reports them; a node that
// does not answer, or answers what is not a node's status, is shown as
// such and the rest of the page is there.
func TestClusterView(t *testing.T) {
	n1, n2, bad, html := newFakeNode(t), newFakeNode(t), newFakeNode(t), newFakeNode(t)
	all := []string{"n1=ready", "n2=ready", "n3=ready", "balancer=ready"}
	n1.set(clusterStatus(t, "n1", "ready", 2, 1, all...), lagMetrics("n2", 0.004, 4))
	// n2 sees n3 joining still: the views differ.
	n2.set(clusterStatus(t, "n2", "ready", 1, 2, "n1=ready", "n2=ready", "n3=joining"), lagMetrics())
	bad.set(`{"node": "n4", "state": "ready", "time": "2026-01-01T00:00:00Z", "cookie": "JSESSIONID", "store": "cluster"}`, "")
	html.set(`<html>not json</html>`, "")
	e := newEnv(t)
	// newEnv's n1 and n2 point to its backend: point them to the fakes
	// (n2 with a path, which the node's status is not under).
	cfg := balancer.DefaultConfig()
	cfg.Health.Path = ""
	for _, spec := range []string{"n1=" + n1.srv.URL, "n2=" + n2.srv.URL + "/app", "n3=" + deadURL(t),
		"n4=" + bad.srv.URL, "n5=" + html.srv.URL} {
		mc, err := balancer.ParseMember(spec)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	if err := e.b.Reload(cfg); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	page := e.do(t, "GET", "/", "", "auth", "basic")
	if took := time.Since(start); page.code != 200 || took > nodeFetchTimeout+time.Second {
		t.Fatalf("GET / = %d in %v", page.code, took)
	}
	for _, want := range []string{
		`cluster of 3 nodes (2 ready, 1 joining) · 3 sessions, 3 backup copies, on the 2 nodes that answered`,
		`n3: n1 sees it ready`, // a tie without n3's own word: the first state by name
		`<span class="primary" title="primary">2</span> / <span class="backup" title="backup">1</span>`,
		`<span class="primary" title="primary">1</span> / <span class="backup" title="backup">2</span>`,
		`<span class="unreachable">unreachable</span><br><small class="reason">`,
		`not a node status: store &#34;cluster&#34; without cluster status`,
		`not a node status: invalid JSON`,
		`<td class="cluster cluster-ready"><span class="cluster-state">ready</span></td>`,
		`<td class="num lag" title="mean round trip since the node started">1.00 ms</td>`,
		`nothing replicated yet`,
		`<script src="/static/chart.js" defer></script>`,
		`<svg id="rates"`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page.body)
	}
	// Forms are still there for every member, reachable or not.
	for _, route := range []string{"n1", "n2", "n3", "n4", "n5"} {
		formNonces(t, page.body, route)
	}

	// The same view, reused within viewTTL, with the balancer's state of
	// now.
	e.member(t, "n1").SetDraining(true)
	c := e.clusterJSON(t)
	if m := memberOf(t, c, "n1"); m.Balancer == nil || m.Balancer.State != "draining" {
		t.Errorf("n1 drained a moment ago: %+v", m.Balancer)
	}
	e.member(t, "n1").SetDraining(false)
	if !c.Cluster || c.Sessions.Primary != 3 || c.Sessions.Backup != 3 || c.Sessions.Nodes != 2 || c.Sessions.NodesAsked != 5 {
		t.Errorf("cluster JSON sessions: %+v cluster %v", c.Sessions, c.Cluster)
	}
	m1 := memberOf(t, c, "n1")
	if m1.ClusterState != "ready" || m1.Sessions == nil || m1.Sessions.Primary != 2 || m1.LagMs == nil || *m1.LagMs != 1 ||
		m1.Balancer == nil || m1.Node == nil || m1.Node.Name != "n1" {
		t.Errorf("n1: %+v", m1)
	}
	m3 := memberOf(t, c, "n3")
	if m3.ClusterState != "joining" || m3.ClusterNote != "n1 sees it ready" || m3.NodeError == nil || !m3.NodeError.Unreachable {
		t.Errorf("n3: %+v %+v", m3, m3.NodeError)
	}
	if m5 := memberOf(t, c, "n5"); m5.NodeError == nil || m5.NodeError.Unreachable || !strings.Contains(m5.NodeError.Error, "invalid JSON") {
		t.Errorf("n5: %+v", m5.NodeError)
	}

	// The lag over the time since the last view; n3 no longer listed by
	// anyone is dead.
	n1.set(clusterStatus(t, "n1", "ready", 2, 1, "n1=ready", "n2=ready", "balancer=ready"), lagMetrics("n2", 0.004+0.003, 5))
	n2.set(clusterStatus(t, "n2", "leaving", 1, 2, "n1=ready", "n2=leaving"), lagMetrics("n1", 0.5, 1))
	e.h.cache.mu.Lock()
	e.h.cache.last = nil // as if viewTTL had passed
	e.h.cache.mu.Unlock()
	c = e.clusterJSON(t)
	if m := memberOf(t, c, "n1"); m.LagMs == nil || *m.LagMs != 3 || m.LagSpanS == nil {
		t.Errorf("n1's lag since the last view: %v (span %v), want 3 ms", m.LagMs, m.LagSpanS)
	}
	if m := memberOf(t, c, "n2"); m.ClusterState != "leaving" || m.LagMs == nil || *m.LagMs != 500 {
		t.Errorf("n2: state %s lag %v", m.ClusterState, m.LagMs)
	}
	if m := memberOf(t, c, "n3"); m.ClusterState != "dead" || !strings.Contains(m.ClusterNote, "no node lists it") {
		t.Errorf("n3 gone from every view: %q %q, want dead", m.ClusterState, m.ClusterNote)
	}

	// n2 leaves: a member that was leaving when last seen has left.
	n1.set(clusterStatus(t, "n1", "ready", 3, 0, "n1=ready", "balancer=ready"), lagMetrics("n2", 0.007, 5))
	cfg.Members = cfg.Members[:1]
	if err := e.b.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	c = e.clusterJSON(t) // the members changed: a new view
	if m := memberOf(t, c, "n2"); m.ClusterState != "left" || m.Balancer != nil {
		t.Errorf("n2 after it left: %q balancer %+v, want left and no member", m.ClusterState, m.Balancer)
	}
	page = e.do(t, "GET", "/", "", "auth", "basic")
	if !strings.Contains(page.body, `<tr class="not-member" data-route="n2">`) || !strings.Contains(page.body, `cluster-left`) {
		t.Errorf("page lacks n2 as a node that left:\n%s", page.body)
	}
}

// TestClusterViewHangingNode: a node that accepts the connection and
// never answers costs the page nodeFetchTimeout, not more.
func TestClusterViewHangingNode(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	e := newEnv(t, "slow="+hang.URL)
	start := time.Now()
	page := e.do(t, "GET", "/", "", "auth", "basic")
	took := time.Since(start)
	if page.code != 200 || took > nodeFetchTimeout+time.Second {
		t.Fatalf("GET / = %d after %v", page.code, took)
	}
	if !strings.Contains(page.body, "no answer within 1.5s") {
		t.Errorf("page does not say the slow node did not answer:\n%s", page.body)
	}
}

func TestParseNodeStatus(t *testing.T) {
	good := clusterStatus(t, "n1", "ready", 1, 0, "n1=ready")
	if _, err := parseNodeStatus([]byte(good)); err != nil {
		t.Fatalf("good status refused: %v", err)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"not JSON", `<html>`, "invalid JSON"},
		{"no name", `{"state": "ready", "store": "memory"}`, "node name"},
		{"bad name", strings.Replace(good, `"node":"n1"`, `"node":"n 1"`, 1), "node name"},
		{"bad state", strings.Replace(good, `"state":"ready"`, `"state":"up"`, 1), "state"},
		{"bad member", strings.Replace(good, `"name":"n1"`, `"name":"\u003cb\u003e"`, 1), "member name"},
		{"bad member state", strings.Replace(good, `"state":"ready","http"`, `"state":"zombie","http"`, 1), "member n1: state"},
		{"negative sessions", strings.Replace(good, `"primary":1`, `"primary":-1`, 1), "negative"},
		{"unknown store", `{"node": "n1", "state": "ready", "store": "disk"}`, "store"},
		{"cluster without status", `{"node": "n1", "state": "ready", "store": "cluster"}`, "without cluster status"},
	} {
		if _, err := parseNodeStatus([]byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestParseLag(t *testing.T) {
	lag, ok, err := parseLag([]byte(lagMetrics("n2", 0.25, 10, "n3", 0.75, 10)))
	if err != nil || !ok || lag.Count != 20 || lag.Sum != 1 {
		t.Errorf("parseLag = %+v %v %v, want sum 1 count 20", lag, ok, err)
	}
	if _, ok, err := parseLag([]byte(lagMetrics())); err != nil || ok {
		t.Errorf("no peers: ok %v err %v, want neither", ok, err)
	}
	for _, body := range []string{"not metrics {",
		"# TYPE shoal_replication_lag_seconds gauge\nshoal_replication_lag_seconds 1\n"} {
		if _, _, err := parseLag([]byte(body)); err == nil {
			t.Errorf("parseLag(%q): no error", body)
		}
	}
}

func FuzzParseNodeStatus(f *testing.F) {
	f.Add(`{"node":"n1","state":"ready","store":"memory","sessions":{"primary":1}}`)
	f.Add(`{"node":"n1","state":"ready","store":"cluster","cluster":{"members":[{"name":"n2","role":"node","state":"joining"}]}}`)
	f.Add(`{"node":"n1","state":"ready","store":"cluster","cluster":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		st, err := parseNodeStatus([]byte(body))
		if err != nil {
			return
		}
		if !knownState(st.State) || st.Sessions.Primary < 0 || (st.Store == "cluster") != (st.Cluster != nil) {
			t.Fatalf("accepted %+v", st)
		}
		// What the page makes of it renders.
		var c viewCache
		v := c.build(time.Now(), nil, []nodeReport{{Route: st.Node, Status: st}})
		_ = newClusterJSON(v)
	})
}

func FuzzParseLag(f *testing.F) {
	f.Add(lagMetrics("n2", 0.25, 10))
	f.Add("# TYPE shoal_replication_lag_seconds histogram\nshoal_replication_lag_seconds_sum -1\n")
	f.Fuzz(func(t *testing.T, body string) {
		lag, ok, err := parseLag([]byte(body))
		if err == nil && ok && (lag.Count == 0 || lag.Sum < 0) {
			t.Fatalf("accepted %+v", lag)
		}
	})
}

// TestRates: the page's rate column and GET /api/rates measure the
// members' requests between samples.
func TestRates(t *testing.T) {
	e := newEnv(t)
	members := e.b.Members()
	t0 := time.Now()
	var s rateSampler
	s.observe(t0, members)
	s.observe(t0.Add(100*time.Millisecond), members) // too soon: not a sample
	if _, _, ok := s.rate("n1"); ok {
		t.Fatal("a rate from one sample")
	}
	e.member(t, "n2").SetDisabled(true)
	e.proxy(t, 10, "/") // all to n1
	s.observe(t0.Add(2*time.Second), members)
	if r, span, ok := s.rate("n1"); !ok || r != 5 || span != 2*time.Second {
		t.Errorf("n1: %v/s over %v (%v), want 5/s over 2s", r, span, ok)
	}
	if r, _, ok := s.rate("n2"); !ok || r != 0 {
		t.Errorf("n2: %v/s (%v), want 0", r, ok)
	}
	s.observe(t0.Add(4*time.Second), members)
	j := s.series(t0.Add(4*time.Second), members)
	if len(j.Series) != 2 || j.Series[0].Route != "n1" || len(j.Series[0].Points) != 2 ||
		j.Series[0].Points[0][1] != 5 || j.Series[0].Points[1][1] != 0 || j.Series[1].State != "disabled" {
		t.Errorf("series: %+v", j)
	}
	// Samples older than the chart's window are left out, and the ring
	// keeps maxSamples.
	for i := range maxSamples + 10 {
		s.observe(t0.Add(time.Duration(5+i)*time.Second), members)
	}
	now := t0.Add(time.Duration(5+maxSamples+9) * time.Second)
	if n := len(s.samples); n != maxSamples {
		t.Errorf("%d samples kept, want %d", n, maxSamples)
	}
	if p := s.series(now, members).Series[0].Points; len(p) < int(chartWindow/time.Second)-1 || len(p) > int(chartWindow/time.Second)+1 {
		t.Errorf("%d points in the chart's window", len(p))
	}

	// The endpoint: authenticated, JSON.
	r := e.do(t, "GET", "/api/rates", "", "auth", "basic")
	var out ratesJSON
	if r.code != 200 || json.Unmarshal([]byte(r.body), &out) != nil || out.WindowS != 120 || len(out.Series) != 2 {
		t.Errorf("GET /api/rates = %d %s", r.code, r.body)
	}
	if r := e.do(t, "GET", "/api/rates", ""); r.code != 401 {
		t.Errorf("GET /api/rates without credentials = %d", r.code)
	}
	if r := e.do(t, "GET", "/static/chart.js", "", "auth", "basic"); r.code != 200 || !strings.Contains(r.body, "/api/rates") {
		t.Errorf("GET /static/chart.js = %d", r.code)
	}
}
