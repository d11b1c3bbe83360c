// Package e2e holds the multi-process acceptance tests: they build the real
// shoal binary, start it as child processes on loopback ports, and check
// what an HTTP client sees.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/shoal-go/shoal/session"
)

// checkSessionCookie checks the attributes of a cookie that sets a session
// id on node n and returns the id.
func (n *node) checkSessionCookie(t *testing.T, r reply) string {
	t.Helper()
	raw, c := sessionCookie(t, r)
	id, err := session.ParseID(c.Value)
	if err != nil || id.Route != n.name || strings.Contains(id.Base, ".") {
		t.Errorf("Set-Cookie %q: want JSESSIONID=<base>.%s with no '.' in base (%v)", raw, n.name, err)
	}
	if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || !strings.Contains(raw, "SameSite=Lax") {
		t.Errorf("Set-Cookie %q: want HttpOnly, Path=/ and SameSite=Lax", raw)
	}
	if c.MaxAge != 0 || c.Secure {
		t.Errorf("Set-Cookie %q: want a session cookie without Max-Age, not Secure over plain HTTP", raw)
	}
	return c.Value
}

// counter decodes a GET /counter reply, failing unless it is a 200.
func counter(t *testing.T, r reply) (c struct {
	Node, User, Session string
	Count               int
}) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("GET /counter = %d %q, want 200", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("GET /counter body %q: %v", r.body, err)
	}
	return c
}

// TestNode is the acceptance test of a single node: the demo app's session
// flows as a client without a cookie jar sees them, then a clean stop.
// The subtests share one node and run in order.
func TestNode(t *testing.T) {
	n := startNode(t, "n1")

	t.Run("whoami without session", func(t *testing.T) {
		r := n.do(t, "GET", "/whoami", "", nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("GET /whoami = %d %q, want 401", r.status, r.body)
		}
		if len(r.cookies) != 0 {
			t.Errorf("GET /whoami set %q, want no cookie for a request that stored nothing", r.cookies)
		}
	})

	t.Run("login renews the id", func(t *testing.T) {
		r := n.do(t, "GET", "/counter", "", nil)
		a := n.checkSessionCookie(t, r)
		if c := counter(t, r); c.Count != 1 || c.Session != a {
			t.Errorf("GET /counter = %+v, want count 1 and session %s", c, a)
		}
		r = n.do(t, "POST", "/login", "JSESSIONID="+a, url.Values{"user": {"alice"}})
		if r.status != http.StatusOK {
			t.Fatalf("POST /login = %d %q, want 200", r.status, r.body)
		}
		b := n.checkSessionCookie(t, r)
		if b == a {
			t.Fatalf("login kept the session id %s: session fixation", a)
		}
		if r := n.do(t, "GET", "/whoami", "JSESSIONID="+a, nil); r.status != http.StatusUnauthorized {
			t.Errorf("GET /whoami with the id from before login = %d %q, want 401", r.status, r.body)
		}
		r = n.do(t, "GET", "/whoami", "JSESSIONID="+b, nil)
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"user":"alice"`)) {
			t.Errorf("GET /whoami with the new id = %d %q, want 200 alice", r.status, r.body)
		}
		// The data from before the login came along.
		if c := counter(t, n.do(t, "GET", "/counter", "JSESSIONID="+b, nil)); c.Count != 2 || c.User != "alice" {
			t.Errorf("GET /counter after login = %+v, want count 2 for alice", c)
		}
	})

	var id string
	t.Run("login counter logout", func(t *testing.T) {
		r := n.do(t, "POST", "/login", "", url.Values{"user": {"alice"}})
		if r.status != http.StatusOK {
			t.Fatalf("POST /login = %d %q, want 200", r.status, r.body)
		}
		id = n.checkSessionCookie(t, r)
		var login struct{ Node, User, Session string }
		if err := json.Unmarshal(r.body, &login); err != nil || login.Node != "n1" || login.User != "alice" || login.Session != id {
			t.Errorf("POST /login body %q (%v), want node n1, user alice, session %s", r.body, err, id)
		}
		for want := 1; want <= 3; want++ {
			r := n.do(t, "GET", "/counter", "JSESSIONID="+id, nil)
			c := counter(t, r)
			if c.Count != want || c.User != "alice" || c.Node != "n1" || c.Session != id {
				t.Errorf("GET /counter #%d = %+v, want count %d, user alice, node n1, session %s", want, c, want, id)
			}
			if len(r.cookies) != 0 {
				t.Errorf("GET /counter #%d set %q, want no new cookie for a known session", want, r.cookies)
			}
		}

		// Clients without cookies carry the id in the URL.
		for _, tc := range []struct {
			path  string
			count int
		}{
			{"/counter;jsessionid=" + id, 4},
			{"/counter?jsessionid=" + id, 5},
		} {
			c := counter(t, n.do(t, "GET", tc.path, "", nil))
			if c.Count != tc.count || c.User != "alice" || c.Session != id {
				t.Errorf("GET %s = %+v, want count %d for alice in session %s", tc.path, c, tc.count, id)
			}
		}

		r = n.do(t, "POST", "/logout", "JSESSIONID="+id, nil)
		if r.status != http.StatusNoContent {
			t.Errorf("POST /logout = %d %q, want 204", r.status, r.body)
		}
		raw, c := sessionCookie(t, r)
		if c.Value != "" || c.MaxAge >= 0 || !strings.Contains(raw, "Max-Age=0") {
			t.Errorf("POST /logout Set-Cookie %q, want JSESSIONID cleared with Max-Age=0", raw)
		}
		if r := n.do(t, "GET", "/whoami", "JSESSIONID="+id, nil); r.status != http.StatusUnauthorized {
			t.Errorf("GET /whoami after logout = %d %q, want 401", r.status, r.body)
		}
	})

	t.Run("bad cookies start afresh", func(t *testing.T) {
		for _, tc := range []struct{ name, cookie string }{
			{"garbage", "JSESSIONID=garbage..$$"},
			{"5000 characters", "JSESSIONID=" + strings.Repeat("x", 5000)},
			{"5000 characters with route", "JSESSIONID=" + strings.Repeat("A", 4997) + ".n1"},
			{"unknown id", "JSESSIONID=" + session.NewBase() + ".n1"},
			{"unknown id of another node", "JSESSIONID=" + session.NewBase() + ".n9"},
			{"logged out id", "JSESSIONID=" + id},
			{"empty", "JSESSIONID="},
			{"quoted garbage", `JSESSIONID="\x01"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "logged out id" && id == "" {
					t.Skip("needs the id of the login subtest")
				}
				r := n.do(t, "GET", "/counter", tc.cookie, nil)
				got := n.checkSessionCookie(t, r)
				c := counter(t, r)
				if c.Count != 1 || c.Session != got || c.User != "" {
					t.Errorf("GET /counter with %.40q = %+v, want count 1 in the new session %s", tc.cookie, c, got)
				}
				if strings.Contains(tc.cookie, got) {
					t.Errorf("the server adopted the client's id %s", got)
				}
			})
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
		if !strings.Contains(n.stderr.String(), `msg="node stopped"`) {
			t.Errorf("no \"node stopped\" log line; stderr:\n%s", n.stderr)
		}
	})
}

// TestBadInvocationExits2 checks that the binary exits 2 with a message on
// stderr for a bad invocation.
func TestBadInvocationExits2(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), processTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, shoalBinary(t), "node", "--name", "bad.name")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("shoal node --name bad.name: %v, want exit status 2", err)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "shoal: node: --name") || !strings.Contains(got, "[A-Za-z0-9_-]") {
		t.Errorf("stderr = %q, want \"shoal: node: --name ...\" naming the rule", got)
	}
}
