package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/sessiontest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// node is one cluster node in this process: the store, a session manager
// and the demo app on an httptest server.
type node struct {
	name  string
	store *Store
	mgr   *session.Manager
	srv   *httptest.Server
	logs  *syncBuf
}

func startNode(t *testing.T, name string, key []byte, join []string, opts ...func(*session.Config)) (*node, error) {
	if key == nil {
		key = newKey(t)
	}
	t.Helper()
	n := &node{name: name, logs: &syncBuf{}}
	n.srv = httptest.NewUnstartedServer(nil)
	cfg := DefaultLocalConfig()
	cfg.Name, cfg.HTTPAddr, cfg.Key, cfg.Join = name, n.srv.Listener.Addr().String(), key, join
	cfg.Logger = slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.tune = tolerantTiming
	st, err := New(cfg)
	if err != nil {
		n.srv.Close()
		return nil, err
	}
	n.store = st
	mc := session.Config{Store: st, Route: name}
	for _, o := range opts {
		o(&mc)
	}
	n.mgr, err = session.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	n.srv.Config.Handler = n.mgr.Handler(demoapp.New(name, nil))
	n.srv.Start()
	t.Cleanup(n.stop)
	return n, nil
}

func (n *node) stop() {
	n.srv.Close()
	n.mgr.Close()
	n.store.Close()
}

// crash stops the node as kill -9 would: no handover, no leave.
func (n *node) crash() {
	n.srv.CloseClientConnections()
	n.srv.Close()
	n.mgr.Close()
	n.store.shutdown()
}

func (n *node) gossip() string { return n.store.mem.Self().Gossip }

// tolerantTiming makes a member stall about 2 s before it is declared
// dead: these tests run with -race beside others on two cores, and are not
// about detection speed (BenchmarkDeadDetection in internal/membership is).
func tolerantTiming(c *membership.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 8
	c.AwarenessMaxMultiplier = 8
}

func newKey(t *testing.T) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func startCluster(t *testing.T, key []byte, names ...string) []*node {
	t.Helper()
	var nodes []*node
	var join []string
	for _, name := range names {
		n, err := startNode(t, name, key, join)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		nodes = append(nodes, n)
		join = []string{nodes[0].gossip()}
	}
	waitFor(t, "every node to see every other ready", func() bool {
		for _, n := range nodes {
			if len(n.store.Members()) != len(names) {
				return false
			}
		}
		return true
	})
	return nodes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func request(t *testing.T, method, u, cookie string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", "JSESSIONID="+cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

func login(t *testing.T, n *node, user string) string {
	t.Helper()
	resp, body := request(t, "POST", n.srv.URL+"/login", "", url.Values{"user": {user}})
	if resp.StatusCode != 200 {
		t.Fatalf("login on %s: %d %s", n.name, resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "JSESSIONID" {
			return c.Value
		}
	}
	t.Fatal("no session cookie after login")
	return ""
}

func counter(t *testing.T, n *node, cookie string) demoapp.Counter {
	t.Helper()
	resp, body := request(t, "GET", n.srv.URL+"/counter", cookie, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/counter on %s: %d %s", n.name, resp.StatusCode, body)
	}
	var c demoapp.Counter
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRoundRobinKillRestart is the first scenario, in process:
// log in on n1; /counter on n2, n3, n1, n2… 30 times counts 1..30; kill
// the node that created the session: the count goes on on the others with
// no 401; restart it: once ready it goes on there too.
func TestRoundRobinKillRestart(t *testing.T) {
	key := newKey(t)
	nodes := startCluster(t, key, "n1", "n2", "n3")
	cookie := login(t, nodes[0], "alice")
	if !strings.HasSuffix(cookie, ".n1") {
		t.Fatalf("cookie %q: want the route n1", cookie)
	}
	for i := 1; i <= 30; i++ {
		n := nodes[i%3]
		c := counter(t, n, cookie)
		if c.Count != i || c.User != "alice" || c.Node != n.name {
			t.Fatalf("request %d on %s: %+v", i, n.name, c)
		}
		if c.Session != cookie {
			t.Fatalf("the session id churned on a live route: %q -> %q", cookie, c.Session)
		}
	}
	nodes[0].crash()
	count := 30
	for i := range 10 {
		n := nodes[1+i%2]
		count++
		resp, body := request(t, "GET", n.srv.URL+"/counter", cookie, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("after the kill, request on %s: %d %s", n.name, resp.StatusCode, body)
		}
		var c demoapp.Counter
		json.Unmarshal(body, &c)
		if c.Count != count || c.User != "alice" {
			t.Fatalf("after the kill, on %s: %+v, want count %d for alice", n.name, c, count)
		}
		for _, sc := range resp.Cookies() {
			if sc.Name == "JSESSIONID" {
				cookie = sc.Value // rebound to a live node once n1 is declared dead
			}
		}
	}
	// Restart n1 with the same name.
	n1, err := startNode(t, "n1", key, []string{nodes[1].gossip()})
	if err != nil {
		t.Fatalf("restart n1: %v", err)
	}
	waitFor(t, "n1 back in every view", func() bool {
		return len(nodes[1].store.Members()) == 3 && len(nodes[2].store.Members()) == 3 && len(n1.store.Members()) == 3
	})
	for i := range 9 {
		n := []*node{n1, nodes[1], nodes[2]}[i%3]
		count++
		if c := counter(t, n, cookie); c.Count != count || c.User != "alice" {
			t.Fatalf("after the restart, on %s: %+v, want %d", n.name, c, count)
		}
	}
}

func TestWrongKeyRefused(t *testing.T) {
	nodes := startCluster(t, newKey(t), "n1", "n2", "n3")
	_, err := startNode(t, "n4", newKey(t), []string{nodes[0].gossip()})
	if err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Fatalf("a node with another key joined: %v", err)
	}
	if got := nodes[0].store.Members(); len(got) != 3 {
		t.Fatalf("members after the refusal: %v", got)
	}
	waitFor(t, "n1 to log the refusal", func() bool { return strings.Contains(nodes[0].logs.String(), "cluster key mismatch") })
}

func TestGracefulLeaveKeepsSessions(t *testing.T) {
	nodes := startCluster(t, newKey(t), "n1", "n2", "n3")
	var cookies []string
	for i := range 30 {
		cookies = append(cookies, login(t, nodes[i%3], fmt.Sprint("user", i)))
		counter(t, nodes[i%3], cookies[i])
	}
	nodes[1].stop() // SIGTERM: hand over, leave
	waitFor(t, "n2 gone from the views", func() bool {
		return len(nodes[0].store.Members()) == 2 && len(nodes[2].store.Members()) == 2
	})
	for i, cookie := range cookies {
		n := nodes[[]int{0, 2}[i%2]]
		if c := counter(t, n, cookie); c.Count != 2 || c.User != fmt.Sprint("user", i) {
			t.Fatalf("session %d after n2 left: %+v", i, c)
		}
	}
}

func TestConformance(t *testing.T) {
	sessiontest.RunStoreTests(t, func(t *testing.T) session.Store {
		n, err := startNode(t, "solo", nil, nil)
		if err == nil {
			return n.store
		}
		t.Fatal(err)
		return nil
	})
}

type fixedResolver []string

func (f fixedResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, s := range f {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

// TestDNSDiscoveryStartTogether: three nodes started at the same moment,
// each told only a DNS name that resolves to all three (a headless
// service), form one cluster without a stall.
func TestDNSDiscoveryStartTogether(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	key := newKey(t)
	ips := fixedResolver{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	stores := make([]*Store, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			cfg := DefaultLocalConfig()
			cfg.Name, cfg.HTTPAddr, cfg.Key = fmt.Sprint("d", i+1), "127.0.0.1:1", key
			cfg.GossipAddr = net.JoinHostPort(ips[i], fmt.Sprint(port))
			cfg.Discover = fmt.Sprintf("dns://members.test:%d", port)
			cfg.DiscoverInterval = 100 * time.Millisecond
			cfg.resolver, cfg.tune = ips, tolerantTiming
			stores[i], errs[i] = New(cfg)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	waitFor(t, "one cluster of three", func() bool {
		for _, s := range stores {
			if len(s.Members()) != 3 {
				return false
			}
		}
		return true
	})
}
