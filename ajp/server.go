package ajp

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server timeouts when the fields are zero.
const (
	// DefaultReadTimeout bounds the reading of a packet once its first
	// byte arrived, and the wait for a request body packet the server
	// asked for.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds the writing of each packet.
	DefaultWriteTimeout = 60 * time.Second
)

// Server serves an http.Handler over AJP/1.3, as a servlet container
// does behind Apache httpd's mod_proxy_ajp or mod_jk. The zero value
// with Handler and Secret set is ready to use; the fields must not
// change once Serve was called.
type Server struct {
	// Handler answers the requests. Required.
	Handler http.Handler

	// Secret is the shared secret every forward request must carry
	// (Apache httpd: the worker's secret= parameter; Tomcat: the AJP
	// connector's secret). A request without it, or with another one,
	// is answered 403, logged with the peer's address, and its
	// connection closed. Compared in constant time.
	Secret string
	// InsecureNoSecret lets Serve run without a Secret: anyone who can
	// reach the port may then claim any client address, user and TLS
	// state (CVE-2020-1938). For tests and loopback only. Setting both
	// Secret and InsecureNoSecret is an error.
	InsecureNoSecret bool

	// PacketSize is the largest packet accepted and sent, header
	// included. 0 means DefaultPacketSize (8192); at most MaxPacketSize.
	// It must match the web server's (Apache httpd: ProxyIOBufferSize).
	PacketSize int

	// IdleTimeout closes a connection that waited that long for its
	// next request. 0 means never, Tomcat's default for AJP: the web
	// server keeps a pool of connections and closes them itself.
	IdleTimeout time.Duration
	// ReadTimeout: see DefaultReadTimeout. 0 means the default,
	// negative means none.
	ReadTimeout time.Duration
	// WriteTimeout: see DefaultWriteTimeout. 0 means the default,
	// negative means none.
	WriteTimeout time.Duration

	// Logger receives refused requests (wrong secret, malformed
	// packets) and handler panics. nil means slog.Default(), as a nil
	// http.Server.ErrorLog means the log package's logger: refusals
	// are security events, not to be discarded silently.
	Logger *slog.Logger

	mu        sync.Mutex // protects the fields below
	listeners map[*net.Listener]struct{}
	conns     map[*serverConn]connState
	closed    bool           // Shutdown or Close was called
	wg        sync.WaitGroup // the connections' goroutines
}

type connState uint8

const (
	stateIdle   connState = iota // waiting for the next request
	stateActive                  // reading or serving a request
)

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) packetSize() int { return checkPacketSize(s.PacketSize) }

func timeout(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// check reports a configuration that must not serve.
func (s *Server) check() error {
	switch {
	case s.Handler == nil:
		return errors.New("ajp: Server.Handler is nil")
	case s.Secret == "" && !s.InsecureNoSecret:
		return ErrNoSecret
	case s.Secret != "" && s.InsecureNoSecret:
		return errors.New("ajp: both Secret and InsecureNoSecret are set: choose one")
	case s.PacketSize != 0 && (s.PacketSize < DefaultPacketSize || s.PacketSize > MaxPacketSize):
		return fmt.Errorf("ajp: PacketSize %d: want %d to %d", s.PacketSize, DefaultPacketSize, MaxPacketSize)
	}
	return nil
}

// Serve accepts connections on l and serves them, each on its own
// goroutine, until l fails or Shutdown or Close is called; then it
// returns ErrServerClosed. It refuses to start (ErrNoSecret) without a
// Secret unless InsecureNoSecret is set. Serve closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	if err := s.check(); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[*net.Listener]struct{}{}
		s.conns = map[*serverConn]connState{}
	}
	s.listeners[&l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration // backoff after a temporary accept error
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if !temporaryAcceptError(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log().Warn("ajp: accept failed; retrying", slog.Any("err", err), slog.Duration("in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = stateActive
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// temporaryAcceptError reports an accept error worth retrying: out of
// file descriptors, or a connection aborted before it was accepted.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting, closes idle connections, lets each request
// in progress finish (its END_RESPONSE then says the connection is not
// reused) and returns when all connections are closed. If ctx ends
// first, it closes the remaining connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		(*l).Close()
	}
	for c, st := range s.conns {
		if st == stateIdle {
			c.nc.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once; requests in
// progress are cut. It does not wait for the handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		(*l).Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	return nil
}

// serverConn is one connection from a web server.
type serverConn struct {
	s    *Server
	nc   net.Conn
	peer string
	br   *bufio.Reader
	rbuf []byte // packet buffer; the payload of the last packet read

	wmu  sync.Mutex // protects bw, wbuf and werr: the handler and the request body both write
	bw   *bufio.Writer
	wbuf []byte
	werr error // the first write error: the connection is then unusable

	readTimeout, writeTimeout time.Duration
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	ps := s.packetSize()
	return &serverConn{
		s:            s,
		nc:           nc,
		peer:         nc.RemoteAddr().String(),
		br:           bufio.NewReaderSize(nc, ps),
		rbuf:         make([]byte, ps),
		bw:           bufio.NewWriterSize(nc, ps),
		readTimeout:  timeout(s.ReadTimeout, DefaultReadTimeout),
		writeTimeout: timeout(s.WriteTimeout, DefaultWriteTimeout),
	}
}

// setState records whether the connection is idle, so that Shutdown
// may close it; it reports false if the server is closing, and then
// the connection must end.
func (c *serverConn) setState(st connState) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closed {
		return false
	}
	c.s.conns[c] = st
	return true
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// serve is the connection's goroutine: packets until the peer closes,
// a packet is malformed or the server closes.
func (c *serverConn) serve() {
	defer func() {
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	}()
	for {
		if !c.setState(stateIdle) {
			return
		}
		c.nc.SetReadDeadline(deadline(c.s.IdleTimeout))
		if _, err := c.br.Peek(1); err != nil {
			return // closed by the peer, idle timeout or Shutdown
		}
		if !c.setState(stateActive) {
			return
		}
		c.nc.SetReadDeadline(deadline(c.readTimeout))
		p, err := ReadPacket(c.br, ToContainer, c.rbuf)
		if err != nil {
			c.refuse("ajp: connection closed: bad packet", err)
			return
		}
		if len(p) == 0 {
			c.refuse("ajp: connection closed: bad packet", fmt.Errorf("%w: empty packet outside a request body", ErrMalformed))
			return
		}
		switch p[0] {
		case TypeCPing:
			if len(p) != 1 {
				c.refuse("ajp: connection closed: bad packet", fmt.Errorf("%w: CPing of %d bytes", ErrMalformed, len(p)))
				return
			}
			if c.write(AppendCPong(c.wbuf[:0]), true) != nil {
				return
			}
		case TypeForwardRequest:
			if !c.serveRequest(p) {
				return
			}
		case TypeShutdown:
			// The shutdown packet would let any peer stop the
			// container; stopping is the operator's signal's job.
			c.refuse("ajp: connection closed: shutdown packet refused", nil)
			return
		default:
			c.refuse("ajp: connection closed: bad packet", fmt.Errorf("%w: unexpected packet type %#02x", ErrMalformed, p[0]))
			return
		}
	}
}

// refuse logs why the connection is closed.
func (c *serverConn) refuse(msg string, err error) {
	attrs := []any{slog.String("peer", c.peer)}
	if err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
			return // the peer or Close ended it: nothing to report
		}
		attrs = append(attrs, slog.Any("err", err))
	}
	c.s.log().Warn(msg, attrs...)
}

// write writes packet (under wmu), flushing if asked, with the write
// timeout. The first error sticks.
func (c *serverConn) write(packet []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = packet[:0]
	return c.writeLocked(packet, flush)
}

func (c *serverConn) writeLocked(packet []byte, flush bool) error {
	if c.werr != nil {
		return c.werr
	}
	c.nc.SetWriteDeadline(deadline(c.writeTimeout))
	if _, err := c.bw.Write(packet); err != nil {
		c.werr = err
		return err
	}
	if flush {
		if err := c.bw.Flush(); err != nil {
			c.werr = err
			return err
		}
	}
	return nil
}

// serveRequest serves one forward request (payload p) and reports
// whether the connection may carry another one.
func (c *serverConn) serveRequest(p []byte) bool {
	fr, err := ParseForwardRequest(p)
	if err != nil {
		c.refuse("ajp: request refused: malformed forward request", err)
		c.plainResponse(http.StatusBadRequest, "400 bad request: malformed AJP forward request")
		return false
	}
	if c.s.Secret != "" && subtle.ConstantTimeCompare([]byte(fr.Attributes.Secret), []byte(c.s.Secret)) != 1 {
		why := "wrong secret"
		if fr.Attributes.Secret == "" {
			why = "no secret"
		}
		c.s.log().Warn("ajp: request refused: "+why, slog.String("peer", c.peer))
		c.plainResponse(http.StatusForbidden, "403 forbidden")
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := &requestBody{c: c}
	req, err := newRequest(ctx, fr, c.nc.LocalAddr(), body)
	if err != nil {
		c.refuse("ajp: request refused", err)
		c.plainResponse(http.StatusBadRequest, "400 bad request")
		return false
	}
	if req.ContentLength > 0 {
		// The web server sends the first body packet unasked, right
		// after the forward request: read it now, so that the
		// connection is in step whatever the handler reads.
		if err := body.first(); err != nil {
			c.refuse("ajp: request refused: bad first body packet", err)
			return false
		}
	}
	w := &responseWriter{c: c, req: req, cancel: cancel, handlerHeader: make(http.Header), contentLength: -1}
	var watch *peerWatch
	if req.Body == http.NoBody {
		watch = c.watchPeer(cancel)
	}
	ok := c.runHandler(w, req)
	inStep := body.close()
	if watch != nil && !watch.stop() {
		inStep = false
	}
	if !ok {
		return false
	}
	return w.finish(inStep)
}

// peerWatch notices a web server that closes the connection while the
// handler runs, and cancels the request's context, as net/http does
// for a client that goes away: a handler waiting for an event (a long
// poll) must not outlive its request. Only while nothing is to be read:
// a request without a body, for which the protocol has the web server
// send nothing until the response ends.
type peerWatch struct {
	c        *serverConn
	aborting atomic.Bool
	done     chan struct{}
	data     bool // the web server sent something during the exchange
}

func (c *serverConn) watchPeer(cancel context.CancelFunc) *peerWatch {
	pw := &peerWatch{c: c, done: make(chan struct{})}
	c.nc.SetReadDeadline(time.Time{})
	go pw.watch(cancel)
	return pw
}

func (pw *peerWatch) watch(cancel context.CancelFunc) {
	defer close(pw.done)
	_, err := pw.c.br.Peek(1)
	if err == nil {
		pw.data = true
		cancel()
		return
	}
	if !pw.aborting.Load() {
		cancel() // the connection is gone
	}
}

// stop ends the watch and reports whether the connection is still in
// step: nothing arrived during the exchange.
func (pw *peerWatch) stop() bool {
	pw.aborting.Store(true)
	pw.c.nc.SetReadDeadline(aLongTimeAgo)
	<-pw.done
	pw.c.nc.SetReadDeadline(time.Time{})
	if pw.data {
		pw.c.refuse("ajp: connection closed: bad packet", fmt.Errorf("%w: data from the web server during a request without a body", ErrMalformed))
	}
	return !pw.data
}

// runHandler calls the handler; it reports false if the handler
// panicked after the response started (the connection must then be
// closed without END_RESPONSE: the web server sees a broken response,
// as an HTTP client does from net/http).
func (c *serverConn) runHandler(w *responseWriter, req *http.Request) (ok bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log().Error("ajp: handler panicked", slog.String("peer", c.peer),
				slog.String("uri", req.RequestURI), slog.Any("panic", v), slog.String("stack", string(buf)))
		}
		ok = false
		if !w.sentHeader && v != http.ErrAbortHandler {
			c.plainResponse(http.StatusInternalServerError, "500 internal server error")
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// plainResponse sends a whole short text/plain response whose
// connection is not reused.
func (c *serverConn) plainResponse(code int, body string) {
	h := SendHeaders{Status: code, Reason: reasonPhrase(code), Headers: []Header{
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Length", fmt.Sprint(len(body) + 1)},
	}}
	b, err := h.AppendPacket(nil, c.s.packetSize())
	if err != nil {
		return
	}
	b, _ = AppendBodyChunk(b, []byte(body+"\n"), c.s.packetSize())
	b = AppendEndResponse(b, false)
	c.write(b, true)
}

// reasonPhrase returns the reason phrase for a status: the standard
// one, or what net/http writes for codes without one. Never the code
// again: Apache httpd writes "<code> <reason>" on its status line.
func reasonPhrase(code int) string {
	if s := http.StatusText(code); s != "" {
		return s
	}
	return fmt.Sprintf("status code %d", code)
}
