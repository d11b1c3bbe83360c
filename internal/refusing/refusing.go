// Package refusing gives tests a loopback address that refuses
// connections for as long as the test runs.
//
// Listening on port 0 and closing the listener frees the port: another
// test, in this process or in another package's test binary running at
// the same time, can then be given it and answer there. A socket bound to
// the port without listening keeps it reserved (no other socket can bind
// it, and the kernel hands it to no one), while a connection to it is
// refused.
package refusing

import (
	"fmt"
	"syscall"
	"testing"
)

// Addr returns "127.0.0.1:PORT" where PORT refuses connections until the
// test ends.
func Addr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("refusing: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("refusing: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("refusing: getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("refusing: bound to %T, want an IPv4 address", sa)
	}
	return fmt.Sprintf("127.0.0.1:%d", in4.Port)
}
