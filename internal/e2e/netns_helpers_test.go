package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netnsTimeout bounds a test run again inside a network namespace.
const netnsTimeout = 3 * time.Minute

// inNetns runs the calling test again in a network namespace of its own,
// with its loopback up and, if multicast is set, carrying multicast (the
// MULTICAST flag and a route for 224.0.0.0/4), so that multicast beacons
// never leave this host and the host's own routes do not matter. It
// returns true in that child, where the test's body runs (and the nodes
// it starts share the namespace's loopback), and false in the parent,
// which only reports the child's result. It needs root and iproute2's
// ip, which CI has; without them the test fails saying so.
func inNetns(t *testing.T, multicast bool) bool {
	t.Helper()
	if os.Getenv("SHOAL_E2E_NETNS") == t.Name() {
		return true
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("this test needs iproute2's ip command to make a network namespace (apt-get install iproute2): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to make a network namespace (CI runs as root)")
	}
	ns := fmt.Sprintf("shoal-e2e-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run("-n", ns, "link", "set", "lo", "up")
	if multicast {
		run("-n", ns, "link", "set", "lo", "multicast", "on")
		run("-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo")
	}
	ctx, cancel := context.WithTimeout(t.Context(), netnsTimeout)
	defer cancel()
	args := []string{"netns", "exec", ns, os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.v"}
	cmd := exec.CommandContext(ctx, ip, args...)
	cmd.Env = append(os.Environ(), "SHOAL_E2E_NETNS="+t.Name())
	cmd.WaitDelay = stopTimeout
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	return false
}
