package balancer

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/cluster"
)

type clusterNode struct {
	name  string
	store *cluster.Store
	srv   *httptest.Server
}

func startClusterNode(t *testing.T, name string, key []byte, join []string) *clusterNode {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg := cluster.DefaultLocalConfig()
	cfg.Name, cfg.HTTPAddr, cfg.Key, cfg.Join, cfg.DeadAfter = name, srv.Listener.Addr().String(), key, join, 2*time.Second
	st, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(session.Config{Store: st, Route: name})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready") })
	mux.Handle("/", m.Handler(demoapp.New(name, nil)))
	srv.Config.Handler = mux
	srv.Start()
	n := &clusterNode{name: name, store: st, srv: srv}
	t.Cleanup(func() { n.stop(); m.Close() })
	return n
}

func (n *clusterNode) stop() {
	n.srv.Close()
	n.store.Close()
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterMode: a balancer with no configured member follows a
// cluster, balances over its nodes, keeps sessions on their route, and
// when a session's node leaves sends its requests straight to a node that
// holds a copy (no failover hop, no error).
func TestClusterMode(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	n1 := startClusterNode(t, "n1", key, nil)
	gossip := n1.store.GossipAddr()
	nodes := []*clusterNode{n1, startClusterNode(t, "n2", key, []string{gossip}), startClusterNode(t, "n3", key, []string{gossip})}

	cfg := DefaultConfig()
	cfg.FromCluster = true
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.JoinCluster(ClusterConfig{Name: "lb", GossipAddr: "127.0.0.1:0", Join: []string{gossip}, Key: key, Owners: 2, DeadAfter: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the balancer to see three ready nodes", func() bool {
		ready := 0
		for _, m := range b.Members() {
			if !m.notReady.Load() {
				ready++
			}
		}
		return ready == 3
	})
	front := httptest.NewServer(b)
	defer front.Close()

	do := func(method, path, cookie string, form url.Values) (*http.Response, []byte) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, front.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != "" {
			req.Header.Set("Cookie", "JSESSIONID="+cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, _ := do("POST", "/login", "", url.Values{"user": {"dana"}})
	var cookie string
	for _, c := range resp.Cookies() {
		cookie = c.Value
	}
	_, route, _ := strings.Cut(cookie, ".")
	for i := 1; i <= 5; i++ {
		_, body := do("GET", "/counter", cookie, nil)
		var c demoapp.Counter
		json.Unmarshal(body, &c)
		if c.Count != i || c.Node != route {
			t.Fatalf("request %d: %s, want count %d on %s (sticky)", i, body, i, route)
		}
	}
	var home *clusterNode
	for _, n := range nodes {
		if n.name == route {
			home = n
		}
	}
	home.stop() // leaves the cluster
	poll(t, "the balancer to drop "+route, func() bool {
		for _, m := range b.Members() {
			if m.route == route {
				return false
			}
		}
		return true
	})
	before := b.OwnerRoutes()
	for i := 6; i <= 10; i++ {
		resp, body := do("GET", "/counter", cookie, nil)
		var c demoapp.Counter
		json.Unmarshal(body, &c)
		if resp.StatusCode != 200 || c.Count != i || c.User != "dana" {
			t.Fatalf("after %s left, request %d: %d %s", route, i, resp.StatusCode, body)
		}
		for _, sc := range resp.Cookies() {
			cookie = sc.Value // rebound by the node that took it
		}
	}
	if b.OwnerRoutes() == before {
		t.Fatal("no request went to the session's owner after its node left")
	}
}
