package ajp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Info is what a forward request told beyond the HTTP request itself.
// The secret is never in it.
type Info struct {
	RemoteHost string // the client's host name as the web server saw it (often its address)
	ServerName string
	ServerPort int
	// Attributes are the forward request's attributes, Secret cleared.
	// RemoteUser and AuthType are what the web server authenticated:
	// trust them only as far as the Secret authenticates the web server.
	Attributes Attributes
}

type infoKey struct{}

// InfoFromRequest returns the AJP details of a request the Server
// serves; ok is false for a request that did not come over AJP.
func InfoFromRequest(r *http.Request) (info Info, ok bool) {
	p, ok := r.Context().Value(infoKey{}).(*Info)
	if !ok {
		return Info{}, false
	}
	return *p, true
}

// newRequest builds the *http.Request a handler sees from a forward
// request: method, URI and query, protocol, headers (Host moved to
// r.Host as net/http does), RemoteAddr from the client address and
// Apache's AJP_REMOTE_PORT, TLS from is_ssl and the SSL attributes.
func newRequest(ctx context.Context, fr *ForwardRequest, local net.Addr, body *requestBody) (*http.Request, error) {
	uri := fr.URI
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("%w: req_uri %q does not start with /", ErrMalformed, uri)
	}
	if fr.Attributes.QueryString != "" {
		uri += "?" + fr.Attributes.QueryString
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: request URI: %w", ErrMalformed, err)
	}
	major, minor, ok := http.ParseHTTPVersion(fr.Protocol)
	if !ok {
		return nil, fmt.Errorf("%w: protocol %q", ErrMalformed, fr.Protocol)
	}
	h := make(http.Header, len(fr.Headers))
	for _, hd := range fr.Headers {
		k := http.CanonicalHeaderKey(hd.Name)
		h[k] = append(h[k], hd.Value)
	}
	host := h.Get("Host")
	delete(h, "Host")
	if host == "" {
		host = fr.ServerName
		if p := fr.ServerPort; p != 0 && !(p == 80 && !fr.IsSSL) && !(p == 443 && fr.IsSSL) {
			host = net.JoinHostPort(host, strconv.Itoa(p))
		}
	}
	info := &Info{RemoteHost: fr.RemoteHost, ServerName: fr.ServerName, ServerPort: fr.ServerPort, Attributes: fr.Attributes}
	info.Attributes.Secret = ""
	port := "0"
	for _, a := range fr.Attributes.Request {
		if a.Name == "AJP_REMOTE_PORT" {
			if _, err := strconv.ParseUint(a.Value, 10, 16); err == nil {
				port = a.Value
			}
		}
	}
	r := &http.Request{
		Method:     fr.Method,
		URL:        u,
		Proto:      fr.Protocol,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     h,
		Host:       host,
		RemoteAddr: net.JoinHostPort(fr.RemoteAddr, port),
		RequestURI: uri,
	}
	switch cls := h.Values("Content-Length"); {
	case len(cls) > 0:
		for _, v := range cls[1:] {
			if v != cls[0] {
				return nil, fmt.Errorf("%w: Content-Length given twice, %q and %q", ErrMalformed, cls[0], v)
			}
		}
		n, err := strconv.ParseInt(strings.TrimSpace(cls[0]), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: Content-Length %q", ErrMalformed, cls[0])
		}
		r.ContentLength = n
		body.remaining = n
	case h.Get("Transfer-Encoding") != "":
		// A body of unknown length (the client sent it chunked): the
		// web server sends nothing until asked, and ends it with an
		// empty packet. The AJP packets are its framing, not the
		// chunked coding, so the header goes.
		delete(h, "Transfer-Encoding")
		r.TransferEncoding = []string{"chunked"}
		r.ContentLength = -1
		body.remaining = -1
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	} else {
		r.Body = body
	}
	if fr.IsSSL {
		r.TLS = tlsState(fr)
	}
	ctx = context.WithValue(ctx, infoKey{}, info)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, local)
	return r.WithContext(ctx), nil
}

// tlsState is the TLS state a handler sees: what the web server said of
// the client's connection. Only what AJP carries is filled in.
func tlsState(fr *ForwardRequest) *tls.ConnectionState {
	st := &tls.ConnectionState{HandshakeComplete: true, ServerName: fr.ServerName}
	for _, cs := range tls.CipherSuites() {
		if cs.Name == fr.Attributes.SSLCipher {
			st.CipherSuite = cs.ID
		}
	}
	rest := []byte(fr.Attributes.SSLCert)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			st.PeerCertificates = append(st.PeerCertificates, c)
		}
	}
	return st
}

var errBodyAfterHandler = errors.New("ajp: request body read after the handler returned")

// requestBody is a request's body as the handler reads it: the first
// packet the web server sent unasked, then GET_BODY_CHUNK for each
// further packet.
type requestBody struct {
	c *serverConn

	mu        sync.Mutex // protects the fields below; a Read holds it while it waits for a packet
	remaining int64      // bytes still to come; -1: unknown, until the empty packet
	buf       []byte     // data received and not read yet (a slice of c.rbuf)
	eof       bool
	err       error
	closed    bool // the handler returned
}

// first reads the packet that follows the forward request unasked.
func (b *requestBody) first() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.receive(b.remaining)
	return b.err
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyAfterHandler
	}
	for len(b.buf) == 0 {
		switch {
		case b.err != nil:
			return 0, b.err
		case b.eof || b.remaining == 0:
			return 0, io.EOF
		}
		max := int64(b.c.s.packetSize() - dataOverhead)
		if b.remaining > 0 {
			max = min(max, b.remaining)
		}
		if err := b.c.write(AppendGetBodyChunk(nil, int(max)), true); err != nil {
			b.err = err
			return 0, err
		}
		b.receive(max)
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// receive reads one body packet of at most max bytes (-1: the packet
// size's limit).
func (b *requestBody) receive(max int64) {
	c := b.c
	c.nc.SetReadDeadline(deadline(c.readTimeout))
	p, err := ReadPacket(c.br, ToContainer, c.rbuf)
	if err == nil {
		b.buf, err = ParseData(p)
	}
	switch {
	case err != nil:
		if err == io.EOF {
			err = fmt.Errorf("%w: connection closed while waiting for the request body", ErrTruncated)
		}
		b.err = err
	case len(b.buf) == 0:
		b.eof = true
		if b.remaining > 0 {
			b.err = fmt.Errorf("request body ended %d bytes short of its Content-Length: %w", b.remaining, io.ErrUnexpectedEOF)
		}
	case max >= 0 && int64(len(b.buf)) > max:
		b.err = fmt.Errorf("%w: body packet of %d bytes, %d were asked for", ErrMalformed, len(b.buf), max)
		b.buf = nil
	case b.remaining > 0:
		b.remaining -= int64(len(b.buf))
	}
}

// broken reports a body error that leaves the connection out of step.
func (b *requestBody) broken() bool {
	return b.err != nil && !errors.Is(b.err, io.ErrUnexpectedEOF)
}

func (b *requestBody) Close() error { return nil }

// close ends the body when the handler returned; it reports whether
// the connection is still in step.
func (b *requestBody) close() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return !b.broken()
}
