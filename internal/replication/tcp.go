package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/internal/sysconn"
)

// TCPConfig configures a TCPTransport.
type TCPConfig struct {
	// Self is this node's name, sent in Hello.
	Self string
	// Cluster names the cluster; peers of another cluster are refused.
	Cluster string
	// Listen is the replication address (host:port; port 0 picks one).
	Listen string
	// Key is the cluster key (KeySize bytes): connections are TLS 1.3,
	// mutually authenticated by it. Nil only with Insecure.
	Key []byte
	// Insecure turns TLS off: plain TCP, for loopback tests only.
	Insecure bool
	// Resolve gives a peer's replication address, from membership.
	Resolve func(peer string) (addr string, ok bool)
	// Handler serves the peers' requests.
	Handler Handler
	// DialTimeout bounds connecting to a peer. Default 1 s.
	DialTimeout time.Duration
	// RetryAfter is how long a peer that could not be reached fails new
	// requests at once before the next dial. Default 200 ms.
	RetryAfter time.Duration
	// Logger receives log lines. Default: discard.
	Logger *slog.Logger
	// OnRefused, if set, is called (from the transport's goroutines) when
	// a connection to a peer's replication address is refused: nothing
	// listens there, the peer's process is gone. A connection that the
	// peer's side closes or resets is redialled at once to find that out
	// without waiting for the next request, so that a killed peer is
	// known within a round trip (membership.ReportRefused); a redial
	// that is itself reset is tried again a few times, 50 ms apart.
	OnRefused func(peer, addr string)
}

// TCPTransport is the Transport between nodes: one pipelined connection
// per pair of nodes, dialed by whichever sends first, carrying wire
// frames both ways: each side's requests and its replies to the other's,
// matched by request id (see conn). Two nodes that dial each other at
// the same moment keep two connections, each serving both ways. Requests
// to a peer are written in the order of Send; a burst shares one write. The
// sockets are read and written through internal/sysconn, without the
// runtime's system call bookkeeping, which costs most where system calls
// are slow.
type TCPTransport struct {
	cfg  TCPConfig
	log  *slog.Logger
	tls  *tls.Config // nil when Insecure
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex // protects peers, inbound, closed, refusals, traffic
	peers    map[string]*peer
	inbound  map[net.Conn]struct{}
	closed   bool
	refusals map[string]*Refusal      // by remote host and reason: logged once, counted always
	traffic  map[string]*peerCounters // by peer name

	encodeFailures atomic.Int64
}

var _ Transport = (*TCPTransport)(nil)

// ListenTCP starts listening for peers and returns the transport.
func ListenTCP(cfg TCPConfig) (*TCPTransport, error) {
	if cfg.Handler == nil || cfg.Resolve == nil {
		return nil, errors.New("replication: TCPConfig needs Handler and Resolve")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &TCPTransport{cfg: cfg, log: cfg.Logger, done: make(chan struct{}),
		peers: map[string]*peer{}, inbound: map[net.Conn]struct{}{}, refusals: map[string]*Refusal{},
		traffic: map[string]*peerCounters{}}
	if !cfg.Insecure {
		tc, err := tlsConfig(cfg.Key)
		if err != nil {
			return nil, err
		}
		t.tls = tc
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("replication: listen: %w", err)
	}
	t.ln = ln
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *TCPTransport) Addr() string { return t.ln.Addr().String() }

// Close stops listening, closes every connection, fails the requests in
// flight and waits for the transport's goroutines. It is idempotent.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.ln.Close()
	for c := range t.inbound {
		c.Close()
	}
	peers := t.peers
	t.mu.Unlock()
	for _, p := range peers {
		p.fail(fmt.Errorf("transport closed: %w", ErrUnreachable))
	}
	t.wg.Wait()
	return nil
}

// logRefusal logs a refused peer once per remote host and reason, and
// counts every refusal (Refusals).
func (t *TCPTransport) logRefusal(remote net.Addr, reason string, err error) {
	host, _, _ := net.SplitHostPort(remote.String())
	now := time.Now()
	t.mu.Lock()
	r, seen := t.refusals[host+"|"+reason]
	if seen {
		r.Count++
		r.Last = now
	} else if len(t.refusals) < maxRefusals {
		t.refusals[host+"|"+reason] = &Refusal{Remote: host, Reason: reason, Count: 1, First: now, Last: now}
	} else {
		seen = true // the table is full: a peer that floods us is not logged again
	}
	t.mu.Unlock()
	if !seen {
		t.log.Warn("replication peer refused", slog.String("remote", remote.String()), slog.String("reason", reason), slog.Any("err", err))
	}
}

// handshake runs TLS (unless Insecure) and the Hello exchange on c. The
// dialing side sends its Hello first.
func (t *TCPTransport) handshake(c net.Conn, dialing bool) (net.Conn, *wire.Reader, *wire.Hello, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if t.tls != nil {
		var tc *tls.Conn
		if dialing {
			tc = tls.Client(c, t.tls)
		} else {
			tc = tls.Server(c, t.tls)
		}
		if err := tc.Handshake(); err != nil {
			switch {
			case errors.Is(err, ErrKeyMismatch):
				return nil, nil, nil, err
			case isCertAlert(err):
				return nil, nil, nil, fmt.Errorf("%w: the peer refused our certificate (%v)", ErrKeyMismatch, err)
			}
			return nil, nil, nil, fmt.Errorf("tls: %w", err)
		}
		c = tc
	}
	hello := &wire.Hello{Protocol: wire.ProtocolVersion, Cluster: t.cfg.Cluster, Node: t.cfg.Self}
	r := wire.NewReader(c, 0)
	send := func() error {
		_, err := c.Write(wire.AppendFrame(nil, 0, hello))
		return err
	}
	if dialing {
		if err := send(); err != nil {
			return nil, nil, nil, err
		}
	}
	f, err := r.ReadFrame()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading hello: %w", err)
	}
	m, err := wire.Decode(f.Type, f.Payload)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("hello: %w", err)
	}
	theirs, ok := m.(*wire.Hello)
	switch {
	case !ok:
		return nil, nil, nil, fmt.Errorf("first frame is %s, want Hello", f.Type)
	case theirs.Protocol != wire.ProtocolVersion:
		return nil, nil, nil, fmt.Errorf("protocol %d, this node speaks %d", theirs.Protocol, wire.ProtocolVersion)
	case theirs.Cluster != t.cfg.Cluster:
		return nil, nil, nil, fmt.Errorf("cluster %q, this node is in %q", theirs.Cluster, t.cfg.Cluster)
	}
	if !dialing {
		if err := send(); err != nil {
			return nil, nil, nil, err
		}
	}
	c.SetDeadline(time.Time{})
	return c, r, theirs, nil
}

// isCertAlert reports whether err is the peer's TLS alert refusing our
// certificate: on TLS 1.3 that is all the other side of a key mismatch
// learns. crypto/tls reports a received alert as a *net.OpError with Op
// "remote error" whose Err is its unexported alert type (a uint8), so the
// code is read by kind: 42 bad_certificate, 43-46 (unsupported, revoked,
// expired, unknown certificate), 48 unknown_ca, 116 certificate_required.
func isCertAlert(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return false
	}
	switch code := v.Uint(); {
	case code == 42, code >= 43 && code <= 46, code == 48, code == 116:
		return true
	}
	return false
}

func (t *TCPTransport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			t.log.Warn("replication accept failed", slog.Any("err", err))
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.inbound[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		go t.serveConn(c)
	}
}

// serveConn runs a connection a peer dialed: once the handshake names
// the peer, it is that peer's connection as much as one we dialed (see
// conn), and becomes the one our requests to it go on unless we have one
// already.
func (t *TCPTransport) serveConn(raw net.Conn) {
	defer t.wg.Done()
	defer func() {
		raw.Close()
		t.mu.Lock()
		delete(t.inbound, raw)
		t.mu.Unlock()
	}()
	counted := &countingConn{Conn: sysconn.Wrap(raw)}
	c, r, hello, err := t.handshake(counted, false)
	if err != nil {
		reason := "handshake failed"
		if errors.Is(err, ErrKeyMismatch) {
			reason = "cluster key mismatch"
		}
		t.logRefusal(raw.RemoteAddr(), reason, err)
		return
	}
	addr, known := t.cfg.Resolve(hello.Node)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return
	}
	p := t.peerLocked(hello.Node)
	t.mu.Unlock()
	counted.attach(p.ctr)
	cn := newConn(c, addr, false)
	p.mu.Lock()
	if known && p.conn == nil && !p.dialing {
		p.conn = cn
	}
	p.mu.Unlock()
	p.runWriter(cn)
	p.readLoop(cn, r)
}

// Send implements Transport.
func (t *TCPTransport) Send(name string, req wire.Message) Pending {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return Failed(fmt.Errorf("transport closed: %w", ErrUnreachable))
	}
	p := t.peerLocked(name)
	t.mu.Unlock()
	return p.send(req)
}

// peerLocked returns the peer named name, made on first use; t.mu is
// held.
func (t *TCPTransport) peerLocked(name string) *peer {
	p := t.peers[name]
	if p == nil {
		p = &peer{t: t, name: name, ctr: t.countersLocked(name)}
		t.peers[name] = p
	}
	return p
}

// peer is the connection to one peer, dialed on first use and again after
// it breaks.
type peer struct {
	t    *TCPTransport
	name string
	ctr  *peerCounters

	mu        sync.Mutex // protects everything below
	conn      *conn      // the live connection, or nil
	dialing   bool
	queued    []*call // requests waiting for the dial
	downUntil time.Time
}

// conn is one connection with a peer, dialed by either side, and our
// requests waiting on it. Both sides send requests on it and answer the
// other's: the dialing side's requests carry odd ids, the accepting
// side's even ones (wire's package doc), so two nodes that replicate to
// each other share one connection, and one write or read carries both
// directions' changes and acks.
type conn struct {
	c       net.Conn
	addr    string // the peer's replication address; "" if unknown when it dialed us
	dialer  bool   // we dialed it
	w       *wire.Writer
	ctx     context.Context    // the handlers' context; done when the connection ends
	stop    context.CancelFunc // ends ctx and the writer's Run
	nextID  uint64             // the last request id we used; guarded by the peer's mu
	pending map[uint64]*call   // guarded by the peer's mu
}

func newConn(c net.Conn, addr string, dialer bool) *conn {
	ctx, stop := context.WithCancel(context.Background())
	return &conn{c: c, addr: addr, dialer: dialer, w: wire.NewWriter(c, 0), ctx: ctx, stop: stop, pending: map[uint64]*call{}}
}

// isReply reports whether a frame with request id id that the peer sent
// answers one of our requests, rather than being a request of its own.
func (cn *conn) isReply(id uint64) bool { return (id%2 == 1) == cn.dialer }

// runWriter starts cn's writer; a failed write ends the reads too.
func (p *peer) runWriter(cn *conn) {
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		cn.w.Run(cn.ctx)
		cn.c.Close()
	}()
}

type call struct {
	id    uint64
	sent  time.Time // when its frame was queued, for the ack time
	req   wire.Message
	done  chan struct{}
	reply wire.Message
	err   error
	once  sync.Once
}

func (c *call) finish(reply wire.Message, err error) {
	c.once.Do(func() {
		c.reply, c.err = reply, err
		close(c.done)
	})
}

func (c *call) Wait(ctx context.Context) (wire.Message, error) {
	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitTimeout is Wait for at most d (see waitFor).
func (c *call) WaitTimeout(ctx context.Context, d time.Duration) (wire.Message, error) {
	if err := waitDone(ctx, c.done, d); err != nil {
		return nil, err
	}
	return c.reply, c.err
}

func (p *peer) send(req wire.Message) Pending {
	addr, ok := p.t.cfg.Resolve(p.name)
	if !ok {
		return Failed(fmt.Errorf("no address for %s: %w", p.name, ErrUnreachable))
	}
	c := &call{req: req, done: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && p.conn.addr != addr {
		// The peer restarted elsewhere: stop sending on the old
		// connection, and close it if it is ours (its readLoop fails
		// what waits on it).
		if p.conn.dialer {
			p.conn.c.Close()
		}
		p.conn = nil
	}
	if p.conn != nil {
		p.writeLocked(p.conn, c)
		return c
	}
	if time.Now().Before(p.downUntil) {
		return Failed(fmt.Errorf("%s at %s: recently unreachable: %w", p.name, addr, ErrUnreachable))
	}
	p.queued = append(p.queued, c)
	if !p.dialing {
		p.dialing = true
		p.t.wg.Add(1)
		go p.dial(addr, 0)
	}
	return c
}

// writeLocked queues c's frame on cn. Callers hold p.mu.
func (p *peer) writeLocked(cn *conn, c *call) {
	switch {
	case cn.nextID != 0:
		cn.nextID += 2
	case cn.dialer:
		cn.nextID = 1
	default:
		cn.nextID = 2
	}
	c.id = cn.nextID
	cn.pending[c.id] = c
	c.sent = time.Now()
	if err := cn.w.Send(c.id, c.req); err != nil {
		delete(cn.pending, c.id)
		if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrFrameTooLarge) {
			p.t.encodeFailures.Add(1)
			c.finish(nil, err)
		} else {
			c.finish(nil, fmt.Errorf("%s: %v: %w", p.name, err, ErrUnreachable))
		}
		return
	}
	p.ctr.msgsSent.Add(1)
}

// Rechecks after a redial that the peer's side closed or reset before the
// handshake ended. A killed process's sockets are torn down one after the
// other: a redial that follows the end of our connection can still reach
// its listener and be queued there, and then be reset when the listener
// goes, which says nothing. A later dial gets the refusal that does.
const (
	recheckDials = 3
	recheckDelay = 50 * time.Millisecond
)

// dial connects to the peer at addr and hands it the queued requests. A
// dial that fails because the peer closed or reset it, with rechecks left
// and OnRefused set, is tried again recheckDelay later (see recheckDials).
func (p *peer) dial(addr string, rechecks int) {
	defer p.t.wg.Done()
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout}
	raw, err := d.Dial("tcp", addr)
	if err == nil {
		cc := &countingConn{Conn: sysconn.Wrap(raw)}
		cc.attach(p.ctr)
		raw = cc
	}
	var (
		c     net.Conn
		r     *wire.Reader
		hello *wire.Hello
	)
	if err == nil {
		c, r, hello, err = p.t.handshake(raw, true)
		if err != nil {
			raw.Close()
			if errors.Is(err, ErrKeyMismatch) {
				p.t.logRefusal(raw.RemoteAddr(), "cluster key mismatch", err)
			}
		} else if hello.Node != p.name {
			err = fmt.Errorf("%s answers as %q", addr, hello.Node)
			c.Close()
		}
	}
	p.mu.Lock()
	p.dialing = false
	queued := p.queued
	p.queued = nil
	if err != nil {
		p.downUntil = time.Now().Add(p.t.cfg.RetryAfter)
		p.mu.Unlock()
		for _, q := range queued {
			q.finish(nil, fmt.Errorf("dial %s at %s: %v: %w", p.name, addr, err, ErrUnreachable))
		}
		switch {
		case p.t.cfg.OnRefused == nil || p.t.isClosed():
		case errors.Is(err, syscall.ECONNREFUSED):
			p.t.cfg.OnRefused(p.name, addr)
		case rechecks > 0 && closedByPeer(err):
			select {
			case <-p.t.done:
			case <-time.After(recheckDelay):
				p.redial(addr, rechecks-1) // p.t.wg is held: Close waits for it
			}
		}
		return
	}
	select {
	case <-p.t.done:
		p.mu.Unlock()
		c.Close()
		for _, q := range queued {
			q.finish(nil, fmt.Errorf("transport closed: %w", ErrUnreachable))
		}
		return
	default:
	}
	cn := newConn(c, addr, true)
	p.conn = cn
	for _, q := range queued {
		p.writeLocked(cn, q)
	}
	p.mu.Unlock()
	p.runWriter(cn)
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		p.readLoop(cn, r)
	}()
}

// readLoop reads cn until it breaks: it matches replies to our requests
// and serves the peer's, in order except for those that wait on other
// peers (see Inline), writing the replies back as they complete. Then it
// fails our requests still waiting on cn and, if the peer's side ended
// it, redials to find out whether the peer is gone (OnRefused).
func (p *peer) readLoop(cn *conn, r *wire.Reader) {
	var (
		handlers sync.WaitGroup
		err      error
	)
	for {
		var f wire.Frame
		f, err = r.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.t.log.Debug("replication connection ended", slog.String("peer", p.name), slog.Any("err", err))
			}
			break
		}
		p.ctr.msgsReceived.Add(1)
		var m wire.Message
		m, err = wire.Decode(f.Type, f.Payload)
		if cn.isReply(f.ID) {
			if err != nil {
				break
			}
			p.mu.Lock()
			cl := cn.pending[f.ID]
			delete(cn.pending, f.ID)
			p.mu.Unlock()
			if cl != nil {
				if isChange(cl.req) {
					p.ctr.ack.Observe(time.Since(cl.sent))
				}
				cl.finish(m, nil)
			}
			continue
		}
		if err != nil {
			// A peer that sends what we cannot decode is out of step or
			// hostile: answer once, then drop the connection.
			p.t.log.Warn("replication: bad frame from peer", slog.String("peer", p.name), slog.Any("err", err))
			cn.w.Send(f.ID, &wire.Ack{Status: wire.StatusError, Message: "malformed frame"})
			break
		}
		if Inline(m) {
			p.serve(cn, f.ID, m)
			continue
		}
		handlers.Add(1)
		go func(id uint64, req wire.Message) {
			defer handlers.Done()
			p.serve(cn, id, req)
		}(f.ID, m)
	}
	cn.stop()
	cn.c.Close()
	handlers.Wait()
	p.mu.Lock()
	if p.conn == cn {
		p.conn = nil
	}
	pending := cn.pending
	cn.pending = map[uint64]*call{}
	p.mu.Unlock()
	for _, c := range pending {
		c.finish(nil, fmt.Errorf("%s: connection lost: %v: %w", p.name, err, ErrUnreachable))
	}
	if closedByPeer(err) && p.t.cfg.OnRefused != nil {
		addr := cn.addr
		if a, ok := p.t.cfg.Resolve(p.name); ok {
			addr = a
		}
		if addr != "" {
			p.redial(addr, recheckDials)
		}
	}
}

// serve answers the peer's request id on cn.
func (p *peer) serve(cn *conn, id uint64, req wire.Message) {
	reply := p.t.cfg.Handler.Handle(cn.ctx, p.name, req)
	if err := cn.w.Send(id, reply); err != nil {
		if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrFrameTooLarge) {
			p.t.encodeFailures.Add(1)
		}
		p.t.log.Warn("replication: reply not sent", slog.String("peer", p.name), slog.Any("err", err))
		return
	}
	p.ctr.msgsSent.Add(1)
}

// closedByPeer reports whether a read error means that the other side
// closed or reset the connection (not that we closed it, nor a frame we
// could not decode).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// redial dials addr again at once, with no request waiting, unless a
// connection or a dial is already there: after the peer closed our
// connection, it finds out whether the peer is still there (the new
// connection is kept for the next request) or gone (refused: OnRefused).
// rechecks is passed on to dial.
func (p *peer) redial(addr string, rechecks int) {
	if p.t.isClosed() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil || p.dialing {
		return
	}
	p.dialing = true
	p.t.wg.Add(1)
	go p.dial(addr, rechecks)
}

// isClosed reports whether Close was called.
func (t *TCPTransport) isClosed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// fail fails the requests queued for a dial and closes the connection
// (whose readLoop fails the requests waiting on it).
func (p *peer) fail(err error) {
	p.mu.Lock()
	queued := p.queued
	p.queued = nil
	if p.conn != nil {
		p.conn.c.Close()
	}
	p.mu.Unlock()
	for _, c := range queued {
		c.finish(nil, err)
	}
}
