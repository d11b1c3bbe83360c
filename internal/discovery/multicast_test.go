package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/netnstest"
)

func TestBeaconRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, k := range [][]byte{nil, key} {
		for _, b := range []beacon{
			{Cluster: "shoal", Gossip: "10.0.0.1:7947"},
			{Query: true, Cluster: "", Gossip: ""},
			{Cluster: strings.Repeat("c", 255), Gossip: "[::1]:7947"},
		} {
			got, err := parseBeacon(b.marshal(k), k)
			if err != nil || got != b {
				t.Errorf("key=%v: parse(marshal(%+v)) = %+v, %v", k != nil, b, got, err)
			}
		}
	}
}

func TestBeaconRefused(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	good := beacon{Cluster: "shoal", Gossip: "10.0.0.1:7947"}
	for name, tc := range map[string]struct {
		p       []byte
		key     []byte
		wantMAC bool
	}{
		"wrong key":          {good.marshal(other), key, true},
		"keyed to insecure":  {good.marshal(key), nil, true},
		"insecure to keyed":  {good.marshal(nil), key, true},
		"flipped bit":        {flip(good.marshal(key), 6), key, true},
		"truncated MAC":      {good.marshal(key)[:20+macSize/2], key, false},
		"truncated field":    {good.marshal(nil)[:8], nil, false},
		"stray bytes":        {append(good.marshal(nil), 1, 2), nil, false},
		"not shoal":          {[]byte("SHB2\x00"), nil, false},
		"empty":              {nil, nil, false},
		"unknown flag":       {append([]byte("SHB1\x80"), 0, 0), nil, false},
		"oversized":          {make([]byte, maxBeacon+1), nil, false},
		"length past end":    {[]byte("SHB1\x00\x05ab"), nil, false},
		"second past end":    {[]byte("SHB1\x00\x01a\x09"), nil, false},
		"zero-byte datagram": {[]byte{}, key, false},
	} {
		_, err := parseBeacon(tc.p, tc.key)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if errors.Is(err, errBadMAC) != tc.wantMAC {
			t.Errorf("%s: %v, want key mismatch=%v", name, err, tc.wantMAC)
		}
	}
}

func flip(p []byte, i int) []byte { p[i] ^= 1; return p }

func FuzzParseBeacon(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	f.Add(beacon{Cluster: "shoal", Gossip: "10.0.0.1:7947"}.marshal(nil), false)
	f.Add(beacon{Query: true, Cluster: "shoal", Gossip: "[::1]:7947"}.marshal(key), true)
	f.Add([]byte("SHB1\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, p []byte, keyed bool) {
		k := []byte(nil)
		if keyed {
			k = key
		}
		b, err := parseBeacon(p, k)
		if err != nil {
			return
		}
		// What was accepted encodes back to the same bytes: no field is
		// read past its length, nothing is ignored.
		if again := b.marshal(k); !bytes.Equal(again, p) {
			t.Fatalf("parse(%x) = %+v, which marshals to %x", p, b, again)
		}
	})
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestMulticastFindsMembers: three members that announce find each other
// within one query round trip; a listen-only member (a balancer) finds
// them but is not found; a member of another cluster name is ignored; a
// member with another key is refused and logged once as a key mismatch.
func TestMulticastFindsMembers(t *testing.T) {
	if !netnstest.Run(t, true) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	group := netip.MustParseAddrPort("228.0.0.4:45564")
	key := bytes.Repeat([]byte{1}, 32)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	start := func(self Self) *Multicast {
		t.Helper()
		m := &Multicast{Group: group, Period: 200 * time.Millisecond}
		if p := m.Problem(); p != "" {
			t.Fatalf("Problem() = %q in a namespace with a multicast route", p)
		}
		if err := m.Start(ctx, self); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The other cluster and the wrong key start first, so that their
	// beacons are there to be ignored.
	other := start(Self{Cluster: "other", Gossip: "127.0.0.1:7001", Key: key})
	wrong := start(Self{Cluster: "shoal", Gossip: "127.0.0.1:7002", Key: bytes.Repeat([]byte{2}, 32)})
	var ms []*Multicast
	for i := range 3 {
		ms = append(ms, start(Self{Cluster: "shoal", Gossip: fmt.Sprintf("127.0.0.1:%d", 7947+i), Key: key, Log: log}))
	}
	watcher := start(Self{Cluster: "shoal", Key: key, Log: log})

	want := []string{"127.0.0.1:7947", "127.0.0.1:7948", "127.0.0.1:7949"}
	deadline := time.Now().Add(5 * time.Second)
	for i, m := range append(ms, watcher) {
		var got []string
		for {
			got, _ = m.Addrs(ctx)
			if i < 3 {
				got = append(got, want[i]) // itself is never in its own list
				slices.Sort(got)
			}
			if slices.Equal(got, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !slices.Equal(got, want) {
			t.Errorf("member %d found %v, want %v", i, got, want)
		}
	}
	// Let a few periods pass: the listen-only watcher and the refused
	// members must never appear.
	time.Sleep(600 * time.Millisecond)
	for i, m := range ms {
		got, _ := m.Addrs(ctx)
		for _, a := range got {
			if !slices.Contains(want, a) {
				t.Errorf("member %d heard %s", i, a)
			}
		}
	}
	if got, _ := other.Addrs(ctx); len(got) != 0 {
		t.Errorf("a member of another cluster heard %v", got)
	}
	if got, _ := wrong.Addrs(ctx); len(got) != 0 {
		t.Errorf("a member with another key heard %v", got)
	}
	// Each of the four keyed members logs the wrong key once.
	if n := strings.Count(logs.String(), "reason=\"cluster key mismatch\""); n != 4 {
		t.Errorf("%d key mismatch lines, want 4 (one per member that heard it):\n%s", n, logs.String())
	}
}

// TestMulticastQueryIsFast: a member started next to a running one finds
// it from the answer to its query, well before the running one's next
// periodic beacon (the period here is an hour).
func TestMulticastQueryIsFast(t *testing.T) {
	if !netnstest.Run(t, true) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	group := netip.MustParseAddrPort("228.0.0.4:45564")
	a := &Multicast{Group: group, Period: time.Hour}
	if err := a.Start(ctx, Self{Cluster: "c", Gossip: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a's own query has gone unanswered
	b := &Multicast{Group: group, Period: time.Hour}
	if err := b.Start(ctx, Self{Cluster: "c", Gossip: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Addrs(ctx); !slices.Equal(got, []string{"127.0.0.1:1"}) {
		t.Errorf("new member found %v after its first wait, want the running one", got)
	}
}

// TestMulticastProblem: without the MULTICAST flag and route the host
// cannot do multicast discovery, and Problem says so.
func TestMulticastProblem(t *testing.T) {
	if !netnstest.Run(t, false) {
		return
	}
	m := &Multicast{Group: netip.MustParseAddrPort("228.0.0.4:45564")}
	p := m.Problem()
	if !strings.Contains(p, "MULTICAST") && !strings.Contains(p, "no route") {
		t.Errorf("Problem() = %q, want it to name the missing flag or route", p)
	}
	if err := m.Start(context.Background(), Self{Cluster: "c", Gossip: "127.0.0.1:1"}); err == nil {
		t.Errorf("Start succeeded on a host without multicast")
	}
}
