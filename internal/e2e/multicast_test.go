package e2e

import (
	"regexp"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/netnstest"
)

// TestClusterMulticast: three nodes given only --discover
// multicast://228.0.0.4:45564 (Tomcat's default group) form one cluster
// with zero other configuration; a session logged in on one counts on
// the others; a fourth node with another key is refused, logged as a
// key mismatch, and never seen ready.
func TestClusterMulticast(t *testing.T) {
	if !netnstest.Run(t, true) {
		return
	}
	const discover = "multicast://228.0.0.4:45564"
	key := writeKey(t)
	start := time.Now()
	n1 := startClusterNode(t, "n1", key, "127.0.0.1:0", "", "--discover", discover)
	waitReady(t, n1)
	t.Logf("n1, alone: process start to ready in %v", time.Since(start).Round(time.Millisecond))
	n2 := startClusterNode(t, "n2", key, "127.0.0.1:0", "", "--discover", discover)
	n3 := startClusterNode(t, "n3", key, "127.0.0.1:0", "", "--discover", discover)
	nodes := []*node{n1, n2, n3}
	waitSeeReady(t, nodes, nil, "n1", "n2", "n3")

	s := login(t, n1, "alice")
	s.nodes = nodes
	for i := range 9 {
		if s.next(t, nodes[(i+1)%3], "round robin") {
			t.Fatalf("request %d rebound the session with every node alive", i+1)
		}
	}

	off := offsets(nodes...)
	n4 := startNodeWithin(t, "n4", clusterStartTimeout, "--cluster-listen", "127.0.0.1:0",
		"--cluster-key-file", writeKey(t), "--log-level", "debug", "--discover", discover)
	mismatch := regexp.MustCompile(`cluster key mismatch`)
	for _, o := range nodes {
		if !poll(logTimeout, func() bool { return mismatch.MatchString(o.stderr.since(off[o])) }) {
			t.Fatalf("%s did not log the wrong key's node as a cluster key mismatch; log tail:\n%s", o.name, o.tail(30))
		}
	}
	// Give the wrong node a few beacon periods: nobody may see it.
	time.Sleep(3 * time.Second)
	for _, o := range nodes {
		if seesReadyRE(o.name, "n4").MatchString(o.stderr.since(off[o])) {
			t.Errorf("%s sees n4, whose key is wrong, as a member", o.name)
		}
	}
	_ = n4
	s.next(t, n2, "after the refused node")
}

// TestClusterMulticastStartTogether: four nodes started at the same
// moment, knowing nothing but the multicast group, form one cluster
// (every node sees every other ready) with no stall. (Two Tomcat nodes
// started together stalled 60 s in 2 of 4 tries.)
func TestClusterMulticastStartTogether(t *testing.T) {
	if !netnstest.Run(t, true) {
		return
	}
	key := writeKey(t)
	start := time.Now()
	var nodes []*node
	var names []string
	for i := range 4 {
		name := "n" + string(rune('1'+i))
		names = append(names, name)
		nodes = append(nodes, spawn(t, name, "node", "--name", name, "--listen", "127.0.0.1:0",
			"--cluster-listen", "127.0.0.1:0", "--cluster-key-file", key, "--log-level", "debug",
			"--dead-after", "2s", "--discover", "multicast://228.0.0.4:45564"))
	}
	waitSeeReady(t, nodes, nil, names...)
	t.Logf("4 nodes started together: each sees the 3 others ready %v after the first start", time.Since(start).Round(time.Millisecond))
}
