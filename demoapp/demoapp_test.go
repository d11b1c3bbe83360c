package demoapp_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

// TestBrowserFlow drives the HTML side as a browser would: the page, the
// login form (303 back to the page), the page again, logout.
func TestBrowserFlow(t *testing.T) {
	m, err := session.New(session.Config{Store: memstore.New(), Route: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(demoapp.New("n1", nil))
	var cookie string
	do := func(method, target string, form url.Values) *httptest.ResponseRecorder {
		t.Helper()
		var r *http.Request
		if form != nil {
			r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(method, target, nil)
		}
		r.Header.Set("Accept", "text/html")
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		for _, c := range w.Result().Cookies() {
			cookie = c.Name + "=" + c.Value
			if c.MaxAge < 0 {
				cookie = ""
			}
		}
		return w
	}
	page := do("GET", "/", nil).Body.String()
	for _, want := range []string{`id="node">n1<`, "(not logged in)", `action="/login"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q:\n%s", want, page)
		}
	}
	w := do("POST", "/login", url.Values{"user": {"alice"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("login: %d to %q", w.Code, w.Header().Get("Location"))
	}
	do("GET", "/counter", nil)
	page = do("GET", "/", nil).Body.String()
	for _, want := range []string{`id="user">alice<`, `id="count">1<`, `action="/logout"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("page after login lacks %q:\n%s", want, page)
		}
	}
	if w := do("POST", "/login", url.Values{"user": {"<script>"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("login with markup: %d", w.Code)
	}
	if page = do("GET", "/", nil).Body.String(); strings.Contains(page, "<script>") {
		t.Fatal("the user name is not escaped")
	}
	if w := do("POST", "/login", url.Values{"user": {""}}); w.Code != http.StatusBadRequest {
		t.Fatalf("empty user: %d", w.Code)
	}
	do("POST", "/logout", url.Values{})
	if page = do("GET", "/", nil).Body.String(); !strings.Contains(page, "(not logged in)") {
		t.Fatalf("after logout:\n%s", page)
	}
}

// TestBadValue: POST /bad is refused by Put with an error naming the key,
// the type and the field, and counted as an encode failure; no session
// is created.
func TestBadValue(t *testing.T) {
	m, err := session.New(session.Config{Store: memstore.New(), Route: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(demoapp.New("n1", nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/bad", nil))
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /bad: %d %s, want 422", w.Code, w.Body)
	}
	for _, want := range []string{`\"callback\"`, "demoapp.Callback", "OnChange", "func()"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("POST /bad: %s does not name %s", w.Body, want)
		}
	}
	if got := m.Stats().EncodeFailures.Load(); got != 1 {
		t.Errorf("encode failures %d, want 1", got)
	}
	if w.Header().Get("Set-Cookie") != "" {
		t.Errorf("a refused value created a session")
	}
}
