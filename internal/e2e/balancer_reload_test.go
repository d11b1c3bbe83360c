package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Bounds of the reload test's request stream.
const (
	reloadWorkers      = 4
	reloadMaxPerWorker = 5000
	reloadStreamFor    = 30 * time.Second
)

// nameServer is a backend that answers every request with its name.
func nameServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

// writeFileAtomic replaces path's content at once, as an editor that
// renames does, so that a reload never reads half a file.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// stream sends GET / to base from a few workers until stop is closed
// (or each has sent reloadMaxPerWorker, or reloadStreamFor passed), and
// counts the answers by backend name and the failures.
type stream struct {
	mu       sync.Mutex // protects hits and failures
	hits     map[string]int
	failures []string
	sent     atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startStream(ctx context.Context, base string) *stream {
	s := &stream{hits: map[string]int{}, stop: make(chan struct{})}
	deadline := time.Now().Add(reloadStreamFor)
	for range reloadWorkers {
		s.wg.Go(func() {
			for i := 0; i < reloadMaxPerWorker && time.Now().Before(deadline); i++ {
				select {
				case <-s.stop:
					return
				default:
				}
				s.sent.Add(1)
				r, err := request(ctx, client, "GET", base+"/", "", nil)
				s.mu.Lock()
				if err != nil || r.status != 200 {
					s.failures = append(s.failures, fmt.Sprintf("%d %v %s", r.status, err, r.body))
				} else {
					s.hits[string(r.body)]++
				}
				s.mu.Unlock()
			}
		})
	}
	return s
}

func (s *stream) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[name]
}

// end stops the stream and waits for its requests to finish.
func (s *stream) end() {
	close(s.stop)
	s.wg.Wait()
}

// TestBalancerReloadConfig: `shoal balancer --config FILE` re-reads the
// file on SIGHUP. A reload that adds a member and changes weights, under
// a stream of requests, fails none of them, and the new member gets
// traffic with the new weights; a broken file is refused with its file
// and line in the log, and the running config keeps serving.
func TestBalancerReloadConfig(t *testing.T) {
	n1, n2, n3 := nameServer(t, "n1"), nameServer(t, "n2"), nameServer(t, "n3")
	path := filepath.Join(t.TempDir(), "balancer.toml")
	member := func(route, url string, weight int) string {
		return fmt.Sprintf("\n[[member]]\nroute = %q\nurl = %q\nweight = %d\n", route, url, weight)
	}
	const head = "listen = \"127.0.0.1:0\"\nhealth-path = \"\"\n"
	writeFileAtomic(t, path, head+member("n1", n1.URL, 1)+member("n2", n2.URL, 1))

	lb := spawn(t, "balancer", "balancer", "--config", path)
	var base string
	if !poll(startTimeout, func() bool {
		m := balancerListeningRE.FindStringSubmatch(lb.stderr.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}) {
		t.Fatalf("the balancer did not log \"balancer listening\":\n%s", lb.stderr)
	}

	s := startStream(t.Context(), base)
	if !poll(10*time.Second, func() bool { return s.count("n1") > 20 && s.count("n2") > 20 }) {
		s.end()
		t.Fatalf("no traffic to n1 and n2 before the reload: %v, failures %q", s.hits, s.failures)
	}
	logged := lb.stderr.Len()
	writeFileAtomic(t, path, head+member("n1", n1.URL, 1)+member("n2", n2.URL, 3)+member("n3", n3.URL, 1))
	if err := lb.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloaded := regexp.MustCompile(`msg="config file reloaded" file=\S+ added=n3 removed="" changed="n2 weight 1→3"`)
	if !poll(10*time.Second, func() bool { return reloaded.MatchString(lb.stderr.since(logged)) }) {
		s.end()
		t.Fatalf("no \"config file reloaded\" line adding n3:\n%s", lb.tail(20))
	}
	// The stream goes on past the reload until n3 has had some of it.
	gotN3 := poll(10*time.Second, func() bool { return s.count("n3") > 20 })
	s.end()
	t.Logf("%d requests across the reload: %v", s.sent.Load(), s.hits)
	if len(s.failures) > 0 {
		t.Errorf("%d requests failed across the reload, want 0; first: %s", len(s.failures), s.failures[0])
	}
	if !gotN3 {
		t.Fatalf("n3 got %d requests after the reload, want some:\n%s", s.count("n3"), lb.tail(20))
	}

	// byrequests gives each member its weight's share of consecutive
	// requests: 1:3:1, give or take one for where the count starts.
	share := func(stage string) map[string]int {
		t.Helper()
		hits := map[string]int{}
		for i := range 50 {
			r, err := request(t.Context(), client, "GET", base+"/", "", nil)
			if err != nil || r.status != 200 {
				t.Fatalf("%s: request %d: %d %v %s\n%s", stage, i, r.status, err, r.body, lb.tail(20))
			}
			hits[string(r.body)]++
		}
		if hits["n2"] < 28 || hits["n1"] < 8 || hits["n1"] > 12 || hits["n3"] < 8 || hits["n3"] > 12 {
			t.Errorf("%s: 50 requests went %v, want about n1 10, n2 30, n3 10", stage, hits)
		}
		return hits
	}
	share("after the reload")

	// A broken file: refused with its file and line, and the running
	// config keeps serving.
	logged = lb.stderr.Len()
	writeFileAtomic(t, path, head+member("n1", n1.URL, 1)+member("n2", "ftp://x", 3)+member("n3", n3.URL, 1))
	if err := lb.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The line of n2's url: after head (2 lines), n1's block (5) and
	// n2's blank line, header and route.
	want := fmt.Sprintf(`%s:11: member \"n2\": url \"ftp://x\": want http:// URL`, path)
	var refused string
	if !poll(10*time.Second, func() bool {
		for line := range strings.SplitSeq(lb.stderr.since(logged), "\n") {
			if strings.Contains(line, `msg="config reload refused; the running config stays"`) {
				refused = line
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no \"config reload refused\" line for the broken file:\n%s", lb.tail(20))
	}
	if !strings.Contains(refused, want) {
		t.Errorf("refusal line:\n%s\nwant it to contain %s", refused, want)
	}
	share("after the refused reload")
	if strings.Contains(lb.stderr.since(logged), "config file reloaded") {
		t.Errorf("the broken file was applied:\n%s", lb.tail(20))
	}
}
