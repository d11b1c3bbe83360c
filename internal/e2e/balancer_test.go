package e2e

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var balancerListeningRE = regexp.MustCompile(`msg="balancer listening" addr=(\S+)`)

// TestBalancerFollowsCluster: `shoal balancer --cluster-join` with no
// --member learns three real nodes from the cluster, keeps a session on
// its node, and when that node is killed (kill -9) sends the session's
// requests to nodes that hold it: the client sees no error and the count
// goes on.
func TestBalancerFollowsCluster(t *testing.T) {
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	nodes := []*node{startClusterNode(t, "n1", key, g1, "")}
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, startClusterNode(t, name, key, freeGossipAddr(t), g1))
	}
	for _, n := range nodes {
		waitReady(t, n)
	}
	lb := spawn(t, "balancer", "balancer", "--listen", "127.0.0.1:0", "--cluster-join", g1,
		"--cluster-key-file", key, "--cluster-listen", freeGossipAddr(t), "--dead-after", "2s")
	var base string
	if !poll(20*time.Second, func() bool {
		m := balancerListeningRE.FindStringSubmatch(lb.stderr.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil && strings.Count(lb.stderr.String(), "cluster node added") >= 3
	}) {
		t.Fatalf("the balancer did not list three cluster nodes:\n%s", lb.stderr)
	}
	// Each node ready in the balancer's view too (its gossip may tell a
	// node's ready state a moment after the node's own /healthz/ready).
	for _, n := range nodes {
		re := regexp.MustCompile(`msg="balancer: cluster node (?:added|state)" node=` + n.name + ` (?:url=\S+ )?state=ready`)
		if !poll(20*time.Second, func() bool { return re.MatchString(lb.stderr.String()) }) {
			t.Fatalf("the balancer never saw %s ready:\n%s", n.name, lb.stderr)
		}
	}

	r, err := request(t.Context(), client, "POST", base+"/login", "", url.Values{"user": {"erin"}})
	if err != nil || r.status != 200 {
		t.Fatalf("login through the balancer: %d %v %s", r.status, err, r.body)
	}
	cookie, _ := sessionCookie(t, r)
	count := func(want int) string {
		t.Helper()
		r, err := request(t.Context(), client, "GET", base+"/counter", cookie, nil)
		if err != nil || r.status != 200 {
			t.Fatalf("/counter #%d through the balancer: %d %v %s\nbalancer:\n%s", want, r.status, err, r.body, lb.tail(20))
		}
		var c struct {
			Node, User string
			Count      int
		}
		json.Unmarshal(r.body, &c)
		if c.Count != want || c.User != "erin" {
			t.Fatalf("/counter: %s, want count %d for erin", r.body, want)
		}
		if nc, _, err := findSessionCookie(r); err == nil && nc != "" {
			cookie = nc
		}
		return c.Node
	}
	home := count(1)
	for i := 2; i <= 4; i++ {
		if n := count(i); n != home {
			t.Fatalf("request %d went to %s, not the session's node %s", i, n, home)
		}
	}
	for _, n := range nodes {
		if n.name == home {
			if err := n.kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 5; i <= 15; i++ {
		if n := count(i); n == home {
			t.Fatalf("request %d served by the killed node", i)
		}
	}
	if !poll(20*time.Second, func() bool { return strings.Contains(lb.stderr.String(), "cluster node removed") }) {
		t.Fatalf("the balancer never dropped the killed node:\n%s", lb.tail(20))
	}
	for i := 16; i <= 18; i++ {
		count(i)
	}
}
