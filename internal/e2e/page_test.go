package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumInstallFix says how to get the browser the page test drives.
const chromiumInstallFix = "install Debian's package: apt-get install -y chromium (.ci/run does)"

// pageTestTimeout bounds the page test once the cluster runs.
const pageTestTimeout = 60 * time.Second

// screenshotDir is where the page test leaves its screenshots: ignored
// by git (its .gitignore), kept by CI as artifacts.
var screenshotDir = filepath.Join("testdata", "out")

// chromiumBinary returns Debian's chromium, failing the test when it is
// missing: the page is tested in a real browser, and a missing one must
// not pass as a success.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is not installed (no /usr/bin/chromium, no chromium in PATH); %s", chromiumInstallFix)
	}
	return p
}

// browser is a headless Chromium started by the test in its own process
// group; stop ends the whole group.
type browser struct {
	ctx    context.Context // a tab
	cancel func()
	cmd    *exec.Cmd // set when chromedp starts it
	log    *syncBuffer
}

// startBrowser starts Chromium with a fresh profile in a temporary
// directory. The flags keep it off every network but loopback: without
// the background-networking ones it dials out and this machine refuses.
func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	b := &browser{log: &syncBuffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumBinary(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1500, 1000),
		chromedp.CombinedOutput(b.log),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Its own process group, so that every process of the
			// browser can be ended; and killed if the test dies.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			b.cmd = cmd
		}),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	tctx, tcancel := chromedp.NewContext(actx,
		chromedp.WithLogf(func(f string, a ...any) { fmt.Fprintf(b.log, f+"\n", a...) }),
		chromedp.WithErrorf(func(f string, a ...any) { fmt.Fprintf(b.log, "error: "+f+"\n", a...) }))
	b.ctx = tctx
	b.cancel = func() {
		tcancel()
		acancel() // kills the browser and waits for it
		if b.cmd != nil && b.cmd.Process != nil {
			pgid := b.cmd.Process.Pid
			// Children that outlived it (zygote, renderers) are in its group.
			syscall.Kill(-pgid, syscall.SIGKILL)
			if !poll(5*time.Second, func() bool { return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) }) {
				t.Errorf("Chromium's process group %d still has processes 5 s after SIGKILL", pgid)
			}
		}
	}
	t.Cleanup(b.cancel)
	// The first Run starts the browser: with the test's context, not one
	// of a step, which would end the browser with the step.
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("starting Chromium: %v\n%s", err, b.log)
	}
	return b
}

// do runs steps, failing the test with what the browser said.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v\nbrowser log:\n%s", what, err, tail(b.log.String(), 20))
	}
}

// evalIn returns a JavaScript expression's value in the page.
func evalIn[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v\nbrowser log:\n%s", expr, err, tail(b.log.String(), 20))
	}
	return v
}

// waitFor polls a JavaScript condition in the page every 100 ms, up to
// within; it fails the test with the page's text if it never holds.
func waitFor(t *testing.T, b *browser, within time.Duration, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			t.Fatalf("%s: not within %v (%v); the page says:\n%s", what, within, err, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the whole page as PNG in screenshotDir.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(screenshotDir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// rowJS returns JavaScript for the text of a cell of the manager page's row of route:
// "state", "cluster-state", "sessions", "requests", "rate".
func rowJS(route, cell string) string {
	sel := map[string]string{"state": ".state", "cluster-state": ".cluster-state", "sessions": ".sessions",
		"requests": ".requests", "rate": ".rate"}[cell]
	return fmt.Sprintf(`(document.querySelector('tr[data-route=%q] %s') || {}).textContent || ''`, route, sel)
}

// TestManagerPage drives the manager page in headless Chromium: a user
// logs in to the demo app through a balancer that follows a cluster of
// three nodes; the manager page (with its basic authentication) shows
// the cluster's members, the session's node and its session copies, and
// a live chart of requests per member; pressing Drain on the session's
// node drains it (the page says so, the API agrees, and the session
// stays on its node). Screenshots go to testdata/out.
func TestManagerPage(t *testing.T) {
	chromiumBinary(t) // before anything is started
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	nodes := []*node{startClusterNode(t, "n1", key, g1, "")}
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, startClusterNode(t, name, key, freeGossipAddr(t), g1))
	}
	for _, n := range nodes {
		waitReady(t, n)
	}
	lb := startBalancer(t, "--cluster-join", g1, "--cluster-key-file", key, "--cluster-listen", freeGossipAddr(t),
		"--dead-after", "2s")
	if !poll(20*time.Second, func() bool { return strings.Count(lb.stderr.String(), "cluster node added") >= 3 }) {
		t.Fatalf("the balancer did not add the three nodes:\n%s", lb.tail(20))
	}

	ctx, cancel := context.WithTimeout(t.Context(), pageTestTimeout)
	defer cancel()
	b := startBrowser(t, ctx)

	// Log in to the demo app through the balancer.
	b.do(t, "open the demo app", chromedp.Navigate(lb.url+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)))
	b.do(t, "log in", chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "dora"),
		chromedp.Click(chromedp.CSS(`form button`)), chromedp.WaitVisible(chromedp.CSS(`form[action^="/logout"]`)))
	if user := evalIn[string](t, b, `document.getElementById("user").textContent`); user != "dora" {
		t.Fatalf("after login the demo page shows user %q, want dora", user)
	}
	home := evalIn[string](t, b, `document.getElementById("node").textContent`)
	if home != "n1" && home != "n2" && home != "n3" {
		t.Fatalf("the demo page names node %q, want n1, n2 or n3", home)
	}
	b.screenshot(t, "page-1-demo-logged-in.png")
	cookies, err := chromedp.Run(b.ctx, chromedp.Action[[]*network.Cookie](
		func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
			r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{lb.url + "/"}})
			return r.Cookies, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	var cookie string
	for _, c := range cookies {
		if c.Name == "JSESSIONID" {
			cookie = "JSESSIONID=" + c.Value
		}
	}
	if !strings.HasSuffix(cookie, "."+home) {
		t.Fatalf("the browser's session cookie %q does not name the node the page shows (%s)", cookie, home)
	}

	// The manager page, logged in as a browser does (basic
	// authentication with the token as password).
	mu, err := url.Parse(lb.manager + "/")
	if err != nil {
		t.Fatal(err)
	}
	mu.User = url.UserPassword("admin", lb.token)
	b.do(t, "open the manager page", chromedp.Navigate(mu.String()), chromedp.WaitVisible(chromedp.CSS(`tr[data-route="`+home+`"]`)))
	for _, n := range []string{"n1", "n2", "n3"} {
		if s := evalIn[string](t, b, rowJS(n, "cluster-state")); s != "ready" {
			t.Errorf("the page shows %s in the cluster as %q, want ready", n, s)
		}
		if s := evalIn[string](t, b, rowJS(n, "state")); s != "ok" {
			t.Errorf("the page shows %s's state as %q, want ok", n, s)
		}
	}
	summary := evalIn[string](t, b, `(document.getElementById("summary") || {}).textContent || ""`)
	if !strings.Contains(summary, "cluster of 3 nodes (3 ready) · 1 session,") {
		t.Errorf("summary %q, want a cluster of 3 ready nodes holding the 1 session", summary)
	}
	// The session's copies: one primary and a backup on the nodes.
	primary, backup := 0, 0
	for _, n := range []string{"n1", "n2", "n3"} {
		cell := strings.TrimSpace(evalIn[string](t, b, rowJS(n, "sessions")))
		p, bk, ok := strings.Cut(cell, " / ")
		pn, err1 := strconv.Atoi(strings.TrimSpace(p))
		bn, err2 := strconv.Atoi(strings.TrimSpace(bk))
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("sessions cell of %s: %q, want primary / backup", n, cell)
		}
		primary, backup = primary+pn, backup+bn
	}
	if primary != 1 || backup < 1 {
		t.Errorf("the page shows %d primary and %d backup copies, want the 1 session with a backup", primary, backup)
	}
	if r := evalIn[string](t, b, rowJS(home, "requests")); r == "" || r == "0" {
		t.Errorf("the page shows %q requests for the session's node %s", r, home)
	}

	// The live chart: requests of the session go to its node, and the
	// chart (fetching /api/rates with the browser's credentials) shows
	// them.
	stop := make(chan struct{})
	load := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				load <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			r, err := request(ctx, client, "GET", lb.url+"/counter", cookie, nil)
			if err != nil || r.status != 200 {
				load <- fmt.Errorf("GET /counter #%d: %v %d %s", i, err, r.status, r.body)
				return
			}
		}
	}()
	waitFor(t, b, 20*time.Second, "the chart shows the session's node's requests",
		fmt.Sprintf(`parseFloat((document.querySelector('#rates-legend li[data-route=%q]') || {dataset: {}}).dataset.rate) > 0`, home))
	// A line of a few points: the chart polls every 2 s.
	waitFor(t, b, 15*time.Second, "the chart draws a line for the session's node",
		fmt.Sprintf(`((document.querySelector('#rates polyline[data-route=%q]') || {}).getAttribute || (() => ""))
			.call(document.querySelector('#rates polyline[data-route=%q]'), "points").split(" ").length >= 3`, home, home))
	// Reloaded, the page's Rate column (no JavaScript needed) has the
	// rate too, and the chart its history at once.
	b.do(t, "reload the manager page", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#rates polyline`)))
	close(stop)
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	if r := evalIn[string](t, b, rowJS(home, "rate")); !strings.HasSuffix(r, "/s") || strings.HasPrefix(r, "0.0") {
		t.Errorf("the Rate column of %s: %q, want requests per second", home, r)
	}
	if n := evalIn[int](t, b, `document.querySelectorAll("#rates polyline").length`); n != 3 {
		t.Errorf("the chart has %d lines, want one per member", n)
	}
	if s := evalIn[string](t, b, `document.getElementById("rates-status").textContent`); !strings.HasPrefix(s, "Live:") {
		t.Errorf("the chart's status: %q", s)
	}
	b.screenshot(t, "page-2-manager.png")

	// Drain the session's node with its button.
	b.do(t, "press Drain", chromedp.Click(chromedp.CSS(`tr[data-route="`+home+`"] button[value="drain"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	if f := evalIn[string](t, b, `document.querySelector("p.flash").textContent`); f != home+": draining: only the requests of its own sessions" {
		t.Errorf("flash after Drain: %q", f)
	}
	if s := evalIn[string](t, b, rowJS(home, "state")); s != "draining" {
		t.Errorf("after Drain the page shows %s as %q, want draining", home, s)
	}
	if c := evalIn[string](t, b, fmt.Sprintf(`document.querySelector('tr[data-route=%q]').className`, home)); c != "state-draining" {
		t.Errorf("row class %q after Drain", c)
	}
	b.screenshot(t, "page-3-drained.png")

	// The API agrees, and the session still goes to its node (drain
	// keeps a member's own sessions).
	r, err := bearerGet(ctx, lb.manager+"/api/members/"+home, lb.token)
	var m struct{ State string }
	if err != nil || json.Unmarshal(r.body, &m) != nil || m.State != "draining" {
		t.Errorf("GET /api/members/%s after Drain: %v %s", home, err, r.body)
	}
	r, err = request(ctx, client, "GET", lb.url+"/counter", cookie, nil)
	var c struct{ Node string }
	if err != nil || json.Unmarshal(r.body, &c) != nil || c.Node != home {
		t.Errorf("the session's request after Drain: %v %s, want it served by %s", err, r.body, home)
	}
	b.do(t, "press Enable", chromedp.Click(chromedp.CSS(`tr[data-route="`+home+`"] button[value="enable"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-route="`+home+`"].state-ok`)))
}

// bearerGet sends a GET with the manager's token.
func bearerGet(ctx context.Context, u, token string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, body: body}, err
}
