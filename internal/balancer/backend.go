package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-go/shoal/internal/sysconn"
)

// Limits of the fast path's connections to one member.
const (
	// maxConnsPerMember bounds the connections open to one member. A
	// request that finds them all busy waits for one (up to the connect
	// timeout) instead of opening more: 10,000 client connections must
	// not become 10,000 member connections, which would exhaust file
	// descriptors (the Go baseline's failure in the shared harness).
	maxConnsPerMember = 1024
	// maxIdlePerMember bounds the idle connections kept for reuse.
	maxIdlePerMember = 512
	// backendBufSize is the read and write buffer of a member connection.
	backendBufSize = 4 << 10
)

// errPoolClosed is the error of a request to a member that was removed
// or whose URL changed while the request waited for a connection.
var errPoolClosed = errors.New("member connection pool closed")

// errPoolBusy is the error of a request that waited too long for one of
// the member's connections.
var errPoolBusy = errors.New("all connections to the member are busy")

// connPool is the fast path's pool of keep-alive connections to one
// member address: idle connections are reused last-in first-out (the
// warmest first), and at most maxConnsPerMember are open; a request that
// finds none free queues for the next one released.
type connPool struct {
	addr   string // host:port to dial
	prefix string // the member URL's path, without a trailing '/': prepended to request paths

	mu      sync.Mutex
	idle    []*backendConn
	open    int                 // connections open or being dialled
	waiters []chan *backendConn // requests waiting for a connection; nil sent means "dial"
	closed  bool
}

func newConnPool(u *url.URL) *connPool {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	return &connPool{addr: host, prefix: strings.TrimSuffix(u.EscapedPath(), "/")}
}

// backendConn is one connection to a member.
type backendConn struct {
	c     net.Conn
	rd    hreader
	bw    *bufio.Writer // writes to stage
	stage stageWriter
	pool  *connPool
	// raw is c's, for exchange; nil if c is not a plain TCP connection.
	raw syscall.RawConn
	// The exchange in progress (see exchange): the callback bound once
	// (a method value per request would be an allocation), whether the
	// request went out, and how the exchange failed.
	xfn    func(fd uintptr) bool
	sent   bool
	xErr   error
	reused bool // it served a request before this one
	// idleSince is when it was last put back (nanotime).
	idleSince int64
	// timedOut is set by the housekeeper when it closes the connection
	// because the response header timeout passed.
	timedOut atomic.Bool
}

// staleCheckAfter is how long a connection may stay idle before its
// reuse checks that the member did not close it meanwhile: a peek, one
// system call, which a busy pool does not pay.
const staleCheckAfter = time.Second

// alive reports whether the member has neither closed the idle
// connection nor sent anything on it (a peek that does not block).
func (bc *backendConn) alive() bool {
	if bc.rd.buffered() > 0 {
		return false
	}
	sc, ok := bc.c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait
	})
	return err == nil && alive
}

// nanotime is a monotonic clock in ns.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// get returns a connection to the member: an idle one, or a new one
// dialled within connectTimeout (0: no bound), waiting for one to be
// released if maxConnsPerMember are open. Dial errors are returned as
// they are (a *net.OpError with Op "dial"), so that failover knows
// nothing was sent.
//
// With fresh, it never reuses an idle connection: for a request whose
// reused connection turned out to be closed by the member.
func (p *connPool) get(ctx context.Context, connectTimeout time.Duration, fresh bool) (*backendConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	for !fresh && len(p.idle) > 0 {
		n := len(p.idle)
		bc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		idle := time.Duration(nanotime() - bc.idleSince)
		if idle < staleCheckAfter {
			p.mu.Unlock()
			return bc, nil
		}
		// Idle for a while: the member may have closed it (its own idle
		// timeout, or a restart). Check without the lock.
		p.mu.Unlock()
		if idle < idleConnTimeout && bc.alive() {
			return bc, nil
		}
		p.discard(bc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
	}
	if p.open < maxConnsPerMember {
		p.open++
		p.mu.Unlock()
		return p.dial(ctx, connectTimeout)
	}
	ch := make(chan *backendConn, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()

	wait := connectTimeout
	if wait <= 0 {
		wait = time.Minute
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case bc, ok := <-ch:
		if !ok {
			return nil, errPoolClosed
		}
		if bc != nil {
			return bc, nil
		}
		return p.dial(ctx, connectTimeout) // a slot was released to us
	case <-t.C:
	case <-ctx.Done():
	}
	// Leave the queue; a connection handed to us meanwhile goes back.
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	select {
	case bc, ok := <-ch:
		if ok {
			if bc != nil {
				p.put(bc)
			} else {
				p.release()
			}
		}
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, errPoolBusy
}

// dial opens a connection; the caller holds one of p.open's slots.
func (p *connPool) dial(ctx context.Context, timeout time.Duration) (*backendConn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: tcpKeepAlive}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		p.release()
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	bc := &backendConn{
		c:     c,
		rd:    hreader{c: c, buf: make([]byte, backendBufSize)},
		stage: stageWriter{c: c},
		pool:  p,
	}
	bc.bw = bufio.NewWriterSize(&bc.stage, backendBufSize)
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			bc.raw = raw
			bc.xfn = bc.exchangeStep
		}
	}
	return bc, nil
}

// stageWriter is a member connection's bufio.Writer's destination: it
// writes to the connection, or, while keep is set, keeps what it is
// given for exchange to write.
type stageWriter struct {
	c    net.Conn
	keep bool
	buf  []byte
}

func (w *stageWriter) Write(p []byte) (int, error) {
	if w.keep {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	return w.c.Write(p)
}

// errExchangeWrite wraps the failure to write a staged request head
// (exchange): as with any failed write of a request, nothing may have
// reached the member.
type errExchangeWrite struct{ err error }

func (e *errExchangeWrite) Error() string { return "writing the request: " + e.err.Error() }
func (e *errExchangeWrite) Unwrap() error { return e.err }

// isExchangeWrite reports whether err is an errExchangeWrite (exchange
// returns it as is). Only for a non-nil err: errors.As's target escapes,
// an allocation the request path does not pay when all went well.
func isExchangeWrite(err error) bool {
	var xw *errExchangeWrite
	return errors.As(err, &xw)
}

// exchange writes the staged request (a head without a body) and waits
// for the first bytes of the answer, in one wait of the poller, saving
// the read that finds nothing. Go's net.Conn reads before it waits (it
// must: it cannot know whether bytes came while nobody waited), so a
// write then a Read costs a read that fails with EAGAIN on every
// request, a sixth of the balancer's system calls, which are most of its
// CPU. Here the write is made from inside RawConn.Read's callback: the
// poller was armed before it, so the answer, which can only come after
// the request, wakes the wait however soon it arrives, and the first
// read is the one that gets it. A write that would block (a send buffer
// full: never for a head on an idle connection, in practice) ends the
// exchange and the rest goes the ordinary way. The bytes read land in
// bc.rd, for readHead.
func (bc *backendConn) exchange() error {
	bc.sent, bc.xErr = false, nil
	err := bc.raw.Read(bc.xfn)
	bc.stage.buf = bc.stage.buf[:0]
	if bc.xErr != nil {
		return bc.xErr
	}
	if err != nil {
		if !bc.sent {
			return &errExchangeWrite{err}
		}
		return err
	}
	return nil
}

// exchangeStep is exchange's RawConn.Read callback: the first call
// writes, the next ones read.
func (bc *backendConn) exchangeStep(fd uintptr) bool {
	if !bc.sent {
		b := bc.stage.buf
		for len(b) > 0 {
			n, err := sysconn.Write(int(fd), b)
			switch {
			case err == syscall.EAGAIN:
				// The rest goes through the connection (which waits for
				// room), and the answer is read the ordinary way.
				if _, err := bc.c.Write(b); err != nil {
					bc.xErr = &errExchangeWrite{err}
				}
				bc.sent = true
				return true
			case err != nil:
				bc.xErr = &errExchangeWrite{os.NewSyscallError("write", err)}
				return true
			}
			b = b[n:]
		}
		bc.sent = true
		return false // wait for the answer
	}
	h := &bc.rd
	if h.r == h.w {
		h.r, h.w = 0, 0
	}
	if h.w == len(h.buf) {
		return true // no room (cannot happen for a response's first bytes): readHead reads on
	}
	n, err := sysconn.Read(int(fd), h.buf[h.w:])
	switch {
	case err == syscall.EAGAIN:
		return false
	case err != nil:
		bc.xErr = os.NewSyscallError("read", err)
	case n == 0:
		bc.xErr = io.EOF
	default:
		h.w += n
	}
	return true
}

// put returns a connection that finished a request cleanly (its response
// read to the end) for reuse.
func (p *connPool) put(bc *backendConn) {
	bc.reused = true
	bc.idleSince = nanotime()
	p.mu.Lock()
	if p.closed {
		p.open--
		p.mu.Unlock()
		bc.c.Close()
		return
	}
	if n := len(p.waiters); n > 0 {
		ch := p.waiters[0]
		copy(p.waiters, p.waiters[1:])
		p.waiters[n-1] = nil
		p.waiters = p.waiters[:n-1]
		p.mu.Unlock()
		ch <- bc
		return
	}
	if len(p.idle) >= maxIdlePerMember {
		p.open--
		p.mu.Unlock()
		bc.c.Close()
		return
	}
	p.idle = append(p.idle, bc)
	p.mu.Unlock()
}

// discard closes a connection that cannot be reused.
func (p *connPool) discard(bc *backendConn) {
	bc.c.Close()
	p.release()
}

// release gives back the slot of a connection that was closed (or never
// opened): to a waiter, who dials, or to the count.
func (p *connPool) release() {
	p.mu.Lock()
	if n := len(p.waiters); n > 0 && !p.closed {
		ch := p.waiters[0]
		copy(p.waiters, p.waiters[1:])
		p.waiters[n-1] = nil
		p.waiters = p.waiters[:n-1]
		p.mu.Unlock()
		ch <- nil
		return
	}
	p.open--
	p.mu.Unlock()
}

// closeIdle closes the idle connections: after the member failed (they
// would fail too), or when it is retired.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, bc := range idle {
		bc.c.Close()
	}
}

// trimIdle closes the idle connections beyond the keep most recently
// used, and those idle for longer than maxIdle.
func (p *connPool) trimIdle(keep int, maxIdle time.Duration) {
	now := nanotime()
	p.mu.Lock()
	var drop []*backendConn
	n := 0
	for i, bc := range p.idle { // oldest first
		if len(p.idle)-i > keep || time.Duration(now-bc.idleSince) > maxIdle {
			drop = append(drop, bc)
			continue
		}
		p.idle[n] = bc
		n++
	}
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	p.open -= len(drop)
	p.mu.Unlock()
	for _, bc := range drop {
		bc.c.Close()
	}
}

// close closes the idle connections and makes the pool close the busy
// ones when they are put back; waiters get errPoolClosed.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, ch := range waiters {
		close(ch)
	}
	p.closeIdle()
}

// idleCount returns the number of idle connections (for tests).
func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
