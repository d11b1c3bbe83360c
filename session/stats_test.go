package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

// TestStats drives every counter through the middleware and checks each
// moved by exactly what happened.
func TestStats(t *testing.T) {
	st := &recStore{Store: memstore.New()}
	m, _ := newManager(t, session.Config{Store: aliveStore{st}, MaxSessions: 2})
	stats := m.Stats()
	c := &client{t: t, h: m.Handler(kv())}
	c.do("GET", "/put?k=a&v=1", nil) // created
	c.do("GET", "/put?k=a&v=2", nil) // committed
	if got := stats.Created.Load(); got != 1 {
		t.Errorf("Created = %d, want 1", got)
	}
	_, cum, count, sum := stats.CommitLatency()
	if count != 2 || sum <= 0 || cum[len(cum)-1] > count {
		t.Errorf("commit latency: count %d sum %v, want 2 commits (create, update)", count, sum)
	}

	// An unencodable value: counted, and its message kept (no value).
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.FromContext(r.Context()).Put("callback", func() {})
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got := stats.EncodeFailures.Load(); got != 1 {
		t.Errorf("EncodeFailures = %d, want 1", got)
	}
	if msg, at := stats.LastEncodeError(); !strings.Contains(msg, `"callback"`) || !strings.Contains(msg, "func()") || at.IsZero() {
		t.Errorf("LastEncodeError = %q at %v, want the key and the type", msg, at)
	}

	// A rebind: the id names a node that is not alive.
	id, _ := session.ParseID(c.cookie)
	c.cookie = id.Base + ".gone"
	c.do("GET", "/get?k=a", nil)
	if got := stats.Rebinds.Load(); got != 1 {
		t.Errorf("Rebinds = %d, want 1", got)
	}

	// A commit failure.
	st.mu.Lock()
	st.failWrite = errors.New("store down")
	st.mu.Unlock()
	if w := c.do("GET", "/put?k=a&v=3", nil); w.Code != 500 {
		t.Fatalf("failing commit answered %d", w.Code)
	}
	st.mu.Lock()
	st.failWrite = nil
	st.mu.Unlock()
	if got := stats.CommitFailures.Load(); got != 1 {
		t.Errorf("CommitFailures = %d, want 1", got)
	}

	// Too many sessions: refused, not a failure.
	(&client{t: t, h: m.Handler(kv())}).do("GET", "/put?k=b&v=1", nil)
	if w := (&client{t: t, h: m.Handler(kv())}).do("GET", "/put?k=b&v=1", nil); w.Code != 503 {
		t.Fatalf("third session answered %d, want 503", w.Code)
	}
	if got := stats.Refused.Load(); got != 1 {
		t.Errorf("Refused = %d, want 1", got)
	}
	if got := stats.CommitFailures.Load(); got != 1 {
		t.Errorf("CommitFailures = %d after a refusal, want still 1", got)
	}

	c.do("GET", "/invalidate", nil)
	if got := stats.Invalidated.Load(); got != 1 {
		t.Errorf("Invalidated = %d, want 1", got)
	}
	c2 := &client{t: t, h: m.Handler(kv())}
	c2.do("GET", "/put?k=a&v=1", nil)
	if err := m.Evict(context.Background(), c2.cookie); err != nil {
		t.Fatal(err)
	}
	if got := stats.Evicted.Load(); got != 1 {
		t.Errorf("Evicted = %d, want 1", got)
	}
}
