package balancer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxySticky(t *testing.T) {
	n1, n2, n3 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "n3")
	tests := []struct {
		name   string
		target string
		header []string
		want   string
	}{
		{"no session: byrequests' first pick", "/", nil, "n1"},
		{"cookie", "/", []string{"Cookie: JSESSIONID=abc.n2"}, "n2"},
		{"path parameter", "/counter;jsessionid=abc.n3", nil, "n3"},
		{"query", "/counter?jsessionid=abc.n2", nil, "n2"},
		{"URL wins over cookie", "/counter;jsessionid=abc.n3", []string{"Cookie: JSESSIONID=abc.n2"}, "n3"},
		{"route after the first dot", "/", []string{"Cookie: JSESSIONID=abc.n3.x"}, "n1"}, // route "n3.x" is unknown
		{"unknown route", "/", []string{"Cookie: JSESSIONID=abc.n9"}, "n1"},
		{"no route", "/", []string{"Cookie: JSESSIONID=abc"}, "n1"},
		{"disabled member", "/", []string{"Cookie: JSESSIONID=abc.n4"}, "n1"},
		{"draining member keeps its sessions", "/", []string{"Cookie: JSESSIONID=abc.n5"}, "n5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n4, n5 := newBackend(t, "n4"), newBackend(t, "n5")
			tb := startBalancer(t, testConfig(t, n1.member(), n2.member(), n3.member(), n4.member("disabled"), n5.member("drain")))
			r := tb.get(t, tt.target, tt.header...)
			if r.code != 200 || r.body != tt.want {
				t.Errorf("got %d %q, want 200 from %s", r.code, r.body, tt.want)
			}
		})
	}
}

func TestProxyStickyOff(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	cfg := testConfig(t, n1.member(), n2.member())
	cfg.Sticky = ""
	tb := startBalancer(t, cfg)
	for i, want := range []string{"n1", "n2", "n1"} {
		if r := tb.get(t, "/", "Cookie: JSESSIONID=abc.n2"); r.body != want {
			t.Errorf("request %d: from %s, want %s (round robin, cookie ignored)", i, r.body, want)
		}
	}
}

func TestProxyDoesNotTouchSessionCookie(t *testing.T) {
	// The session's member is down: another member takes the request, and
	// the balancer passes both the request's and the response's cookies as
	// they are. Rebinding the session is the node's job.
	n2 := newBackend(t, "n2")
	gotCookie := make(chan string, 1)
	n2.handle(func(w http.ResponseWriter, r *http.Request) {
		gotCookie <- r.Header.Get("Cookie")
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "abc.n2", Path: "/", HttpOnly: true})
		io.WriteString(w, "n2")
	})
	tb := startBalancer(t, testConfig(t, "n1="+deadURL(t), n2.member()))
	r := tb.get(t, "/", "Cookie: JSESSIONID=abc.n1; other=1")
	if r.code != 200 || r.body != "n2" {
		t.Fatalf("got %d %q, want 200 from n2", r.code, r.body)
	}
	if c := <-gotCookie; c != "JSESSIONID=abc.n1; other=1" {
		t.Errorf("n2 got Cookie %q, want it unchanged", c)
	}
	if sc := r.header.Values("Set-Cookie"); len(sc) != 1 || sc[0] != "JSESSIONID=abc.n2; Path=/; HttpOnly" {
		t.Errorf("Set-Cookie = %q, want only n2's", sc)
	}
}

func TestProxyForwardedHeaders(t *testing.T) {
	n1 := newBackend(t, "n1")
	seen := make(chan *http.Request, 1)
	n1.handle(func(w http.ResponseWriter, r *http.Request) { seen <- r.Clone(context.Background()) })
	tb := startBalancer(t, testConfig(t, n1.member()))
	req, _ := http.NewRequest("GET", tb.front.URL+"/x", nil)
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "secret")
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	in := <-seen
	got, host := in.Header, in.Host
	for k, want := range map[string]string{
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "http",
		"Forwarded": "", "X-Hop": "",
	} {
		if v := strings.Join(got.Values(k), ","); v != want {
			t.Errorf("member got %s %q, want %q", k, v, want)
		}
	}
	if host != "shop.example" {
		t.Errorf("member got Host %q, want the client's shop.example", host)
	}
}

func TestFailoverDeadMember(t *testing.T) {
	n2, n3 := newBackend(t, "n2"), newBackend(t, "n3")
	tb := startBalancer(t, testConfig(t, "n1="+deadURL(t), n2.member(), n3.member()))
	before := time.Now()
	for i := range 9 {
		r := tb.get(t, "/")
		if r.code != 200 || (r.body != "n2" && r.body != "n3") {
			t.Fatalf("request %d: got %d %q, want 200 from n2 or n3", i, r.code, r.body)
		}
	}
	after := time.Now()
	st := tb.member("n1").Status()
	if st.State != StateError || !strings.Contains(st.Reason, "connection refused") {
		t.Errorf("n1 state %s (%s), want error (connection refused)", st.State, st.Reason)
	}
	if st.ErrorUntil.Before(before.Add(60*time.Second)) || st.ErrorUntil.After(after.Add(60*time.Second)) {
		t.Errorf("n1 in error until %v, want 60s after the failure (%v..%v)", st.ErrorUntil, before, after)
	}
	lines := tb.log.lines(`msg="member in error"`, "member=n1")
	if len(lines) != 1 || !strings.Contains(lines[0], "connection refused") || !strings.Contains(lines[0], "retry_at=") {
		t.Errorf("want one \"member in error\" line for n1 with the reason and retry_at; log:\n%s", tb.log)
	}
	if h2, h3 := n2.hits.Load(), n3.hits.Load(); h2+h3 != 9 || h2 < 4 || h3 < 4 {
		t.Errorf("n2 got %d requests, n3 %d; want 9 between them, evenly", h2, h3)
	}
}

func TestFailoverPostOnDialError(t *testing.T) {
	n2 := newBackend(t, "n2")
	big := strings.Repeat("x", 200<<10) // beyond RetryBodyBytes: still retried, as nothing was read
	tests := []struct {
		name string
		body func() io.Reader
		want string
	}{
		{"small", func() io.Reader { return strings.NewReader("hello") }, "hello"},
		{"large", func() io.Reader { return strings.NewReader(big) }, big},
		{"chunked", func() io.Reader { return io.MultiReader(strings.NewReader("hel"), strings.NewReader("lo")) }, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := startBalancer(t, testConfig(t, "n1="+deadURL(t), n2.member()))
			r := tb.do(t, "POST", "/", tt.body(), "Cookie: JSESSIONID=abc.n1")
			if r.code != 200 || r.body != "n2" || r.header.Get("X-Body") != tt.want {
				t.Errorf("POST: got %d from %q with body of %d bytes, want 200 from n2 with the whole body",
					r.code, r.body, len(r.header.Get("X-Body")))
			}
		})
	}
}

func TestFailOnStatus(t *testing.T) {
	busy := func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
	t.Run("GET is retried", func(t *testing.T) {
		n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
		n1.handle(busy)
		cfg := testConfig(t, n1.member(), n2.member())
		cfg.FailOnStatus = []int{503}
		tb := startBalancer(t, cfg)
		r := tb.get(t, "/", "Cookie: JSESSIONID=abc.n1")
		if r.code != 200 || r.body != "n2" {
			t.Errorf("got %d %q, want 200 from n2", r.code, r.body)
		}
		if st := tb.member("n1").Status(); st.State != StateError || !strings.Contains(st.Reason, "503") {
			t.Errorf("n1 %s (%s), want error (503)", st.State, st.Reason)
		}
		if len(tb.log.lines(`msg="member in error"`, "member=n1", "503")) != 1 {
			t.Errorf("want one \"member in error\" line; log:\n%s", tb.log)
		}
	})
	t.Run("POST gets the member's answer", func(t *testing.T) {
		n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
		n1.handle(busy)
		cfg := testConfig(t, n1.member(), n2.member())
		cfg.FailOnStatus = []int{503}
		tb := startBalancer(t, cfg)
		r := tb.do(t, "POST", "/", strings.NewReader("x=1"), "Cookie: JSESSIONID=abc.n1")
		if r.code != 503 || r.body != "busy\n" || n2.hits.Load() != 0 {
			t.Errorf("got %d %q (n2 hit %d times), want n1's 503 \"busy\"", r.code, r.body, n2.hits.Load())
		}
		if tb.member("n1").Status().State != StateError {
			t.Error("n1 not in error")
		}
		// With an Idempotency-Key, a POST is retried.
		tb.member("n1").errorUntil.Store(0)
		r = tb.do(t, "POST", "/", strings.NewReader("x=1"), "Cookie: JSESSIONID=abc.n1", "Idempotency-Key: k1")
		if r.code != 200 || r.body != "n2" || r.header.Get("X-Body") != "x=1" {
			t.Errorf("POST with Idempotency-Key: got %d %q body %q, want 200 from n2 with the body", r.code, r.body, r.header.Get("X-Body"))
		}
	})
	t.Run("last member's answer is passed on", func(t *testing.T) {
		n1 := newBackend(t, "n1")
		n1.handle(busy)
		cfg := testConfig(t, n1.member())
		cfg.FailOnStatus = []int{503}
		tb := startBalancer(t, cfg)
		if r := tb.get(t, "/"); r.code != 503 || r.body != "busy\n" {
			t.Errorf("got %d %q, want n1's 503 \"busy\"", r.code, r.body)
		}
	})
}

func TestFailoverResponseHeaderTimeout(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before n1's server closes
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	cfg := testConfig(t, n1.member(), n2.member())
	cfg.ResponseHeaderTimeout = 50 * time.Millisecond

	tb := startBalancer(t, cfg)
	if r := tb.get(t, "/", "Cookie: JSESSIONID=abc.n1"); r.code != 200 || r.body != "n2" {
		t.Errorf("GET: got %d %q, want 200 from n2", r.code, r.body)
	}
	if st := tb.member("n1").Status(); st.State != StateError || !strings.Contains(st.Reason, "timeout") {
		t.Errorf("n1 %s (%s), want error (timeout)", st.State, st.Reason)
	}

	tb = startBalancer(t, cfg)
	if r := tb.do(t, "POST", "/", strings.NewReader("x"), "Cookie: JSESSIONID=abc.n1"); r.code != http.StatusGatewayTimeout {
		t.Errorf("POST: got %d %q, want 504: a sent POST is not retried", r.code, r.body)
	}
	if n2.hits.Load() != 1 {
		t.Errorf("n2 got %d requests, want 1 (the GET)", n2.hits.Load())
	}
}

func TestStandby(t *testing.T) {
	n1, n2, s1 := newBackend(t, "n1"), newBackend(t, "n2"), newBackend(t, "s1")
	tb := startBalancer(t, testConfig(t, n1.member(), n2.member(), s1.member("standby")))
	for range 20 {
		if r := tb.get(t, "/"); r.body == "s1" {
			t.Fatal("the standby got a request while the others were up")
		}
	}

	tb = startBalancer(t, testConfig(t, "n1="+deadURL(t), "n2="+deadURL(t), s1.member("standby")))
	for i := range 5 {
		if r := tb.get(t, "/"); r.code != 200 || r.body != "s1" {
			t.Errorf("request %d, others down: got %d %q, want 200 from s1", i, r.code, r.body)
		}
	}
	// Its sessions stick to it even when the others are back.
	tb.member("n1").SetDisabled(true)
	if r := tb.get(t, "/", "Cookie: JSESSIONID=a.s1"); r.body != "s1" {
		t.Errorf("sticky to s1: got %q", r.body)
	}
}

func TestNoMemberAvailable(t *testing.T) {
	n1 := newBackend(t, "n1")
	t.Run("all disabled", func(t *testing.T) {
		tb := startBalancer(t, testConfig(t, n1.member("disabled")))
		r := tb.get(t, "/")
		if r.code != 503 || r.body != "no member available\n" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("got %d %q %q, want 503 \"no member available\" in plain text", r.code, r.body, r.header.Get("Content-Type"))
		}
		if len(tb.log.lines(`msg="no member available"`, "tried=0")) != 1 {
			t.Errorf("want one \"no member available\" line; log:\n%s", tb.log)
		}
	})
	t.Run("all failing", func(t *testing.T) {
		tb := startBalancer(t, testConfig(t, "n1="+deadURL(t), "n2="+deadURL(t)))
		r := tb.do(t, "POST", "/", strings.NewReader("x"))
		if r.code != 503 || r.body != "no member available\n" {
			t.Errorf("got %d %q, want 503 \"no member available\"", r.code, r.body)
		}
		for _, route := range []string{"n1", "n2"} {
			if st := tb.member(route).Status(); st.State != StateError {
				t.Errorf("%s %s, want error", route, st.State)
			}
		}
		if len(tb.log.lines(`msg="no member available"`, "tried=2")) != 1 {
			t.Errorf("want one \"no member available\" line with tried=2; log:\n%s", tb.log)
		}
	})
	t.Run("max attempts", func(t *testing.T) {
		cfg := testConfig(t, "n1="+deadURL(t), "n2="+deadURL(t), n1.member())
		cfg.Members[2].Route = "n3"
		cfg.MaxAttempts = 2
		tb := startBalancer(t, cfg)
		if r := tb.get(t, "/"); r.code != 503 {
			t.Errorf("got %d %q, want 503 after 2 attempts", r.code, r.body)
		}
		if r := tb.get(t, "/"); r.code != 200 {
			t.Errorf("next request got %d %q, want 200 from n3", r.code, r.body)
		}
	})
}

func TestRetryAndForceRecovery(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	var fail atomic.Bool
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "busy", 503)
			return
		}
		io.WriteString(w, "n1")
	})
	mark := func(t *testing.T, retry time.Duration, members ...string) *testBalancer {
		cfg := testConfig(t, members...)
		cfg.FailOnStatus, cfg.Retry = []int{503}, retry
		tb := startBalancer(t, cfg)
		fail.Store(true)
		tb.get(t, "/", "Cookie: JSESSIONID=a.n1")
		fail.Store(false)
		return tb
	}

	tb := mark(t, time.Hour, n1.member(), n2.member())
	if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.body != "n2" {
		t.Errorf("n1 in error for an hour: sticky request went to %q, want n2", r.body)
	}

	tb = mark(t, 0, n1.member(), n2.member())
	if r := tb.get(t, "/", "Cookie: JSESSIONID=a.n1"); r.body != "n1" {
		t.Errorf("retry 0: sticky request went to %q, want n1 again", r.body)
	}
	if len(tb.log.lines(`msg="member usable again"`, "member=n1")) != 1 {
		t.Errorf("no \"member usable again\" line; log:\n%s", tb.log)
	}

	tb = mark(t, time.Hour, n1.member())
	if r := tb.get(t, "/"); r.code != 200 || r.body != "n1" {
		t.Errorf("only member in error: got %d %q, want 200 from n1 (force recovery)", r.code, r.body)
	}
	if len(tb.log.lines("force recovery")) != 1 {
		t.Errorf("no force recovery line; log:\n%s", tb.log)
	}

	cfg := testConfig(t, n1.member())
	cfg.FailOnStatus, cfg.Retry, cfg.NoForceRecovery = []int{503}, time.Hour, true
	tb = startBalancer(t, cfg)
	fail.Store(true)
	tb.get(t, "/")
	fail.Store(false)
	if r := tb.get(t, "/"); r.code != 503 || r.body != "no member available\n" {
		t.Errorf("NoForceRecovery: got %d %q, want 503 no member available", r.code, r.body)
	}
}

func TestBodyLimit(t *testing.T) {
	n1 := newBackend(t, "n1")
	cfg := testConfig(t, n1.member())
	cfg.MaxBodyBytes = 1000
	tb := startBalancer(t, cfg)
	if r := tb.do(t, "POST", "/", strings.NewReader(strings.Repeat("x", 1001))); r.code != 413 {
		t.Errorf("Content-Length 1001: got %d, want 413", r.code)
	}
	if n1.hits.Load() != 0 {
		t.Errorf("n1 got the request")
	}
	chunked := io.MultiReader(strings.NewReader(strings.Repeat("x", 600)), strings.NewReader(strings.Repeat("x", 600)))
	if r := tb.do(t, "POST", "/", chunked); r.code != 413 {
		t.Errorf("chunked 1200 bytes: got %d %q, want 413", r.code, r.body)
	}
	if r := tb.do(t, "POST", "/", strings.NewReader(strings.Repeat("x", 1000))); r.code != 200 || len(r.header.Get("X-Body")) != 1000 {
		t.Errorf("1000 bytes: got %d with %d bytes, want 200 with all", r.code, len(r.header.Get("X-Body")))
	}
	if st := tb.member("n1").Status(); st.State != StateOK {
		t.Errorf("n1 %s (%s): a client's large body is not the member's fault", st.State, st.Reason)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	n1 := newBackend(t, "n1")
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	})
	tb := startBalancer(t, testConfig(t, n1.member()))
	conn, err := net.Dial("tcp", strings.TrimPrefix(tb.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("got %d Upgrade %q, want 101 websocket", res.StatusCode, res.Header.Get("Upgrade"))
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Errorf("sent %q, got %q, %v", msg, got, err)
		}
	}
	if n := tb.member("n1").InFlight(); n != 1 {
		t.Errorf("n1 in flight during the upgraded connection = %d, want 1", n)
	}
}

func TestStreamingResponse(t *testing.T) {
	n1 := newBackend(t, "n1")
	release := make(chan struct{})
	n1.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: second\n\n")
	})
	tb := startBalancer(t, testConfig(t, n1.member()))
	res, err := testClient.Get(tb.front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// The first event arrives while the member still holds the second.
	if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestH2C(t *testing.T) {
	n1 := newBackend(t, "n1")
	b, err := New(testConfig(t, n1.member()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(b, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	res, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || string(body) != "n1" || res.Header.Get("X-Proto") != "HTTP/1.1" {
		t.Errorf("got %s %q, member saw %s; want HTTP/2 to the balancer, HTTP/1.1 to n1",
			res.Proto, body, res.Header.Get("X-Proto"))
	}
}

func TestHTTP2OverTLS(t *testing.T) {
	n1 := newBackend(t, "n1")
	proto := make(chan string, 1)
	n1.handle(func(w http.ResponseWriter, r *http.Request) { proto <- r.Header.Get("X-Forwarded-Proto") })
	b, err := New(testConfig(t, n1.member()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ts := httptest.NewUnstartedServer(b)
	ts.Config = NewServer(b, nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	res, err := ts.Client().Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if p := <-proto; res.ProtoMajor != 2 || res.StatusCode != 200 || p != "https" {
		t.Errorf("got %s %d, X-Forwarded-Proto %q; want HTTP/2 200, https", res.Proto, res.StatusCode, p)
	}
}

func TestInFlightReturnsToZero(t *testing.T) {
	n1, n2 := newBackend(t, "n1"), newBackend(t, "n2")
	cfg := testConfig(t, n1.member(), n2.member(), "n3="+deadURL(t))
	cfg.Method = "bybusyness"
	tb := startBalancer(t, cfg)
	for range 10 {
		tb.get(t, "/")
	}
	for _, m := range tb.Members() {
		if n := m.InFlight(); n != 0 {
			t.Errorf("%s in flight %d after all requests, want 0", m.Route(), n)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no members", func(c *Config) { c.Members = nil }, "member: none given"},
		{"duplicate route", func(c *Config) { c.Members = append(c.Members, c.Members[0]) }, `route "n1" used twice`},
		{"bad sticky", func(c *Config) { c.Sticky = "a b" }, `sticky "a b"`},
		{"bad method", func(c *Config) { c.Method = "random" }, `method "random"`},
		{"hash without key", func(c *Config) { c.Method = "hash" }, `hash-key ""`},
		{"negative retry", func(c *Config) { c.Retry = -1 }, "retry -1ns is negative"},
		{"bad status", func(c *Config) { c.FailOnStatus = []int{99} }, "failonstatus 99"},
		{"health path", func(c *Config) { c.Health.Path = "healthz" }, `health-path "healthz"`},
		{"health interval", func(c *Config) { c.Health.Path, c.Health.Interval = "/h", 0 }, "health-interval 0s"},
		{"health fall", func(c *Config) { c.Health.Path, c.Health.Fall = "/h", 0 }, "health-fall 0"},
		{"bad member", func(c *Config) { c.Members[0].URL = "https://x" }, "member n1=https://x: want http:// URL"},
		{"bad weight", func(c *Config) { c.Members[0].Weight = 0.5 }, "weight 0.5: want 1 to 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "n1=http://127.0.0.1:1")
			tt.edit(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want ErrInvalidConfig with %q", err, tt.want)
			}
		})
	}
}

func TestParseMember(t *testing.T) {
	tests := []struct {
		spec string
		want MemberConfig
		err  string
	}{
		{"n1=http://127.0.0.1:8081", MemberConfig{Route: "n1", URL: "http://127.0.0.1:8081"}, ""},
		{"n1=http://h:1/app,weight=2.5,standby", MemberConfig{Route: "n1", URL: "http://h:1/app", Weight: 2.5, Standby: true}, ""},
		{"n1=http://h:1,disabled,drain", MemberConfig{Route: "n1", URL: "http://h:1", Disabled: true, Draining: true}, ""},
		{"n1=ftp://x", MemberConfig{}, "want http:// URL"},
		{"n1=https://x", MemberConfig{}, "want http:// URL"},
		{"n1=http://", MemberConfig{}, "want http:// URL"},
		{"n1=http://h:1?x=1", MemberConfig{}, "want http:// URL"},
		{"n1", MemberConfig{}, "want ROUTE=URL"},
		{"n.1=http://h:1", MemberConfig{}, `route "n.1": want 1-64 characters of [A-Za-z0-9_-]`},
		{"=http://h:1", MemberConfig{}, `route ""`},
		{"n1=http://h:1,weight=0.5", MemberConfig{}, `weight "0.5": want a number from 1 to 100`},
		{"n1=http://h:1,weight=0", MemberConfig{}, `weight "0": want a number from 1 to 100`},
		{"n1=http://h:1,weight=101", MemberConfig{}, `weight "101": want a number from 1 to 100`},
		{"n1=http://h:1,weight=NaN", MemberConfig{}, `weight "NaN"`},
		{"n1=http://h:1,weight=x", MemberConfig{}, `weight "x"`},
		{"n1=http://h:1,hot", MemberConfig{}, `unknown option "hot"`},
	}
	for _, tt := range tests {
		got, err := ParseMember(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseMember(%q) = %v, want error %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMember(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestParseStatusList(t *testing.T) {
	if got, err := ParseStatusList("503, 502,500"); err != nil || len(got) != 3 || got[0] != 503 || got[2] != 500 {
		t.Errorf("ParseStatusList = %v, %v", got, err)
	}
	for _, bad := range []string{"5xx", "503,", "42"} {
		if _, err := ParseStatusList(bad); err == nil {
			t.Errorf("ParseStatusList(%q) = nil error", bad)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	cfg := testConfig(t, "n1=http://127.0.0.1:1")
	cfg.Health.Path = "/healthz/ready"
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close()
}

// TestViaHandler runs the proxy tests over Balancer.ServeHTTP behind a
// plain net/http server (the path HTTP/2 and upgrades take), as the
// other tests run them through a Frontend's fast path.
func TestViaHandler(t *testing.T) {
	viaHandler = true
	t.Cleanup(func() { viaHandler = false })
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"Sticky", TestProxySticky},
		{"StickyOff", TestProxyStickyOff},
		{"DoesNotTouchSessionCookie", TestProxyDoesNotTouchSessionCookie},
		{"ForwardedHeaders", TestProxyForwardedHeaders},
		{"FailoverDeadMember", TestFailoverDeadMember},
		{"FailoverPostOnDialError", TestFailoverPostOnDialError},
		{"FailOnStatus", TestFailOnStatus},
		{"FailoverResponseHeaderTimeout", TestFailoverResponseHeaderTimeout},
		{"Standby", TestStandby},
		{"NoMemberAvailable", TestNoMemberAvailable},
		{"RetryAndForceRecovery", TestRetryAndForceRecovery},
		{"BodyLimit", TestBodyLimit},
		{"StreamingResponse", TestStreamingResponse},
		{"InFlightReturnsToZero", TestInFlightReturnsToZero},
		{"CollectorOfBalancer", TestCollectorOfBalancer},
		{"ReloadMembers", TestReloadMembers},
		{"ReloadUnderLoad", TestReloadUnderLoad},
	} {
		t.Run(tt.name, tt.test)
	}
}
