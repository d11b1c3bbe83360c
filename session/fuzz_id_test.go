package session

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequestIDs feeds arbitrary paths, queries and Cookie headers to the
// id finder: it must not panic, must keep only ids that parse, must
// return a path without the parameter it took, and must bound its work.
func FuzzRequestIDs(f *testing.F) {
	f.Add("/counter;jsessionid=abcdefghijklmnopqrstuvwx.n1", "a=1", "JSESSIONID=abcdefghijklmnopqrstuvwx.n1")
	f.Add("/;jsessionid=;jsessionid=", "jsessionid=&jsessionid", `JSESSIONID=""; JSESSIONID="`)
	f.Add("/a;jsessionid=x/b;c", "", "JSESSIONID=0123456789ABCDEF0123456789ABCDEF.tomcat1")
	f.Fuzz(func(t *testing.T, path, query, cookie string) {
		m := &Manager{cfg: Config{CookieName: "JSESSIONID", URLParam: "jsessionid"}}
		r := &http.Request{URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{"Cookie": {cookie}}}
		s := &Session{m: m}
		r2 := m.findIDs(s, r)
		if len(s.candidates) > maxCandidates {
			t.Fatalf("%d candidates", len(s.candidates))
		}
		for _, id := range s.candidates {
			again, err := ParseID(id.String())
			if err != nil || again != id {
				t.Fatalf("candidate %q does not round-trip: %v", id.String(), err)
			}
		}
		if v, rest, ok := cutPathParam(path, "jsessionid"); ok {
			if r2.URL.Path != rest {
				t.Fatalf("path %q, want %q", r2.URL.Path, rest)
			}
			if len(rest) >= len(path) || !strings.Contains(path, v) {
				t.Fatalf("cutPathParam(%q) = %q, %q", path, v, rest)
			}
		} else if r2.URL.Path != path {
			t.Fatalf("path changed without a parameter: %q -> %q", path, r2.URL.Path)
		}
	})
}

// FuzzParseID: ParseID never panics, and what it accepts prints back as
// itself.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"abcdefghijklmnopqrstuvwx.n1", "abcdefghijklmnopqrstuvwx", ".", "a.b.c", strings.Repeat("a", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q).String() = %q", s, id.String())
		}
		if strings.Contains(id.Base, ".") || len(id.Base) < minBaseLen {
			t.Fatalf("bad base accepted: %q", id.Base)
		}
	})
}
