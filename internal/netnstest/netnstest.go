// Package netnstest runs a test again inside a network namespace of its
// own, for tests of what crosses a network (multicast beacons) that must
// neither depend on nor disturb the host's interfaces and routes.
package netnstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Timeout bounds the test's run inside the namespace.
const Timeout = 3 * time.Minute

// envVar names the test that runs inside the namespace, in the child.
const envVar = "SHOAL_NETNS_TEST"

// Run runs the calling test again, as a child process of the test binary,
// in a new network namespace whose loopback is up and, if multicast is
// set, carries multicast (the MULTICAST flag and a route for 224.0.0.0/4),
// so that beacons never leave this host. It returns true in that child,
// where the test's body runs (and the processes it starts share the
// namespace's loopback), and false in the parent, which only reports the
// child's output and result. It needs root and iproute2's ip, as CI has;
// without them the test fails saying so.
func Run(t *testing.T, multicast bool) bool {
	t.Helper()
	if os.Getenv(envVar) == t.Name() {
		return true
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("this test needs iproute2's ip command to make a network namespace (apt-get install iproute2): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to make a network namespace (CI runs as root)")
	}
	ns := fmt.Sprintf("shoal-test-%d", os.Getpid())
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
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), envVar+"="+t.Name())
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("in network namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	return false
}
