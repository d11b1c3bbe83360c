package balancer

import (
	"bytes"
	"errors"
	"net"
	"time"
)

// The fast path's HTTP/1.1 parsing is strict on purpose: a proxy and the
// server behind it must agree on where every request ends, or a request
// can be smuggled inside another. Anything the parser does not accept
// whole is refused (400, 431, 501, 505) and the connection closed;
// nothing ambiguous is forwarded. What it refuses or normalises:
//
//   - Transfer-Encoding other than exactly "chunked", given once: 501
//     (gzip, "chunked, chunked", identity ...); with Content-Length too:
//     400 (RFC 9112 6.3 allows a server to refuse it, and refusing closes
//     the door on CL.TE and TE.CL).
//   - Content-Length that is not 1*DIGIT, or several that differ: 400;
//     several equal ones are forwarded as one.
//   - obs-fold (a header line starting with space or tab), a bare LF or a
//     bare CR, whitespace between a field name and its colon, a field
//     name that is not a token, a control character in a value: 400.
//   - Host missing or given twice: 400.
//   - A head over maxHeadBytes or with more than maxHeaderFields fields:
//     431.
//   - Versions other than HTTP/1.1 (HTTP/1.0, the HTTP/2 preface) and
//     request targets other than origin-form are not refused but handed
//     to net/http's server, whose parser is as strict.

// Limits of the fast path's parser.
const (
	maxHeadBytes    = 64 << 10 // request head, request line included
	maxHeaderFields = 128
	// A member's response head may be larger, as net/http's Transport
	// allows: the member is trusted more than clients.
	maxResponseHeadBytes    = 1 << 20
	maxResponseHeaderFields = 1024
	maxConnTokens           = 16 // field names listed in Connection, dropped when forwarding
	clientBufSize           = 4 << 10
)

// span is a range of a head's bytes.
type span struct{ off, end int32 }

func (s span) of(b []byte) []byte { return b[s.off:s.end] }
func (s span) empty() bool        { return s.end <= s.off }

// Parse errors of the fast path; each maps to the status sent before the
// connection is closed.
var (
	errBadRequest    = errors.New("malformed request")
	errHeadTooLarge  = errors.New("request head too large")
	errBadVersion    = errors.New("unsupported HTTP version")
	errUnsupportedTE = errors.New("unsupported transfer-encoding")
	errBadResponse   = errors.New("malformed response from member")
	errNeedMore      = errors.New("incomplete head")
)

// headOpts says what the request parser extracts besides framing: the
// sticky cookie's value, and the hash method's key.
type headOpts struct {
	cookie     string // the sticky cookie's name, or ""
	hashHeader string // the hash method's header (any case), or ""
	hashCookie string // the hash method's cookie, or ""
}

// reqHead is a parsed request head. Its spans index raw.
type reqHead struct {
	raw            []byte // the head: request line to the blank line
	method, target span
	host           span
	contentLength  int64 // -1: none
	chunked        bool
	close          bool // Connection: close
	handoff        bool // not plain HTTP/1.1 origin-form: for net/http
	idempotencyKey bool // an Idempotency-Key header with a value
	teTrailers     bool // TE lists trailers
	sessionCookie  span // the sticky cookie's first non-empty value
	hashKey        span // the hash method's key
	nConn          int
	connTokens     [maxConnTokens]span // names listed in Connection (but close, keep-alive)
}

// headEnd returns the length of the head at the start of b (through its
// blank line), errNeedMore if b holds no complete head yet, or
// errBadRequest if b has a bare LF or CR before the end. It checks from
// byte from on: the bytes before were checked by an earlier call.
func headEnd(b []byte, from int) (int, error) {
	for i := max(from, 0); i < len(b); i++ {
		switch b[i] {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return 0, errBadRequest // bare LF
			}
			if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
				return i + 1, nil
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return 0, errBadRequest // bare CR
			}
		}
	}
	return 0, errNeedMore
}

// parseRequestHead parses a complete head (as headEnd delimited it) into
// h. Its errors are errBadRequest, errHeadTooLarge, errBadVersion and
// errUnsupportedTE.
func parseRequestHead(raw []byte, o *headOpts, h *reqHead) error {
	*h = reqHead{raw: raw, contentLength: -1}
	line, rest, ok := cutCRLF(raw, 0)
	if !ok {
		return errBadRequest
	}
	// request-line = method SP request-target SP HTTP-version
	l := line.of(raw)
	sp1 := bytes.IndexByte(l, ' ')
	if sp1 <= 0 || !isToken(l[:sp1]) {
		return errBadRequest
	}
	sp2 := bytes.IndexByte(l[sp1+1:], ' ')
	if sp2 <= 0 {
		return errBadRequest
	}
	sp2 += sp1 + 1
	h.method = span{line.off, line.off + int32(sp1)}
	h.target = span{line.off + int32(sp1) + 1, line.off + int32(sp2)}
	version := l[sp2+1:]
	target := h.target.of(raw)
	for _, c := range target {
		if c <= ' ' || c == 0x7f || c == '#' {
			return errBadRequest
		}
	}
	switch {
	case string(version) == "HTTP/1.1":
	case len(version) == 8 && string(version[:5]) == "HTTP/" && version[6] == '.' &&
		isDigit(version[5]) && isDigit(version[7]):
		// HTTP/1.0, or "PRI * HTTP/2.0", the h2c preface: net/http's.
		if string(version) == "HTTP/1.0" || string(l) == "PRI * HTTP/2.0" {
			h.handoff = true
		} else {
			return errBadVersion
		}
	default:
		return errBadRequest
	}
	if target[0] != '/' {
		h.handoff = true // absolute-form, asterisk-form, authority-form (CONNECT)
	}
	if string(h.method.of(raw)) == "CONNECT" {
		h.handoff = true
	}

	nHost, nFields, nTE := 0, 0, 0
	for {
		var f span
		f, rest, ok = cutCRLF(raw, rest)
		if !ok {
			return errBadRequest
		}
		if f.empty() {
			break // the blank line
		}
		if nFields++; nFields > maxHeaderFields {
			return errHeadTooLarge
		}
		name, value, err := splitField(raw, f)
		if err != nil {
			return err
		}
		n := name.of(raw)
		v := value.of(raw)
		switch fieldKind(n) {
		case fieldHost:
			if nHost++; nHost > 1 || !validHost(v) {
				return errBadRequest
			}
			h.host = value
		case fieldContentLength:
			cl, ok := parseContentLength(v)
			if !ok || (h.contentLength >= 0 && cl != h.contentLength) {
				return errBadRequest
			}
			h.contentLength = cl
		case fieldTransferEncoding:
			if nTE++; nTE > 1 {
				return errUnsupportedTE
			}
			if len(v) == 0 {
				return errBadRequest
			}
			if !asciiEqualFold(v, "chunked") {
				return errUnsupportedTE
			}
			h.chunked = true
		case fieldConnection:
			if err := h.connectionTokens(raw, value); err != nil {
				return err
			}
		case fieldUpgrade, fieldExpect:
			h.handoff = true
		case fieldTE:
			h.teTrailers = h.teTrailers || hasToken(v, "trailers")
		case fieldIdempotencyKey:
			h.idempotencyKey = h.idempotencyKey || len(v) > 0
		case fieldCookie:
			if o.cookie != "" && h.sessionCookie.empty() {
				h.sessionCookie = cookieSpan(raw, value, o.cookie)
			}
			if o.hashCookie != "" && h.hashKey.empty() {
				h.hashKey = cookieSpan(raw, value, o.hashCookie)
			}
		}
		if o.hashHeader != "" && h.hashKey.empty() && len(v) > 0 && asciiEqualFold(n, o.hashHeader) {
			h.hashKey = value
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return errBadRequest
	}
	if nHost == 0 && !h.handoff {
		return errBadRequest
	}
	return nil
}

// connectionTokens records the tokens of a Connection field: close, and
// the names of the fields to drop.
func (h *reqHead) connectionTokens(raw []byte, value span) error {
	for _, t := range tokens(raw, value) {
		if t.empty() {
			continue
		}
		tok := t.of(raw)
		if !isToken(tok) {
			return errBadRequest
		}
		switch {
		case asciiEqualFold(tok, "close"):
			h.close = true
		case asciiEqualFold(tok, "keep-alive"):
		case asciiEqualFold(tok, "upgrade"):
			h.handoff = true
		default:
			if h.nConn == maxConnTokens {
				return errBadRequest
			}
			h.connTokens[h.nConn] = t
			h.nConn++
		}
	}
	return nil
}

// listedInConnection reports whether the field name n is listed in the
// request's Connection field.
func (h *reqHead) listedInConnection(n []byte) bool {
	for i := 0; i < h.nConn; i++ {
		if asciiEqualFoldB(n, h.connTokens[i].of(h.raw)) {
			return true
		}
	}
	return false
}

// tokens splits a comma-separated list into at most 17 spans, trimmed;
// more are returned as one last span (which then fails isToken).
func tokens(raw []byte, value span) []span {
	var out [maxConnTokens + 1]span
	n := 0
	start := value.off
	for i := value.off; i <= value.end; i++ {
		if i == value.end || raw[i] == ',' {
			s := trimSpan(raw, span{start, i})
			if n == len(out)-1 {
				out[n] = trimSpan(raw, span{start, value.end})
				n++
				break
			}
			out[n] = s
			n++
			start = i + 1
		}
	}
	return out[:n:n]
}

// cutCRLF returns the line starting at from (without its CRLF) and the
// offset after its CRLF.
func cutCRLF(raw []byte, from int32) (span, int32, bool) {
	i := bytes.Index(raw[from:], crlf)
	if i < 0 {
		return span{}, 0, false
	}
	return span{from, from + int32(i)}, from + int32(i) + 2, true
}

var crlf = []byte("\r\n")

// splitField splits a field line into its name and its value (without
// surrounding whitespace), refusing obs-fold, an invalid name and control
// characters.
func splitField(raw []byte, f span) (name, value span, err error) {
	l := f.of(raw)
	if l[0] == ' ' || l[0] == '\t' {
		return span{}, span{}, errBadRequest // obs-fold, or whitespace before the name
	}
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || !isToken(l[:colon]) {
		return span{}, span{}, errBadRequest
	}
	for _, c := range l[colon+1:] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return span{}, span{}, errBadRequest
		}
	}
	name = span{f.off, f.off + int32(colon)}
	value = trimSpan(raw, span{f.off + int32(colon) + 1, f.end})
	return name, value, nil
}

func trimSpan(raw []byte, s span) span {
	for s.off < s.end && (raw[s.off] == ' ' || raw[s.off] == '\t') {
		s.off++
	}
	for s.end > s.off && (raw[s.end-1] == ' ' || raw[s.end-1] == '\t') {
		s.end--
	}
	return s
}

// parseContentLength parses 1*DIGIT, at most 18 digits.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validHost reports whether v can be a Host field: the characters of a
// host (reg-name, IPv4, IP-literal) and a port.
func validHost(v []byte) bool {
	for _, c := range v {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var hostByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:[]%" {
		t[c] = true
	}
	return t
}()

// cookieSpan returns the value of the first non-empty cookie called name
// in the Cookie field value, without its quotes (as cookieValue).
func cookieSpan(raw []byte, value span, name string) span {
	i := value.off
	for i < value.end {
		j := i
		for j < value.end && raw[j] != ';' {
			j++
		}
		part := trimSpan(raw, span{i, j})
		p := part.of(raw)
		if eq := bytes.IndexByte(p, '='); eq > 0 {
			k := trimSpan(raw, span{part.off, part.off + int32(eq)})
			if string(k.of(raw)) == name {
				v := trimSpan(raw, span{part.off + int32(eq) + 1, part.end})
				if v.end-v.off > 1 && raw[v.off] == '"' && raw[v.end-1] == '"' {
					v.off++
					v.end--
				}
				if !v.empty() {
					return v
				}
			}
		}
		i = j + 1
	}
	return span{}
}

// The fields the fast path looks at.
const (
	fieldOther = iota
	fieldHost
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldKeepAlive
	fieldProxyConnection
	fieldUpgrade
	fieldExpect
	fieldTE
	fieldTrailer
	fieldIdempotencyKey
	fieldCookie
	fieldXForwardedFor
	fieldXForwardedHost
	fieldXForwardedProto
	fieldForwarded
	fieldProxyAuthenticate
	fieldProxyAuthorization
)

// fieldKind classifies a field name, in any case.
func fieldKind(n []byte) int {
	switch len(n) {
	case 2:
		if asciiEqualFold(n, "te") {
			return fieldTE
		}
	case 4:
		if asciiEqualFold(n, "host") {
			return fieldHost
		}
	case 6:
		switch {
		case asciiEqualFold(n, "cookie"):
			return fieldCookie
		case asciiEqualFold(n, "expect"):
			return fieldExpect
		}
	case 7:
		switch {
		case asciiEqualFold(n, "upgrade"):
			return fieldUpgrade
		case asciiEqualFold(n, "trailer"):
			return fieldTrailer
		}
	case 9:
		if asciiEqualFold(n, "forwarded") {
			return fieldForwarded
		}
	case 10:
		switch {
		case asciiEqualFold(n, "connection"):
			return fieldConnection
		case asciiEqualFold(n, "keep-alive"):
			return fieldKeepAlive
		}
	case 14:
		if asciiEqualFold(n, "content-length") {
			return fieldContentLength
		}
	case 15:
		switch {
		case asciiEqualFold(n, "x-forwarded-for"):
			return fieldXForwardedFor
		case asciiEqualFold(n, "idempotency-key"):
			return fieldIdempotencyKey
		}
	case 16:
		switch {
		case asciiEqualFold(n, "x-forwarded-host"):
			return fieldXForwardedHost
		case asciiEqualFold(n, "proxy-connection"):
			return fieldProxyConnection
		}
	case 17:
		switch {
		case asciiEqualFold(n, "transfer-encoding"):
			return fieldTransferEncoding
		case asciiEqualFold(n, "x-forwarded-proto"):
			return fieldXForwardedProto
		}
	case 18:
		if asciiEqualFold(n, "proxy-authenticate") {
			return fieldProxyAuthenticate
		}
	case 19:
		if asciiEqualFold(n, "proxy-authorization") {
			return fieldProxyAuthorization
		}
	}
	return fieldOther
}

// hopByHop reports whether a field of kind k is not forwarded as it is
// (hop-by-hop fields, RFC 9110 7.6.1, and those the proxy sets itself).
func hopByHop(k int) bool {
	switch k {
	case fieldContentLength, fieldTransferEncoding, fieldConnection, fieldKeepAlive, fieldProxyConnection,
		fieldUpgrade, fieldTE, fieldTrailer, fieldXForwardedFor, fieldXForwardedHost, fieldXForwardedProto,
		fieldForwarded, fieldProxyAuthenticate, fieldProxyAuthorization:
		return true
	}
	return false
}

// asciiEqualFold reports whether b equals s (lower case ASCII) in any case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func asciiEqualFoldB(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v has token t (lower
// case), in any case.
func hasToken(v []byte, t string) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		tok = bytes.TrimSpace(tok)
		if j := bytes.IndexByte(tok, ';'); j >= 0 { // "trailers;q=1"
			tok = bytes.TrimSpace(tok[:j])
		}
		if asciiEqualFold(tok, t) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

var tokenByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// respHead is a parsed response head from a member.
type respHead struct {
	raw           []byte
	status        int
	minor         byte // HTTP/1.minor
	statusLine    span // "HTTP/1.1 200 OK"
	contentLength int64
	chunked       bool
	close         bool // the member closes the connection after it
	nConn         int
	connTokens    [maxConnTokens]span
}

// parseResponseHead parses a member's response head. Its error is
// errBadResponse.
func parseResponseHead(raw []byte, h *respHead) error {
	*h = respHead{raw: raw, contentLength: -1}
	line, rest, ok := cutCRLF(raw, 0)
	if !ok {
		return errBadResponse
	}
	l := line.of(raw)
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || !isDigit(l[7]) || l[8] != ' ' ||
		!isDigit(l[9]) || !isDigit(l[10]) || !isDigit(l[11]) || (len(l) > 12 && l[12] != ' ') {
		return errBadResponse
	}
	for _, c := range l {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errBadResponse
		}
	}
	h.minor = l[7] - '0'
	h.status = int(l[9]-'0')*100 + int(l[10]-'0')*10 + int(l[11]-'0')
	if h.status < 100 {
		return errBadResponse
	}
	h.statusLine = line
	nFields, nTE := 0, 0
	closeTok, keepAlive := false, false
	for {
		var f span
		f, rest, ok = cutCRLF(raw, rest)
		if !ok {
			return errBadResponse
		}
		if f.empty() {
			break
		}
		if nFields++; nFields > maxResponseHeaderFields {
			return errBadResponse
		}
		name, value, err := splitField(raw, f)
		if err != nil {
			return errBadResponse
		}
		v := value.of(raw)
		switch fieldKind(name.of(raw)) {
		case fieldContentLength:
			cl, ok := parseContentLength(v)
			if !ok || (h.contentLength >= 0 && cl != h.contentLength) {
				return errBadResponse
			}
			h.contentLength = cl
		case fieldTransferEncoding:
			if nTE++; nTE > 1 || !asciiEqualFold(v, "chunked") {
				return errBadResponse
			}
			h.chunked = true
		case fieldConnection:
			for _, t := range tokens(raw, value) {
				tok := t.of(raw)
				switch {
				case t.empty():
				case asciiEqualFold(tok, "close"):
					closeTok = true
				case asciiEqualFold(tok, "keep-alive"):
					keepAlive = true
				default:
					if h.nConn == maxConnTokens || !isToken(tok) {
						return errBadResponse
					}
					h.connTokens[h.nConn] = t
					h.nConn++
				}
			}
		}
	}
	// HTTP/1.0 closes unless it says keep-alive.
	h.close = closeTok || (h.minor == 0 && !keepAlive)
	if h.chunked {
		h.contentLength = -1 // Transfer-Encoding wins (RFC 9112 6.3)
	}
	return nil
}

func (h *respHead) listedInConnection(n []byte) bool {
	for i := 0; i < h.nConn; i++ {
		if asciiEqualFoldB(n, h.connTokens[i].of(h.raw)) {
			return true
		}
	}
	return false
}

// parseChunkSize parses a chunk-size line (without its CRLF): hex digits,
// optionally followed by chunk extensions, which are checked and dropped.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, false // over 2^60
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if rest[0] != ';' {
			return 0, false
		}
		for _, c := range rest {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return 0, false
			}
		}
	}
	return n, true
}

// deadline returns now+d, or the zero time (no deadline) when d is 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// isTimeoutErr reports whether err is a network timeout.
func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
