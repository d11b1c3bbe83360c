package membership

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestClusterSeesEachOther(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	var want []Member
	for _, m := range ms {
		self := m.Self()
		if self.Gossip == "" || !strings.HasPrefix(self.Gossip, "127.0.0.1:") {
			t.Fatalf("%s: Self().Gossip = %q, want 127.0.0.1:port", self.Name, self.Gossip)
		}
		want = append(want, Member{
			Name: self.Name, Role: RoleNode, State: StateJoining,
			HTTPAddr: self.Name + ".test:8080", ReplAddr: self.Name + ".test:7070", Gossip: self.Gossip,
		})
	}
	for _, m := range ms {
		got := m.Members()
		if len(got) != len(want) {
			t.Fatalf("%s: Members() = %+v, want %+v", m.Self().Name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: Members()[%d] = %+v, want %+v", m.Self().Name, i, got[i], want[i])
			}
		}
		for _, other := range want {
			if other.Name == m.Self().Name {
				continue
			}
			eventually(t, 5*time.Second, m.Self().Name+" gets EventJoin for "+other.Name, func() bool {
				return m.events.count(EventJoin, other.Name) == 1
			})
		}
	}
}

func TestSetStatePropagates(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	if err := ms[0].SetState(StateReady); err != nil {
		t.Fatalf("SetState(Ready): %v", err)
	}
	if got := ms[0].Self().State; got != StateReady {
		t.Fatalf("Self().State = %v, want ready", got)
	}
	for _, m := range ms[1:] {
		eventually(t, 5*time.Second, m.Self().Name+" sees n1 ready", func() bool {
			for _, mem := range m.Members() {
				if mem.Name == "n1" {
					return mem.State == StateReady
				}
			}
			return false
		})
		eventually(t, 5*time.Second, m.Self().Name+" gets EventUpdate for n1", func() bool {
			return m.events.count(EventUpdate, "n1") >= 1
		})
	}
	// Setting the same state again changes nothing and gossips nothing.
	if err := ms[0].SetState(StateReady); err != nil {
		t.Fatalf("SetState(Ready) again: %v", err)
	}
	if err := ms[0].SetState(State(9)); err == nil {
		t.Fatal("SetState(9): no error")
	}
}

func TestLeaveIsSeenAsLeave(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	leaver := ms[2]
	if err := leaver.SetState(StateLeaving); err != nil {
		t.Fatalf("SetState(Leaving): %v", err)
	}
	if err := leaver.Leave(5 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, m := range ms[:2] {
		eventually(t, 5*time.Second, m.Self().Name+" gets EventLeave for n3", func() bool {
			_, ok := m.events.find(EventLeave, "n3")
			return ok
		})
		if n := m.events.count(EventDead, "n3"); n != 0 {
			t.Errorf("%s got %d EventDead for n3, want none", m.Self().Name, n)
		}
		if got := len(m.Members()); got != 2 {
			t.Errorf("%s: %d members after n3 left, want 2", m.Self().Name, got)
		}
	}
	if err := leaver.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("second Leave = %v, want ErrClosed", err)
	}
	if err := leaver.Close(); err != nil {
		t.Errorf("Close after Leave = %v, want nil", err)
	}
	if err := leaver.SetState(StateReady); !errors.Is(err, ErrClosed) {
		t.Errorf("SetState after Leave = %v, want ErrClosed", err)
	}
}

func TestCloseWithoutLeaveIsSeenAsDead(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	if err := ms[2].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ms[2].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Not a timing test (BenchmarkDeadDetection measures): a generous bound.
	for _, m := range ms[:2] {
		eventually(t, 10*time.Second, m.Self().Name+" gets EventDead for n3", func() bool {
			_, ok := m.events.find(EventDead, "n3")
			return ok
		})
		if n := m.events.count(EventLeave, "n3"); n != 0 {
			t.Errorf("%s got %d EventLeave for n3, want none", m.Self().Name, n)
		}
		if got := len(m.Members()); got != 2 {
			t.Errorf("%s: %d members after n3 died, want 2", m.Self().Name, got)
		}
	}
	if _, err := ms[2].Join(context.Background(), []string{ms[0].Self().Gossip}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close = %v, want ErrClosed", err)
	}
}

func TestKeyMismatchRefused(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	addrs := gossipAddrs(ms)

	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"other key", func(c *Config) { c.Key = mustKey(t) }},
		{"no key", func(c *Config) { c.Key, c.Insecure = nil, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := startMember(t, "x", nil, tc.mutate)
			n, err := x.Join(context.Background(), addrs)
			if err == nil || n != 0 {
				t.Fatalf("Join = %d, %v; want 0 and an error", n, err)
			}
			if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "cluster key mismatch") {
				t.Fatalf("Join error = %v; want ErrKeyMismatch", err)
			}
			if got := len(x.Members()); got != 1 {
				t.Errorf("x sees %d members, want only itself", got)
			}
		})
	}
	// Each existing member warned exactly once about the peer host, though
	// two processes on it tried, each with its own connection.
	for _, m := range ms {
		eventually(t, 5*time.Second, m.Self().Name+" warns about the key mismatch", func() bool {
			return m.logs.countLines("level=WARN", "cluster key mismatch") > 0
		})
		if n := m.logs.countLines("level=WARN", "cluster key mismatch", "remote=127.0.0.1:"); n != 1 {
			t.Errorf("%s logged %d key mismatch warnings naming 127.0.0.1, want 1:\n%s", m.Self().Name, n,
				grepLines(m.logs.String(), "WARN"))
		}
		if got := len(m.Members()); got != 3 {
			t.Errorf("%s: %d members, want 3", m.Self().Name, got)
		}
	}
}

func TestNotShoalClusterRefused(t *testing.T) {
	key := mustKey(t)
	a := startMember(t, "a", key, nil)

	// Memberlists of another program: one without a label or key, one with
	// its own label.
	startOther := func(name, label string) *memberlist.Memberlist {
		mc := memberlist.DefaultLocalConfig()
		mc.Name = name
		mc.BindAddr = "127.0.0.1"
		mc.BindPort = 0
		mc.Label = label
		mc.Logger = log.New(io.Discard, "", 0)
		ml, err := memberlist.Create(mc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ml.Shutdown() })
		return ml
	}
	plain := startOther("plain", "")
	labelled := startOther("labelled", "other-app")

	for _, ml := range []*memberlist.Memberlist{plain, labelled} {
		addr := ml.LocalNode().Address()
		_, err := a.Join(context.Background(), []string{addr})
		if !errors.Is(err, ErrNotShoalCluster) || !strings.Contains(err.Error(), "key mismatch") {
			t.Errorf("Join(%s) = %v, want ErrNotShoalCluster mentioning the key", ml.LocalNode().Name, err)
		}
	}
	if _, err := labelled.Join([]string{a.Self().Gossip}); err == nil {
		t.Error("another program's memberlist joined a shoal member")
	}
	eventually(t, 5*time.Second, "a warns about the foreign peer", func() bool {
		return a.logs.countLines("level=WARN", "not a shoal cluster", "remote=127.0.0.1:") == 1
	})
	if got := len(a.Members()); got != 1 {
		t.Errorf("a sees %d members, want 1", got)
	}
}

func TestDuplicateNameRefused(t *testing.T) {
	key := mustKey(t)
	ms := startCluster(t, 2, key)
	dup := startMember(t, "n2", key, nil)
	n, err := dup.Join(context.Background(), []string{ms[0].Self().Gossip})
	if !errors.Is(err, ErrDuplicateName) || n != 0 {
		t.Fatalf("Join with a live member's name = %d, %v; want 0, ErrDuplicateName", n, err)
	}
	if !strings.Contains(err.Error(), "duplicate node name") {
		t.Errorf("error %q does not say duplicate node name", err)
	}
	if got := len(dup.Members()); got != 1 {
		t.Errorf("duplicate sees %d members, want only itself", got)
	}
	eventually(t, 5*time.Second, "n1 logs the duplicate name", func() bool {
		return ms[0].logs.countLines("level=WARN", "duplicate node name", "n2") >= 1
	})
	want := ms[1].Self().Gossip
	for _, mem := range ms[0].Members() {
		if mem.Name == "n2" && mem.Gossip != want {
			t.Errorf("n1 sees n2 at %s, want the original %s", mem.Gossip, want)
		}
	}
}

func TestObserverMember(t *testing.T) {
	key := mustKey(t)
	ms := startCluster(t, 2, key)
	obs := startMember(t, "balancer", key, func(c *Config) {
		c.Role, c.HTTPAddr, c.ReplAddr = RoleObserver, "", ""
	})
	if _, err := obs.Join(context.Background(), gossipAddrs(ms)); err != nil {
		t.Fatalf("observer joins: %v", err)
	}
	eventually(t, 5*time.Second, "all see the observer", func() bool {
		for _, m := range append(ms, obs) {
			if len(m.Members()) != 3 {
				return false
			}
		}
		return true
	})
	for _, mem := range ms[0].Members() {
		if mem.Name == "balancer" && (mem.Role != RoleObserver || mem.HTTPAddr != "" || mem.ReplAddr != "") {
			t.Errorf("observer seen as %+v", mem)
		}
	}
}

func TestBadMetaPeerIgnored(t *testing.T) {
	key := mustKey(t)
	a := startMember(t, "a", key, nil)

	// A peer with shoal's label and key but metadata we cannot decode.
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "garbage"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.Label = gossipLabel
	mc.SecretKey = key
	mc.Delegate = garbageMeta{}
	mc.Logger = log.New(io.Discard, "", 0)
	g, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	if _, err := g.Join([]string{a.Self().Gossip}); err != nil {
		t.Fatalf("garbage peer join: %v", err)
	}
	eventually(t, 5*time.Second, "a logs the undecodable peer", func() bool {
		return a.logs.countLines("level=WARN", "cannot decode its member metadata", "garbage") == 1
	})
	if got := a.Members(); len(got) != 1 {
		t.Errorf("a's members = %+v, want only itself", got)
	}
	if n := a.events.count(EventJoin, "garbage"); n != 0 {
		t.Errorf("EventJoin for the garbage peer")
	}
}

// garbageMeta is a memberlist delegate whose node metadata is not ours.
type garbageMeta struct{}

func (garbageMeta) NodeMeta(int) []byte                 { return []byte{0xde, 0xad, 0xbe, 0xef} }
func (garbageMeta) NotifyMsg([]byte)                    {}
func (garbageMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (garbageMeta) LocalState(bool) []byte              { return nil }
func (garbageMeta) MergeRemoteState(buf []byte, j bool) {}

func TestJoinArguments(t *testing.T) {
	a := startMember(t, "a", mustKey(t), nil)
	if _, err := a.Join(context.Background(), nil); err == nil {
		t.Error("Join(nil): no error")
	}
	if _, err := a.Join(context.Background(), []string{"127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("Join without port = %v, want a host:port error", err)
	}
	if n, err := a.Join(context.Background(), []string{a.Self().Gossip}); n != 0 || err != nil {
		t.Errorf("Join(only ourselves) = %d, %v; want 0, nil", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Join(ctx, []string{"127.0.0.1:1"}); err == nil {
		t.Error("Join with a cancelled context: no error")
	}
	// Nobody listens on port 1: connection refused, reported with the address.
	if _, err := a.Join(context.Background(), []string{"127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Join(127.0.0.1:1) = %v, want an error naming the address", err)
	}
}

func TestInsecureRefusedOffLoopback(t *testing.T) {
	for _, tc := range []struct{ bind, adv string }{
		{"0.0.0.0", ""},
		{"::", ""},
		{"127.0.0.1", "10.1.2.3"},
	} {
		cfg := newTestConfig("a", nil)
		cfg.Insecure = true
		cfg.BindAddr, cfg.AdvertiseAddr = tc.bind, tc.adv
		m, err := New(cfg)
		if err == nil {
			m.Close()
			t.Errorf("Insecure on %s/%q accepted", tc.bind, tc.adv)
			continue
		}
		if !errors.Is(err, ErrInsecureNotLoopback) || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Insecure on %s/%q: %v; want ErrInsecureNotLoopback", tc.bind, tc.adv, err)
		}
	}
	// On loopback it is allowed, and two insecure members join.
	a := startMember(t, "a", nil, func(c *Config) { c.Insecure = true })
	b := startMember(t, "b", nil, func(c *Config) { c.Insecure = true })
	if _, err := b.Join(context.Background(), []string{a.Self().Gossip}); err != nil {
		t.Fatalf("insecure join on loopback: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(nil) = %v", err)
	}
	key := mustKey(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "Name"},
		{"name with a dot", func(c *Config) { c.Name = "a.b" }, "Name"},
		{"no key", func(c *Config) { c.Key = nil }, "Key is required"},
		{"short key", func(c *Config) { c.Key = key[:16] }, "16 bytes"},
		{"key and insecure", func(c *Config) { c.Insecure = true }, "both Key and Insecure"},
		{"node without HTTPAddr", func(c *Config) { c.HTTPAddr = "" }, "HTTP address"},
		{"ReplAddr without port", func(c *Config) { c.ReplAddr = "host" }, "host:port"},
		{"bind is a name", func(c *Config) { c.BindAddr = "localhost" }, "BindAddr"},
		{"bad port", func(c *Config) { c.BindPort = 70000 }, "BindPort"},
		{"probe timeout too long", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }, "ProbeTimeout"},
		{"zero suspicion", func(c *Config) { c.SuspicionMult = 0 }, "SuspicionMult"},
		{"unknown role", func(c *Config) { c.Role = 7 }, "Role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestConfig("a", key)
			tc.mutate(cfg)
			m, err := New(cfg)
			if err == nil {
				m.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPresetsAreFresh(t *testing.T) {
	a, b := DefaultLANConfig(), DefaultLANConfig()
	a.ProbeInterval = time.Hour
	if b.ProbeInterval == time.Hour {
		t.Error("DefaultLANConfig returns shared values")
	}
	if l := DefaultLocalConfig(); l.BindAddr != "127.0.0.1" || l.BindPort != 0 || l.ProbeInterval != b.ProbeInterval {
		t.Errorf("DefaultLocalConfig = %+v", l)
	}
}

// Gossip goes uncompressed: memberlist's LZW allocates a 64 KiB table per
// message. Measured with three idle `shoal node`s, from their
// go_memstats_alloc_bytes_total over 20 s: 2.9 MB/s allocated per node
// with it, 1.4 MB/s without.
func TestGossipIsNotCompressed(t *testing.T) {
	c := DefaultLocalConfig()
	c.Name = "n1"
	if mc := c.memberlistConfig(&hooks{}, newLogBridge(slog.New(slog.DiscardHandler))); mc.EnableCompression {
		t.Error("memberlist compresses gossip")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestOnEventMayCallMethods(t *testing.T) {
	key := mustKey(t)
	var a *testMember
	a = startMember(t, "a", key, func(c *Config) {
		inner := c.OnEvent
		c.OnEvent = func(ev Event) {
			inner(ev)
			if ev.Kind == EventJoin {
				// No lock of ours is held here: these must not deadlock.
				_ = a.Self()
				if err := a.SetState(StateReady); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("SetState from OnEvent: %v", err)
				}
			}
		}
	})
	b := startMember(t, "b", key, nil)
	if _, err := b.Join(context.Background(), []string{a.Self().Gossip}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b sees a ready", func() bool {
		for _, mem := range b.Members() {
			if mem.Name == "a" {
				return mem.State == StateReady
			}
		}
		return false
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	key := mustKey(t)
	a := startMember(t, "a", key, nil)
	b := startMember(t, "b", key, nil)
	if _, err := b.Join(context.Background(), []string{a.Self().Gossip}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetState(StateReady); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*testMember{a, b} {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Ours are gone when Close returns; memberlist's own exit on their own
	// right after (its Shutdown does not wait for them).
	eventually(t, 5*time.Second, "goroutines back to where they were", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
