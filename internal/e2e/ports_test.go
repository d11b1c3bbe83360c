package e2e

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports for the processes the tests start must be chosen before they
// start (a --join list names them). A port taken from a listener on port
// 0 and closed again can meanwhile be handed to anything else on the
// machine that asks for port 0, such as another package's test binary
// running alongside. childPort picks instead from below the kernel's
// ephemeral range, which the kernel never hands out by itself; usedPorts
// keeps two of this run's processes apart.

// usedPorts are the ports handed out in this test run.
var usedPorts sync.Map // int → struct{}

// childPortSpan is how many ports below the ephemeral range childPort
// picks from.
const childPortSpan = 12000

// ephemeralLow is the lowest port of the kernel's ephemeral range (the
// default when it is too low to leave room below it).
var ephemeralLow = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if low, err := strconv.Atoi(f[0]); err == nil && low > 2048 {
				return low
			}
		}
	}
	return 32768 // Linux's default
})

// childPort returns a loopback port below the ephemeral range that is
// free for TCP (and for UDP too if udp is set) and not yet handed out in
// this run.
func childPort(t *testing.T, udp bool) int {
	t.Helper()
	low := ephemeralLow()
	base := max(1025, low-childPortSpan)
	for range 200 {
		port := base + rand.IntN(low-base)
		if _, taken := usedPorts.LoadOrStore(port, struct{}{}); taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		if udp {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			pc.Close()
		}
		return port
	}
	t.Fatalf("no free loopback port in %d-%d after 200 tries", base, low-1)
	return 0
}
