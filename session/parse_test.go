package session

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestCutPathParam(t *testing.T) {
	tests := []struct {
		path, value, rest string
		ok                bool
	}{
		{"/counter;jsessionid=abc.n1", "abc.n1", "/counter", true},
		{"/a;jsessionid=abc.n1/b", "abc.n1", "/a/b", true},
		{"/a;jsessionid=abc.n1;other=1", "abc.n1", "/a;other=1", true},
		{"/a;other=1;jsessionid=x", "x", "/a;other=1", true},
		{"/a;jsessionid=", "", "/a", true},
		{"/a;jsessionidx=1", "", "/a;jsessionidx=1", false},
		{"/a;JSESSIONID=1", "", "/a;JSESSIONID=1", false}, // names are case-sensitive, as in Apache
		{"/counter", "", "/counter", false},
		{";", "", ";", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		v, rest, ok := cutPathParam(tc.path, "jsessionid")
		if v != tc.value || rest != tc.rest || ok != tc.ok {
			t.Errorf("cutPathParam(%q) = %q, %q, %v; want %q, %q, %v", tc.path, v, rest, ok, tc.value, tc.rest, tc.ok)
		}
	}
}

func TestQueryParam(t *testing.T) {
	tests := []struct {
		q, v string
		ok   bool
	}{
		{"jsessionid=abc", "abc", true},
		{"a=1&jsessionid=abc&b=2", "abc", true},
		{"xjsessionid=abc", "", false},
		{"jsessionid", "", true},
		{"", "", false},
		{"a=1&&jsessionid=z", "z", true},
	}
	for _, tc := range tests {
		v, ok := queryParam(tc.q, "jsessionid")
		if v != tc.v || ok != tc.ok {
			t.Errorf("queryParam(%q) = %q, %v; want %q, %v", tc.q, v, ok, tc.v, tc.ok)
		}
	}
}

func TestEachCookie(t *testing.T) {
	var got []string
	eachCookie(`a=1; JSESSIONID=one; b=2;JSESSIONID="two" ; JSESSIONIDX=no; jsessionid=no`, "JSESSIONID", func(v string) { got = append(got, v) })
	if want := []string{"one", "two"}; !slices.Equal(got, want) {
		t.Fatalf("eachCookie = %q, want %q", got, want)
	}
}

// TestFindIDs: the URL wins over the cookie, malformed ids are dropped,
// duplicates and floods are bounded, and the path parameter is removed
// before the application sees the path.
func TestFindIDs(t *testing.T) {
	m := &Manager{cfg: Config{CookieName: "JSESSIONID", URLParam: "jsessionid"}}
	a, b, c := "aaaaaaaaaaaaaaaaaaaaaaaa.n1", "bbbbbbbbbbbbbbbbbbbbbbbb.n2", "cccccccccccccccccccccccc"
	r := httptest.NewRequest("GET", "/x;jsessionid="+a+"/y?q=1&jsessionid="+b, nil)
	r.Header.Add("Cookie", "JSESSIONID=garbage; JSESSIONID="+c+"; JSESSIONID="+a)
	s := &Session{m: m}
	r2 := m.findIDs(s, r)
	var got []string
	for _, id := range s.candidates {
		got = append(got, id.String())
	}
	if want := []string{a, b, c}; !slices.Equal(got, want) {
		t.Errorf("candidates = %q, want %q", got, want)
	}
	if r2.URL.Path != "/x/y" {
		t.Errorf("path = %q, want /x/y", r2.URL.Path)
	}
	if r.URL.Path != "/x;jsessionid="+a+"/y" {
		t.Errorf("the caller's request was modified: %q", r.URL.Path)
	}
	if !s.fromURL {
		t.Error("fromURL not set although the id came from the URL")
	}

	flood := &http.Request{Header: http.Header{}, URL: r.URL}
	flood.URL.Path, flood.URL.RawQuery = "/", ""
	var cookies []string
	for i := range 50 {
		cookies = append(cookies, "JSESSIONID="+strings.Repeat(string(rune('a'+i%26)), 20)+strings.Repeat("x", i))
	}
	flood.Header.Set("Cookie", strings.Join(cookies, "; "))
	s = &Session{m: m}
	m.findIDs(s, flood)
	if len(s.candidates) != maxCandidates {
		t.Errorf("%d candidates from 50 cookies, want the bound %d", len(s.candidates), maxCandidates)
	}
	if s.fromURL {
		t.Error("fromURL set for a cookie-only request")
	}
}
