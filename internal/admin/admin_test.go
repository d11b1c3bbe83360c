package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

func TestHealthzNeedsNoAuth(t *testing.T) {
	e := newEnv(t)
	if r := e.do(t, "GET", "/healthz", ""); r.code != 200 || r.body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\"", r.code, r.body)
	}
	if r := e.do(t, "POST", "/healthz", "x"); r.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", r.code)
	}
}

func TestEveryOtherPathNeedsAuth(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/?refresh=5", ""},
		{"GET", "/api/members", ""},
		{"GET", "/api/members/n1", ""},
		{"GET", "/api/cluster", ""},
		{"GET", "/api/rates", ""},
		{"GET", "/static/chart.js", ""},
		{"GET", "/metrics", ""},
		{"GET", "/static/admin.css", ""},
		{"GET", "/static/admin.js", ""},
		{"GET", "/no/such/path", ""},
		{"GET", "/healthz/", ""},
		{"GET", "//healthz", ""},
		{"POST", "/api/members/n1", "action=disable"},
		{"POST", "/members/n1", "action=disable"},
		{"DELETE", "/api/members/n1", ""},
	} {
		r := e.do(t, tt.method, tt.path, tt.body, "Content-Type", formType)
		if r.code != http.StatusUnauthorized || r.hdr.Get("WWW-Authenticate") != `Basic realm="shoal"` {
			t.Errorf("%s %s without credentials = %d, WWW-Authenticate %q; want 401 and Basic realm=\"shoal\"",
				tt.method, tt.path, r.code, r.hdr.Get("WWW-Authenticate"))
		}
		if strings.Contains(r.body, "n1") {
			t.Errorf("%s %s: the 401 body tells about members: %q", tt.method, tt.path, r.body)
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("members changed without credentials: %s -> %s", before, after)
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t)
	basic := func(user, pass string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization")
	}
	for _, tt := range []struct {
		name, authz string
		want        int
	}{
		{"bearer", "Bearer " + testToken, 200},
		{"bearer, scheme in lower case", "bearer " + testToken, 200},
		{"basic", basic("admin", testToken), 200},
		{"wrong bearer", "Bearer " + testToken + "x", 401},
		{"bearer prefix of the token", "Bearer " + testToken[:len(testToken)-1], 401},
		{"empty bearer", "Bearer ", 401},
		{"bare token", testToken, 401},
		{"other scheme", "Token " + testToken, 401},
		{"basic, wrong password", basic("admin", "nope"), 401},
		{"basic, wrong user", basic("root", testToken), 401},
		{"basic, empty password", basic("admin", ""), 401},
		{"basic, not base64", "Basic !!!", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "GET", "/api/members", "", "Authorization", tt.authz)
			if r.code != tt.want {
				t.Errorf("GET /api/members with %q = %d, want %d", tt.authz, r.code, tt.want)
			}
			if tt.want == 401 && r.hdr.Get("WWW-Authenticate") != `Basic realm="shoal"` {
				t.Errorf("401 without WWW-Authenticate: Basic realm=\"shoal\"")
			}
		})
	}
	if !strings.Contains(e.log.String(), "manager refused credentials") {
		t.Errorf("no log line for refused credentials:\n%s", e.log)
	}
}

func TestAPIListsMembers(t *testing.T) {
	e := newEnv(t, "spare=http://127.0.0.1:1,standby,weight=3")
	e.member(t, "n2").SetDisabled(true)
	r := e.do(t, "GET", "/api/members", "", "auth", "bearer")
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/members = %d %s, want 200 JSON", r.code, r.hdr.Get("Content-Type"))
	}
	var out struct{ Members []map[string]any }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Members) != 3 {
		t.Fatalf("%d members, want 3: %s", len(out.Members), r.body)
	}
	for i, want := range []struct {
		route, state string
		weight       float64
	}{{"n1", "ok", 1}, {"n2", "disabled", 1}, {"spare", "standby", 3}} {
		m := out.Members[i]
		if m["route"] != want.route || m["state"] != want.state || m["weight"] != want.weight {
			t.Errorf("member %d = %v, want route %s state %s weight %v", i, m, want.route, want.state, want.weight)
		}
		for _, k := range []string{"url", "reason", "retry_until", "standby", "in_flight", "requests", "errors",
			"latency_ewma_ms", "duration_mean_ms", "state_changes"} {
			if _, ok := m[k]; !ok {
				t.Errorf("member %s lacks %q: %v", want.route, k, m)
			}
		}
	}
}

func TestAPIShowsErrorReasonAndRetry(t *testing.T) {
	e := newEnv(t, "dead="+deadURL(t))
	for _, m := range e.b.Members() {
		if m.Route() != "dead" {
			m.SetDisabled(true)
		}
	}
	e.proxy(t, 1, "/") // fails on dead, which is put in error; then 503
	r := e.do(t, "GET", "/api/members/dead", "", "auth", "bearer")
	var m memberJSON
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if m.State != "error" || !strings.Contains(m.Reason, "connect") || m.RetryUntil == nil || m.Errors == 0 {
		t.Errorf("dead member = %+v, want state error, a connect reason, retry_until and errors", m)
	}
	if until, err := time.Parse(time.RFC3339, *m.RetryUntil); err != nil || until.Before(time.Now()) {
		t.Errorf("retry_until %q: want an RFC 3339 time in the future (%v)", *m.RetryUntil, err)
	}
}

func TestAPIActions(t *testing.T) {
	e := newEnv(t)
	n1 := e.member(t, "n1")
	steps := []struct {
		name, ctype, body string
		state             balancer.State
		weight            float64
		wantJSONState     string
	}{
		{"drain (JSON)", jsonType, `{"action":"drain"}`, balancer.StateDraining, 1, "draining"},
		{"disable (form)", formType, "action=disable", balancer.StateDisabled, 1, "disabled"},
		{"enable (JSON)", jsonType, `{"action": "enable"}`, balancer.StateOK, 1, "ok"},
		{"weight (form)", formType, "action=weight&weight=2.5", balancer.StateOK, 2.5, "ok"},
		{"weight (JSON)", jsonType + "; charset=utf-8", `{"action":"weight","weight":40}`, balancer.StateOK, 40, "ok"},
		{"drain then enable", formType, "action=drain", balancer.StateDraining, 40, "draining"},
		{"enable (form)", formType, "action=enable", balancer.StateOK, 40, "ok"},
	}
	for _, s := range steps {
		r := e.do(t, "POST", "/api/members/n1", s.body, "auth", "bearer", "Content-Type", s.ctype)
		if r.code != 200 {
			t.Fatalf("%s: %d %s", s.name, r.code, r.body)
		}
		var got memberJSON
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("%s: %v: %s", s.name, err, r.body)
		}
		if got.Route != "n1" || got.State != s.wantJSONState || got.Weight != s.weight {
			t.Errorf("%s: answered %+v, want n1 %s weight %v", s.name, got, s.wantJSONState, s.weight)
		}
		if st := e.b.Members()[0].Status(); st.State != s.state || st.Weight != s.weight {
			t.Errorf("%s: member is %s weight %v, want %s weight %v", s.name, st.State, st.Weight, s.state, s.weight)
		}
	}
	if st := e.member(t, "n2").Status(); st.State != balancer.StateOK || st.Weight != 1 {
		t.Errorf("n2 changed: %+v", st)
	}
	if n1.Status().StateChanges == 0 {
		t.Error("no state change counted")
	}
	if !strings.Contains(e.log.String(), `msg="manager changed a member" member=n1 action=weight result="weight 1 → 2.5" auth=bearer`) {
		t.Errorf("no log line for the weight change:\n%s", e.log)
	}
}

func TestAPIErrors(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	for _, tt := range []struct {
		name, path, ctype, body string
		code                    int
		msg                     string
	}{
		{"unknown route", "/api/members/n9", formType, "action=disable", 404, `no member with route "n9"`},
		{"unknown action", "/api/members/n1", formType, "action=reboot", 400, `action "reboot": want enable, disable, drain or weight`},
		{"no action", "/api/members/n1", jsonType, `{}`, 400, "action missing: want enable, disable, drain or weight"},
		{"weight missing", "/api/members/n1", formType, "action=weight", 400, "action weight needs weight"},
		{"weight too big", "/api/members/n1", jsonType, `{"action":"weight","weight":101}`, 400, `weight "101": want a number from 1 to 100`},
		{"weight zero", "/api/members/n1", formType, "action=weight&weight=0", 400, `weight "0": want a number from 1 to 100`},
		{"weight NaN", "/api/members/n1", formType, "action=weight&weight=NaN", 400, `weight "NaN"`},
		{"weight as a JSON string", "/api/members/n1", jsonType, `{"action":"weight","weight":"2"}`, 400, `weight "\"2\""`},
		{"weight with drain", "/api/members/n1", formType, "action=drain&weight=2", 400, "weight goes only with action weight"},
		{"unknown field", "/api/members/n1", formType, "action=disable&force=1", 400, `unknown field "force"`},
		{"unknown JSON field", "/api/members/n1", jsonType, `{"action":"disable","force":true}`, 400, `unknown field "force"`},
		{"action twice", "/api/members/n1", formType, "action=enable&action=disable", 400, "field action given 2 times"},
		{"invalid JSON", "/api/members/n1", jsonType, `{"action":`, 400, "body: invalid JSON"},
		{"two JSON values", "/api/members/n1", jsonType, `{"action":"disable"}{"action":"enable"}`, 400, "want one JSON object"},
		{"text body", "/api/members/n1", "text/plain", "disable", 415, `unsupported Content-Type "text/plain"`},
		{"no content type", "/api/members/n1", "", "action=disable", 415, "want application/json or application/x-www-form-urlencoded"},
		{"body too large", "/api/members/n1", formType, "action=disable&nonce=" + strings.Repeat("x", maxBodyBytes), 413, "body over"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "POST", tt.path, tt.body, "auth", "bearer", "Content-Type", tt.ctype)
			var out struct{ Error string }
			json.Unmarshal([]byte(r.body), &out)
			if r.code != tt.code || !strings.Contains(out.Error, tt.msg) {
				t.Errorf("= %d %s, want %d with error containing %q", r.code, r.body, tt.code, tt.msg)
			}
		})
	}
	if after := e.snapshot(); after != before {
		t.Errorf("refused requests changed members: %s -> %s", before, after)
	}
}

func TestAPIBasicAuthNeedsNonce(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, "POST", "/api/members/n1", "action=disable", "auth", "basic", "Content-Type", formType)
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "Bearer") {
		t.Errorf("basic-auth POST without nonce = %d %s, want 403 pointing to bearer tokens", r.code, r.body)
	}
	if st := e.member(t, "n1").Status(); st.State != balancer.StateOK {
		t.Fatalf("n1 is %s after a refused POST", st.State)
	}
	nonce := e.h.keys.issueNonce("n1", time.Now())
	r = e.do(t, "POST", "/api/members/n1", form("action", "disable", "nonce", nonce), "auth", "basic", "Content-Type", formType)
	if r.code != 200 || e.member(t, "n1").Status().State != balancer.StateDisabled {
		t.Errorf("basic-auth POST with a nonce = %d %s, want 200 and n1 disabled", r.code, r.body)
	}
}

func TestPagePost(t *testing.T) {
	e := newEnv(t)
	page := e.do(t, "GET", "/", "", "auth", "basic")
	n1 := formNonces(t, page.body, "n1")
	n2 := formNonces(t, page.body, "n2")

	refused := []struct{ name, body string }{
		{"no nonce", form("action", "disable")},
		{"empty nonce", form("action", "disable", "nonce", "")},
		{"garbage nonce", form("action", "disable", "nonce", "abc")},
		{"nonce of another member's form", form("action", "disable", "nonce", n2[0])},
		{"nonce with a changed byte", form("action", "disable", "nonce", flipChar(n1[0], 20))},
		{"nonce with a changed MAC", form("action", "disable", "nonce", flipChar(n1[0], len(n1[0])-3))},
		{"expired nonce", form("action", "disable", "nonce", e.h.keys.issueNonce("n1", time.Now().Add(-nonceTTL-time.Minute)))},
		{"nonce of another process", form("action", "disable", "nonce", newKeys().issueNonce("n1", time.Now()))},
		{"bad action without nonce", form("action", "reboot")},
	}
	for _, tt := range refused {
		for _, auth := range []string{"basic", "bearer"} {
			r := e.do(t, "POST", "/members/n1", tt.body, "auth", auth, "Content-Type", formType)
			if r.code != http.StatusForbidden || !strings.Contains(r.body, "reload the page") {
				t.Errorf("%s (%s): %d %q, want 403", tt.name, auth, r.code, r.body)
			}
		}
	}
	if st := e.member(t, "n1").Status(); st.State != balancer.StateOK {
		t.Fatalf("n1 is %s after refused POSTs", st.State)
	}

	r := e.do(t, "POST", "/members/n1", form("action", "disable", "nonce", n1[0]), "auth", "basic", "Content-Type", formType)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.hdr.Get("Location"), "/?flash=") {
		t.Fatalf("POST with a valid nonce = %d, Location %q; want 303 to /?flash=", r.code, r.hdr.Get("Location"))
	}
	if st := e.member(t, "n1").Status(); st.State != balancer.StateDisabled {
		t.Errorf("n1 is %s, want disabled", st.State)
	}
	back := e.do(t, "GET", r.hdr.Get("Location"), "", "auth", "basic")
	if !strings.Contains(back.body, `<p class="flash" role="status">n1: disabled: no requests</p>`) {
		t.Errorf("page after the change lacks the flash message:\n%s", back.body)
	}

	// A page nonce stays valid for its hour: the weight form works too,
	// and an invalid weight comes back as an error flash.
	r = e.do(t, "POST", "/members/n1", form("action", "weight", "weight", "250", "nonce", n1[1]), "auth", "basic", "Content-Type", formType)
	back = e.do(t, "GET", r.hdr.Get("Location"), "", "auth", "basic")
	if r.code != http.StatusSeeOther || !strings.Contains(back.body, `flash-error" role="status">n1: weight &#34;250&#34;: want a number from 1 to 100</p>`) {
		t.Errorf("invalid weight: %d, page:\n%s", r.code, back.body)
	}
	r = e.do(t, "POST", "/members/n1", form("action", "weight", "weight", "7", "nonce", n1[1]), "auth", "basic", "Content-Type", formType)
	if r.code != http.StatusSeeOther || e.member(t, "n1").Weight() != 7 {
		t.Errorf("weight 7: %d, weight %v", r.code, e.member(t, "n1").Weight())
	}
	if r := e.do(t, "POST", "/members/n9", form("action", "disable", "nonce", n1[0]), "auth", "basic", "Content-Type", formType); r.code != 404 {
		t.Errorf("POST /members/n9 = %d, want 404", r.code)
	}
}

// flipChar changes the i-th character of a base64url string.
func flipChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestForeignOriginRefused(t *testing.T) {
	e := newEnv(t)
	page := e.do(t, "GET", "/", "", "auth", "basic")
	nonce := formNonces(t, page.body, "n1")[0]
	for _, tt := range []struct {
		name, path, body string
		hdr              []string
	}{
		{"API, foreign Origin", "/api/members/n1", "action=disable", []string{"auth", "bearer", "Origin", "http://evil.example"}},
		{"API, null Origin", "/api/members/n1", "action=disable", []string{"auth", "bearer", "Origin", "null"}},
		{"API, other port", "/api/members/n1", "action=disable", []string{"auth", "bearer", "Origin", "http://127.0.0.1:1"}},
		{"API, cross-site fetch", "/api/members/n1", "action=disable", []string{"auth", "bearer", "Sec-Fetch-Site", "cross-site"}},
		{"page, foreign Origin", "/members/n1", form("action", "disable", "nonce", nonce), []string{"auth", "basic", "Origin", "http://evil.example"}},
		{"page, same-site fetch", "/members/n1", form("action", "disable", "nonce", nonce), []string{"auth", "basic", "Sec-Fetch-Site", "same-site"}},
	} {
		r := e.do(t, "POST", tt.path, tt.body, append(tt.hdr, "Content-Type", formType)...)
		if r.code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tt.name, r.code, r.body)
		}
	}
	if st := e.member(t, "n1").Status(); st.State != balancer.StateOK {
		t.Fatalf("n1 is %s after cross-origin POSTs", st.State)
	}
	// The page's own origin passes.
	r := e.do(t, "POST", "/members/n1", form("action", "disable", "nonce", nonce),
		"auth", "basic", "Content-Type", formType, "Origin", e.admin.URL, "Sec-Fetch-Site", "same-origin")
	if r.code != http.StatusSeeOther {
		t.Errorf("same-origin POST = %d %s, want 303", r.code, r.body)
	}
}

func TestGetNeverChangesState(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	changes := e.member(t, "n1").Status().StateChanges
	q := "?" + form("action", "disable", "weight", "50", "nonce", e.h.keys.issueNonce("n1", time.Now()))
	for _, path := range []string{"/", "/api/members", "/api/members/n1", "/members/n1", "/metrics", "/static/admin.js"} {
		for _, method := range []string{"GET", "HEAD"} {
			r := e.do(t, method, path+q, "", "auth", "bearer")
			if r.code >= 500 {
				t.Errorf("%s %s = %d", method, path, r.code)
			}
		}
	}
	if after := e.snapshot(); after != before || e.member(t, "n1").Status().StateChanges != changes {
		t.Errorf("GETs changed members: %s -> %s", before, after)
	}
}

func TestPageRendersMembers(t *testing.T) {
	e := newEnv(t, "dead="+deadURL(t)+",weight=2.5", "spare={backend},standby")
	e.member(t, "n2").SetDraining(true)
	e.member(t, "n1").SetDisabled(true)
	e.proxy(t, 2, "/") // dead fails once and is put in error; spare serves both
	r := e.do(t, "GET", "/", "", "auth", "basic")
	if r.code != 200 || r.hdr.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`<tr class="state-disabled" data-route="n1">`, `<span class="route">n1</span>`,
		`<tr class="state-draining" data-route="n2">`, `<span class="route">n2</span>`, `<small class="reason">drain</small>`,
		`<tr class="state-error" data-route="dead">`, `<span class="route">dead</span>`, "connection refused", "retry in ",
		`<tr class="state-standby" data-route="spare">`, `<span class="route">spare</span>`,
		`value="2.5"`, `<button name="action" value="drain">Drain</button>`,
		`<script src="/static/admin.js" defer></script>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q:\n%s", want, r.body)
		}
	}
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
	} {
		if got := r.hdr.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	csp := r.hdr.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") {
		t.Error("page has an inline script or style, which its CSP forbids")
	}
	for _, f := range []string{"/static/admin.js", "/static/admin.css"} {
		if r := e.do(t, "GET", f, "", "auth", "basic"); r.code != 200 || r.body == "" {
			t.Errorf("GET %s = %d", f, r.code)
		}
	}
	if r := e.do(t, "GET", "/static/nope.js", "", "auth", "basic"); r.code != 404 {
		t.Errorf("GET /static/nope.js = %d, want 404", r.code)
	}
}

func TestPageEscapes(t *testing.T) {
	e := newEnv(t)
	hostile := `<script>alert("x")</script>&'`
	var buf bytes.Buffer
	err := e.h.page.Execute(&buf, pageData{
		Flash:    hostile,
		Summary:  hostile,
		Problems: []string{hostile},
		Members: []memberRow{{
			Route: hostile, URL: hostile, IsMember: true, State: hostile, Reason: hostile, RetryIn: hostile,
			Weight: hostile, Latency: hostile, MeanDuration: hostile, StateNonce: hostile, WeightNonce: `"><script>`,
			ClusterState: hostile, ClusterNote: hostile, NodeName: hostile, HasSessions: true,
			Lag: hostile, LagNote: `"><script>`, Rate: hostile, RateNote: `"><script>`,
		}, {
			Route: hostile, URL: hostile, NodeErr: hostile, Unreachable: true, Lag: "-", LagNote: hostile,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "<script>") || strings.Contains(page, `"><script`) {
		t.Errorf("hostile values not escaped:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;") {
		t.Errorf("escaped text missing:\n%s", page)
	}

	// A flash parameter the manager did not sign is not shown.
	for _, flash := range []string{hostile, url.QueryEscape(hostile), "bm8.AAAA", e.h.keys.signFlash("ok", false) + "x"} {
		r := e.do(t, "GET", "/?flash="+url.QueryEscape(flash), "", "auth", "basic")
		if strings.Contains(r.body, `class="flash`) {
			t.Errorf("unsigned flash %q shown:\n%s", flash, r.body)
		}
	}
	r := e.do(t, "GET", "/?flash="+url.QueryEscape(e.h.keys.signFlash(hostile, true)), "", "auth", "basic")
	if !strings.Contains(r.body, `<p class="flash flash-error" role="status">&lt;script&gt;`) {
		t.Errorf("signed flash not shown escaped:\n%s", r.body)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, "dead="+deadURL(t))
	e.proxy(t, 6, "/")
	e.proxy(t, 2, "/fail")
	e.member(t, "n2").SetDraining(true)
	r := e.do(t, "GET", "/metrics", "", "auth", "bearer")
	if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		"# TYPE shoal_balancer_requests_total counter",
		`shoal_balancer_requests_total{code_class="2xx",member="n1"}`,
		"# TYPE shoal_balancer_request_duration_seconds histogram",
		`shoal_balancer_request_duration_seconds_bucket{member="n1",le="0.001"}`,
		`shoal_balancer_request_duration_seconds_count{member="n2"}`,
		"# TYPE shoal_balancer_errors_total counter",
		`shoal_balancer_errors_total{member="dead",reason="connect"} 1`, // refused: nothing listens there
		`shoal_balancer_errors_total{member="n1",reason="connect"} 0`,
		"# TYPE shoal_balancer_retries_total counter",
		"shoal_balancer_retries_total ",
		"# TYPE shoal_balancer_in_flight gauge",
		`shoal_balancer_in_flight{member="n1"} 0`,
		"# TYPE shoal_balancer_member_state gauge",
		`shoal_balancer_member_state{member="n1",state="ok"} 1`,
		`shoal_balancer_member_state{member="n1",state="error"} 0`,
		`shoal_balancer_member_state{member="n2",state="draining"} 1`,
		`shoal_balancer_member_state{member="dead",state="error"} 1`,
		"# TYPE shoal_balancer_state_changes_total counter",
		`shoal_balancer_state_changes_total{member="dead"} 1`,
		`shoal_balancer_state_changes_total{member="n2"} 1`,
		`shoal_balancer_member_weight{member="n1"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", r.body)
	}
}
