package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog
// handler and the reads of a test.
type syncBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// summary returns the log lines that explain a failed test: records at
// info level and up, and memberlist's probe and suspicion lines.
func (b *syncBuffer) summary() string {
	var out []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		if !strings.Contains(line, "level=DEBUG") ||
			strings.Contains(line, "Suspect") || strings.Contains(line, "Marking") ||
			strings.Contains(line, "Refuting") || strings.Contains(line, "Failed") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// countLines returns how many log lines contain all of subs.
func (b *syncBuffer) countLines(subs ...string) int {
	n := 0
	for line := range strings.SplitSeq(b.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// eventRecorder keeps the events a member's OnEvent received.
type eventRecorder struct {
	mu     sync.Mutex // protects events, at
	events []Event
	at     []time.Time
	// inCall detects concurrent OnEvent calls.
	inCall atomic.Int32
	// concurrent is set if two calls overlapped.
	concurrent atomic.Bool
}

func (r *eventRecorder) add(ev Event) {
	if r.inCall.Add(1) != 1 {
		r.concurrent.Store(true)
	}
	defer r.inCall.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.at = append(r.at, time.Now())
}

// find returns the time of the first event of kind about name.
func (r *eventRecorder) find(kind EventKind, name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range r.events {
		if ev.Kind == kind && ev.Member.Name == name {
			return r.at[i], true
		}
	}
	return time.Time{}, false
}

func (r *eventRecorder) count(kind EventKind, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == kind && ev.Member.Name == name {
			n++
		}
	}
	return n
}

// testMember is a Membership with its events and log captured.
type testMember struct {
	*Membership
	events *eventRecorder
	logs   *syncBuffer
}

// newTestConfig returns a local config for a node named name, with
// tolerantTiming.
func newTestConfig(name string, key []byte) *Config {
	cfg := DefaultLocalConfig()
	tolerantTiming(cfg)
	cfg.Name = name
	cfg.HTTPAddr = name + ".test:8080" // only gossiped, never dialled
	cfg.ReplAddr = name + ".test:7070"
	cfg.Key = key
	return cfg
}

// tolerantTiming slows failure detection down for the tests: they run
// with -race beside other packages' tests on CI's two cores, where a member
// can be starved of CPU for longer than the presets' sub-second detection
// allows, and a live member declared dead fails a test that is not about
// timing. Here a member must stall for about 2 s before it is declared
// dead. BenchmarkDeadDetection measures the presets' own timing.
func tolerantTiming(c *Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 8
	c.AwarenessMaxMultiplier = 8
}

// startMember starts a member on 127.0.0.1 with a free gossip port.
// mutate, if not nil, adjusts its config first. The member is closed when
// the test ends.
func startMember(tb testing.TB, name string, key []byte, mutate func(*Config)) *testMember {
	tb.Helper()
	tm := &testMember{events: &eventRecorder{}, logs: &syncBuffer{}}
	cfg := newTestConfig(name, key)
	cfg.Logger = slog.New(slog.NewTextHandler(tm.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var self atomic.Pointer[Membership]
	cfg.OnEvent = func(ev Event) {
		tm.events.add(ev)
		if m := self.Load(); m != nil {
			_ = m.Members() // OnEvent runs with no lock of ours held: this must not deadlock
		}
	}
	if mutate != nil {
		mutate(cfg)
	}
	m, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%s): %v", name, err)
	}
	self.Store(m)
	tm.Membership = m
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Close(%s): %v", name, err)
		}
		if tb.Failed() {
			tb.Logf("%s's log (info and up, and memberlist's failure detection):\n%s", name, tm.logs.summary())
		}
		if tm.events.concurrent.Load() {
			tb.Errorf("%s: OnEvent was called concurrently", name)
		}
	})
	return tm
}

// startCluster starts n members named n1..nN with key and joins them
// through the first; it returns once every member sees all of them.
func startCluster(tb testing.TB, n int, key []byte) []*testMember {
	tb.Helper()
	return startClusterWith(tb, n, key, nil)
}

// startClusterWith is startCluster with mutate applied to each config.
func startClusterWith(tb testing.TB, n int, key []byte, mutate func(*Config)) []*testMember {
	tb.Helper()
	ms := make([]*testMember, n)
	for i := range ms {
		ms[i] = startMember(tb, fmt.Sprintf("n%d", i+1), key, mutate)
	}
	for _, m := range ms[1:] {
		if _, err := m.Join(context.Background(), []string{ms[0].Self().Gossip}); err != nil {
			tb.Fatalf("%s joins: %v", m.Self().Name, err)
		}
	}
	eventually(tb, 10*time.Second, "every member sees the whole cluster", func() bool {
		for _, m := range ms {
			if len(m.Members()) != n {
				return false
			}
		}
		return true
	})
	return ms
}

// eventually polls cond until it holds, failing the test after within.
func eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", within, what)
		}
		<-tick.C
	}
}

func mustKey(tb testing.TB) []byte {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// gossipAddrs returns the gossip addresses of ms.
func gossipAddrs(ms []*testMember) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Self().Gossip)
	}
	return out
}
