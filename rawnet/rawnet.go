// Package rawnet serves a Go HTTP server's connections with raw socket
// system calls. Wrap the listener that an http.Server serves:
//
//	ln, err := rawnet.Listen("tcp", ":8080")
//	if err != nil { ... }
//	err = http.Serve(ln, handler)
//
// Each accepted TCP connection then reads and writes through read(2) and
// write(2) made with syscall.RawSyscall, waiting in the runtime's poller
// when the socket is empty or full, as a net.Conn does. The rest is the
// *net.TCPConn's: deadlines (so the server's timeouts hold), Close,
// CloseWrite, ReadFrom (sendfile for files), and Hijack hands over the
// wrapped connection. Connections that are not TCP pass through as they
// are.
//
// Why: Go makes every socket call as one that may block. When a call
// spans a tick of the runtime's monitor (20 µs while the program is
// busy) while other goroutines wait to run, the monitor hands the
// calling thread's processor to another thread, and the calling thread,
// back from the call, must wait for a processor: two thread wake-ups for
// one read. Where system calls are slow (in a VM: 7 µs for a 100-byte
// loopback write on the machine shoal's benchmarks run on) and
// processors are shared, that happens on a large share of calls, and the
// monitor then keeps waking every 20 µs.
// A socket registered with the poller never blocks, so a raw call, which
// the runtime does not track, loses nothing. Measured with shoal's node
// (the demo app, one processor, two nodes replicating behind the
// balancer, alternating with the standard calls): a third of the context
// switches, 16 % less CPU per request and 16 % more requests per second
// by the medians (bench/README.md, "Raw system calls in the node").
//
// The price: a goroutine inside a raw call cannot be preempted, so a
// garbage collection's stop waits for the call to end: at most one copy
// between the caller's buffer and the socket's.
//
// `shoal node` serves its HTTP and AJP connections this way unless
// --raw-syscalls=false.
package rawnet

import (
	"net"

	"github.com/shoal-go/shoal/internal/sysconn"
)

// Listen announces on the local address like net.Listen, and returns a
// listener whose TCP connections read and write with raw system calls.
func Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return Listener(ln), nil
}

// Listener wraps ln so that the TCP connections it accepts read and
// write with raw system calls. Its Close and Addr are ln's.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return sysconn.Wrap(c), nil
}
