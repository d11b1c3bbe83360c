// Package sysconn reads and writes non-blocking TCP sockets with raw
// system calls: read(2) and write(2) through syscall.RawSyscall, without
// the runtime's entry into and exit from a system call (entersyscall,
// exitsyscall).
//
// That bookkeeping exists for calls that may block: while a thread is in
// one, the runtime's monitor may hand its processor to another thread,
// and the thread must get a processor back when the call returns. A
// socket registered with the poller never blocks (a full or empty socket
// says EAGAIN and the goroutine waits in the poller, as net.Conn does),
// and where system calls are slow (in the VM shoal's benchmarks run in,
// a 100-byte write to a loopback TCP socket costs about 7 µs) the
// hand-overs and the wake-ups they cost become a large share of a proxy's
// or a replication link's CPU. Measured in shoal's balancer, which makes
// most of its calls this way (internal/balancer's package doc has the
// figures): 11 % less CPU per request and 6 % more requests per second,
// alternating with the build before in one run.
//
// The price: a goroutine in such a call cannot be preempted, so the
// world (a garbage collection's stop) waits for the call to return. For a
// non-blocking socket that is the time of one copy.
package sysconn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Read is read(2) on fd, which must be a non-blocking socket kept open
// by the caller (inside a syscall.RawConn callback). A call interrupted
// by a signal (EINTR) is made again; an empty socket is EAGAIN.
func Read(fd int, p []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, p) }

// Write is write(2) on fd, on the same terms as Read.
func Write(fd int, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// Conn is a TCP connection whose Read and Write use Read and Write above
// inside its RawConn's callbacks, waiting in the poller when the socket
// is empty or full. Deadlines, Close and the rest are the TCPConn's. It
// is safe for concurrent use as a net.Conn is.
type Conn struct {
	*net.TCPConn
	r, w op
}

// op is one direction's call in progress; mu keeps concurrent callers
// of the same direction apart (the RawConn serializes the system calls,
// not this state).
type op struct {
	mu  sync.Mutex
	p   []byte
	n   int
	err error
	// call is the RawConn's Read or Write, step the callback given to
	// it; both bound once, so that a call allocates nothing.
	call func(func(fd uintptr) bool) error
	step func(fd uintptr) bool
}

// do runs o's call on p and returns what step made of it.
func (o *op) do(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.n, o.err = p, 0, nil
	err := o.call(o.step)
	n := o.n
	o.p = nil
	if err != nil { // a deadline, or the connection closed
		return n, err
	}
	return n, o.err
}

// Wrap returns c as a *Conn if it is a *net.TCPConn, and c itself
// otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	sc := &Conn{TCPConn: tc}
	sc.r.call, sc.r.step = rc.Read, sc.readStep
	sc.w.call, sc.w.step = rc.Write, sc.writeStep
	return sc
}

// Read reads into p, waiting until at least one byte, the end of the
// stream (io.EOF) or an error comes.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return c.r.do(p)
}

func (c *Conn) readStep(fd uintptr) bool {
	n, err := Read(int(fd), c.r.p)
	switch {
	case err == syscall.EAGAIN:
		return false
	case err != nil:
		c.r.err = c.opError("read", err)
	case n == 0:
		c.r.err = io.EOF
	}
	c.r.n = n
	return true
}

// Write writes all of p, waiting for room as often as it takes, unless
// an error (or a deadline) stops it first.
func (c *Conn) Write(p []byte) (int, error) { return c.w.do(p) }

func (c *Conn) writeStep(fd uintptr) bool {
	for c.w.n < len(c.w.p) {
		n, err := Write(int(fd), c.w.p[c.w.n:])
		switch {
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.w.err = c.opError("write", err)
			return true
		}
		c.w.n += n
	}
	return true
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}
