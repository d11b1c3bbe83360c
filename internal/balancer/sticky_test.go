package balancer

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStickyRoute(t *testing.T) {
	tests := []struct {
		name   string
		sticky string
		target string
		cookie []string // Cookie header lines
		wantID string
		want   string // route
	}{
		{"cookie", "JSESSIONID|jsessionid", "/counter", []string{"JSESSIONID=abc.n1"}, "abc.n1", "n1"},
		{"cookie among others", "JSESSIONID|jsessionid", "/", []string{"a=1; JSESSIONID=abc.n2; b=2"}, "abc.n2", "n2"},
		{"cookie in second header", "JSESSIONID|jsessionid", "/", []string{"a=1", "JSESSIONID=abc.n2"}, "abc.n2", "n2"},
		{"quoted cookie", "JSESSIONID|jsessionid", "/", []string{`JSESSIONID="abc.n3"`}, "abc.n3", "n3"},
		{"empty cookie skipped", "JSESSIONID|jsessionid", "/", []string{"JSESSIONID=; JSESSIONID=abc.n3"}, "abc.n3", "n3"},
		{"cookie name is case-sensitive", "JSESSIONID|jsessionid", "/", []string{"jsessionid=abc.n1"}, "", ""},
		{"cookie name prefix is not the name", "JSESSIONID|jsessionid", "/", []string{"XJSESSIONID=abc.n1"}, "", ""},
		{"path parameter", "JSESSIONID|jsessionid", "/counter;jsessionid=abc.n1", nil, "abc.n1", "n1"},
		{"path parameter mid-path", "JSESSIONID|jsessionid", "/a;jsessionid=abc.n1/b", nil, "abc.n1", "n1"},
		{"path parameter after another", "JSESSIONID|jsessionid", "/a;x=1;jsessionid=abc.n1;y=2", nil, "abc.n1", "n1"},
		{"query", "JSESSIONID|jsessionid", "/counter?a=1&jsessionid=abc.n2&b=2", nil, "abc.n2", "n2"},
		{"query key must match whole", "JSESSIONID|jsessionid", "/counter?xjsessionid=abc.n2", nil, "", ""},
		{"path wins over query", "JSESSIONID|jsessionid", "/c;jsessionid=abc.n1?jsessionid=abc.n2", nil, "abc.n1", "n1"},
		{"URL wins over cookie", "JSESSIONID|jsessionid", "/c?jsessionid=abc.n2", []string{"JSESSIONID=abc.n1"}, "abc.n2", "n2"},
		{"path wins over cookie", "JSESSIONID|jsessionid", "/c;jsessionid=abc.n3", []string{"JSESSIONID=abc.n1"}, "abc.n3", "n3"},
		{"URL without route still wins", "JSESSIONID|jsessionid", "/c?jsessionid=abc", []string{"JSESSIONID=abc.n1"}, "abc", ""},
		{"empty URL value falls to cookie", "JSESSIONID|jsessionid", "/c;jsessionid=?jsessionid=", []string{"JSESSIONID=abc.n1"}, "abc.n1", "n1"},
		{"first dot", "JSESSIONID|jsessionid", "/", []string{"JSESSIONID=abc.n1.extra"}, "abc.n1.extra", "n1.extra"},
		{"no dot", "JSESSIONID|jsessionid", "/", []string{"JSESSIONID=abc"}, "abc", ""},
		{"dot at end", "JSESSIONID|jsessionid", "/", []string{"JSESSIONID=abc."}, "abc.", ""},
		{"dot at start", "JSESSIONID|jsessionid", "/", []string{"JSESSIONID=.n1"}, ".n1", "n1"},
		{"no session", "JSESSIONID|jsessionid", "/", nil, "", ""},
		{"one name means both: cookie", "sid", "/", []string{"sid=abc.n1"}, "abc.n1", "n1"},
		{"one name means both: URL", "sid", "/x;sid=abc.n2", nil, "abc.n2", "n2"},
		{"other names", "SESSION|sess", "/x?sess=abc.n2", []string{"JSESSIONID=abc.n1"}, "abc.n2", "n2"},
		{"stickiness off", "", "/x;jsessionid=abc.n1", []string{"JSESSIONID=abc.n1"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseSticky(tt.sticky)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", tt.target, nil)
			for _, c := range tt.cookie {
				r.Header.Add("Cookie", c)
			}
			if got := s.sessionID(r); got != tt.wantID {
				t.Errorf("sessionID = %q, want %q", got, tt.wantID)
			}
			if got := s.route(r); got != tt.want {
				t.Errorf("route = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseSticky(t *testing.T) {
	tests := []struct {
		in            string
		cookie, param string
		err           bool
	}{
		{"JSESSIONID|jsessionid", "JSESSIONID", "jsessionid", false},
		{"JSESSIONID", "JSESSIONID", "JSESSIONID", false},
		{"", "", "", false},
		{"|x", "", "", true},
		{"x|", "", "", true},
		{"a b", "", "", true},
		{"a=b", "", "", true},
		{"a|b|c", "", "", true},
	}
	for _, tt := range tests {
		s, err := parseSticky(tt.in)
		if (err != nil) != tt.err || s.cookie != tt.cookie || s.param != tt.param {
			t.Errorf("parseSticky(%q) = %+v, %v; want {%q %q}, error %v", tt.in, s, err, tt.cookie, tt.param, tt.err)
		}
	}
}

// FuzzStickyRoute checks that no URL or cookie crashes the parsing, and
// that a route found is the tail of one of the inputs.
func FuzzStickyRoute(f *testing.F) {
	f.Add("/counter;jsessionid=abc.n1", "a=1", "JSESSIONID=abc.n2")
	f.Add("/;jsessionid=;jsessionid=", "jsessionid=&jsessionid", `JSESSIONID=""; JSESSIONID="`)
	f.Add("/a;jsessionid=x/b;c", "", "JSESSIONID=0123.tomcat1")
	f.Add(";;;", "&&=", ";=;")
	s, _ := parseSticky("JSESSIONID|jsessionid")
	f.Fuzz(func(t *testing.T, path, query, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path, r.URL.RawQuery = path, query
		r.Header.Set("Cookie", cookie)
		route := s.route(r)
		if route == "" {
			return
		}
		id := s.sessionID(r)
		if !strings.HasSuffix(id, "."+route) || !(strings.Contains(path, id) || strings.Contains(query, id) || strings.Contains(cookie, id)) {
			t.Errorf("route %q from id %q, not in path %q, query %q or cookie %q", route, id, path, query, cookie)
		}
	})
}
