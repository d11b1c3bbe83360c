package session

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
)

// Handler returns middleware that gives next's requests their session.
// It finds the session id (URL path parameter, query parameter, then
// cookie), lets next use the session through FromContext, and commits
// next's changes to the store before the response's status line is
// written: on next's first WriteHeader, Write, Flush or Hijack, or when
// next returns without writing. If the commit fails, the client gets
// Config.ErrorFunc's response (500, or 503 for too many sessions) instead
// of next's, and next's writes fail, so no client is told of a change that
// was not stored. If next panics before writing, nothing is committed.
//
// An id in the URL's path (";jsessionid=ID") is removed from r.URL.Path
// before next sees it, so routes match as without it.
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &Session{m: m}
		r = m.findIDs(s, r)
		ctx := context.WithValue(r.Context(), ctxKey{}, s)
		s.reqCtx = ctx
		r = r.WithContext(ctx)
		sw := &responseWriter{ResponseWriter: w, s: s, r: r}
		next.ServeHTTP(sw, r)
		// Reached only when next did not panic.
		sw.beforeHeader()
	})
}

// findIDs collects the well-formed session ids of r into s and returns r
// without a path parameter id.
func (m *Manager) findIDs(s *Session, r *http.Request) *http.Request {
	name := m.cfg.URLParam
	if v, rest, ok := cutPathParam(r.URL.Path, name); ok {
		s.addCandidate(v)
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = rest
		if u.RawPath != "" {
			if _, rawRest, ok := cutPathParam(u.RawPath, name); ok {
				u.RawPath = rawRest
			}
		}
		r2.URL = &u
		r = r2
	}
	if r.URL.RawQuery != "" {
		if v, ok := queryParam(r.URL.RawQuery, name); ok {
			s.addCandidate(v)
		}
	}
	s.fromURL = len(s.candidates) > 0
	for _, h := range r.Header["Cookie"] {
		eachCookie(h, m.cfg.CookieName, s.addCandidate)
	}
	return r
}

func (s *Session) addCandidate(v string) {
	id, err := ParseID(v)
	if err != nil {
		return // a malformed id is no id: the request starts afresh
	}
	for _, c := range s.candidates {
		if c.Base == id.Base {
			return
		}
	}
	if len(s.candidates) < maxCandidates {
		s.candidates = append(s.candidates, id)
	}
}

// maxCandidates bounds the store lookups one request can cause, whatever
// number of cookies it sends.
const maxCandidates = 4

// cutPathParam finds ";name=value" in a URL path and returns value and
// the path without the parameter. The value ends at the next ';' or '/'.
func cutPathParam(path, name string) (value, rest string, ok bool) {
	for i := 0; i < len(path); {
		j := strings.IndexByte(path[i:], ';')
		if j < 0 {
			return "", path, false
		}
		start := i + j
		p := path[start+1:]
		if len(p) > len(name) && p[len(name)] == '=' && p[:len(name)] == name {
			v := p[len(name)+1:]
			end := strings.IndexAny(v, ";/")
			if end < 0 {
				end = len(v)
			}
			return v[:end], path[:start] + v[end:], true
		}
		i = start + 1
	}
	return "", path, false
}

// queryParam returns the first value of name in a raw query, without
// decoding it: session ids need no escaping.
func queryParam(rawQuery, name string) (string, bool) {
	for q := rawQuery; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// eachCookie calls fn with the value of every cookie called name in one
// Cookie header, in order.
func eachCookie(header, name string, fn func(string)) {
	for h := header; h != ""; {
		var part string
		part, h, _ = strings.Cut(h, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok || k != name {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		fn(v)
	}
}

// responseWriter commits the session before the first byte of the
// response leaves.
type responseWriter struct {
	http.ResponseWriter
	s *Session
	r *http.Request
	// started is set once the commit was attempted; failed if it failed,
	// after which the error response has been written and next's output is
	// discarded.
	started, failed bool
}

// errCommitFailed is what next's writes return after a failed commit.
var errCommitFailed = &commitFailedError{}

type commitFailedError struct{}

func (*commitFailedError) Error() string {
	return "session: response discarded: the session could not be committed"
}

// beforeHeader commits the session and sets its cookie, once, and reports
// whether next may go on writing.
func (w *responseWriter) beforeHeader() bool {
	if w.started {
		return !w.failed
	}
	w.started = true
	s := w.s
	if err := s.commit(w.r.Context()); err != nil {
		w.failed = true
		if errors.Is(err, ErrTooManySessions) {
			s.m.stats.Refused.Add(1)
		} else {
			s.m.stats.CommitFailures.Add(1)
		}
		s.m.log.Warn("session commit failed", "err", err, "path", w.r.URL.Path)
		s.m.errorFunc()(w.ResponseWriter, w.r, err)
		return false
	}
	s.mu.Lock()
	action, id := s.cookie, s.id
	s.mu.Unlock()
	switch action {
	case cookieSet:
		s.m.setCookie(w.ResponseWriter, w.r, id.String(), false)
	case cookieClear:
		s.m.setCookie(w.ResponseWriter, w.r, "", true)
	}
	return true
}

func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, value string, clear bool) {
	var b strings.Builder
	b.Grow(128)
	b.WriteString(m.cfg.CookieName)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=")
	b.WriteString(m.cfg.CookiePath)
	if m.cfg.CookieDomain != "" {
		b.WriteString("; Domain=")
		b.WriteString(m.cfg.CookieDomain)
	}
	if clear {
		b.WriteString("; Max-Age=0")
	}
	b.WriteString("; HttpOnly")
	if m.cfg.CookieSecure || r.TLS != nil {
		b.WriteString("; Secure")
	}
	switch m.cfg.CookieSameSite {
	case http.SameSiteStrictMode:
		b.WriteString("; SameSite=Strict")
	case http.SameSiteNoneMode:
		b.WriteString("; SameSite=None")
	case http.SameSiteLaxMode:
		b.WriteString("; SameSite=Lax")
	}
	h := w.Header()
	h.Add("Set-Cookie", b.String())
	h.Add("Vary", "Cookie")
	h.Set("Cache-Control", `no-cache="Set-Cookie"`)
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational responses (103 Early Hints) precede the final
		// status: the session may still change.
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.beforeHeader() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.beforeHeader() {
		return 0, errCommitFailed
	}
	return w.ResponseWriter.Write(b)
}

// Flush commits, then flushes; it makes the wrapper an http.Flusher.
func (w *responseWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is what http.ResponseController.Flush calls.
func (w *responseWriter) FlushError() error {
	if !w.beforeHeader() {
		return errCommitFailed
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack commits, then hands the connection over (WebSocket upgrades).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.beforeHeader() {
		return nil, nil, errCommitFailed
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer for
// the features this wrapper does not intercept (deadlines, full duplex).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
