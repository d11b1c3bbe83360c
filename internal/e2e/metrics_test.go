package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var managerListeningRE = regexp.MustCompile(`msg="balancer manager listening" addr=(\S+)`)

// balancerProc is a `shoal balancer` with its manager, started by the test.
type balancerProc struct {
	*node
	url     string // the client side
	manager string // http://ADDR of --admin-listen
	token   string
}

// writeToken writes a manager token to a file of mode 0600.
func writeToken(t *testing.T) (path, token string) {
	t.Helper()
	token = "e2e-token-" + strings.Repeat("x", 20)
	path = filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// startBalancer starts `shoal balancer` on free loopback ports with its
// manager (--admin-listen, a token file) and args (--member ..., or
// --cluster-join ...), and waits until both listen.
func startBalancer(t *testing.T, args ...string) *balancerProc {
	t.Helper()
	tokenFile, token := writeToken(t)
	lb := spawn(t, "balancer", append([]string{"balancer", "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenFile}, args...)...)
	b := &balancerProc{node: lb, token: token}
	if !poll(20*time.Second, func() bool {
		log := lb.stderr.String()
		m, a := balancerListeningRE.FindStringSubmatch(log), managerListeningRE.FindStringSubmatch(log)
		if m != nil && a != nil {
			b.url, b.manager = "http://"+m[1], "http://"+a[1]
		}
		return b.url != ""
	}) {
		t.Fatalf("the balancer did not log its listeners:\n%s", lb.stderr)
	}
	return b
}

// docMetrics reads docs/metrics.md: the names and types of the metrics
// listed in the tables of each "## " section.
func docMetrics(t *testing.T) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `(shoal_[a-z_]+)` \\| (counter|gauge|histogram) \\|")
	out := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "## "); ok {
			section = s
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil {
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			out[section][m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scrape returns the metric families a /metrics endpoint serves.
func scrape(t *testing.T, rawURL, token string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", rawURL, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", rawURL, err)
	}
	return fams
}

// checkDocumented compares a scrape with the documented metrics: every
// documented name is served with its type, every shoal_ name served is
// documented.
func checkDocumented(t *testing.T, what string, doc map[string]string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if len(doc) == 0 {
		t.Fatalf("docs/metrics.md lists no metric for %s", what)
	}
	for name, typ := range doc {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s: documented metric %s is not served", what, name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != typ {
			t.Errorf("%s: %s is a %s, documented as a %s", what, name, got, typ)
		}
	}
	var served []string
	for name := range fams {
		if strings.HasPrefix(name, "shoal_") {
			served = append(served, name)
			if _, ok := doc[name]; !ok {
				t.Errorf("%s serves %s, which docs/metrics.md does not list", what, name)
			}
		}
	}
	slices.Sort(served)
	t.Logf("%s serves %d shoal_ metrics: %s", what, len(served), strings.Join(served, " "))
}

// metricValue returns the value of the sample of family name whose
// labels include want (a counter's or a gauge's), and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsDocumented scrapes /metrics of two real cluster nodes that
// replicated a session, and of a real balancer's manager in front of
// them, and checks them against docs/metrics.md both ways; the counters
// show what happened (a session created, replication traffic, an encode
// failure).
func TestMetricsDocumented(t *testing.T) {
	doc := docMetrics(t)
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	n1 := startClusterNode(t, "n1", key, g1, "")
	n2 := startClusterNode(t, "n2", key, freeGossipAddr(t), g1)
	waitReady(t, n1)
	waitReady(t, n2)
	waitSeeReady(t, []*node{n1, n2}, nil, "n1", "n2")

	s := login(t, n1, "mia")
	s.next(t, n2, "count on n2")
	if r := n1.do(t, "POST", "/bad", "", nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("POST /bad: %d %s", r.status, r.body)
	}
	lb := startBalancer(t, "--member", "n1="+n1.url, "--member", "n2="+n2.url)
	if r, err := request(t.Context(), client, "GET", lb.url+"/counter", "", nil); err != nil || r.status != 200 {
		t.Fatalf("GET /counter through the balancer: %v %d", err, r.status)
	}

	fams := scrape(t, n1.url+"/metrics", "")
	checkDocumented(t, "node n1", doc["Nodes"], fams)
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"shoal_sessions_created_total", nil, 1},
		{"shoal_session_encode_failures_total", nil, 1},
		{"shoal_session_commit_seconds", nil, 1},
		{"shoal_cluster_members", map[string]string{"role": "node", "state": "ready"}, 2},
		{"shoal_replication_sent_bytes_total", map[string]string{"peer": "n2"}, 1},
		{"shoal_replication_received_messages_total", map[string]string{"peer": "n2"}, 1},
		{"shoal_replication_lag_seconds", map[string]string{"peer": "n2"}, 1},
		{"shoal_node_ready", nil, 1},
	}
	for _, c := range checks {
		if v, ok := metricValue(fams, c.name, c.labels); !ok || v < c.min {
			t.Errorf("n1: %s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := metricValue(fams, "shoal_session_commit_failures_total", nil); v != 0 {
		t.Errorf("n1: %v commit failures in a healthy cluster", v)
	}

	// Through a proxy, the node's operational endpoints are refused.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", n1.url+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("/metrics with X-Forwarded-For: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	if r, err := request(t.Context(), client, "GET", lb.url+"/metrics", "", nil); err != nil || r.status != http.StatusForbidden {
		t.Errorf("a node's /metrics through the balancer: %v %d, want 403", err, r.status)
	}

	bfams := scrape(t, lb.manager+"/metrics", lb.token)
	checkDocumented(t, "balancer", doc["Balancer"], bfams)
	if _, ok := metricValue(bfams, "shoal_balancer_member_state", map[string]string{"member": "n2", "state": "ok"}); !ok {
		t.Errorf("balancer: no shoal_balancer_member_state for n2")
	}
}
