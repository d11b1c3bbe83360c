package e2e

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// startBalancerNode starts `shoal balancer args...` on a free port and
// returns it as a load target once it routes to want cluster nodes (0:
// once it listens).
func startBalancerNode(t *testing.T, want int, args ...string) *node {
	t.Helper()
	lb := spawn(t, "balancer", append([]string{"balancer", "--listen", "127.0.0.1:0"}, args...)...)
	if !poll(20*time.Second, func() bool {
		m := balancerListeningRE.FindStringSubmatch(lb.stderr.String())
		if m != nil {
			lb.url = "http://" + m[1]
		}
		return m != nil && strings.Count(lb.stderr.String(), "cluster node added") >= want
	}) {
		t.Fatalf("the balancer did not start (or list %d cluster nodes):\n%s", want, lb.stderr)
	}
	return lb
}

// TestBalancerUnderLoadKill: loadSessions sessions log in through the
// balancer and send sequential GET /counter through it (sticky, as a
// browser would) while one of the three nodes is killed with SIGKILL.
// Following the cluster, the balancer hides the death entirely: zero
// failed requests, no session lost, no count going back. With a static
// member list and health checks, the same run's failures are reported.
func TestBalancerUnderLoadKill(t *testing.T) {
	for _, mode := range []string{"cluster-aware", "static"} {
		t.Run(mode, func(t *testing.T) {
			key, nodes := startLoadCluster(t)
			var lb *node
			if mode == "cluster-aware" {
				lb = startBalancerNode(t, 3, "--cluster-join", nodes[0].gossip, "--cluster-key-file", key,
					"--cluster-listen", freeGossipAddr(t), "--dead-after", "2s")
			} else {
				args := []string{"--health-path", "/healthz/ready", "--health-interval", "1s"}
				for _, n := range nodes {
					args = append(args, "--member", n.name+"="+n.url)
				}
				lb = startBalancerNode(t, 0, args...)
			}
			r := newLoadRun(t)
			r.targets = append(r.targets, &loadTarget{n: lb, balancer: true})
			r.live = r.targets
			r.tolerate = mode == "static"
			seed := uint64(time.Now().UnixNano())
			t.Logf("random seed %d", seed)
			r.login([]*node{lb}, rand.New(rand.NewPCG(seed, seed)))
			r.start()
			r.progress(3, "warm-up")

			victim := nodes[0]
			off := offsets(nodes[1:]...)
			killed := time.Now()
			if err := victim.kill(); err != nil {
				t.Fatalf("kill -9 %s (pid %d): %v", victim.name, victim.pid(), err)
			}
			t.Logf("%s (pid %d) killed at +%v", victim.name, victim.pid(), killed.Sub(r.begin).Round(time.Millisecond))
			r.progress(4, "after the kill")
			// The survivors rebind its sessions once they have declared
			// it dead (until then it may only be slow).
			for _, o := range nodes[1:] {
				re := deadRE(o.name, victim.name)
				if !poll(logTimeout, func() bool { return re.MatchString(o.stderr.since(off[o])) }) {
					t.Fatalf("%s did not declare %s dead within %v of the kill", o.name, victim.name, logTimeout)
				}
			}
			r.progress(2, "after the death was declared")
			r.finish()
			if mode == "static" {
				t.Logf("static member list with health checks: %d failed requests of %d (cluster-aware mode must have none)",
					r.failures.Load(), r.requests.Load())
			}
			for _, s := range r.sessions {
				if s.route() == victim.name {
					t.Errorf("session %s still names the killed node after 2 requests since its death was declared", s.id)
					break
				}
			}
		})
	}
}
