package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// Bounds of the test's waits.
const (
	buildTimeout   = 5 * time.Minute
	processTimeout = 3 * time.Minute // a child still running then is killed
	startTimeout   = 10 * time.Second
	stopTimeout    = 10 * time.Second
	httpTimeout    = 5 * time.Second
)

var build struct {
	once sync.Once
	dir  string // removed by TestMain
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// shoalBinary builds the shoal command once per test run (with the race
// detector when the tests run with it) and returns its path.
func shoalBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "shoal-e2e-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "shoal")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		args := []string{"build", "-o", build.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/shoal-go/shoal/cmd/shoal")
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("building shoal: %v", build.err)
	}
	return build.bin
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller at once.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len returns how many bytes were written so far: an offset for since.
func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// since returns what was written from offset on.
func (s *syncBuffer) since(offset int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if offset > len(b) {
		offset = len(b)
	}
	return string(b[offset:])
}

// node is a shoal process started by the test: a node, or any other
// invocation (then url is empty).
type node struct {
	name   string
	url    string // http://127.0.0.1:PORT
	gossip string // --cluster-listen, for cluster nodes
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before exited closes

	stopOnce sync.Once
	stopErr  error
}

var listeningRE = regexp.MustCompile(`msg="node listening" node=(\S+) addr=(\S+) url=(\S+)`)

// spawn starts `shoal args...` with stderr captured. The process is
// stopped (SIGTERM, then SIGKILL) when the test ends unless the test
// stopped, killed or reaped it itself; an exit the test did not ask for,
// or a race report on stderr, fails the test then.
func spawn(t *testing.T, name string, args ...string) *node {
	t.Helper()
	bin := shoalBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	n := &node{name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	n.cmd = exec.CommandContext(ctx, bin, args...)
	n.cmd.Stderr = n.stderr
	n.cmd.WaitDelay = stopTimeout
	if raceEnabled {
		// A race in the child makes it exit 66 with the report on stderr;
		// without one, it need not wait the default second at exit.
		n.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	if err := n.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting shoal %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	// Cleanups run last-registered first: stop the process, then release
	// ctx (which would kill it).
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s := n.stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
			t.Errorf("%s: data race reported; stderr:\n%s", name, s)
		}
	})
	return n
}

// startNode starts `shoal node --name name --listen 127.0.0.1:0 args...`
// and waits until it logs the address it listens on. The node is stopped
// when the test ends.
func startNode(t *testing.T, name string, args ...string) *node {
	t.Helper()
	return startNodeWithin(t, name, startTimeout, args...)
}

// startNodeWithin is startNode with a bound on the wait for the
// "node listening" line.
func startNodeWithin(t *testing.T, name string, within time.Duration, args ...string) *node {
	t.Helper()
	n := spawn(t, name, append([]string{"node", "--name", name, "--listen", "127.0.0.1:0"}, args...)...)
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listeningRE.FindStringSubmatch(n.stderr.String()); m != nil {
			if m[1] != name || m[3] != "http://"+m[2]+"/" {
				t.Fatalf("listening line %q: want node=%s and url=http://<addr>/", m[0], name)
			}
			n.url = "http://" + m[2]
			return n
		}
		select {
		case <-n.exited:
			t.Fatalf("shoal node %s exited (%v) before listening; stderr:\n%s", name, n.err, n.stderr)
		case <-deadline.C:
			t.Fatalf("shoal node %s did not log \"node listening\" within %v; stderr:\n%s", name, within, n.stderr)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the node's process (and only to it), waits for it
// to exit, and kills it if it has not within stopTimeout. It returns an
// error unless the process exited with status 0 after the SIGTERM. Calls
// after the first return the first one's result; after kill or reap it
// returns nil.
func (n *node) stop() error {
	n.stopOnce.Do(func() {
		select {
		case <-n.exited:
			n.stopErr = fmt.Errorf("exited before SIGTERM: %v; stderr:\n%s", n.err, n.stderr)
			return
		default:
		}
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			n.stopErr = fmt.Errorf("SIGTERM: %v", err)
		}
		select {
		case <-n.exited:
		case <-time.After(stopTimeout):
			n.cmd.Process.Kill()
			<-n.exited
			n.stopErr = fmt.Errorf("still running %v after SIGTERM, killed; stderr:\n%s", stopTimeout, n.stderr)
			return
		}
		if n.err != nil {
			n.stopErr = fmt.Errorf("exit after SIGTERM: %v; stderr:\n%s", n.err, n.stderr)
		}
	})
	return n.stopErr
}

// kill sends SIGKILL to the node's process (and only to it) and waits for
// it to exit. It returns an error if the process had exited before.
func (n *node) kill() error {
	err := fmt.Errorf("kill: the process was stopped already")
	n.stopOnce.Do(func() {
		select {
		case <-n.exited:
			err = fmt.Errorf("exited before SIGKILL: %v; stderr:\n%s", n.err, n.stderr)
			return
		default:
		}
		err = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited // Wait returns once the kernel reaped it
	})
	return err
}

// reap waits up to within for the process to exit on its own and returns
// its exit code. ok is false if it was still running (it is then stopped
// when the test ends, and that stop's error is reported).
func (n *node) reap(within time.Duration) (code int, ok bool) {
	select {
	case <-n.exited:
	case <-time.After(within):
		return 0, false
	}
	n.stopOnce.Do(func() {})
	return n.cmd.ProcessState.ExitCode(), true
}

// pid is the process id, for messages.
func (n *node) pid() int { return n.cmd.Process.Pid }

// tail returns the last k lines of the node's stderr, indented, for
// failure messages.
func (n *node) tail(k int) string {
	lines := strings.Split(strings.TrimRight(n.stderr.String(), "\n"), "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// reply is what the client saw of one response.
type reply struct {
	status  int
	cookies []string // the Set-Cookie headers, as sent
	body    []byte
}

// client has no cookie jar: each request carries exactly the cookie the
// test gives it, and the test sees exactly the cookies the server sets.
var client = &http.Client{Timeout: httpTimeout}

// request sends one request with c. cookie, if not empty, is sent as the
// whole Cookie header; form, if not nil, as a urlencoded body.
func request(ctx context.Context, c *http.Client, method, rawURL, cookie string, form url.Values) (reply, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return reply{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("reading body: %w", err)
	}
	return reply{status: resp.StatusCode, cookies: resp.Header.Values("Set-Cookie"), body: b}, nil
}

// do sends one request to the node with client, failing the test if it
// gets no response.
func (n *node) do(t *testing.T, method, path, cookie string, form url.Values) reply {
	t.Helper()
	r, err := request(t.Context(), client, method, n.url+path, cookie, form)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.name, err)
	}
	return r
}

// sessionCookie returns the one JSESSIONID cookie r sets, raw and parsed.
func sessionCookie(t *testing.T, r reply) (string, *http.Cookie) {
	t.Helper()
	raw, c, err := findSessionCookie(r)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil {
		t.Fatalf("response sets no JSESSIONID cookie (%q), want 1", r.cookies)
	}
	return raw, c
}

// findSessionCookie returns the JSESSIONID cookie r sets, or nil if it
// sets none; more than one is an error.
func findSessionCookie(r reply) (string, *http.Cookie, error) {
	var raw []string
	for _, line := range r.cookies {
		if strings.HasPrefix(line, "JSESSIONID=") {
			raw = append(raw, line)
		}
	}
	switch len(raw) {
	case 0:
		return "", nil, nil
	case 1:
	default:
		return "", nil, fmt.Errorf("response sets %d JSESSIONID cookies (%q), want at most 1", len(raw), r.cookies)
	}
	c, err := http.ParseSetCookie(raw[0])
	if err != nil {
		return "", nil, fmt.Errorf("Set-Cookie %q: %v", raw[0], err)
	}
	return raw[0], c, nil
}
