package cli

import (
	"net"
	"strings"
	"testing"
)

// The demo's ports are all distinct, and none is the balancer's: picked
// one at a time, a node once got the port the balancer was to listen on.
func TestReserveAddrs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	if _, err := reserveAddrs(listen, 3); err == nil || !strings.Contains(err.Error(), "is not free") {
		t.Errorf("reserveAddrs with %s in use: %v, want \"is not free\"", listen, err)
	}
	ln.Close()
	for range 20 {
		addrs, err := reserveAddrs(listen, 7)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{listen: true}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("reserveAddrs(%s, 7) = %v: %s twice (or the balancer's)", listen, addrs, a)
			}
			seen[a] = true
		}
	}
}
