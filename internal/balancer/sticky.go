package balancer

import (
	"fmt"
	"net/http"
	"strings"
)

// sticky says where a request carries its session id, as Apache's
// stickysession does: a cookie name and a URL parameter name. The zero
// value is no stickiness.
type sticky struct {
	cookie string // the session cookie's name: JSESSIONID
	param  string // the URL parameter's name: ";jsessionid=" in the path, "jsessionid=" in the query
}

// parseSticky parses "COOKIE|param", or one name for both; "" is no
// stickiness.
func parseSticky(s string) (sticky, error) {
	if s == "" {
		return sticky{}, nil
	}
	cookie, param, ok := strings.Cut(s, "|")
	if !ok {
		param = cookie
	}
	for _, name := range []string{cookie, param} {
		if !validName(name) {
			return sticky{}, fmt.Errorf("sticky %q: want COOKIE|param or one name, without spaces, '=', ';', ',' or '|'", s)
		}
	}
	return sticky{cookie: cookie, param: param}, nil
}

// validName reports whether name can be a cookie or parameter name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("=;,|\"", c) >= 0 {
			return false
		}
	}
	return true
}

// enabled reports whether the balancer is sticky.
func (s sticky) enabled() bool { return s.cookie != "" }

// sessionID returns the session id the request carries: the first
// non-empty one of the ";param=" path parameter, the "param=" query
// parameter, and the cookie, in that order. The URL wins over the cookie,
// as in Apache; within the URL the path comes first, as it does in
// Apache's left-to-right search of the URL, and this order is also the
// one shoal's session middleware reads ids in.
func (s sticky) sessionID(r *http.Request) string {
	if !s.enabled() {
		return ""
	}
	if v := pathParam(r.URL.Path, s.param); v != "" {
		return v
	}
	if v := queryParam(r.URL.RawQuery, s.param); v != "" {
		return v
	}
	for _, h := range r.Header["Cookie"] {
		if v := cookieValue(h, s.cookie); v != "" {
			return v
		}
	}
	return ""
}

// route returns the route in the request's session id: the text after the
// id's first '.' (Apache's strchr on stickysessionsep "."), or "" when
// there is no id, no '.', or nothing after it.
func (s sticky) route(r *http.Request) string {
	id := s.sessionID(r)
	if i := strings.IndexByte(id, '.'); i >= 0 {
		return id[i+1:]
	}
	return ""
}

// pathParam returns the value of the first non-empty ";name=value" path
// parameter; the value ends at the next ';' or '/'.
func pathParam(path, name string) string {
	for i := strings.IndexByte(path, ';'); i >= 0; {
		p := path[i+1:]
		if len(p) > len(name) && p[len(name)] == '=' && p[:len(name)] == name {
			v := p[len(name)+1:]
			if end := strings.IndexAny(v, ";/"); end >= 0 {
				v = v[:end]
			}
			if v != "" {
				return v
			}
		}
		j := strings.IndexByte(p, ';')
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	return ""
}

// queryParam returns the first non-empty value of name in a raw query,
// undecoded: session ids need no escaping.
func queryParam(rawQuery, name string) string {
	for q := rawQuery; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name && v != "" {
			return v
		}
	}
	return ""
}

// cookieValue returns the value of the first non-empty cookie called name
// in one Cookie header, without its quotes.
func cookieValue(header, name string) string {
	for h := header; h != ""; {
		var part string
		part, h, _ = strings.Cut(h, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || strings.TrimSpace(k) != name {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if v != "" {
			return v
		}
	}
	return ""
}
