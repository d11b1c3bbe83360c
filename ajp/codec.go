package ajp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Packet sizes. A packet is the 4-byte header (magic, length) and its
// payload; the size counts both, as Tomcat's packetSize and Apache's
// ProxyIOBufferSize do.
const (
	// DefaultPacketSize is the packet size of Tomcat, Apache httpd and
	// mod_jk unless configured otherwise.
	DefaultPacketSize = 8192
	// MaxPacketSize is the largest packet size the protocol allows
	// (Tomcat's maximum packetSize).
	MaxPacketSize = 65536

	headerLen = 4
	// dataOverhead is what a request body packet adds to its data:
	// header and the data's own length.
	dataOverhead = headerLen + 2
	// chunkOverhead is what a SEND_BODY_CHUNK packet adds to its data:
	// header, type, length and the trailing NUL that Apache httpd's
	// mod_proxy_ajp requires.
	chunkOverhead = headerLen + 1 + 2 + 1
)

// Direction is the direction of a packet, which its magic tells.
type Direction uint8

const (
	// ToContainer is web server → servlet container (this package's
	// Server receives these): magic 0x12 0x34.
	ToContainer Direction = iota
	// ToWebServer is container → web server (this package's Transport
	// receives these): magic 'A' 'B'.
	ToWebServer
)

func (d Direction) magic() [2]byte {
	if d == ToContainer {
		return [2]byte{0x12, 0x34}
	}
	return [2]byte{'A', 'B'}
}

func (d Direction) String() string {
	if d == ToContainer {
		return "to container (0x1234)"
	}
	return "to web server ('AB')"
}

// Packet types: the first byte of a payload (request body packets have
// none).
const (
	TypeForwardRequest byte = 0x02 // web server → container
	TypeSendBodyChunk  byte = 0x03 // container → web server
	TypeSendHeaders    byte = 0x04 // container → web server
	TypeEndResponse    byte = 0x05 // container → web server
	TypeGetBodyChunk   byte = 0x06 // container → web server
	TypeShutdown       byte = 0x07 // web server → container; always refused here
	TypePing           byte = 0x08 // web server → container (AJP/1.4); refused here
	TypeCPong          byte = 0x09 // container → web server
	TypeCPing          byte = 0x0A // web server → container
)

// Request attribute codes of a forward request.
const (
	attrContext      byte = 0x01
	attrServletPath  byte = 0x02
	attrRemoteUser   byte = 0x03
	attrAuthType     byte = 0x04
	attrQueryString  byte = 0x05
	attrRoute        byte = 0x06 // "jvm_route"
	attrSSLCert      byte = 0x07
	attrSSLCipher    byte = 0x08
	attrSSLSession   byte = 0x09
	attrReqAttribute byte = 0x0A
	attrSSLKeySize   byte = 0x0B
	attrSecret       byte = 0x0C
	attrStoredMethod byte = 0x0D
	attrAreDone      byte = 0xFF
)

// methodStored is the method code of a method outside the table: the
// method's name follows as the stored_method attribute.
const methodStored byte = 0xFF

// methods are the method codes 1 to 27.
var methods = [...]string{"", "OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "ACL", "REPORT",
	"VERSION-CONTROL", "CHECKIN", "CHECKOUT", "UNCHECKOUT", "SEARCH", "MKWORKSPACE",
	"UPDATE", "LABEL", "MERGE", "BASELINE-CONTROL", "MKACTIVITY"}

// Coded header names: 0xA001 is index 1.
var (
	requestHeaders = [...]string{"", "Accept", "Accept-Charset", "Accept-Encoding",
		"Accept-Language", "Authorization", "Connection", "Content-Type", "Content-Length",
		"Cookie", "Cookie2", "Host", "Pragma", "Referer", "User-Agent"}
	responseHeaders = [...]string{"", "Content-Type", "Content-Language", "Content-Length",
		"Date", "Last-Modified", "Location", "Set-Cookie", "Set-Cookie2", "Servlet-Engine",
		"Status", "WWW-Authenticate"}
)

// codeOf returns the code of a coded name (case-insensitive), or 0.
func codeOf(table []string, name string) uint16 {
	for i := 1; i < len(table); i++ {
		if strings.EqualFold(table[i], name) {
			return 0xA000 | uint16(i)
		}
	}
	return 0
}

// Header is one header (or request attribute) name and value, in the
// order of the packet. Names of coded headers are in their canonical
// form ("Content-Type").
type Header struct {
	Name, Value string
}

// Attributes are the optional request attributes of a forward request.
// An empty string (or 0) is an absent attribute.
type Attributes struct {
	Context     string // 0x01, unused by servlet containers
	ServletPath string // 0x02, unused by servlet containers
	RemoteUser  string // 0x03: the user the web server authenticated
	AuthType    string // 0x04: how it authenticated them
	QueryString string // 0x05: the query, without '?'
	Route       string // 0x06 ("jvm_route"): the session route the balancer chose
	SSLCert     string // 0x07: the client's certificate, PEM
	SSLCipher   string // 0x08: the TLS cipher suite's name
	SSLSession  string // 0x09: the TLS session id
	SSLKeySize  int    // 0x0B: the cipher's key size in bits
	Secret      string // 0x0C: the shared secret
	// Request are the req_attribute (0x0A) name/value pairs. Apache
	// httpd sends the client's port as AJP_REMOTE_PORT and the
	// environment variables named AJP_* (prefix removed).
	Request []Header
}

// ForwardRequest is the packet that starts an exchange (0x02): the
// request line, the headers and the attributes. Its body, if any,
// follows in body packets.
type ForwardRequest struct {
	Method     string // methods outside the protocol's table travel as the stored_method attribute
	Protocol   string // "HTTP/1.1"
	URI        string // the path, without the query (that is Attributes.QueryString)
	RemoteAddr string // the client's IP address
	RemoteHost string // the client's host name, or its address
	ServerName string
	ServerPort int
	IsSSL      bool
	Headers    []Header
	Attributes Attributes
}

// SendHeaders is the response's status and headers (0x04).
type SendHeaders struct {
	Status  int    // 100 to 999
	Reason  string // the reason phrase: "OK", not the code again
	Headers []Header
}

// ReadPacket reads one packet of direction d from r into buf and returns
// its payload (a slice of buf, valid until buf is reused). The packet
// size is len(buf): a longer packet is refused with ErrPacketTooLarge
// before its payload is read. A connection that ends between packets
// gives io.EOF; one that ends inside a packet, ErrTruncated.
func ReadPacket(r io.Reader, d Direction, buf []byte) ([]byte, error) {
	if len(buf) < headerLen {
		return nil, fmt.Errorf("%w: buffer of %d bytes", ErrPacketTooLarge, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:headerLen]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: connection closed inside a packet header: %w", ErrTruncated, err)
		}
		return nil, err
	}
	if m := d.magic(); buf[0] != m[0] || buf[1] != m[1] {
		return nil, fmt.Errorf("%w: got %#02x %#02x, want %#02x %#02x (%s)", ErrBadMagic, buf[0], buf[1], m[0], m[1], d)
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	if n > len(buf)-headerLen {
		return nil, fmt.Errorf("%w: payload of %d bytes, the packet size %d allows %d", ErrPacketTooLarge, n, len(buf), len(buf)-headerLen)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: connection closed inside a %d-byte payload: %w", ErrTruncated, n, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return buf[:n], nil
}

// encoder appends a packet to a buffer. The first error sticks; size
// checks happen at finish.
type encoder struct {
	b     []byte
	start int // where the packet's header starts in b
	err   error
}

func newEncoder(dst []byte, d Direction) *encoder {
	m := d.magic()
	e := &encoder{b: dst, start: len(dst)}
	e.b = append(e.b, m[0], m[1], 0, 0)
	return e
}

func (e *encoder) byte(v byte)     { e.b = append(e.b, v) }
func (e *encoder) uint16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// string appends a string: length, bytes, NUL. A string of length
// 0xFFFF would read as null, and one whose high length byte is 0xA0
// as a coded header name: the packet limit rules both out anyway, but
// the check costs nothing.
func (e *encoder) string(what, s string) {
	if len(s) >= 0xA000 {
		e.fail(fmt.Errorf("%w: %s is %d bytes long", ErrPacketTooLarge, what, len(s)))
		return
	}
	if strings.IndexByte(s, 0) >= 0 {
		e.fail(fmt.Errorf("%w: %s contains a NUL byte", ErrMalformed, what))
		return
	}
	e.uint16(uint16(len(s)))
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// finish fills in the length and checks the packet size.
func (e *encoder) finish(what string, packetSize int) ([]byte, error) {
	if e.err != nil {
		return e.b[:e.start], fmt.Errorf("%s: %w", what, e.err)
	}
	n := len(e.b) - e.start
	if n > packetSize {
		return e.b[:e.start], fmt.Errorf("%w: %s needs %d bytes, the packet size is %d", ErrPacketTooLarge, what, n, packetSize)
	}
	binary.BigEndian.PutUint16(e.b[e.start+2:], uint16(n-headerLen))
	return e.b, nil
}

func checkPacketSize(packetSize int) int {
	if packetSize <= 0 {
		return DefaultPacketSize
	}
	return min(packetSize, MaxPacketSize)
}

// AppendPacket appends f as a forward request packet to dst. It fails
// with ErrPacketTooLarge if the packet exceeds packetSize (0 means
// DefaultPacketSize), and with ErrMalformed if a header name is not an
// HTTP token or a value or string contains CR, LF or NUL.
func (f *ForwardRequest) AppendPacket(dst []byte, packetSize int) ([]byte, error) {
	packetSize = checkPacketSize(packetSize)
	e := newEncoder(dst, ToContainer)
	e.byte(TypeForwardRequest)
	code := methodStored
	for i := 1; i < len(methods); i++ {
		if methods[i] == f.Method {
			code = byte(i)
		}
	}
	if code == methodStored && !validToken(f.Method) {
		e.fail(fmt.Errorf("%w: method %q is not an HTTP token", ErrMalformed, f.Method))
	}
	e.byte(code)
	e.string("protocol", f.Protocol)
	e.string("req_uri", f.URI)
	e.string("remote_addr", f.RemoteAddr)
	e.string("remote_host", f.RemoteHost)
	e.string("server_name", f.ServerName)
	if f.ServerPort < 0 || f.ServerPort > 0xFFFF {
		e.fail(fmt.Errorf("%w: server_port %d", ErrMalformed, f.ServerPort))
	}
	e.uint16(uint16(f.ServerPort))
	e.bool(f.IsSSL)
	if len(f.Headers) > 0xFFFF {
		e.fail(fmt.Errorf("%w: %d headers", ErrPacketTooLarge, len(f.Headers)))
	}
	e.uint16(uint16(len(f.Headers)))
	for _, h := range f.Headers {
		appendHeader(e, requestHeaders[:], h)
	}
	a := &f.Attributes
	for _, s := range []struct {
		code byte
		name string
		v    string
	}{
		{attrContext, "context", a.Context}, {attrServletPath, "servlet_path", a.ServletPath},
		{attrRemoteUser, "remote_user", a.RemoteUser}, {attrAuthType, "auth_type", a.AuthType},
		{attrQueryString, "query_string", a.QueryString}, {attrRoute, "route", a.Route},
		{attrSSLCert, "ssl_cert", a.SSLCert}, {attrSSLCipher, "ssl_cipher", a.SSLCipher},
		{attrSSLSession, "ssl_session", a.SSLSession}, {attrSecret, "secret", a.Secret},
	} {
		if s.v != "" {
			e.byte(s.code)
			e.string(s.name, s.v)
		}
	}
	if a.SSLKeySize != 0 {
		if a.SSLKeySize < 0 || a.SSLKeySize > 0xFFFF {
			e.fail(fmt.Errorf("%w: ssl_key_size %d", ErrMalformed, a.SSLKeySize))
		}
		e.byte(attrSSLKeySize)
		e.uint16(uint16(a.SSLKeySize))
	}
	for _, h := range a.Request {
		e.byte(attrReqAttribute)
		e.string("req_attribute name", h.Name)
		e.string("req_attribute value", h.Value)
	}
	if code == methodStored {
		e.byte(attrStoredMethod)
		e.string("stored_method", f.Method)
	}
	e.byte(attrAreDone)
	return e.finish("forward request", packetSize)
}

func appendHeader(e *encoder, table []string, h Header) {
	if !validToken(h.Name) {
		e.fail(fmt.Errorf("%w: header name %q is not an HTTP token", ErrMalformed, h.Name))
		return
	}
	if !validValue(h.Value) {
		e.fail(fmt.Errorf("%w: header %s: value contains CR, LF, NUL or another control byte", ErrMalformed, h.Name))
		return
	}
	if c := codeOf(table, h.Name); c != 0 {
		e.uint16(c)
	} else {
		e.string("header name", h.Name)
	}
	e.string("header value", h.Value)
}

// AppendPacket appends h as a SEND_HEADERS packet to dst, with the same
// checks as ForwardRequest.AppendPacket.
func (h *SendHeaders) AppendPacket(dst []byte, packetSize int) ([]byte, error) {
	packetSize = checkPacketSize(packetSize)
	e := newEncoder(dst, ToWebServer)
	e.byte(TypeSendHeaders)
	if h.Status < 100 || h.Status > 999 {
		e.fail(fmt.Errorf("%w: status %d", ErrMalformed, h.Status))
	}
	e.uint16(uint16(h.Status))
	if !validValue(h.Reason) {
		e.fail(fmt.Errorf("%w: reason phrase contains a control byte", ErrMalformed))
	}
	e.string("reason", h.Reason)
	if len(h.Headers) > 0xFFFF {
		e.fail(fmt.Errorf("%w: %d headers", ErrPacketTooLarge, len(h.Headers)))
	}
	e.uint16(uint16(len(h.Headers)))
	for _, hd := range h.Headers {
		appendHeader(e, responseHeaders[:], hd)
	}
	return e.finish("send headers", packetSize)
}

// AppendData appends a request body packet carrying data to dst. An
// empty data gives the empty packet that ends a body. data must fit:
// at most packetSize-6 bytes.
func AppendData(dst, data []byte, packetSize int) ([]byte, error) {
	packetSize = checkPacketSize(packetSize)
	if len(data) == 0 {
		return append(dst, 0x12, 0x34, 0, 0), nil
	}
	if len(data) > packetSize-dataOverhead {
		return dst, fmt.Errorf("%w: %d bytes of body data, the packet size %d allows %d", ErrPacketTooLarge, len(data), packetSize, packetSize-dataOverhead)
	}
	dst = append(dst, 0x12, 0x34)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)+2))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)))
	return append(dst, data...), nil
}

// AppendBodyChunk appends a SEND_BODY_CHUNK packet carrying data to dst:
// at most packetSize-8 bytes.
func AppendBodyChunk(dst, data []byte, packetSize int) ([]byte, error) {
	packetSize = checkPacketSize(packetSize)
	if len(data) > packetSize-chunkOverhead {
		return dst, fmt.Errorf("%w: %d bytes of body chunk, the packet size %d allows %d", ErrPacketTooLarge, len(data), packetSize, packetSize-chunkOverhead)
	}
	dst = append(dst, 'A', 'B')
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)+4))
	dst = append(dst, TypeSendBodyChunk)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(data)))
	dst = append(dst, data...)
	return append(dst, 0), nil
}

// AppendGetBodyChunk appends a GET_BODY_CHUNK packet asking for up to n
// bytes of the request body.
func AppendGetBodyChunk(dst []byte, n int) []byte {
	dst = append(dst, 'A', 'B', 0, 3, TypeGetBodyChunk)
	return binary.BigEndian.AppendUint16(dst, uint16(min(max(n, 0), 0xFFFF)))
}

// AppendEndResponse appends an END_RESPONSE packet; reuse says whether
// the connection may carry another request.
func AppendEndResponse(dst []byte, reuse bool) []byte {
	r := byte(0)
	if reuse {
		r = 1
	}
	return append(dst, 'A', 'B', 0, 2, TypeEndResponse, r)
}

// AppendCPing appends a CPing packet; AppendCPong its answer.
func AppendCPing(dst []byte) []byte { return append(dst, 0x12, 0x34, 0, 1, TypeCPing) }

// AppendCPong appends the answer to a CPing.
func AppendCPong(dst []byte) []byte { return append(dst, 'A', 'B', 0, 1, TypeCPong) }

// decoder reads a payload. The first error sticks.
type decoder struct {
	p   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.p) {
		d.fail("%s at offset %d: the %d-byte payload has ended", what, d.off, len(d.p))
		return 0
	}
	b := d.p[d.off]
	d.off++
	return b
}

func (d *decoder) uint16(what string) uint16 {
	if d.err != nil {
		return 0
	}
	if d.off+2 > len(d.p) {
		d.fail("%s at offset %d: the %d-byte payload has ended", what, d.off, len(d.p))
		return 0
	}
	v := binary.BigEndian.Uint16(d.p[d.off:])
	d.off += 2
	return v
}

func (d *decoder) bool(what string) bool {
	switch b := d.byte(what); b {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: boolean %#02x, want 0 or 1", what, b)
		return false
	}
}

// string reads a string (length, bytes, NUL). A null string (length
// 0xFFFF) reads as "".
func (d *decoder) string(what string) string {
	n := d.uint16(what)
	if d.err != nil || n == 0xFFFF {
		return ""
	}
	start := d.off
	if start+int(n)+1 > len(d.p) {
		d.fail("%s at offset %d: length %d runs past the %d-byte payload", what, start-2, n, len(d.p))
		return ""
	}
	if d.p[start+int(n)] != 0 {
		d.fail("%s at offset %d: no NUL after its %d bytes", what, start-2, n)
		return ""
	}
	s := d.p[start : start+int(n)]
	if bytes.IndexByte(s, 0) >= 0 {
		// C peers would read it as two strings' worth of confusion.
		d.fail("%s at offset %d: contains a NUL byte", what, start-2)
		return ""
	}
	d.off = start + int(n) + 1
	return string(s)
}

// header reads a header name (coded or a string) and value.
func (d *decoder) header(table []string, i int) Header {
	var h Header
	if d.err == nil && d.off < len(d.p) && d.p[d.off] == 0xA0 {
		c := d.uint16("header name")
		if int(c&0xFF) == 0 || int(c&0xFF) >= len(table) {
			d.fail("header %d: unknown coded name %#04x", i, c)
			return h
		}
		h.Name = table[c&0xFF]
	} else {
		h.Name = d.string("header name")
		if d.err == nil && !validToken(h.Name) {
			d.fail("header %d: name %q is not an HTTP token", i, h.Name)
		}
	}
	h.Value = d.string("header value")
	if d.err == nil && !validValue(h.Value) {
		d.fail("header %s: value contains CR, LF, NUL or another control byte", h.Name)
	}
	return h
}

func (d *decoder) typ(want byte, what string) {
	if t := d.byte("packet type"); d.err == nil && t != want {
		d.fail("packet type %#02x, want %#02x (%s)", t, want, what)
	}
}

// end checks that the whole payload was read.
func (d *decoder) end(what string) error {
	if d.err == nil && d.off != len(d.p) {
		d.fail("%s: %d bytes after its end", what, len(d.p)-d.off)
	}
	return d.err
}

// ParseForwardRequest parses a forward request payload (as ReadPacket
// returns it, type byte first). Every field is checked: lengths against
// the payload, NUL terminators, the 0xFF terminator, codes, header names
// and values, and that nothing follows the terminator.
func ParseForwardRequest(payload []byte) (*ForwardRequest, error) {
	d := &decoder{p: payload}
	f := &ForwardRequest{}
	d.typ(TypeForwardRequest, "forward request")
	code := d.byte("method")
	if d.err == nil {
		switch {
		case code == methodStored:
		case int(code) >= 1 && int(code) < len(methods):
			f.Method = methods[code]
		default:
			d.fail("unknown method code %#02x", code)
		}
	}
	f.Protocol = d.string("protocol")
	f.URI = d.string("req_uri")
	f.RemoteAddr = d.string("remote_addr")
	f.RemoteHost = d.string("remote_host")
	f.ServerName = d.string("server_name")
	f.ServerPort = int(d.uint16("server_port"))
	f.IsSSL = d.bool("is_ssl")
	n := int(d.uint16("num_headers"))
	if d.err == nil && n > (len(d.p)-d.off)/4 {
		// Every header takes at least 4 bytes (a code and an empty
		// value is 2+3): a count beyond that is a lie, refused before
		// allocating for it.
		d.fail("num_headers %d: only %d bytes left", n, len(d.p)-d.off)
	}
	if d.err == nil && n > 0 {
		f.Headers = make([]Header, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		f.Headers = append(f.Headers, d.header(requestHeaders[:], i))
	}
	a := &f.Attributes
	seen := map[byte]bool{}
	done := false
	for d.err == nil && !done {
		c := d.byte("attribute code (the list must end with 0xFF)")
		if d.err != nil {
			break
		}
		if c != attrReqAttribute && c != attrAreDone {
			if seen[c] {
				d.fail("attribute %#02x given twice", c)
				break
			}
			seen[c] = true
		}
		switch c {
		case attrAreDone:
			done = true
		case attrContext:
			a.Context = d.string("context")
		case attrServletPath:
			a.ServletPath = d.string("servlet_path")
		case attrRemoteUser:
			a.RemoteUser = d.string("remote_user")
		case attrAuthType:
			a.AuthType = d.string("auth_type")
		case attrQueryString:
			a.QueryString = d.string("query_string")
		case attrRoute:
			a.Route = d.string("route")
		case attrSSLCert:
			a.SSLCert = d.string("ssl_cert")
		case attrSSLCipher:
			a.SSLCipher = d.string("ssl_cipher")
		case attrSSLSession:
			a.SSLSession = d.string("ssl_session")
		case attrSSLKeySize:
			a.SSLKeySize = int(d.uint16("ssl_key_size"))
		case attrSecret:
			a.Secret = d.string("secret")
		case attrStoredMethod:
			m := d.string("stored_method")
			if d.err == nil && !validToken(m) {
				d.fail("stored_method %q is not an HTTP token", m)
			}
			f.Method = m
		case attrReqAttribute:
			h := Header{Name: d.string("req_attribute name")}
			h.Value = d.string("req_attribute value")
			a.Request = append(a.Request, h)
		default:
			d.fail("unknown attribute code %#02x at offset %d", c, d.off-1)
		}
	}
	if d.err == nil && f.Method == "" {
		d.fail("method code 0xFF without a stored_method attribute")
	}
	if err := d.end("forward request"); err != nil {
		return nil, err
	}
	return f, nil
}

// ParseSendHeaders parses a SEND_HEADERS payload with the same checks
// as ParseForwardRequest; the status must be 100 to 999.
func ParseSendHeaders(payload []byte) (*SendHeaders, error) {
	d := &decoder{p: payload}
	h := &SendHeaders{}
	d.typ(TypeSendHeaders, "send headers")
	h.Status = int(d.uint16("status"))
	if d.err == nil && (h.Status < 100 || h.Status > 999) {
		d.fail("status %d, want 100 to 999", h.Status)
	}
	h.Reason = d.string("reason")
	if d.err == nil && !validValue(h.Reason) {
		d.fail("reason phrase contains a control byte")
	}
	n := int(d.uint16("num_headers"))
	if d.err == nil && n > (len(d.p)-d.off)/4 {
		d.fail("num_headers %d: only %d bytes left", n, len(d.p)-d.off)
	}
	if d.err == nil && n > 0 {
		h.Headers = make([]Header, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		h.Headers = append(h.Headers, d.header(responseHeaders[:], i))
	}
	if err := d.end("send headers"); err != nil {
		return nil, err
	}
	return h, nil
}

// ParseData parses a request body packet's payload and returns its data
// (a slice of payload); an empty payload is the end of the body.
func ParseData(payload []byte) ([]byte, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	if len(payload) < 2 {
		return nil, fmt.Errorf("%w: body packet of %d byte", ErrMalformed, len(payload))
	}
	n := int(binary.BigEndian.Uint16(payload))
	if n != len(payload)-2 {
		return nil, fmt.Errorf("%w: body packet says %d bytes of data, carries %d", ErrMalformed, n, len(payload)-2)
	}
	return payload[2:], nil
}

// ParseBodyChunk parses a SEND_BODY_CHUNK payload and returns its data
// (a slice of payload). The data may be followed by the NUL byte that
// Tomcat and this package send, and by nothing else.
func ParseBodyChunk(payload []byte) ([]byte, error) {
	d := &decoder{p: payload}
	d.typ(TypeSendBodyChunk, "send body chunk")
	n := int(d.uint16("chunk length"))
	if d.err != nil {
		return nil, d.err
	}
	switch rest := len(payload) - 3; {
	case rest == n:
	case rest == n+1 && payload[len(payload)-1] == 0:
	default:
		return nil, fmt.Errorf("%w: body chunk says %d bytes, the packet carries %d", ErrMalformed, n, rest)
	}
	return payload[3 : 3+n], nil
}

// ParseGetBodyChunk parses a GET_BODY_CHUNK payload: how many bytes of
// the request body the container asks for.
func ParseGetBodyChunk(payload []byte) (int, error) {
	d := &decoder{p: payload}
	d.typ(TypeGetBodyChunk, "get body chunk")
	n := int(d.uint16("requested length"))
	return n, d.end("get body chunk")
}

// ParseEndResponse parses an END_RESPONSE payload: whether the
// container lets the connection carry another request.
func ParseEndResponse(payload []byte) (reuse bool, err error) {
	d := &decoder{p: payload}
	d.typ(TypeEndResponse, "end response")
	reuse = d.bool("reuse")
	return reuse, d.end("end response")
}

// validToken reports whether s is a non-empty HTTP token (RFC 9110
// 5.6.2), as header names and methods must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s may be a header value: no control bytes
// but horizontal tab (RFC 9110 5.5), so no CR or LF that would split a
// header when the web server writes it out.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7F {
			return false
		}
	}
	return true
}
