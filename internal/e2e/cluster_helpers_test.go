package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of the cluster tests' waits.
const (
	// clusterStartTimeout bounds a cluster node's start: a node restarted
	// after a kill may have to wait until its old self is declared dead
	// before its join is accepted.
	clusterStartTimeout = 20 * time.Second
	// readyTimeout bounds the wait for GET /healthz/ready to answer 200.
	readyTimeout = 20 * time.Second
	// logTimeout bounds the wait for a log line (a death detected, a
	// member seen ready, a refused peer).
	logTimeout = 15 * time.Second
)

// writeKey makes a cluster key with `shoal node --gen-key` and writes it
// to a file of mode 0600 in a new temporary directory.
func writeKey(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), processTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, shoalBinary(t), "node", "--gen-key").Output()
	if err != nil {
		t.Fatalf("shoal node --gen-key: %v", err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		t.Fatal("shoal node --gen-key printed nothing")
	}
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return path
}

// freeGossipAddr returns a 127.0.0.1 address whose port is free for TCP
// and UDP (memberlist gossips on both): the other nodes must know it
// before the node starts, for --join.
func freeGossipAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(childPort(t, true)))
}

// startClusterNode starts `shoal node` as a cluster member gossiping on
// gossip with the key file, joining through join if not empty, logging at
// debug level (members turning ready are debug lines). extra flags
// (--owners, --replication) follow. --dead-after 2s: the children run
// with -race on two cores beside the test's load, where a live node can
// stall longer than the default sub-second detection allows; these tests
// are about what clients see, not about detection speed (which
// BenchmarkDeadDetection measures).
func startClusterNode(t *testing.T, name, key, gossip, join string, extra ...string) *node {
	t.Helper()
	args := []string{"--cluster-listen", gossip, "--cluster-key-file", key, "--log-level", "debug", "--dead-after", "2s"}
	if join != "" {
		args = append(args, "--join", join)
	}
	n := startNodeWithin(t, name, clusterStartTimeout, append(args, extra...)...)
	n.gossip = gossip
	return n
}

// poll calls cond every 20 ms until it returns true or within has passed;
// it reports whether cond returned true.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady polls GET /healthz/ready on n until it answers 200, failing
// the test after readyTimeout.
func waitReady(t *testing.T, n *node) {
	t.Helper()
	var last string
	ok := poll(readyTimeout, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		r, err := request(ctx, client, "GET", n.url+"/healthz/ready", "", nil)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d %q", r.status, r.body)
		return r.status == http.StatusOK && strings.TrimSpace(string(r.body)) == "ready"
	})
	if !ok {
		t.Fatalf("GET /healthz/ready on %s (pid %d) not 200 \"ready\" within %v (last: %s); log tail:\n%s",
			n.name, n.pid(), readyTimeout, last, n.tail(30))
	}
}

// seesReadyRE matches observer's log line saying it sees member name ready.
func seesReadyRE(observer, name string) *regexp.Regexp {
	return regexp.MustCompile(`msg="member (?:joined|updated)" node=` + regexp.QuoteMeta(observer) +
		` name=` + regexp.QuoteMeta(name) + ` role=node state=ready `)
}

// waitSeeReady waits until every observer logged, after its offset in
// from (a stderr length; missing means 0), that each of names is a ready
// member: the cluster agrees on who holds sessions.
func waitSeeReady(t *testing.T, observers []*node, from map[*node]int, names ...string) {
	t.Helper()
	for _, o := range observers {
		for _, name := range names {
			if name == o.name {
				continue
			}
			re := seesReadyRE(o.name, name)
			if !poll(logTimeout, func() bool { return re.MatchString(o.stderr.since(from[o])) }) {
				t.Fatalf("%s did not see %s ready within %v; log tail:\n%s", o.name, name, logTimeout, o.tail(30))
			}
		}
	}
}

// deadRE matches observer's log line declaring member name dead.
func deadRE(observer, name string) *regexp.Regexp {
	return regexp.MustCompile(`msg="member declared dead" node=` + regexp.QuoteMeta(observer) +
		` name=` + regexp.QuoteMeta(name) + ` `)
}

// offsets returns the nodes' stderr lengths now.
func offsets(nodes ...*node) map[*node]int {
	m := make(map[*node]int, len(nodes))
	for _, n := range nodes {
		m[n] = n.stderr.Len()
	}
	return m
}

// shoalLog returns the last k lines of the node's stderr that shoal
// itself wrote (memberlist's debug lines left out), indented.
func (n *node) shoalLog(k int) string {
	var lines []string
	for line := range strings.Lines(n.stderr.String()) {
		if !strings.Contains(line, "component=memberlist") {
			lines = append(lines, strings.TrimRight(line, "\n"))
		}
	}
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}
