package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var demoPIDRE = regexp.MustCompile(`(?m)^  (n\d|balancer)\s+pid (\d+)$`)

// TestDemo runs `shoal demo` as a user would: the URL it prints serves the
// app through the balancer; killing the node that serves the session
// (kill -9) keeps the session and its count; Ctrl-C (SIGINT) stops every
// process the demo started.
func TestDemo(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cmd := exec.Command(shoalBinary(t), "demo", "--listen", addr)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if raceEnabled {
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pids := map[string]int{}
	t.Cleanup(func() {
		// Only if the test failed before its own SIGINT: stop the demo
		// (which stops its children), then make sure.
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
	})

	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case err := <-exited:
			t.Fatalf("shoal demo exited (%v) before it was ready:\n%s\n%s", err, stdout, stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal demo not ready within 90 s:\n%s\n%s", stdout, stderr)
		}
	}
	if !strings.Contains(stdout.String(), "http://"+addr+"/") {
		t.Fatalf("the demo does not print its URL http://%s/:\n%s", addr, stdout)
	}
	for _, m := range demoPIDRE.FindAllStringSubmatch(stdout.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		pids[m[1]] = pid
	}
	if len(pids) != 4 {
		t.Fatalf("want the PIDs of n1, n2, n3 and the balancer in the output, got %v:\n%s", pids, stdout)
	}

	base := "http://" + addr
	r, err := request(t.Context(), client, "POST", base+"/login", "", url.Values{"user": {"carol"}})
	if err != nil || r.status != 200 {
		t.Fatalf("login through the balancer: %d %v %s", r.status, err, r.body)
	}
	raw, _ := sessionCookie(t, r)
	cookie := raw
	count := func(want int) string {
		t.Helper()
		r, err := request(t.Context(), client, "GET", base+"/counter", cookie, nil)
		if err != nil || r.status != 200 {
			t.Fatalf("/counter #%d: %d %v %s\n%s", want, r.status, err, r.body, stderr)
		}
		var c struct {
			Node, User string
			Count      int
		}
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		if c.Count != want || c.User != "carol" {
			t.Fatalf("/counter: %s, want count %d for carol", r.body, want)
		}
		if nc, _, err := findSessionCookie(r); err == nil && nc != "" {
			cookie = nc
		}
		return c.Node
	}
	var served string
	for i := 1; i <= 3; i++ {
		served = count(i)
	}
	// kill -9 the node serving the session; the demo started it, and
	// goes on without it.
	if err := syscall.Kill(pids[served], syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s (pid %d): %v", served, pids[served], err)
	}
	for i := 4; i <= 8; i++ {
		if node := count(i); node == served {
			t.Fatalf("request %d served by the killed node %s", i, served)
		}
	}

	// Ctrl-C stops everything the demo started.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("shoal demo exited with %v after Ctrl-C:\n%s", err, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("shoal demo still running 60 s after Ctrl-C:\n%s", stderr)
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after the demo stopped: %v", name, pid, err)
		}
	}
}
