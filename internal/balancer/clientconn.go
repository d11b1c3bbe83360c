package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/shoal-go/shoal/internal/sysconn"
)

// States of a client connection, for Shutdown.
const (
	connActive int32 = iota // serving a request
	connIdle                // waiting for one
	connClosed              // closed by Shutdown while idle
)

// clientConn is one client connection on the fast path.
type clientConn struct {
	f *Frontend
	c net.Conn
	// accepted is the connection as accepted (c becomes its TLS layer):
	// what Frontend.Close closes, from another goroutine.
	accepted net.Conn
	rd       hreader
	state    atomic.Int32
	// idleSince is when it started waiting for a request (nanotime), for
	// the housekeeper's idle timeout.
	idleSince atomic.Int64
	// waitUntil (nanotime) and waitBC are the member connection whose
	// response head is awaited and until when, for the housekeeper's
	// response header timeout (long timeouts; short ones are deadlines).
	waitUntil atomic.Int64
	waitBC    atomic.Pointer[backendConn]
	// deadlineSet says a read deadline is set on c (a slow head, a
	// pipelined request), to be cleared before an idle wait or a body.
	deadlineSet bool
	https       bool
	tls         *tls.ConnectionState
	ip          string // the client's address, for X-Forwarded-For
	h           reqHead
	rh          respHead
	// headCopy holds the request head when the connection's buffer is
	// needed for its body.
	headCopy []byte

	// bufp is the pool's box of cc.rd.buf, nil while the buffer is given
	// back (an idle plain TCP connection: see serveRaw).
	bufp *[]byte
	// raw is the plain TCP connection's, for serveRaw; nil over TLS.
	raw syscall.RawConn
	// step is cc.rawStep, bound once (a method value made per call would
	// be an allocation); the rest is rawStep's state within one serveRaw.
	step func(fd uintptr) bool
	// waiting: rawStep asked the poller to wait. drained: the last read
	// found the socket empty after it (it did not fill the room it had),
	// and the poller was not waited on since.
	waiting, drained bool
	rawDone          bool  // the connection is over
	rawErr           error // a read failed
	// blindSet says the read deadline is rawWait's bound on a wait that
	// skipped its read (see serveRaw).
	blindSet bool
	// fd is the socket's descriptor while rawStep runs (the Read that
	// called it keeps it open), -1 otherwise: responses are written to
	// it directly then (clientOut).
	fd  int
	out clientOut
}

// clientOut is what a client connection's responses are written to: its
// socket, with one write(2) and no more when it takes everything, as it
// does for a response that fits the socket's buffer; the connection's
// Write otherwise, which waits for room.
type clientOut struct{ cc *clientConn }

func (o *clientOut) Write(p []byte) (int, error) {
	cc := o.cc
	if cc.fd < 0 {
		return cc.c.Write(p)
	}
	done := 0
	for done < len(p) {
		n, err := sysconn.Write(cc.fd, p[done:])
		switch {
		case err == syscall.EAGAIN:
			m, err := cc.c.Write(p[done:])
			return done + m, err
		case err != nil:
			return done, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
		}
		done += n
	}
	return done, nil
}

// run serves the connection until it closes, or hands it to net/http.
func (cc *clientConn) run(tlsCfg *tls.Config) {
	f := cc.f
	handedOff := false
	defer func() {
		f.track(cc, false)
		f.wg.Done()
	}()
	if ta, ok := cc.c.RemoteAddr().(*net.TCPAddr); ok {
		cc.ip = ta.IP.String()
	} else if host, _, err := net.SplitHostPort(cc.c.RemoteAddr().String()); err == nil {
		cc.ip = host
	}
	if tlsCfg != nil {
		tc := tls.Server(cc.c, tlsCfg)
		tc.SetDeadline(time.Now().Add(f.headTimeout))
		if err := tc.Handshake(); err != nil {
			cc.c.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		if st.NegotiatedProtocol == "h2" {
			f.hand.handoff(tc) // net/http sees the *tls.Conn itself
			return
		}
		cc.c, cc.https, cc.tls = tc, true, &st
	}
	if tc, ok := cc.c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			cc.raw = raw
			cc.step = cc.rawStep
		}
	}
	cc.rd = hreader{c: cc.c}
	cc.fd, cc.out.cc = -1, cc
	cc.getBuf()
	cc.rd.slowHead = func() {
		cc.c.SetReadDeadline(time.Now().Add(cc.f.headTimeout))
		cc.deadlineSet = true
	}
	defer func() {
		if !handedOff {
			cc.c.Close()
		}
		cc.putBuf()
		cc.rd = hreader{}
	}()
	for {
		if cc.raw != nil {
			if !cc.serveRaw() {
				return
			}
			// A request serveRaw leaves to the ordinary path below: its
			// head, or as much of it as the buffer holds, is buffered.
		} else if cc.rd.buffered() == 0 {
			if !cc.turnIdle() {
				return
			}
			// The idle timeout is the housekeeper's (Frontend.sweep): a
			// deadline per request costs a runtime timer update each.
			if cc.deadlineSet {
				cc.c.SetReadDeadline(time.Time{})
				cc.deadlineSet = false
			}
		} else {
			// A pipelined request: bound the rest of its head.
			cc.rd.setDeadline(f.headTimeout)
			cc.deadlineSet = true
		}
		head, err := cc.rd.readHead(maxHeadBytes)
		if err != nil {
			switch {
			case errors.Is(err, errBadRequest):
				cc.writeError(400, "bad request")
			case errors.Is(err, errHeadTooLarge):
				cc.writeError(431, "request header fields too large")
			}
			return
		}
		if !cc.state.CompareAndSwap(connIdle, connActive) && cc.state.Load() != connActive {
			return // closed by Shutdown
		}
		s := f.b.cur.Load()
		if err := parseRequestHead(head, &s.opts, &cc.h); err != nil {
			switch err {
			case errHeadTooLarge:
				cc.writeError(431, "request header fields too large")
			case errUnsupportedTE:
				cc.writeError(501, "unsupported transfer-encoding")
			case errBadVersion:
				cc.writeError(505, "HTTP version not supported")
			default:
				cc.writeError(400, "bad request")
			}
			return
		}
		if cc.h.handoff || s.viaHandler {
			cc.c.SetReadDeadline(time.Time{})
			pre := make([]byte, len(head)+cc.rd.buffered())
			copy(pre, head)
			copy(pre[len(head):], cc.rd.buf[cc.rd.r:cc.rd.w])
			handedOff = true
			f.hand.handoff(&handedConn{Conn: cc.c, pre: pre, tls: cc.tls})
			return
		}
		if !cc.serveRequest(s) || f.closing.Load() {
			return
		}
		cc.rd.shrink(clientBufSize)
	}
}

// turnIdle marks the connection idle, waiting for a request, for
// Shutdown and the housekeeper; false if the Frontend is closing.
func (cc *clientConn) turnIdle() bool {
	cc.state.Store(connIdle)
	if cc.f.closing.Load() {
		return false
	}
	cc.idleSince.Store(nanotime())
	return true
}

// getBuf gives the connection a read buffer from the pool.
func (cc *clientConn) getBuf() {
	cc.bufp = clientBufPool.Get().(*[]byte)
	cc.rd.buf, cc.rd.r, cc.rd.w = *cc.bufp, 0, 0
}

// putBuf gives the connection's read buffer back to the pool; a buffer
// that grew for a large head is left to the collector.
func (cc *clientConn) putBuf() {
	if cc.bufp != nil && len(cc.rd.buf) == clientBufSize {
		*cc.bufp = cc.rd.buf
		clientBufPool.Put(cc.bufp)
	}
	cc.bufp = nil
	cc.rd.buf, cc.rd.r, cc.rd.w = nil, 0, 0
}

// serveRaw serves a plain TCP connection's requests from inside one
// syscall.RawConn.Read, as long as they are the common kind: a head that
// fits the buffer, and no body or one already in the buffer. It returns
// false when the connection is over, and true when the buffered request
// needs the ordinary path (a body to stream, an upgrade, an error to
// answer, a head larger than the buffer).
//
// Why from inside the Read: net.Conn's Read must try a read before it
// waits for the poller, because it cannot know whether bytes came while
// nobody waited; after a response the client has rarely answered yet, so
// that read fails with EAGAIN on most requests (64 % in a wrk run here),
// and system calls are most of the balancer's CPU. RawConn.Read arms the
// poller once, when it starts, and every byte that arrives after that
// wakes its wait, however soon. Serving inside it, the connection knows
// what the poller cannot have missed: once a read left room in the
// buffer, the socket was empty, so the next request's bytes, pipelined or
// not, come after it and wake the wait. rawStep then waits without that
// read (bounded: see blindWaitLimit). A read that filled the buffer, or a
// new Read (which forgets what came before it), reads first.
//
// Nothing served here may read from cc.c: the Read holds the
// connection's read lock (and a Close from this goroutine would wait for
// it forever); serveBuffered keeps every request that could to the
// ordinary path.
//
// An idle connection waits here without a read buffer: it goes back to
// the pool while the connection waits, and one is taken when bytes
// arrive. Keep-alive clients are idle most of the time (browsers keep
// connections open for minutes), so 10,000 of them would otherwise hold
// 40 MiB of buffers that hold nothing.
func (cc *clientConn) serveRaw() bool {
	for {
		cc.waiting, cc.drained, cc.rawDone, cc.rawErr = false, false, false, nil
		err := cc.raw.Read(cc.step)
		cc.fd = -1
		if err != nil && cc.blindSet && errors.Is(err, os.ErrDeadlineExceeded) {
			// A wait without a read lasted blindWaitLimit: look again,
			// reading first (a new Read does).
			cc.c.SetReadDeadline(time.Time{})
			cc.blindSet = false
			continue
		}
		if err != nil || cc.rawDone || cc.rawErr != nil {
			return false
		}
		if cc.blindSet { // the ordinary path sets its own deadlines
			cc.c.SetReadDeadline(time.Time{})
			cc.blindSet = false
		}
		return true
	}
}

// blindWaitLimit bounds a wait that skipped its read. The one thing such
// a wait can miss is the end of the client's stream when it came with the
// last request, in the same wake of the poller (a short read leaves no
// data behind, but it may leave the end of the stream, which only the
// next read reports): a client that half-closes after its request and
// waits for the connection to close would otherwise wait for the idle
// timeout. A busy connection sends its next request well within it; an
// idle one looks once more after it, with a read, and then waits without
// a deadline.
const blindWaitLimit = 250 * time.Millisecond

// Results of serveBuffered.
const (
	stepServed   = iota // a request was served, the connection stays
	stepNeedMore        // the buffer holds part of a head
	stepOrdinary        // the buffered request is for the ordinary path
	stepDone            // the connection is over
)

// rawStep is serveRaw's callback: it serves what is buffered, reads, and
// asks to wait when there is nothing to read (returning false).
func (cc *clientConn) rawStep(fd uintptr) bool {
	cc.fd = int(fd)
	if cc.waiting {
		cc.waiting, cc.drained = false, false // woken by the poller
	}
	h := &cc.rd
	for {
		if h.buffered() > 0 {
			switch cc.serveBuffered() {
			case stepServed:
				continue
			case stepOrdinary:
				return true
			case stepDone:
				cc.rawDone = true
				return true
			}
		}
		if cc.drained {
			return cc.rawWait(true)
		}
		if cc.bufp == nil {
			cc.getBuf()
		}
		if h.r == h.w {
			h.r, h.w = 0, 0
		} else if h.w == len(h.buf) { // part of a head at the end: room before it
			h.w = copy(h.buf, h.buf[h.r:h.w])
			h.r = 0
		}
		room := len(h.buf) - h.w
		n, err := sysconn.Read(int(fd), h.buf[h.w:])
		switch {
		case err == syscall.EAGAIN:
			return cc.rawWait(false)
		case err != nil:
			cc.rawErr = err
			return true
		case n == 0:
			cc.rawErr = io.EOF
			return true
		}
		h.w += n
		cc.drained = n < room
	}
}

// rawWait prepares the connection to wait for the poller and reports
// false (wait), or true when the balancer is closing. blind says the
// wait skips its read.
func (cc *clientConn) rawWait(blind bool) bool {
	if cc.rd.buffered() == 0 {
		if !cc.turnIdle() {
			cc.rawDone = true
			return true
		}
		// The idle timeout is the housekeeper's (Frontend.sweep), not a
		// deadline's; a blind wait has its own bound, a runtime timer
		// update, a fraction of the read it saves.
		switch {
		case blind:
			cc.c.SetReadDeadline(time.Now().Add(blindWaitLimit))
			cc.blindSet, cc.deadlineSet = true, false
		case cc.deadlineSet || cc.blindSet:
			cc.c.SetReadDeadline(time.Time{})
			cc.deadlineSet, cc.blindSet = false, false
		}
		cc.putBuf()
	} else if !cc.deadlineSet {
		// Part of a head came: bound the time the rest may take.
		cc.c.SetReadDeadline(time.Now().Add(cc.f.headTimeout))
		cc.deadlineSet, cc.blindSet = true, false
	}
	cc.waiting = true
	return false
}

// serveBuffered serves the request whose head is buffered, if it is one
// serveRaw may serve (see there).
func (cc *clientConn) serveBuffered() int {
	h := &cc.rd
	b := h.buf[h.r:h.w]
	skip := 0 // empty lines before a request (RFC 9112 2.2), as readHead skips them
	for len(b)-skip >= 2 && b[skip] == '\r' && b[skip+1] == '\n' {
		skip += 2
	}
	n, err := headEnd(b[skip:], 0)
	switch {
	case err == errNeedMore:
		if h.r == 0 && h.w == len(h.buf) {
			return stepOrdinary // larger than the buffer: readHead grows it
		}
		return stepNeedMore
	case err != nil:
		return stepOrdinary // readHead finds the error and answers it
	}
	head := b[skip : skip+n : skip+n]
	s := cc.f.b.cur.Load()
	if s.viaHandler || parseRequestHead(head, &s.opts, &cc.h) != nil {
		return stepOrdinary
	}
	rq := &cc.h
	if rq.handoff || rq.chunked || rq.contentLength > 0 &&
		(int64(len(b)-skip-n) < rq.contentLength || s.cfg.MaxBodyBytes > 0 && rq.contentLength > s.cfg.MaxBodyBytes) {
		return stepOrdinary
	}
	h.r += skip + n
	if !cc.state.CompareAndSwap(connIdle, connActive) && cc.state.Load() != connActive {
		return stepDone // closed by Shutdown
	}
	if !cc.serveRequest(s) || cc.f.closing.Load() {
		return stepDone
	}
	if cc.deadlineSet {
		// The bound on this head's arrival (rawWait), which may have
		// passed while the member answered: not the next head's.
		cc.c.SetReadDeadline(time.Time{})
		cc.deadlineSet = false
	}
	h.shrink(clientBufSize)
	return stepServed
}

// writeError answers a request the fast path refuses, and closes the
// connection so that the client still reads the answer: its sending side
// first, then, after what the client was still sending is read and
// dropped (closing with unread bytes would reset the connection and could
// destroy the answer), the rest.
func (cc *clientConn) writeError(code int, text string) {
	w := cc.clientWriter()
	writePlainTo(w, code, text, true)
	err := w.Flush()
	putWriter(w)
	if err != nil {
		return
	}
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := cc.c.(closeWriter); ok && cw.CloseWrite() == nil {
		cc.c.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.CopyN(io.Discard, cc.c, lingerBytes)
	}
}

// How long, and how much, writeError reads of what a refused client
// still sends.
const (
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10
)

// writePlainTo writes a plain-text response, as writePlain does on the
// net/http path.
func writePlainTo(w *bufio.Writer, code int, text string, close bool) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(code))
	w.WriteByte(' ')
	w.WriteString(statusText(code))
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(text) + 1))
	if close {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.WriteString(text)
	w.WriteByte('\n')
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 413:
		return "Request Entity Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}

// bstr returns b as a string without copying: for lookups and parsing
// while b's bytes do not change (the request's head, during its request).
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// outcome is how one attempt on a member ended.
type outcome uint8

const (
	outDone   outcome = iota // a response was sent (or the client is gone): the request is over
	outRetry                 // the attempt failed and the request may go to another member
	outClosed                // the request is over and the client connection must close
)

// serveRequest serves the request in cc.h, failing over as the package
// doc says. It reports whether the connection may serve another request.
func (cc *clientConn) serveRequest(s *settings) bool {
	b := cc.f.b
	h := &cc.h
	if s.cfg.MaxBodyBytes > 0 && h.contentLength > s.cfg.MaxBodyBytes {
		cc.writeError(413, "request body too large")
		return false
	}
	var inline []byte
	var body *replayBody
	if h.chunked || h.contentLength > 0 {
		if cc.deadlineSet { // bodies may stream
			cc.c.SetReadDeadline(time.Time{})
			cc.deadlineSet = false
		}
		if !h.chunked && int64(cc.rd.buffered()) >= h.contentLength {
			inline = cc.rd.buf[cc.rd.r : cc.rd.r+int(h.contentLength)]
			cc.rd.r += int(h.contentLength)
		} else {
			// The buffer will be refilled by the body: keep the head apart.
			cc.headCopy = append(cc.headCopy[:0], h.raw...)
			h.raw = cc.headCopy
			var src io.Reader
			if h.chunked {
				src = &chunkedReader{rd: &cc.rd}
			} else {
				src = &clientBodyReader{rd: &cc.rd, left: h.contentLength}
			}
			body = newReplayBody(src, h.contentLength, s.cfg.RetryBodyBytes, s.cfg.MaxBodyBytes)
		}
	}
	now := time.Now().UnixNano()
	b.forceRecovery(s, now)
	var sid string
	if s.sticky.enabled() {
		sid = cc.sessionID(s)
	}
	base, route := splitID(sid)
	var key string
	if s.hash != nil {
		key = bstr(h.hashKey.of(h.raw))
	}
	idempotent := h.idempotencyKey || idempotentMethod(h.method.of(h.raw))

	var triedBuf [4]*Member
	tried := triedBuf[:0]
	for {
		m := b.pick(s, nil, key, base, route, tried, now)
		if m == nil {
			return cc.noMember(s, route, len(tried), body)
		}
		canRetry := idempotent && len(tried)+1 < b.attempts(s) && (body == nil || body.replayable())
		switch cc.try(s, m, inline, body, idempotent, canRetry, tried) {
		case outDone:
			return !h.close && (body == nil || body.done())
		case outClosed:
			return false
		}
		tried = append(tried, m)
		if len(tried) >= b.attempts(s) {
			return cc.noMember(s, route, len(tried), body)
		}
		b.retries.Add(1)
		now = time.Now().UnixNano()
	}
}

// sessionID returns the request's session id, as sticky.sessionID does:
// the path parameter, the query parameter, the cookie. The string shares
// the head's bytes.
func (cc *clientConn) sessionID(s *settings) string {
	h := &cc.h
	target := bstr(h.target.of(h.raw))
	path, query := target, ""
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			path, query = target[:i], target[i+1:]
			break
		}
	}
	if v := pathParam(path, s.sticky.param); v != "" {
		return v
	}
	if v := queryParam(query, s.sticky.param); v != "" {
		return v
	}
	return bstr(h.sessionCookie.of(h.raw))
}

func idempotentMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// noMember answers 503 when no member can take the request.
func (cc *clientConn) noMember(s *settings, route string, tried int, body *replayBody) bool {
	h := &cc.h
	cc.f.b.log.Error("no member available", slog.String("method", string(h.method.of(h.raw))),
		slog.String("host", string(h.host.of(h.raw))), slog.String("route", string([]byte(route))), slog.Int("tried", tried))
	keep := !h.close && (body == nil || body.done())
	w := cc.clientWriter()
	writePlainTo(w, 503, "no member available", !keep)
	err := w.Flush()
	putWriter(w)
	return keep && err == nil
}

// try sends the request to m once (or twice, when a reused connection
// turns out to have been closed by the member) and, if the member
// answers, streams its response to the client.
func (cc *clientConn) try(s *settings, m *Member, inline []byte, body *replayBody, idempotent, canRetry bool, tried []*Member) outcome {
	b := cc.f.b
	m.inFlight.Add(1)
	counted := true
	defer func() {
		if counted {
			m.inFlight.Add(-1)
		}
	}()
	start := time.Now()
	pool := m.target().pool
	for fresh := false; ; fresh = true {
		bc, err := pool.get(bgCtx, s.cfg.ConnectTimeout, fresh)
		if err != nil {
			if errors.Is(err, errPoolClosed) || errors.Is(err, errPoolBusy) {
				if body == nil || body.replayable() {
					return outRetry // not the member's failure, and nothing was sent
				}
				return cc.fail(503, body)
			}
			why := failConnect
			if isTimeoutErr(err) {
				why = failTimeout
			}
			b.markFailed(s, m, err.Error(), why)
			if body == nil || body.replayable() {
				return outRetry // nothing was sent: any request may go elsewhere
			}
			return cc.fail(502, body)
		}
		var br *bodyReader
		if body != nil {
			if br = body.reader(); br == nil { // a failed attempt read more than could be kept
				pool.discard(bc)
				return cc.fail(502, body)
			}
		}
		// A request all in hand (no body to stream) is only staged here:
		// readResponseHead writes it and waits for the answer in one
		// (backendConn.exchange).
		if err := cc.writeRequest(bc, pool.prefix, inline, br == nil && bc.raw != nil); err != nil {
			pool.discard(bc)
			if bc.reused && !fresh && (body == nil || body.replayable()) {
				continue // a keep-alive connection the member had closed: nothing reached it
			}
			b.markFailed(s, m, err.Error(), failTransport)
			if canRetry && (body == nil || body.replayable()) {
				return outRetry
			}
			return cc.fail(502, body)
		}
		// A body that is not all here yet streams from its own goroutine
		// while this one waits for the response, as net/http's Transport
		// does: a member may answer before the body ends, and a client
		// may read the response while it still sends.
		var bodyDone chan error
		if br != nil {
			bodyDone = make(chan error, 1)
			go func() {
				err := cc.copyBody(bc, br)
				var ce *clientError
				if errors.As(err, &ce) || errors.Is(err, errBodyTooLarge) || errors.Is(err, errBodyReplaced) {
					// The request cannot be completed: stop waiting for
					// the member's answer to it.
					bc.c.Close()
				}
				bodyDone <- err
			}()
		}
		rht := s.cfg.ResponseHeaderTimeout
		coarse := rht >= cc.f.coarseMin
		switch {
		case coarse: // the housekeeper's, to a second
			cc.waitUntil.Store(nanotime() + int64(rht))
			cc.waitBC.Store(bc)
		case rht > 0:
			bc.rd.setDeadline(rht)
		}
		err = cc.readResponseHead(bc)
		switch {
		case coarse:
			cc.waitUntil.Store(0)
			if cc.waitBC.Swap(nil) == nil { // the housekeeper took it: it closes it
				if err == nil {
					err = errResponseTimeout
				}
				if bc.timedOut.Load() {
					err = errResponseTimeout
				}
			}
		case rht > 0:
			bc.c.SetReadDeadline(time.Time{})
		}
		if errors.Is(err, errClientWrite) {
			// The client went away while an interim response was passed
			// on: nobody to answer, and the member did nothing wrong.
			if bodyDone != nil {
				cc.stopBody(bc, bodyDone)
			}
			pool.discard(bc)
			return outClosed
		}
		if err != nil && isExchangeWrite(err) {
			// The staged request could not be written: as a failed
			// writeRequest above (there is no body in this case).
			pool.discard(bc)
			if bc.reused && !fresh {
				continue
			}
			b.markFailed(s, m, err.Error(), failTransport)
			if canRetry {
				return outRetry
			}
			return cc.fail(502, body)
		}
		if err != nil {
			if bodyDone != nil {
				berr, stopped := cc.stopBody(bc, bodyDone)
				pool.discard(bc)
				if out, ok := cc.bodyFailed(berr); ok {
					return out
				}
				if stopped { // the body was still coming: it cannot be sent again
					b.markFailed(s, m, fmt.Sprintf("%s: %v", m.route, err), failTransport)
					cc.fail(502, body)
					return outClosed
				}
			} else {
				pool.discard(bc)
			}
			if bc.reused && !fresh && isConnDropped(err) && idempotent && (body == nil || body.replayable()) {
				continue // closed by the member while idle, most likely: try a new connection
			}
			why := failTransport
			if isTimeoutErr(err) {
				why = failTimeout
			}
			b.markFailed(s, m, fmt.Sprintf("%s: %v", m.route, err), why)
			if canRetry && (body == nil || body.replayable()) {
				return outRetry
			}
			if why == failTimeout {
				return cc.fail(504, body)
			}
			return cc.fail(502, body)
		}
		now := time.Now()
		m.lat.observe(now.UnixNano(), now.Sub(start))
		status := cc.rh.status
		if status < len(s.failOn) && s.failOn[status] {
			b.markFailed(s, m, fmt.Sprintf("answered %d (failonstatus)", status), failStatus)
			if canRetry && b.hasCandidate(&attempt{member: m, tried: tried}) {
				if bodyDone != nil {
					berr, stopped := cc.stopBody(bc, bodyDone)
					pool.discard(bc)
					if out, ok := cc.bodyFailed(berr); ok {
						return out
					}
					if !stopped && body.replayable() {
						return outRetry
					}
					cc.fail(502, body)
					return outClosed
				}
				pool.discard(bc)
				return outRetry
			}
		}
		if m.clearError(time.Now().UnixNano()) { // it answered
			b.log.Info("member usable again", slog.String("member", m.route))
		}
		counted = false // writeResponse ends it when the member's part is over
		out := cc.writeResponse(bc, pool, m, body, bodyDone)
		m.observeResponse(status, time.Since(start))
		return out
	}
}

var bgCtx = context.Background()

// isConnDropped reports whether err says the connection was closed or
// reset before any response byte came.
func isConnDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// fail answers the client with code after a failed attempt.
func (cc *clientConn) fail(code int, body *replayBody) outcome {
	keep := !cc.h.close && (body == nil || body.done())
	w := cc.clientWriter()
	writePlainTo(w, code, statusBody(code), !keep)
	err := w.Flush()
	putWriter(w)
	if !keep || err != nil {
		return outClosed
	}
	return outDone
}

func statusBody(code int) string {
	switch code {
	case 502:
		return "bad gateway"
	case 503:
		return "no member available"
	case 504:
		return "gateway timeout"
	}
	return "error"
}

// clientError is an error reading the client's request body.
// errClientWrite wraps a failed write of an interim response to the
// client.
var errClientWrite = errors.New("writing to the client")

type clientError struct{ err error }

func (e *clientError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// writeRequest writes the request head, rewritten for the member, and
// its body (inline, or read from br) to bc.
func (cc *clientConn) writeRequest(bc *backendConn, prefix string, inline []byte, stage bool) error {
	w := bc.bw
	bc.stage.keep = stage
	writeRequestHead(w, &cc.h, prefix, cc.ip, cc.https)
	if inline != nil {
		w.Write(inline)
	}
	err := w.Flush()
	bc.stage.keep = false
	return err
}

// stopBody ends the goroutine that streams the request body to bc and
// returns its error. If it is still running (waiting for the client, or
// for the member to read), it is stopped: bc is closed and the client's
// reads fail; stopped says so, and the client connection can then serve
// nothing more.
func (cc *clientConn) stopBody(bc *backendConn, done chan error) (err error, stopped bool) {
	select {
	case err = <-done:
		return err, false
	default:
	}
	bc.c.Close()
	cc.c.SetReadDeadline(time.Unix(1, 0))
	return <-done, true
}

// bodyFailed answers for a request whose body could not be sent because
// of the client: a malformed chunked body (400), one over MaxBodyBytes
// (413), or a client gone. It reports false for other errors (nil, or
// the member's).
func (cc *clientConn) bodyFailed(err error) (outcome, bool) {
	var ce *clientError
	switch {
	case err == nil:
		return outDone, false
	case errors.Is(err, errBodyTooLarge):
		cc.writeError(413, "request body too large")
		return outClosed, true
	case errors.As(err, &ce) && (errors.Is(err, errBadRequest) || errors.Is(err, errHeadTooLarge)):
		cc.writeError(400, "bad request") // a malformed chunked body
		return outClosed, true
	case errors.As(err, &ce) || errors.Is(err, errBodyReplaced):
		return outClosed, true // the client went away mid-body: nobody to answer
	}
	return outDone, false
}

// writeRequestHead writes the head of h as the member gets it: the path
// under prefix, the client's fields but the hop-by-hop ones and those
// the balancer sets (X-Forwarded-For, -Host, -Proto, Forwarded), and
// the framing of the body as the balancer sends it.
func writeRequestHead(w *bufio.Writer, h *reqHead, prefix, ip string, https bool) {
	raw := h.raw
	w.Write(h.method.of(raw))
	w.WriteByte(' ')
	w.WriteString(prefix)
	w.Write(h.target.of(raw))
	w.WriteString(" HTTP/1.1\r\n")
	_, off, _ := cutCRLF(raw, 0)
	for {
		f, next, _ := cutCRLF(raw, off)
		if f.empty() {
			break
		}
		off = next
		line := f.of(raw)
		colon := 0
		for line[colon] != ':' {
			colon++
		}
		name := line[:colon]
		if hopByHop(fieldKind(name)) || (h.nConn > 0 && h.listedInConnection(name)) {
			continue
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	w.WriteString(ip)
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(h.host.of(raw))
	if https {
		w.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	if h.teTrailers {
		w.WriteString("Te: trailers\r\n")
	}
	switch {
	case h.chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	case h.contentLength >= 0:
		writeContentLength(w, h.contentLength)
		w.WriteString("\r\n")
	default:
		w.WriteString("\r\n")
	}
}

// copyBody streams a request body to the member: as it comes, flushed at
// every read, so that a client that streams is not held up; chunked if
// the client sent it chunked.
func (cc *clientConn) copyBody(bc *backendConn, br *bodyReader) error {
	bp := copyBufferPool.Get().(*[32 << 10]byte)
	defer copyBufferPool.Put(bp)
	buf := bp[:]
	w := bc.bw
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if cc.h.chunked {
				writeChunkHeader(w, int64(n))
			}
			w.Write(buf[:n])
			if cc.h.chunked {
				w.WriteString("\r\n")
			}
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if cc.h.chunked {
		w.WriteString("0\r\n\r\n")
		return w.Flush()
	}
	return nil
}

func writeChunkHeader(w *bufio.Writer, n int64) {
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 16)) // no allocation: the buffer's own bytes
	w.WriteString("\r\n")
}

// writeContentLength writes a Content-Length field.
func writeContentLength(w *bufio.Writer, n int64) {
	w.WriteString("Content-Length: ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 10))
	w.WriteString("\r\n")
}

// readResponseHead reads the member's response head into cc.rh. Interim
// responses are skipped, except 103 Early Hints, which goes on to the
// client at once (its Link fields let a browser start fetching while the
// member still works on the answer).
func (cc *clientConn) readResponseHead(bc *backendConn) error {
	if len(bc.stage.buf) > 0 {
		if err := bc.exchange(); err != nil {
			return err
		}
	}
	for {
		head, err := bc.rd.readHead(maxResponseHeadBytes)
		if err != nil {
			if errors.Is(err, errBadRequest) || errors.Is(err, errHeadTooLarge) {
				return errBadResponse
			}
			return err
		}
		if err := parseResponseHead(head, &cc.rh); err != nil {
			return err
		}
		switch {
		case cc.rh.status == 101:
			return errBadResponse // no upgrade was asked for
		case cc.rh.status == 103:
			if err := cc.writeEarlyHints(); err != nil {
				return fmt.Errorf("%w: %w", errClientWrite, err)
			}
			continue
		case cc.rh.status < 200:
			continue
		}
		return nil
	}
}

// writeEarlyHints passes the member's 103 response (in cc.rh) on to the
// client, without its hop-by-hop fields.
func (cc *clientConn) writeEarlyHints() error {
	w := cc.clientWriter()
	defer putWriter(w)
	writeStatusLine(w, &cc.rh)
	writeResponseFields(w, &cc.rh, false)
	w.WriteString("\r\n")
	return w.Flush()
}

// clientWriter returns a pooled writer to the client; putWriter gives
// it back.
func (cc *clientConn) clientWriter() *bufio.Writer {
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(&cc.out)
	return w
}

func putWriter(w *bufio.Writer) {
	w.Reset(nil)
	writerPool.Put(w)
}

// writeStatusLine writes rh's status line as HTTP/1.1 (the member may
// have answered in another minor version).
func writeStatusLine(w *bufio.Writer, rh *respHead) {
	w.WriteString("HTTP/1.1")
	w.Write(rh.statusLine.of(rh.raw)[8:])
	w.WriteString("\r\n")
}

// writeResponseFields writes the fields of the response head rh that go
// on to the client: not the hop-by-hop ones, nor those its Connection
// field lists. A Trailer field stays when the body is chunked (withBody):
// it announces the trailers passed on after it.
func writeResponseFields(w *bufio.Writer, rh *respHead, withBody bool) {
	raw := rh.raw
	_, off, _ := cutCRLF(raw, 0)
	for {
		f, next, _ := cutCRLF(raw, off)
		if f.empty() {
			break
		}
		off = next
		line := f.of(raw)
		colon := 0
		for line[colon] != ':' {
			colon++
		}
		name := line[:colon]
		k := fieldKind(name)
		if k == fieldTrailer && rh.chunked && withBody {
			k = fieldOther
		}
		if hopByHop(k) || (rh.nConn > 0 && rh.listedInConnection(name)) {
			continue
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
}

// writeResponse streams the member's response (head in cc.rh) to the
// client, and puts bc back in its pool if it can serve another request.
//
// bodyDone, if not nil, is the goroutine still streaming the request
// body (body): the connections are kept only if it ended well before the
// response did.
func (cc *clientConn) writeResponse(bc *backendConn, pool *connPool, m *Member, body *replayBody, bodyDone chan error) outcome {
	rh := &cc.rh
	h := &cc.h
	noBody := rh.status == 204 || rh.status == 304 || string(h.method.of(h.raw)) == "HEAD"
	closeDelimited := !noBody && !rh.chunked && rh.contentLength < 0
	keepClient := !h.close && !cc.f.closing.Load()
	reuse := !rh.close && !closeDelimited
	if bodyDone != nil {
		var err error
		ended := false
		select {
		case err = <-bodyDone:
			ended = true
		default:
			if body.done() {
				// The whole body was read from the client: its goroutine
				// has sent it, or is sending its last bytes, and has
				// only not said so yet (a member that read the body to
				// its end and answered at once is faster than that, at
				// times). Its word is worth a short wait: without it the
				// client's connection would be closed for nothing, and
				// the requests it already sent after this one lost.
				t := time.NewTimer(bodyGrace)
				select {
				case err = <-bodyDone:
					ended = true
				case <-t.C:
				}
				t.Stop()
			}
		}
		switch {
		case !ended:
			// The member answers while the body still comes: the
			// client's connection cannot serve another request.
			keepClient = false
		case err != nil:
			bodyDone = nil
			keepClient, reuse = false, false
		default:
			bodyDone = nil
		}
	}

	w := cc.clientWriter()
	defer putWriter(w)
	writeStatusLine(w, rh)
	writeResponseFields(w, rh, !noBody)
	switch {
	case noBody:
		if rh.contentLength >= 0 {
			writeContentLength(w, rh.contentLength)
		}
	case rh.contentLength >= 0:
		writeContentLength(w, rh.contentLength)
	default:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keepClient {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")

	var err error
	var clientErr bool
	switch {
	case noBody:
	case rh.contentLength >= 0:
		err, clientErr = copyN(w, &bc.rd, rh.contentLength)
	case rh.chunked:
		err, clientErr = copyChunked(w, &bc.rd)
	default:
		err, clientErr = copyUntilEOF(w, &bc.rd)
	}
	// The member's part is over: its request leaves the in-flight count
	// before the client sees the end of the response.
	m.inFlight.Add(-1)
	if err == nil {
		if ferr := w.Flush(); ferr != nil {
			err, clientErr = ferr, true
		}
	}
	if bodyDone != nil && err == nil {
		// The response is complete; the body may still be streaming (a
		// full-duplex exchange ends with both): wait for it a little,
		// after which the member did not want it.
		select {
		case berr := <-bodyDone:
			bodyDone = nil
			if berr != nil {
				reuse = false
			}
		case <-time.After(bodyGrace):
		}
	}
	if bodyDone != nil {
		cc.stopBody(bc, bodyDone)
		reuse = false
	}
	if err != nil {
		pool.discard(bc)
		if !clientErr {
			cc.f.b.log.Debug("member failed during the response", slog.Any("err", err))
		}
		return outClosed // the response started: the client's connection is cut
	}
	if reuse {
		bc.rd.shrink(backendBufSize)
		pool.put(bc)
	} else {
		pool.discard(bc)
	}
	if !keepClient {
		return outClosed
	}
	return outDone
}

// errResponseTimeout is the error of a member whose response head did
// not come within ResponseHeaderTimeout, as the housekeeper saw it.
var errResponseTimeout error = &timeoutError{"no response headers within the response header timeout"}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// bodyGrace is how long a complete response waits for the end of a
// request body still streaming before the body is cut.
const bodyGrace = 100 * time.Millisecond

// copyN copies n bytes of a response body, flushing whenever the member
// has nothing more buffered. It tells errors of the client (writes) from
// the member's (reads).
func copyN(w *bufio.Writer, rd *hreader, n int64) (error, bool) {
	for n > 0 {
		if rd.buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err, true
			}
		}
		b, err := rd.next(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err, false
		}
		n -= int64(len(b))
		if _, err := w.Write(b); err != nil {
			return err, true
		}
	}
	return nil, false
}

// copyUntilEOF copies a body that ends when the member closes, as chunks.
func copyUntilEOF(w *bufio.Writer, rd *hreader) (error, bool) {
	for {
		if rd.buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err, true
			}
		}
		b, err := rd.next(1 << 62)
		if err == io.EOF {
			w.WriteString("0\r\n\r\n")
			return nil, false
		}
		if err != nil {
			return err, false
		}
		writeChunkHeader(w, int64(len(b)))
		w.Write(b)
		if _, err := w.WriteString("\r\n"); err != nil {
			return err, true
		}
	}
}

// copyChunked copies a chunked body, re-framed (chunk extensions
// dropped), and its trailer fields.
func copyChunked(w *bufio.Writer, rd *hreader) (error, bool) {
	for {
		if rd.buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err, true
			}
		}
		line, err := rd.readLine(4 << 10)
		if err != nil {
			return err, false
		}
		n, ok := parseChunkSize(line)
		if !ok {
			return errBadResponse, false
		}
		if n == 0 {
			break
		}
		writeChunkHeader(w, n)
		if err, ce := copyN(w, rd, n); err != nil {
			return err, ce
		}
		if line, err := rd.readLine(2); err != nil || len(line) != 0 {
			return errBadResponse, false
		}
		if _, err := w.WriteString("\r\n"); err != nil {
			return err, true
		}
	}
	w.WriteString("0\r\n")
	for nTrailers := 0; ; nTrailers++ {
		line, err := rd.readLine(maxHeadBytes)
		if err != nil {
			return err, false
		}
		if len(line) == 0 {
			break
		}
		if nTrailers == maxHeaderFields {
			return errBadResponse, false
		}
		if _, _, err := splitField(line, span{0, int32(len(line))}); err != nil {
			return errBadResponse, false
		}
		w.Write(line)
		w.WriteString("\r\n")
	}
	_, err := w.WriteString("\r\n")
	return err, err != nil
}

// clientBodyReader reads a request body of known length from the client.
type clientBodyReader struct {
	rd   *hreader
	left int64
}

func (r *clientBodyReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rd.Read(p)
	r.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, &clientError{err}
	}
	if r.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// chunkedReader decodes a chunked request body from the client, strictly;
// trailer fields are checked and dropped.
type chunkedReader struct {
	rd    *hreader
	left  int64 // of the current chunk
	state uint8 // 0: at a chunk-size line; 1: in a chunk; 2: done
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	for {
		switch r.state {
		case 2:
			return 0, io.EOF
		case 0:
			line, err := r.rd.readLine(4 << 10)
			if err != nil {
				return 0, &clientError{err}
			}
			n, ok := parseChunkSize(line)
			if !ok {
				return 0, &clientError{errBadRequest}
			}
			if n == 0 {
				for i := 0; ; i++ {
					line, err := r.rd.readLine(maxHeadBytes)
					if err != nil {
						return 0, &clientError{err}
					}
					if len(line) == 0 {
						break
					}
					if i == maxHeaderFields {
						return 0, &clientError{errHeadTooLarge}
					}
					if _, _, err := splitField(line, span{0, int32(len(line))}); err != nil {
						return 0, &clientError{errBadRequest}
					}
				}
				r.state = 2
				return 0, io.EOF
			}
			r.left, r.state = n, 1
		case 1:
			if int64(len(p)) > r.left {
				p = p[:r.left]
			}
			n, err := r.rd.Read(p)
			r.left -= int64(n)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, &clientError{err}
			}
			if r.left == 0 {
				if line, err := r.rd.readLine(2); err != nil || len(line) != 0 {
					return n, &clientError{errBadRequest}
				}
				r.state = 0
			}
			return n, nil
		}
	}
}
