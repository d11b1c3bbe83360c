package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-go/shoal/internal/balancer"
)

// stickyBalancer adds Sticky to a balancer, as the doctor's check needs.
type stickyBalancer struct{ *balancer.Balancer }

func (stickyBalancer) Sticky() string { return "SID|sid" }

func TestGetBalancer(t *testing.T) {
	e := newEnv(t)
	get := func(h http.Handler) string {
		t.Helper()
		r := httptest.NewRequest("GET", "/api/balancer", nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("GET /api/balancer: %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}
	if got, want := get(e.h), "{\"sticky\":\""+e.b.Sticky()+"\"}\n"; got != want || e.b.Sticky() == "" {
		t.Errorf("the balancer's own: %q, want %q", got, want)
	}
	h, err := New(Config{Balancer: stickyBalancer{e.b}, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(h); got != "{\"sticky\":\"SID|sid\"}\n" {
		t.Errorf("a balancer with Sticky: %q", got)
	}
	r := httptest.NewRequest("GET", "/api/balancer", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/balancer without the token: %d, want 401", w.Code)
	}
}
