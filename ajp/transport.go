package ajp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Transport defaults when the fields are zero.
const (
	// DefaultMaxIdleConnsPerHost is how many idle connections a
	// Transport keeps per address.
	DefaultMaxIdleConnsPerHost = 16
	// DefaultIdleConnTimeout is how long an idle connection stays in
	// the pool.
	DefaultIdleConnTimeout = 90 * time.Second
)

// Transport is an http.RoundTripper that sends requests over AJP/1.3 to
// a servlet container (Tomcat, or this package's Server), as Apache
// httpd's mod_proxy_ajp does. Request URLs have the scheme "ajp":
// ajp://host:port/path?query. It keeps a pool of connections per
// address; a connection goes back to the pool only after a complete
// exchange whose END_RESPONSE allowed reuse, never after an error or a
// response body closed early.
//
// Timeouts come from the request's context: it bounds the dial, the
// exchange and the reading of the response body. A Transport is safe
// for concurrent use; its fields must not change after first use.
type Transport struct {
	// Secret is sent with every request (the secret attribute); the
	// container refuses requests without the one it expects.
	Secret string
	// Route, if set, is sent as the route attribute of every request.
	Route string
	// PacketSize is the largest packet sent and accepted, header
	// included: 0 means DefaultPacketSize; at most MaxPacketSize. It
	// must match the container's (Tomcat: the connector's packetSize).
	PacketSize int
	// MaxIdleConnsPerHost: see DefaultMaxIdleConnsPerHost; 0 means the
	// default, negative means no pool (a connection per request).
	MaxIdleConnsPerHost int
	// IdleConnTimeout: see DefaultIdleConnTimeout; 0 means the default,
	// negative means idle connections are kept until closed.
	IdleConnTimeout time.Duration
	// DialContext dials the container. nil means a net.Dialer's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex               // protects idle
	idle map[string][]*clientConn // per address, most recently used last
}

var _ http.RoundTripper = (*Transport)(nil)

func (t *Transport) packetSize() int { return checkPacketSize(t.PacketSize) }

// clientConn is one connection to a container.
type clientConn struct {
	t      *Transport
	addr   string
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	rbuf   []byte
	wbuf   []byte
	reused bool        // it carried an exchange before this one
	timer  *time.Timer // closes it when it stays idle too long
}

func (t *Transport) dial(ctx context.Context, addr string) (*clientConn, error) {
	dial := t.DialContext
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	ps := t.packetSize()
	return &clientConn{
		t: t, addr: addr, nc: nc,
		br:   bufio.NewReaderSize(nc, ps),
		bw:   bufio.NewWriterSize(nc, ps),
		rbuf: make([]byte, ps),
		wbuf: make([]byte, 0, ps),
	}, nil
}

// getConn returns an idle connection to addr, or a new one.
func (t *Transport) getConn(ctx context.Context, addr string) (*clientConn, error) {
	t.mu.Lock()
	for {
		conns := t.idle[addr]
		if len(conns) == 0 {
			break
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[addr] = conns[:len(conns)-1]
		if pc.timer != nil && !pc.timer.Stop() {
			continue // its idle timer fired: it is being closed
		}
		t.mu.Unlock()
		pc.reused = true
		return pc, nil
	}
	t.mu.Unlock()
	return t.dial(ctx, addr)
}

// putConn returns a connection in step to the pool, or closes it if the
// pool is full.
func (t *Transport) putConn(pc *clientConn) {
	max := t.MaxIdleConnsPerHost
	if max == 0 {
		max = DefaultMaxIdleConnsPerHost
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if max < 0 || len(t.idle[pc.addr]) >= max {
		pc.nc.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]*clientConn{}
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
	if d := timeout(t.IdleConnTimeout, DefaultIdleConnTimeout); d > 0 {
		if pc.timer == nil {
			pc.timer = time.AfterFunc(d, func() { t.expire(pc) })
		} else {
			pc.timer.Reset(d)
		}
	}
}

// expire closes an idle connection whose timer fired.
func (t *Transport) expire(pc *clientConn) {
	t.mu.Lock()
	conns := t.idle[pc.addr]
	if i := slices.Index(conns, pc); i >= 0 {
		t.idle[pc.addr] = slices.Delete(conns, i, i+1)
	}
	t.mu.Unlock()
	pc.nc.Close()
}

// CloseIdleConnections closes the pooled connections.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			if pc.timer != nil {
				pc.timer.Stop()
			}
			pc.nc.Close()
		}
	}
}

// aLongTimeAgo is a deadline in the past: it aborts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// Ping sends a CPing on a connection to addr (host:port), pooled or
// new, and waits for the CPong, within ctx. It is the health probe
// Apache httpd's ping= parameter does: it shows that the container
// answers on the AJP port, not that the application works. The
// connection goes back to the pool after a CPong.
func (t *Transport) Ping(ctx context.Context, addr string) error {
	pc, err := t.getConn(ctx, addr)
	if err != nil {
		return fmt.Errorf("ajp: ping %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(aLongTimeAgo) })
	err = func() error {
		pc.nc.SetDeadline(time.Time{})
		if _, err := pc.bw.Write(AppendCPing(pc.wbuf[:0])); err != nil {
			return err
		}
		if err := pc.bw.Flush(); err != nil {
			return err
		}
		p, err := ReadPacket(pc.br, ToWebServer, pc.rbuf)
		if err != nil {
			return err
		}
		if len(p) != 1 || p[0] != TypeCPong {
			return fmt.Errorf("%w: answer to CPing is not a CPong (%d bytes, type %#02x)", ErrMalformed, len(p), firstByte(p))
		}
		return nil
	}()
	if !stop() || err != nil {
		// A context that ended may have cut the exchange: its error
		// is the one to report.
		pc.nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return fmt.Errorf("ajp: ping %s: %w", addr, err)
	}
	t.putConn(pc)
	return nil
}

func firstByte(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// RoundTrip sends req over AJP and returns the response once its
// SEND_HEADERS arrived; the body follows as the caller reads it. The
// request body is sent in the first body packet and then as the
// container asks for it (GET_BODY_CHUNK), also while the response body
// is read. A request that failed on a reused connection before any
// answer arrived is retried once on a new connection if it is
// idempotent and its body can be had again (GetBody), as net/http does:
// the container may have closed an idle connection.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	closeBody := func() {
		if body != nil {
			body.Close()
		}
	}
	if req.URL == nil || req.URL.Scheme != "ajp" || req.URL.Host == "" {
		closeBody()
		return nil, fmt.Errorf("ajp: RoundTrip wants a URL ajp://host:port/..., got %v", req.URL)
	}
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "8009")
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		pc, err := t.getConn(ctx, addr)
		if err != nil {
			closeBody()
			return nil, fmt.Errorf("ajp: %s: %w", addr, err)
		}
		ex := &exchange{t: t, pc: pc, req: req, body: body}
		resp, err := ex.run(ctx)
		if err == nil {
			return resp, nil
		}
		if attempt == 0 && pc.reused && !ex.answered && ctx.Err() == nil && replayable(req) {
			if body != nil {
				nb, gerr := req.GetBody()
				if gerr != nil {
					return nil, fmt.Errorf("ajp: %s: %w", addr, err)
				}
				body = nb
			}
			continue
		}
		return nil, fmt.Errorf("ajp: %s: %w", addr, err)
	}
}

// replayable reports whether a request may be sent again: idempotent,
// with a body that can be had again.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if req.Header.Get("Idempotency-Key") == "" && req.Header.Get("X-Idempotency-Key") == "" {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// exchange is one request and its response on one connection.
type exchange struct {
	t    *Transport
	pc   *clientConn
	req  *http.Request
	body io.ReadCloser // the request body; nil if none

	bodyLeft int64 // request body bytes still to send; -1: unknown
	bodyDone bool  // the request body is all sent
	answered bool  // a packet of the container arrived

	stop      func() bool // stops the context's abort
	bodyOnce  sync.Once
	finishing atomic.Bool
}

// hopRequestHeaders are request headers about the connection to the
// web server, not for the container.
var hopRequestHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"}

// forwardRequest builds the forward request for req. The client address
// is req.RemoteAddr when the request is being proxied (a server's
// request passed on, as httputil.ReverseProxy does), else this end of
// the connection.
func (ex *exchange) forwardRequest() *ForwardRequest {
	req, t := ex.req, ex.t
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	uri := req.URL.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	serverName, serverPort := host, 80
	if req.TLS != nil {
		serverPort = 443
	}
	if h, p, err := net.SplitHostPort(host); err == nil {
		serverName = h
		if n, err := strconv.Atoi(p); err == nil {
			serverPort = n
		}
	}
	remote := req.RemoteAddr
	if remote == "" {
		remote = ex.pc.nc.LocalAddr().String()
	}
	remoteIP, remotePort, err := net.SplitHostPort(remote)
	if err != nil {
		remoteIP, remotePort = remote, ""
	}
	f := &ForwardRequest{
		Method: method, Protocol: "HTTP/1.1", URI: uri,
		RemoteAddr: remoteIP, RemoteHost: remoteIP,
		ServerName: serverName, ServerPort: serverPort,
		IsSSL: req.TLS != nil,
	}
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.ContainsFunc(hopRequestHeaders, func(h string) bool { return strings.EqualFold(h, k) }) {
			continue
		}
		for _, v := range req.Header[k] {
			f.Headers = append(f.Headers, Header{k, v})
		}
	}
	f.Headers = append(f.Headers, Header{"Host", host})
	switch {
	case ex.bodyLeft > 0 || (ex.bodyLeft == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch)):
		f.Headers = append(f.Headers, Header{"Content-Length", strconv.FormatInt(ex.bodyLeft, 10)})
	case ex.bodyLeft < 0:
		// No length: the container asks for the body packet by packet
		// until the empty one. The header tells it that a body comes,
		// as mod_proxy_ajp passes on a chunked request's.
		f.Headers = append(f.Headers, Header{"Transfer-Encoding", "chunked"})
	}
	a := &f.Attributes
	a.Secret, a.Route, a.QueryString = t.Secret, t.Route, req.URL.RawQuery
	if req.TLS != nil {
		a.SSLCipher = tls.CipherSuiteName(req.TLS.CipherSuite)
		if len(req.TLS.PeerCertificates) > 0 {
			a.SSLCert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: req.TLS.PeerCertificates[0].Raw}))
		}
	}
	if remotePort != "" {
		a.Request = append(a.Request, Header{"AJP_REMOTE_PORT", remotePort})
	}
	return f
}

// run sends the request and reads up to the response's headers. On an
// error the connection is closed and the request body closed.
func (ex *exchange) run(ctx context.Context) (resp *http.Response, err error) {
	pc := ex.pc
	ex.bodyLeft = 0
	if ex.body != nil {
		ex.bodyLeft = ex.req.ContentLength
		if ex.bodyLeft == 0 {
			ex.bodyLeft = -1 // a body without a length: unknown, as net/http takes it
		}
	}
	ex.bodyDone = ex.bodyLeft == 0
	pc.nc.SetDeadline(time.Time{})
	ex.stop = context.AfterFunc(ctx, func() { pc.nc.SetDeadline(aLongTimeAgo) })
	defer func() {
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			ex.fail()
		}
	}()
	pkt, err := ex.forwardRequest().AppendPacket(pc.wbuf[:0], ex.t.packetSize())
	if err != nil {
		return nil, err
	}
	pc.wbuf = pkt[:0]
	if _, err := pc.bw.Write(pkt); err != nil {
		return nil, err
	}
	if ex.bodyLeft > 0 {
		// The first body packet goes unasked, right after the forward
		// request, as the protocol wants when there is a length.
		if err := ex.sendBody(ex.t.packetSize()-dataOverhead, false); err != nil {
			return nil, err
		}
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, err
	}
	for {
		p, err := ex.read()
		if err != nil {
			return nil, err
		}
		switch p[0] {
		case TypeGetBodyChunk:
			n, err := ParseGetBodyChunk(p)
			if err != nil {
				return nil, err
			}
			if err := ex.sendBody(n, true); err != nil {
				return nil, err
			}
		case TypeSendHeaders:
			sh, err := ParseSendHeaders(p)
			if err != nil {
				return nil, err
			}
			return ex.response(sh)
		default:
			// END_RESPONSE without SEND_HEADERS included: a response
			// without its headers is refused, never completed with
			// another's (CVE-2023-34981).
			return nil, fmt.Errorf("%w: packet type %#02x before SEND_HEADERS", ErrMalformed, p[0])
		}
	}
}

// read reads the next packet from the container.
func (ex *exchange) read() ([]byte, error) {
	p, err := ReadPacket(ex.pc.br, ToWebServer, ex.pc.rbuf)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: connection closed by the container: %w", ErrTruncated, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	ex.answered = true
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: empty packet", ErrMalformed)
	}
	return p, nil
}

// sendBody answers a request for n bytes of body with a body packet (an
// empty one once the body is all sent).
func (ex *exchange) sendBody(n int, flush bool) error {
	pc := ex.pc
	max := ex.t.packetSize() - dataOverhead
	if n > 0 {
		max = min(max, n)
	}
	if ex.bodyLeft > 0 {
		max = int(min(int64(max), ex.bodyLeft))
	}
	data := pc.wbuf[dataOverhead : dataOverhead+max]
	k := 0
	if !ex.bodyDone {
		var err error
		if ex.bodyLeft > 0 {
			k, err = io.ReadFull(ex.body, data)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("request body ended %d bytes short of its ContentLength", ex.bodyLeft-int64(k))
			}
		} else {
			for k == 0 && err == nil {
				k, err = ex.body.Read(data)
			}
			if err == io.EOF && k == 0 {
				ex.bodyDone = true
				err = nil
			} else if err == io.EOF {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("reading the request body: %w", err)
		}
		if ex.bodyLeft > 0 {
			ex.bodyLeft -= int64(k)
			ex.bodyDone = ex.bodyLeft == 0
		}
	}
	pkt, err := AppendData(pc.wbuf[:0], data[:k], ex.t.packetSize())
	if err != nil {
		return err
	}
	if _, err := pc.bw.Write(pkt); err != nil {
		return err
	}
	if flush {
		return pc.bw.Flush()
	}
	return nil
}

// response builds the http.Response of SEND_HEADERS. A response that
// cannot have a body (HEAD, 204, 304) or says it has none is read to
// its END_RESPONSE here, so that its connection goes back to the pool
// at once.
func (ex *exchange) response(sh *SendHeaders) (*http.Response, error) {
	reason := sh.Reason
	if reason == "" || reason == strconv.Itoa(sh.Status) {
		reason = reasonPhrase(sh.Status) // Tomcat sends the code as the reason
	}
	if sh.Status < 200 {
		return nil, fmt.Errorf("%w: interim status %d", ErrMalformed, sh.Status)
	}
	h := make(http.Header, len(sh.Headers))
	for _, hd := range sh.Headers {
		k := http.CanonicalHeaderKey(hd.Name)
		h[k] = append(h[k], hd.Value)
	}
	resp := &http.Response{
		Status: strconv.Itoa(sh.Status) + " " + reason, StatusCode: sh.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: -1, Request: ex.req,
	}
	if cls := h.Values("Content-Length"); len(cls) > 0 {
		for _, v := range cls[1:] {
			if v != cls[0] {
				return nil, fmt.Errorf("%w: Content-Length given twice, %q and %q", ErrMalformed, cls[0], v)
			}
		}
		n, err := strconv.ParseInt(strings.TrimSpace(cls[0]), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: Content-Length %q", ErrMalformed, cls[0])
		}
		resp.ContentLength = n
	}
	b := &responseBody{ex: ex, remaining: resp.ContentLength}
	if ex.req.Method == http.MethodHead || !bodyAllowed(sh.Status) || resp.ContentLength == 0 {
		b.noBody = true
		b.remaining = -1
		for !b.done && b.err == nil {
			b.next()
		}
		if b.err != nil {
			return nil, b.err
		}
		if ex.req.Method != http.MethodHead && bodyAllowed(sh.Status) {
			resp.ContentLength = 0
		}
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// fail ends an exchange that went wrong: the connection is closed,
// never pooled.
func (ex *exchange) fail() {
	if !ex.finishing.CompareAndSwap(false, true) {
		return
	}
	ex.stop()
	ex.pc.nc.Close()
	ex.closeBody()
}

// done ends a complete exchange: the connection goes back to the pool
// if the container allowed it and the context did not abort it.
func (ex *exchange) done(reuse bool) {
	if !ex.finishing.CompareAndSwap(false, true) {
		return
	}
	ex.closeBody()
	if ex.stop() && reuse {
		ex.t.putConn(ex.pc)
		return
	}
	ex.pc.nc.Close()
}

func (ex *exchange) closeBody() {
	ex.bodyOnce.Do(func() {
		if ex.body != nil {
			ex.body.Close()
		}
	})
}

var errBodyClosed = errors.New("ajp: read on a closed response body")

// responseBody reads SEND_BODY_CHUNK packets up to END_RESPONSE,
// answering GET_BODY_CHUNK on the way.
type responseBody struct {
	ex *exchange

	mu        sync.Mutex // protects the fields below; Read holds it while it waits for a packet
	buf       []byte     // data not read yet (a slice of the connection's buffer)
	remaining int64      // bytes the Content-Length still announces; -1: none
	noBody    bool       // chunks are dropped (a HEAD response)
	done      bool       // END_RESPONSE arrived
	err       error

	closing atomic.Bool // Close was called
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 {
		switch {
		case b.err != nil:
			return 0, b.err
		case b.done:
			return 0, io.EOF
		}
		b.next()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// next reads one packet. Any error ends the exchange.
func (b *responseBody) next() {
	ex := b.ex
	p, err := ex.read()
	if err == nil {
		switch p[0] {
		case TypeSendBodyChunk:
			var data []byte
			if data, err = ParseBodyChunk(p); err != nil {
				break
			}
			if b.noBody {
				break
			}
			if b.remaining >= 0 {
				if int64(len(data)) > b.remaining {
					err = fmt.Errorf("%w: response body longer than its Content-Length", ErrMalformed)
					break
				}
				b.remaining -= int64(len(data))
			}
			b.buf = data
		case TypeGetBodyChunk:
			var n int
			if n, err = ParseGetBodyChunk(p); err == nil {
				err = ex.sendBody(n, true)
			}
		case TypeEndResponse:
			var reuse bool
			if reuse, err = ParseEndResponse(p); err != nil {
				break
			}
			if b.remaining > 0 {
				err = fmt.Errorf("response body ended %d bytes short of its Content-Length: %w", b.remaining, io.ErrUnexpectedEOF)
				break
			}
			b.done = true
			ex.done(reuse)
			return
		default:
			err = fmt.Errorf("%w: packet type %#02x in a response body", ErrMalformed, p[0])
		}
	}
	if err != nil {
		if b.closing.Load() {
			err = errBodyClosed
		} else if ctxErr := ex.req.Context().Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		b.err = err
		ex.fail()
	}
}

// Close ends the body. Before END_RESPONSE it closes the connection
// (a half-read exchange is never pooled) and aborts a Read in progress.
func (b *responseBody) Close() error {
	b.closing.Store(true)
	// fail does nothing once the exchange is complete (the connection
	// may be in the pool already); before, it closes the connection,
	// which also ends a Read waiting for a packet.
	b.ex.fail()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done && b.err == nil {
		b.err = errBodyClosed
	}
	return nil
}
