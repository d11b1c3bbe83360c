package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// run calls Run with args and returns what it wrote.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCommandHelp(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, errOut, err := run(t, args...)
				if err != nil {
					t.Fatalf("Run(%q) = %v, want nil", args, err)
				}
				if errOut != "" {
					t.Errorf("stderr = %q, want nothing", errOut)
				}
				for _, want := range []string{"shoal " + c.name + ": " + c.summary, "Usage:\n  shoal " + c.name, "\nExample:\n  shoal "} {
					if !strings.Contains(out, want) {
						t.Errorf("help lacks %q:\n%s", want, out)
					}
				}
			})
		}
	}
}

func TestNodeHelpListsFlags(t *testing.T) {
	out, _, err := run(t, "node", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--name NAME", "--listen ADDR", "(default 127.0.0.1:8080)",
		"--idle-timeout DURATION", "(default 30m0s)", "--max-sessions N",
		"--log-format FORMAT", "(default text)", "--log-level LEVEL", "(default INFO)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("node --help lacks %q:\n%s", want, out)
		}
	}
}

func TestShoalHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"-h"}, {"--help"}, {"help"}} {
		t.Run(strings.Join(append([]string{"shoal"}, args...), " "), func(t *testing.T) {
			out, _, err := run(t, args...)
			if err != nil {
				t.Fatalf("Run(%q) = %v, want nil", args, err)
			}
			if !strings.Contains(out, "Usage:\n  shoal <command>") {
				t.Errorf("no usage line:\n%s", out)
			}
			for _, c := range commands() {
				if !regexp.MustCompile(`(?m)^  ` + c.name + ` +` + regexp.QuoteMeta(c.summary) + `$`).MatchString(out) {
					t.Errorf("command %s not listed with its summary:\n%s", c.name, out)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"unknown command", []string{"frob"}, []string{`unknown command "frob"`, "'shoal help'"}},
		{"flag before command", []string{"--bogus"}, []string{`unknown flag "--bogus"`, "'shoal help'"}},
		{"unknown flag", []string{"node", "--bogus"}, []string{"flag provided but not defined: -bogus", "'shoal help node'"}},
		{"flag without value", []string{"node", "--name"}, []string{"flag needs an argument: -name", "'shoal help node'"}},
		{"no name", []string{"node"}, []string{"--name is required", "'shoal help node'"}},
		{"bad name", []string{"node", "--name", "bad.name"}, []string{"--name", `"bad.name"`, "1-64 characters of [A-Za-z0-9_-]"}},
		{"long name", []string{"node", "--name", strings.Repeat("n", 65)}, []string{"1-64 characters of [A-Za-z0-9_-]"}},
		{"bad log format", []string{"node", "--name", "n1", "--log-format", "xml"}, []string{`--log-format "xml": want text or json`}},
		{"bad log level", []string{"node", "--name", "n1", "--log-level", "loud"}, []string{`invalid value "loud" for flag -log-level`}},
		{"negative idle timeout", []string{"node", "--name", "n1", "--idle-timeout", "-1s"}, []string{"--idle-timeout -1s is negative"}},
		{"bad duration", []string{"node", "--name", "n1", "--idle-timeout", "soon"}, []string{`invalid value "soon" for flag -idle-timeout`}},
		{"negative max sessions", []string{"node", "--name", "n1", "--max-sessions", "-1"}, []string{"--max-sessions -1 is negative"}},
		{"node argument", []string{"node", "--name", "n1", "extra"}, []string{`unexpected argument "extra"`}},
		{"version argument", []string{"version", "extra"}, []string{`unexpected argument "extra"`, "'shoal help version'"}},
		{"help unknown", []string{"help", "frob"}, []string{`unknown command "frob"`, "'shoal help'"}},
		{"help two", []string{"help", "node", "version"}, []string{"at most one command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := run(t, tt.args...)
			if err == nil {
				t.Fatalf("Run(%q) = nil, want an error", tt.args)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("Run(%q) = %v, not an ErrUsage", tt.args, err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^shoal \S+ \(go[^)]+\)\n$`).MatchString(out) {
		t.Errorf("version output = %q, want \"shoal <version> (<go version>)\"", out)
	}

	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	out, _, err = run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "shoal v1.2.3 (go") {
		t.Errorf("version output with Version set = %q, want it to start \"shoal v1.2.3 (go\"", out)
	}
}

func TestNodeSessionConfig(t *testing.T) {
	tests := []struct {
		idle, want time.Duration
	}{
		{30 * time.Minute, 30 * time.Minute},
		{0, -1}, // no idle expiry; 0 would be the Manager's default
	}
	for _, tt := range tests {
		c := nodeConfig{name: "n1", idleTimeout: tt.idle, maxSessions: 7}
		got := c.sessionConfig(nil, nil)
		if got.IdleTimeout != tt.want || got.Route != "n1" || got.MaxSessions != 7 {
			t.Errorf("idle %v: got IdleTimeout %v, Route %q, MaxSessions %d; want %v, n1, 7",
				tt.idle, got.IdleTimeout, got.Route, got.MaxSessions, tt.want)
		}
	}
}

func TestBrowseURL(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080/"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "http://localhost:8080/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 80}, "http://localhost:80/"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9}, "http://[::1]:9/"},
	}
	for _, tt := range tests {
		if got := browseURL(tt.addr); got != tt.want {
			t.Errorf("browseURL(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
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

// waitForLine polls buf until a line contains substr and returns it. It
// fails the test after timeout, or if done delivers (the command ended).
func waitForLine(t *testing.T, buf *syncBuffer, substr string, done <-chan error, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		sc := bufio.NewScanner(strings.NewReader(buf.String()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), substr) {
				return sc.Text()
			}
		}
		select {
		case err := <-done:
			t.Fatalf("command ended (%v) before logging %q; stderr:\n%s", err, substr, buf)
		case <-deadline.C:
			t.Fatalf("no line with %q within %v; stderr:\n%s", substr, timeout, buf)
		case <-tick.C:
		}
	}
}

// listeningAddr returns the addr attribute of a "node listening" line.
func listeningAddr(t *testing.T, line, format string) string {
	t.Helper()
	if format == "json" {
		var v struct{ Msg, Node, Addr, URL string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("listening line %q: %v", line, err)
		}
		if v.Node != "n1" || v.URL != "http://"+v.Addr+"/" {
			t.Errorf("listening line %q: want node n1 and url http://<addr>/", line)
		}
		return v.Addr
	}
	m := regexp.MustCompile(`msg="node listening" node=n1 addr=(\S+) url=http://(\S+)/$`).FindStringSubmatch(line)
	if m == nil || m[1] != m[2] {
		t.Fatalf("listening line %q: want msg=\"node listening\" node=n1 addr=ADDR url=http://ADDR/", line)
	}
	return m[1]
}

// inProcessNode is `shoal node` run by Run in a goroutine of the test.
type inProcessNode struct {
	addr   string // the bound address, from the "node listening" line
	cancel context.CancelFunc
	done   chan error // Run's result
	stderr *syncBuffer
}

// startInProcess runs Run(ctx, ["node", "--name", "n1", "--listen",
// "127.0.0.1:0", extra...]) and waits until the node listens. The test's
// end stops it if the test did not.
func startInProcess(t *testing.T, format string, extra ...string) *inProcessNode {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	n := &inProcessNode{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	args := append([]string{"node", "--name", "n1", "--listen", "127.0.0.1:0", "--log-format", format}, extra...)
	go func() { n.done <- Run(ctx, args, io.Discard, n.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.done:
		case <-time.After(15 * time.Second):
			t.Errorf("node still running 15s after cancel; stderr:\n%s", n.stderr)
		}
	})
	line := waitForLine(t, n.stderr, "node listening", n.done, 10*time.Second)
	n.addr = listeningAddr(t, line, format)
	return n
}

// stop cancels the node's context and returns Run's result.
func (n *inProcessNode) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		n.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("Run did not return within 15s of cancel; stderr:\n%s", n.stderr)
		return nil
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

func TestNodeServesAndStops(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			n := startInProcess(t, format)
			for _, path := range []string{"/healthz/ready", "/healthz/live"} {
				resp, err := client.Get("http://" + n.addr + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := strings.TrimPrefix(path, "/healthz/")
				if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
					t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, want)
				}
				if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
					t.Errorf("GET %s set cookies %q: health checks must not touch sessions", path, c)
				}
			}
			// The demo app answers behind the session middleware.
			resp, err := client.Get("http://" + n.addr + "/counter")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`^JSESSIONID=[A-Za-z0-9_-]+\.n1;`).MatchString(resp.Header.Get("Set-Cookie")) {
				t.Errorf("GET /counter = %d, Set-Cookie %q; want 200 and a JSESSIONID ending .n1", resp.StatusCode, resp.Header.Get("Set-Cookie"))
			}

			if err := n.stop(t); err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
			if !strings.Contains(n.stderr.String(), "node stopped") {
				t.Errorf("no \"node stopped\" log line; stderr:\n%s", n.stderr)
			}
		})
	}
}

func TestNodeMaxSessions(t *testing.T) {
	n := startInProcess(t, "text", "--max-sessions", "1")
	for i, want := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		resp, err := client.Get("http://" + n.addr + "/counter")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("new session #%d: GET /counter = %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

func TestNodeListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = Run(ctx, []string{"node", "--name", "n1", "--listen", ln.Addr().String()}, io.Discard, io.Discard)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Run on a taken address = %v, want EADDRINUSE", err)
	}
	if errors.Is(err, ErrUsage) {
		t.Errorf("Run on a taken address = %v: not a usage error", err)
	}
}
