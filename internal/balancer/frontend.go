package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Frontend serves a Balancer's clients. Plain HTTP/1.1 requests (over
// TCP or TLS) take the fast path: a loop per client connection that
// parses each request head in place, strictly, and forwards it over a
// pool of keep-alive connections to the chosen member. Everything else
// is handed, connection and bytes already read, to a net/http server
// over the same Balancer (Balancer.ServeHTTP): HTTP/2 (TLS with ALPN h2,
// or h2c with prior knowledge), upgrades such as WebSocket, CONNECT,
// requests with Expect, HTTP/1.0 and request targets that are not
// origin-form. Both paths pick members, stick, fail over and count the
// same way.
//
// Its methods follow http.Server's: Serve, ServeTLS, Shutdown, Close.
type Frontend struct {
	// TLSConfig, if set, is used by ServeTLS. Its NextProtos get "h2"
	// and "http/1.1" if empty.
	TLSConfig *tls.Config

	b     *Balancer
	log   *slog.Logger
	inner *http.Server // the net/http path
	hand  *handoffListener

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*clientConn]struct{}
	closing   atomic.Bool
	innerOnce sync.Once
	trimOnce  sync.Once
	done      chan struct{} // closed by Shutdown or Close
	doneOnce  sync.Once
	wg        sync.WaitGroup // connection goroutines

	// sweepEvery and coarseMin are the housekeeper's timing, and
	// trimAfter and trimEvery its memory trimming's (trimMemory), read
	// from the package's variables when the Frontend is made.
	sweepEvery, coarseMin time.Duration
	trimAfter             int64
	trimEvery             time.Duration
	// headTimeout is readHeaderTimeout, read once (tests change it).
	headTimeout time.Duration

	open atomic.Int64 // client connections open (both paths' fast-path loops)
	peak atomic.Int64 // the most open since memory was last given back

	// The housekeeper's own (trimMemory): the connections open at its
	// last run, and when memory was last given back (nanotime).
	lastOpen, lastTrim int64
	trims              atomic.Int64 // how many times memory was given back (for tests)
}

// NewFrontend returns a Frontend for b. Errors of the net/http path's
// server go to log at warning level; nil means they are dropped.
func NewFrontend(b *Balancer, log *slog.Logger) *Frontend {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Frontend{
		b:           b,
		log:         log,
		listeners:   map[net.Listener]struct{}{},
		conns:       map[*clientConn]struct{}{},
		done:        make(chan struct{}),
		sweepEvery:  sweepEvery,
		coarseMin:   coarseTimeoutMin,
		trimAfter:   trimAfterConns,
		trimEvery:   trimMinInterval,
		lastTrim:    nanotime() - int64(trimMinInterval),
		headTimeout: readHeaderTimeout,
	}
	f.hand = &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
	f.inner = NewServer(http.HandlerFunc(serveHandedOff(b)), log)
	f.inner.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if hc, ok := c.(*handedConn); ok && hc.tls != nil {
			return context.WithValue(ctx, tlsStateKey{}, hc.tls)
		}
		return ctx
	}
	return f
}

type tlsStateKey struct{}

// serveHandedOff is the net/http path's handler: the Balancer, with the
// TLS state of a connection the fast path handed over after TLS (which
// net/http cannot see through the wrapper).
func serveHandedOff(b *Balancer) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		b.ServeHTTP(w, r)
	}
}

// Serve accepts connections on ln and serves them until Shutdown or
// Close, after which it returns http.ErrServerClosed.
func (f *Frontend) Serve(ln net.Listener) error { return f.serve(ln, nil) }

// ServeTLS is Serve over TLS, with f.TLSConfig, or the certificate and
// key in certFile and keyFile when they are not "".
func (f *Frontend) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	cfg := &tls.Config{}
	if f.TLSConfig != nil {
		cfg = f.TLSConfig.Clone()
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	return f.serve(ln, cfg)
}

func (f *Frontend) serve(ln net.Listener, tlsCfg *tls.Config) error {
	f.mu.Lock()
	if f.closing.Load() {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	f.listeners[ln] = struct{}{}
	f.mu.Unlock()
	f.hand.setAddr(ln.Addr())
	f.innerOnce.Do(func() {
		f.inner.TLSConfig = tlsCfg
		go f.inner.Serve(f.hand)
	})
	f.trimOnce.Do(func() { go f.housekeep() })

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of descriptors, say: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				f.log.Warn("balancer: accept", slog.Any("err", err), slog.Duration("retry_in", backoff))
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		cc := &clientConn{f: f, c: c, accepted: c}
		if !f.track(cc, true) {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go cc.run(tlsCfg)
	}
}

// isTemporary reports whether an accept error is worth waiting out
// (EMFILE, ENFILE, ECONNABORTED...).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track adds or removes a connection. It refuses to add one once the
// Frontend is shutting down.
func (f *Frontend) track(cc *clientConn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		if f.closing.Load() {
			return false
		}
		f.conns[cc] = struct{}{}
		n := f.open.Add(1)
		if n > f.peak.Load() {
			f.peak.Store(n)
		}
		return true
	}
	delete(f.conns, cc)
	f.open.Add(-1)
	return true
}

// Shutdown stops accepting, closes the idle client connections, waits
// for the others to finish their request (they close after its
// response) and shuts down the net/http path, or gives up when ctx ends
// and returns its error.
func (f *Frontend) Shutdown(ctx context.Context) error {
	f.stopListening()
	innerErr := make(chan error, 1)
	go func() { innerErr <- f.inner.Shutdown(ctx) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if f.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	f.wg.Wait()
	return <-innerErr
}

// Close closes the listeners and every client connection at once.
func (f *Frontend) Close() error {
	f.stopListening()
	err := f.inner.Close()
	f.mu.Lock()
	for cc := range f.conns {
		// A connection serving a request from inside its poller wait
		// (serveRaw) holds its read lock until the member answers, and
		// a Close waits for that. So the socket is shut down now (the
		// client sees the end at once; what the serving goroutine does
		// next on it fails) and closed without waiting.
		if tc, ok := cc.accepted.(*net.TCPConn); ok {
			if rc, err := tc.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
			}
		}
		go cc.accepted.Close()
	}
	f.mu.Unlock()
	return err
}

func (f *Frontend) stopListening() {
	f.mu.Lock()
	f.closing.Store(true)
	for ln := range f.listeners {
		ln.Close()
	}
	f.mu.Unlock()
	f.doneOnce.Do(func() { close(f.done) })
}

// closeIdle closes the connections that wait for a request and returns
// how many are left.
func (f *Frontend) closeIdle() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cc := range f.conns {
		if cc.state.CompareAndSwap(connIdle, connClosed) {
			cc.c.Close()
		}
	}
	return len(f.conns)
}

// housekeep runs every sweepEvery until the Frontend stops: it enforces
// the idle and (long) response header timeouts, and gives memory back
// after a burst of connections.
func (f *Frontend) housekeep() {
	t := time.NewTicker(f.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.sweep(nanotime())
		f.trimMemory()
	}
}

// Timing of the housekeeper; variables for tests (a Frontend reads them
// when it is made).
var (
	// sweepEvery is how often the housekeeper runs.
	sweepEvery = time.Second
	// coarseTimeoutMin is the least ResponseHeaderTimeout the housekeeper
	// enforces (to sweepEvery); shorter ones are read deadlines.
	coarseTimeoutMin = 10 * time.Second
)

// sweep closes the client connections idle for longer than idleTimeout,
// and the member connections whose response head is overdue. They are
// swept rather than given read deadlines because a deadline per request
// costs a runtime timer update (about 5 % of a request's time in
// BenchmarkFastPath), where the sweep costs two loads per connection a
// second.
func (f *Frontend) sweep(now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cc := range f.conns {
		if cc.state.Load() == connIdle && now-cc.idleSince.Load() > int64(idleTimeout) &&
			cc.state.CompareAndSwap(connIdle, connClosed) {
			cc.c.Close()
			continue
		}
		if until := cc.waitUntil.Load(); until != 0 && now > until {
			if bc := cc.waitBC.Swap(nil); bc != nil {
				bc.timedOut.Store(true)
				bc.c.Close()
			}
		}
	}
}

// trimMemory gives memory back to the system once a burst of
// connections is over, or mostly over: their stacks and the buffers they
// used are garbage, but the collector runs only as the heap grows again
// and the runtime returns freed pages only slowly (it keeps about the
// last heap goal), so a balancer that held 10,000 connections would keep
// most of that memory for good. When the open connections have fallen
// to a quarter of their peak since the last trim, and stopped falling
// (fewer than a sixteenth of the peak closed since the last run; or
// nearly all gone), it collects and returns the free pages at once, and
// trims the member connection pools.
//
// It runs in the housekeeper, once a second, and decides on two atomic
// loads: the request path pays nothing for it (the counts are kept when
// connections open and close, under the lock those already take). A trim
// costs a full collection and a scavenge, tens of milliseconds of CPU
// for a large heap, so trims are at least trimEvery apart, and each
// needs the connections to fall fourfold again from the count it left:
// a load that only declines, from 10,000 connections to none, is
// trimmed at most three times.
func (f *Frontend) trimMemory() {
	now := nanotime()
	peak, open := f.peak.Load(), f.open.Load()
	settled := f.lastOpen-open < peak/16 || open <= peak/16
	f.lastOpen = open
	burstOver := peak >= f.trimAfter && open <= peak/4 && settled &&
		now-f.lastTrim >= int64(f.trimEvery)
	keep := maxIdlePerMember
	if burstOver {
		keep = idleAfterBurst
	}
	for _, m := range f.b.set.Load().list {
		m.target().pool.trimIdle(keep, idleConnTimeout)
	}
	if burstOver {
		// Two collections: the first moves the pooled buffers of the
		// closed connections to sync.Pool's victim cache, the second
		// (FreeOSMemory's) frees them, then the pages go back.
		runtime.GC()
		debug.FreeOSMemory()
		f.peak.Store(f.open.Load())
		f.lastTrim = nanotime()
		f.trims.Add(1)
	}
}

// Memory trimming (trimMemory); variables for tests (a Frontend reads
// them when it is made).
var (
	// trimAfterConns is the least peak of connections after which
	// trimMemory gives memory back: below it there is little to give.
	trimAfterConns int64 = 512
	// trimMinInterval is the least time between two trims.
	trimMinInterval = 2 * time.Second
)

// idleAfterBurst is how many idle connections per member trimMemory
// keeps when it gives memory back.
const idleAfterBurst = 64

// handoffListener is the net/http path's listener: the connections the
// fast path hands over.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr atomic.Pointer[net.Addr]
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr {
	if a := l.addr.Load(); a != nil {
		return *a
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}

func (l *handoffListener) setAddr(a net.Addr) { l.addr.CompareAndSwap(nil, &a) }

// handoff gives c to the net/http path, or closes it if that path is
// closed.
func (l *handoffListener) handoff(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// handedConn is a connection handed to net/http with the bytes the fast
// path had read from it.
type handedConn struct {
	net.Conn
	pre []byte
	tls *tls.ConnectionState
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Pools of the fast path's buffers.
var (
	clientBufPool = sync.Pool{New: func() any { b := make([]byte, clientBufSize); return &b }}
	writerPool    = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientBufSize) }}
)
