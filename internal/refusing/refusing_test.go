package refusing_test

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/refusing"
)

// The address refuses connections, and no listener can take its port
// while the test runs.
func TestAddr(t *testing.T) {
	addr := refusing.Addr(t)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded, want it refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("a listener took %s while it was reserved", addr)
	}
}
