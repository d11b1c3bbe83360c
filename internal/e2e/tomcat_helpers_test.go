package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Where Debian's tomcat10 package puts Tomcat 10 (CATALINA_HOME), and
// what the tests need of it.
const (
	tomcatHome       = "/usr/share/tomcat10"
	tomcatInstallFix = "install it: apt-get install -y tomcat10"
	// tomcatStartTimeout bounds a Tomcat's start: 3 to 6 s on a quiet
	// machine, much more on a loaded one.
	tomcatStartTimeout = 60 * time.Second
	// tomcatStopTimeout bounds its stop after SIGTERM.
	tomcatStopTimeout = 20 * time.Second
	// tomcatStartTries bounds the starts with new ports when a port
	// picked free was taken in between.
	tomcatStartTries = 3
)

// tomcatFiles are the files of the tomcat10 package the tests use.
var tomcatFiles = []string{"bin/catalina.sh", "bin/bootstrap.jar", "bin/tomcat-juli.jar", "etc/web.xml",
	"etc/catalina.properties", "lib/catalina.jar", "lib/jasper.jar"}

// tomcatInstalled fails the test, saying what is missing and how to
// install it, unless Debian's tomcat10 and a java are there: these
// tests are about shoal's balancer in front of a real Tomcat, and a
// missing one must not pass as a success.
func tomcatInstalled(t *testing.T) {
	t.Helper()
	for _, f := range tomcatFiles {
		if _, err := os.Stat(filepath.Join(tomcatHome, f)); err != nil {
			t.Fatalf("Tomcat 10 is not installed (package tomcat10: %v); %s", err, tomcatInstallFix)
		}
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("no java in PATH for Tomcat 10 (package tomcat10 depends on one: %v); %s", err, tomcatInstallFix)
	}
}

// tomcat is a Tomcat 10 node started by a test: its own CATALINA_BASE
// in a temporary directory, the package's CATALINA_HOME, the JSP app of
// testdata/tomcat as its ROOT, an HTTP and an AJP connector (with a
// secret) on free loopback ports, and jvmRoute set to its route. It runs
// in the foreground (catalina.sh run, which execs java) in its own
// process group, so that no child can outlive it unseen.
type tomcat struct {
	route   string
	url     string // http://127.0.0.1:PORT, the HTTP connector
	ajpAddr string // 127.0.0.1:PORT, the AJP connector
	secret  string
	base    string
	cmd     *exec.Cmd
	out     *syncBuffer // its console: Tomcat logs there
	exited  chan struct{}
	killed  bool
}

// startTomcats starts a Tomcat node for each route, all at once (each
// takes seconds), with AJP secret secret; waits until each has started
// (its "Server startup" line, both connectors accepting); and stops
// them when the test ends.
func startTomcats(t *testing.T, secret string, routes ...string) []*tomcat {
	t.Helper()
	out := make([]*tomcat, len(routes))
	errs := make([]error, len(routes))
	var wg sync.WaitGroup
	for i, route := range routes {
		wg.Go(func() { out[i], errs[i] = startTomcat(t, route, secret) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// startTomcat starts one Tomcat node, with other ports when one it
// picked was taken in between. It calls no t.Fatal: it runs on other
// goroutines than the test's.
func startTomcat(t *testing.T, route, secret string) (*tomcat, error) {
	var last error
	for range tomcatStartTries {
		tc, err := tryStartTomcat(t, route, secret)
		if !errors.Is(err, errPortTaken) {
			return tc, err
		}
		last = err
	}
	return nil, fmt.Errorf("Tomcat %s: ports taken %d times in a row: %w", route, tomcatStartTries, last)
}

// errPortTaken is a Tomcat start that failed because a port picked free
// was taken in between: the caller tries other ports.
var errPortTaken = errors.New("a port was taken")

// loopbackPort returns a loopback TCP port that was free a moment ago.
func loopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tryStartTomcat(t *testing.T, route, secret string) (*tomcat, error) {
	base := filepath.Join(t.TempDir(), route)
	httpPort, err := loopbackPort()
	if err != nil {
		return nil, err
	}
	ajpPort, err := loopbackPort()
	if err != nil {
		return nil, err
	}
	tc := &tomcat{route: route, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		ajpAddr: fmt.Sprintf("127.0.0.1:%d", ajpPort), secret: secret, base: base,
		out: &syncBuffer{}, exited: make(chan struct{})}
	if err := tc.writeBase(httpPort, ajpPort); err != nil {
		return nil, fmt.Errorf("Tomcat %s: writing CATALINA_BASE %s: %w", route, base, err)
	}
	tc.cmd = exec.Command(filepath.Join(tomcatHome, "bin", "catalina.sh"), "run")
	tc.cmd.Env = append(os.Environ(),
		"CATALINA_HOME="+tomcatHome, "CATALINA_BASE="+base, "CATALINA_TMPDIR="+filepath.Join(base, "temp"),
		"CATALINA_PID=", "JAVA_OPTS=",
		// shoal.test.node: what the pages print as "node", apart from
		// the session id's suffix (jvmRoute), so that the test can
		// check the two agree. The JIT and GC options shorten the start.
		"CATALINA_OPTS=-Dshoal.test.node="+route+" -Djava.security.egd=file:/dev/./urandom "+
			"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -Xmx256m")
	tc.cmd.Stdout, tc.cmd.Stderr = tc.out, tc.out
	tc.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := tc.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting Tomcat %s: %w", route, err)
	}
	go func() {
		tc.cmd.Wait()
		close(tc.exited)
	}()
	t.Cleanup(func() { tc.stop(t) })

	var started, taken bool
	poll(tomcatStartTimeout, func() bool {
		select {
		case <-tc.exited:
			return true
		default:
		}
		out := tc.out.String()
		taken = strings.Contains(out, "BindException") || strings.Contains(out, "Address already in use")
		started = strings.Contains(out, "Server startup in")
		return taken || started
	})
	switch {
	case taken:
		tc.stop(t)
		return nil, fmt.Errorf("%w: %s", errPortTaken, tail(tc.out.String(), 5))
	case !started:
		select {
		case <-tc.exited:
			return nil, fmt.Errorf("Tomcat %s exited at start (%v); its console:\n%s", route, tc.cmd.ProcessState, tail(tc.out.String(), 40))
		default:
		}
		return nil, fmt.Errorf("Tomcat %s (pid %d) did not log \"Server startup\" within %v; its console:\n%s",
			route, tc.cmd.Process.Pid, tomcatStartTimeout, tail(tc.out.String(), 40))
	}
	for _, addr := range []string{strings.TrimPrefix(tc.url, "http://"), tc.ajpAddr} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil, fmt.Errorf("Tomcat %s started, but %s does not accept connections (%v); its console:\n%s",
				route, addr, err, tail(tc.out.String(), 40))
		}
		c.Close()
	}
	return tc, nil
}

// placeholderRE matches a placeholder of server.xml.in.
var placeholderRE = regexp.MustCompile(`@[A-Z_]+@`)

// writeBase writes the node's CATALINA_BASE: conf (server.xml from the
// template, the package's web.xml and catalina.properties, a logging
// setup that writes to the console only), the app as webapps/ROOT, and
// the empty directories Tomcat writes to.
func (tc *tomcat) writeBase(httpPort, ajpPort int) error {
	for _, d := range []string{"conf", "logs", "temp", "work", "webapps"} {
		if err := os.MkdirAll(filepath.Join(tc.base, d), 0o755); err != nil {
			return err
		}
	}
	tmpl, err := os.ReadFile(filepath.Join("testdata", "tomcat", "server.xml.in"))
	if err != nil {
		return err
	}
	server := strings.NewReplacer("@HTTP_PORT@", fmt.Sprint(httpPort), "@AJP_PORT@", fmt.Sprint(ajpPort),
		"@AJP_SECRET@", tc.secret, "@ROUTE@", tc.route).Replace(string(tmpl))
	if m := placeholderRE.FindString(server); m != "" {
		return fmt.Errorf("server.xml.in: placeholder %s is not filled in", m)
	}
	if err := os.WriteFile(filepath.Join(tc.base, "conf", "server.xml"), []byte(server), 0o644); err != nil {
		return err
	}
	for _, f := range []string{"web.xml", "catalina.properties"} {
		b, err := os.ReadFile(filepath.Join(tomcatHome, "etc", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tc.base, "conf", f), b, 0o644); err != nil {
			return err
		}
	}
	logging, err := os.ReadFile(filepath.Join("testdata", "tomcat", "logging.properties"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tc.base, "conf", "logging.properties"), logging, 0o644); err != nil {
		return err
	}
	return os.CopyFS(filepath.Join(tc.base, "webapps", "ROOT"), os.DirFS(filepath.Join("testdata", "tomcat", "app")))
}

// kill sends SIGKILL to the Tomcat's java (and only to it) and waits
// for it to exit.
func (tc *tomcat) kill(t *testing.T) {
	t.Helper()
	tc.killed = true
	if err := tc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 Tomcat %s (pid %d): %v", tc.route, tc.cmd.Process.Pid, err)
	}
	select {
	case <-tc.exited:
	case <-time.After(tomcatStopTimeout):
		t.Fatalf("Tomcat %s (pid %d) still running %v after SIGKILL", tc.route, tc.cmd.Process.Pid, tomcatStopTimeout)
	}
}

// stop sends SIGTERM to the Tomcat the test started (Tomcat stops
// cleanly on it), waits, kills it if it is still running after
// tomcatStopTimeout, then checks that nothing is left in its process
// group, killing what is (by the group's id, which is its pid).
func (tc *tomcat) stop(t *testing.T) {
	pid := tc.cmd.Process.Pid
	select {
	case <-tc.exited:
		if !tc.killed && tc.cmd.ProcessState != nil && !tc.cmd.ProcessState.Success() &&
			!strings.Contains(tc.out.String(), "BindException") {
			t.Errorf("Tomcat %s (pid %d) exited on its own (%v); its console:\n%s", tc.route, pid, tc.cmd.ProcessState,
				tail(tc.out.String(), 20))
		}
	default:
		tc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-tc.exited:
		case <-time.After(tomcatStopTimeout):
			t.Errorf("Tomcat %s (pid %d) still running %v after SIGTERM; killed", tc.route, pid, tomcatStopTimeout)
			tc.cmd.Process.Kill()
			<-tc.exited
		}
	}
	gone := poll(stopTimeout, func() bool {
		return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
	})
	if !gone {
		t.Errorf("Tomcat %s's children (process group %d) still running %v after it exited; killed", tc.route, pid, stopTimeout)
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// tomcatReply is what the app's pages answer.
type tomcatReply struct {
	Node    string `json:"node"`
	User    string `json:"user"`
	Count   int    `json:"count"`
	Session string `json:"session"`
}
