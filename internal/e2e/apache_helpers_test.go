package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

// Where Debian's apache2 package puts Apache httpd.
const (
	apacheBinary     = "/usr/sbin/apache2"
	apacheModuleDir  = "/usr/lib/apache2/modules"
	apacheInstallFix = "install it: apt-get install -y --no-install-recommends apache2"
	// apacheStartTimeout bounds the wait for Apache to answer.
	apacheStartTimeout = 10 * time.Second
)

// apacheModules are the modules the tests' Apache loads (mod_unixd,
// mod_log_config are compiled in).
var apacheModules = []string{
	"mpm_event", "authz_core", "proxy", "proxy_ajp", "proxy_http",
	"slotmem_shm", "proxy_balancer", "lbmethod_byrequests",
}

// apacheInstalled returns the apache2 binary, failing the test with
// what is missing and how to install it: these tests are about working
// behind a real Apache httpd, and a missing one must not pass as a
// success.
func apacheInstalled(t *testing.T) string {
	t.Helper()
	bin := apacheBinary
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("apache2")
		if lerr != nil {
			t.Fatalf("Apache httpd is not installed (no %s, no apache2 in PATH); %s", apacheBinary, apacheInstallFix)
		}
		bin = p
	}
	for _, m := range apacheModules {
		if _, err := os.Stat(filepath.Join(apacheModuleDir, "mod_"+m+".so")); err != nil {
			t.Fatalf("Apache httpd module mod_%s is missing (%v); %s", m, err, apacheInstallFix)
		}
	}
	return bin
}

// apache is an Apache httpd started by a test, in the foreground, in its
// own process group (whose id is its pid), so that its children can be
// checked gone.
type apache struct {
	url      string // http://127.0.0.1:PORT
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	stderr   *syncBuffer
	errorLog string
}

// freePort returns a free loopback TCP port for a process to listen on
// (see childPort).
func freePort(t *testing.T) int {
	t.Helper()
	return childPort(t, false)
}

// startApache writes an httpd.conf with the proxy configuration proxy
// into a temporary directory, starts `apache2 -d DIR -f httpd.conf
// -DFOREGROUND` on a free loopback port, and waits until it answers.
// It is stopped (SIGTERM to its pid, then its group checked empty) when
// the test ends.
func startApache(t *testing.T, proxy string) *apache {
	t.Helper()
	bin := apacheInstalled(t)
	dir := t.TempDir()
	// Its children run as www-data when the test runs as root: they
	// must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	a := &apache{url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, exited: make(chan struct{}),
		stderr: &syncBuffer{}, errorLog: filepath.Join(dir, "error.log")}
	var conf strings.Builder
	fmt.Fprintf(&conf, "ServerRoot %q\nServerName 127.0.0.1\nListen 127.0.0.1:%d\n", dir, port)
	if os.Geteuid() == 0 {
		conf.WriteString("User www-data\nGroup www-data\n")
	}
	fmt.Fprintf(&conf, "PidFile %q\nDefaultRuntimeDir %q\nMutex pthread default\n", filepath.Join(dir, "httpd.pid"), dir)
	fmt.Fprintf(&conf, "ErrorLog %q\nLogLevel warn proxy:info proxy_balancer:info proxy_ajp:info\n", a.errorLog)
	fmt.Fprintf(&conf, "LogFormat \"%%h \\\"%%r\\\" %%>s route=%%{BALANCER_WORKER_ROUTE}e sticky=%%{BALANCER_SESSION_ROUTE}e\" bal\nCustomLog %q bal\n",
		filepath.Join(dir, "access.log"))
	for _, m := range apacheModules {
		fmt.Fprintf(&conf, "LoadModule %s_module %s\n", m, filepath.Join(apacheModuleDir, "mod_"+m+".so"))
	}
	conf.WriteString("StartServers 1\nServerLimit 2\nThreadsPerChild 16\nMaxRequestWorkers 32\n")
	conf.WriteString(proxy)
	confPath := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	a.cmd = exec.Command(bin, "-d", dir, "-f", confPath, "-DFOREGROUND")
	a.cmd.Stdout, a.cmd.Stderr = a.stderr, a.stderr
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() { a.stop(t) })

	ok := poll(apacheStartTimeout, func() bool {
		select {
		case <-a.exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-a.exited:
		t.Fatalf("apache2 exited at start (%v); its output:\n%s\nerror log:\n%s\nconfig:\n%s", a.cmd.ProcessState, a.stderr, a.log(), conf.String())
	default:
	}
	if !ok {
		t.Fatalf("apache2 (pid %d) not listening on port %d within %v; error log:\n%s", a.cmd.Process.Pid, port, apacheStartTimeout, a.log())
	}
	return a
}

// log returns Apache's error log.
func (a *apache) log() string {
	b, _ := os.ReadFile(a.errorLog)
	return string(b)
}

// accessLog returns Apache's access log (with the balancer's routes).
func (a *apache) accessLog() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "access.log"))
	return string(b)
}

// stop sends SIGTERM to the Apache process the test started (it stops
// its children and exits), waits for it, then checks that nothing is
// left in its process group, killing what is (by the group's id, which
// is that pid).
func (a *apache) stop(t *testing.T) {
	pid := a.cmd.Process.Pid
	select {
	case <-a.exited:
	default:
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(stopTimeout):
			t.Errorf("apache2 (pid %d) still running %v after SIGTERM; killed", pid, stopTimeout)
			a.cmd.Process.Kill()
			<-a.exited
		}
	}
	gone := poll(stopTimeout, func() bool {
		return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
	})
	if !gone {
		t.Errorf("apache2's children (process group %d) still running %v after it exited; killed", pid, stopTimeout)
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// ajpAddrRE matches a node's "node serving AJP" line.
var ajpAddrRE = regexp.MustCompile(`msg="node serving AJP" node=\S+ addr=(\S+) secret=true`)

// ajpAddr returns the address a node serves AJP on, from its log.
func (n *node) ajpAddr(t *testing.T) string {
	t.Helper()
	m := ajpAddrRE.FindStringSubmatch(n.stderr.String())
	if m == nil {
		t.Fatalf("%s logged no \"node serving AJP\" line with a secret; log tail:\n%s", n.name, n.tail(20))
	}
	return m[1]
}

// viaApache is a session followed through Apache: each request's
// answer says which node served it.
type viaApache struct {
	a       *apache
	s       *counterSession
	history []string
}

// loginVia logs user in through Apache and returns the session and the
// node that served the login.
func loginVia(t *testing.T, a *apache, user string) (*viaApache, string) {
	t.Helper()
	r, err := request(t.Context(), client, "POST", a.url+"/login", "", url.Values{"user": {user}})
	if err != nil {
		t.Fatalf("POST /login through Apache: %v; Apache's error log:\n%s", err, a.log())
	}
	if r.status != http.StatusOK {
		t.Fatalf("POST /login through Apache = %d %q, want 200; Apache's error log:\n%s", r.status, r.body, a.log())
	}
	var body struct{ Node, User, Session string }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("login body %q: %v", r.body, err)
	}
	_, c := sessionCookie(t, r)
	id, err := session.ParseID(c.Value)
	if err != nil || id.Route != body.Node || body.Session != c.Value || body.User != user {
		t.Fatalf("login through Apache: cookie JSESSIONID=%s (%v), body %s: want <base>.<the serving node> for %s", c.Value, err, r.body, user)
	}
	return &viaApache{a: a, s: &counterSession{user: user, id: c.Value, base: id.Base}}, body.Node
}

// next sends GET prefix+/counter through Apache with the session's
// cookie and checks that the count goes on by one for the same user and
// session; a Set-Cookie may only rebind the same base to the node that
// served. It returns the serving node and whether the id was rebound.
func (v *viaApache) next(t *testing.T, prefix, step string) (served string, rebound bool) {
	t.Helper()
	s := v.s
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: GET %s/counter through Apache with JSESSIONID=%s (count %d so far): %s\nthe client's last requests:\n\t%s\nApache's access log (tail):\n%s\nApache's error log:\n%s",
			step, prefix, s.id, s.count, fmt.Sprintf(format, args...),
			strings.Join(v.history[max(0, len(v.history)-8):], "\n\t"), tail(v.a.accessLog(), 12), tail(v.a.log(), 20))
	}
	r, err := request(t.Context(), client, "GET", v.a.url+prefix+"/counter", "JSESSIONID="+s.id, nil)
	if err != nil {
		fail("%v", err)
	}
	if r.status != http.StatusOK {
		fail("status %d %q, want 200", r.status, r.body)
	}
	var c counterReply
	if err := json.Unmarshal(r.body, &c); err != nil {
		fail("body %q: %v", r.body, err)
	}
	if c.User != s.user || c.Count != s.count+1 {
		fail("got user %q count %d from %s, want user %q count %d", c.User, c.Count, c.Node, s.user, s.count+1)
	}
	_, ck, err := findSessionCookie(r)
	if err != nil {
		fail("%v", err)
	}
	if ck != nil {
		id, err := session.ParseID(ck.Value)
		if err != nil || id.Base != s.base || id.Route != c.Node || ck.Value == s.id {
			fail("Set-Cookie JSESSIONID=%s (%v) from %s, want %s.%s: the same session rebound to the node that served it", ck.Value, err, c.Node, s.base, c.Node)
		}
		s.id, rebound = ck.Value, true
	}
	if c.Session != s.id {
		fail("body says session %q, want %q", c.Session, s.id)
	}
	s.count = c.Count
	v.history = append(v.history, fmt.Sprintf("%s on %s: count %d, session %s", step, c.Node, c.Count, s.id))
	return c.Node, rebound
}

// tail returns the last k lines of s, indented.
func tail(s string, k int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// apacheGet is one GET through Apache with a bounded context, for
// polling.
func apacheGet(ctx context.Context, rawURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := request(ctx, client, "GET", rawURL, "", nil)
	return r.status, err
}
