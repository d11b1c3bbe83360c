package ajp

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// responseWriter is the http.ResponseWriter of one request. It is new
// for every request, so nothing of a previous response (its headers
// above all: CVE-2023-34981) can reach the next one, and it always
// sends SEND_HEADERS, even for a response without headers.
//
// Like net/http's, it buffers up to one packet of body, so that a
// handler that writes a small body and returns gets a Content-Length
// (and a sniffed Content-Type) without a flush in between.
type responseWriter struct {
	c      *serverConn
	req    *http.Request
	cancel context.CancelFunc // cancels the request's context when a write fails

	handlerHeader http.Header // what Header returns
	header        http.Header // handlerHeader as it was at WriteHeader

	status        int
	wroteHeader   bool  // WriteHeader was called (with a final status)
	sentHeader    bool  // SEND_HEADERS is on its way
	discard       bool  // drop the body: a HEAD, or a 500 replacing headers that could not be sent
	contentLength int64 // the Content-Length the handler set; -1: none
	written       int64 // body bytes the handler wrote
	buf           []byte
	err           error // the first write error
}

var _ interface {
	http.ResponseWriter
	http.Flusher
	FlushError() error
} = (*responseWriter)(nil)

func (w *responseWriter) Header() http.Header { return w.handlerHeader }

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// WriteHeader follows net/http: a code outside 100-999 panics, a second
// call is ignored (and logged at debug level). Informational codes
// (1xx) are dropped: AJP has no interim responses.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		w.c.s.log().Debug("ajp: superfluous WriteHeader call", slog.Int("code", code), slog.String("uri", w.req.RequestURI))
		return
	}
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.header = w.handlerHeader.Clone()
	if w.header == nil {
		w.header = http.Header{}
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			w.c.s.log().Warn("ajp: handler set an invalid Content-Length; dropped", slog.String("value", cl), slog.String("uri", w.req.RequestURI))
			delete(w.header, "Content-Length")
		} else {
			w.contentLength = n
		}
	}
	if w.req.Method == http.MethodHead {
		w.discard = true
	}
}

func (w *responseWriter) maxChunk() int { return w.c.s.packetSize() - chunkOverhead }

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	n, max := 0, w.maxChunk()
	for len(p) > 0 {
		if w.sentHeader && w.discard {
			return n + len(p), nil
		}
		if len(w.buf) == 0 && len(p) >= max && w.sentHeader {
			// A whole packet's worth: send it from p, without a copy.
			if err := w.sendChunk(p[:max]); err != nil {
				return n, err
			}
			p, n = p[max:], n+max
			continue
		}
		k := min(max-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == max && len(p) > 0 {
			if err := w.flushBuf(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flushBuf sends the headers if they are not yet, then the buffered
// body.
func (w *responseWriter) flushBuf() error {
	if !w.sentHeader {
		w.sendHeader(false)
	}
	if w.err != nil {
		return w.err
	}
	if len(w.buf) > 0 && !w.discard {
		if err := w.sendChunk(w.buf); err != nil {
			return err
		}
	}
	w.buf = w.buf[:0]
	return nil
}

// Flush sends the headers and the buffered body to the web server.
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.flushBuf(); err != nil {
		return err
	}
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return w.failed(c.flushLocked())
}

// failed records a write error: the request's context is cancelled, as
// net/http cancels it when the client goes away.
func (w *responseWriter) failed(err error) error {
	if err != nil && w.err == nil {
		w.err = err
		w.cancel()
	}
	return err
}

func (c *serverConn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	c.nc.SetWriteDeadline(deadline(c.writeTimeout))
	if err := c.bw.Flush(); err != nil {
		c.werr = err
	}
	return c.werr
}

// sendChunk writes one SEND_BODY_CHUNK packet carrying data (at most
// maxChunk bytes), straight into the connection's buffer.
func (w *responseWriter) sendChunk(data []byte) error {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return w.failed(c.werr)
	}
	var hdr [7]byte
	hdr[0], hdr[1] = 'A', 'B'
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(data)+4))
	hdr[4] = TypeSendBodyChunk
	binary.BigEndian.PutUint16(hdr[5:], uint16(len(data)))
	c.nc.SetWriteDeadline(deadline(c.writeTimeout))
	_, err := c.bw.Write(hdr[:])
	if err == nil {
		_, err = c.bw.Write(data)
	}
	if err == nil {
		err = c.bw.WriteByte(0) // the NUL Apache httpd's mod_proxy_ajp expects
	}
	if err != nil {
		c.werr = err
	}
	return w.failed(err)
}

// hopHeaders are response headers that describe the connection, not
// the response: the web server makes its own.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Trailer", "Upgrade"}

// sendHeader writes SEND_HEADERS. final says the handler has returned
// and w.buf is the whole body: then, as net/http does, it adds the
// Content-Length and, if none was set, a sniffed Content-Type. Headers
// that do not fit a packet are replaced by a bare 500 (logged), and the
// handler's body is dropped.
func (w *responseWriter) sendHeader(final bool) {
	w.sentHeader = true
	h := w.header
	if bodyAllowed(w.status) {
		_, haveType := h["Content-Type"]
		if !haveType && h.Get("Content-Encoding") == "" && len(w.buf) > 0 {
			h.Set("Content-Type", http.DetectContentType(w.buf))
		}
		if final && w.contentLength < 0 && (w.req.Method != http.MethodHead || w.written > 0) {
			h.Set("Content-Length", strconv.FormatInt(w.written, 10))
		}
	}
	sh := SendHeaders{Status: w.status, Reason: reasonPhrase(w.status), Headers: make([]Header, 0, len(h))}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(hopHeaders, k) || strings.HasPrefix(k, http.TrailerPrefix) || !validToken(k) {
			continue
		}
		for _, v := range h[k] {
			sh.Headers = append(sh.Headers, Header{k, sanitizeValue(v)})
		}
	}
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	pkt, err := sh.AppendPacket(c.wbuf[:0], c.s.packetSize())
	if err != nil {
		c.s.log().Error("ajp: response headers cannot be sent; answering 500 instead",
			slog.String("uri", w.req.RequestURI), slog.Int("status", w.status), slog.Any("err", err))
		w.status, w.discard = http.StatusInternalServerError, true
		w.contentLength, w.written = 0, 0
		sh = SendHeaders{Status: w.status, Reason: reasonPhrase(w.status), Headers: []Header{{"Content-Length", "0"}}}
		pkt, _ = sh.AppendPacket(c.wbuf[:0], c.s.packetSize())
	}
	c.wbuf = pkt[:0]
	w.failed(c.writeLocked(pkt, false))
}

// sanitizeValue replaces control bytes (CR and LF above all) by
// spaces, as net/http does with CR and LF when it writes a header.
func sanitizeValue(v string) string {
	if validValue(v) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if (r < ' ' && r != '\t') || r == 0x7F {
			return ' '
		}
		return r
	}, v)
}

// finish completes the response after the handler returned: headers if
// not sent yet, the buffered body, END_RESPONSE. inStep says whether the
// request body left the connection usable. It reports whether the
// connection may carry another request. A response shorter than its
// Content-Length, or one whose writes failed, gets no END_RESPONSE: the
// connection is closed, so that the web server cannot take it for
// complete.
func (w *responseWriter) finish(inStep bool) bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil && !w.sentHeader {
		w.sendHeader(true)
	}
	if w.err == nil && len(w.buf) > 0 && !w.discard {
		w.sendChunk(w.buf)
	}
	if w.err != nil {
		return false
	}
	if w.contentLength >= 0 && w.written < w.contentLength && bodyAllowed(w.status) && !w.discard {
		w.c.s.log().Warn("ajp: handler wrote less than its Content-Length; closing the connection",
			slog.String("uri", w.req.RequestURI), slog.Int64("content_length", w.contentLength), slog.Int64("written", w.written))
		return false
	}
	reuse := inStep && !w.c.s.isClosed()
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendEndResponse(c.wbuf[:0], reuse)
	if c.writeLocked(c.wbuf, true) != nil {
		return false
	}
	return reuse
}
