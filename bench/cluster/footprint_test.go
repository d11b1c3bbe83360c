package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/cluster"
)

// The figures below are the ones the Tomcat cluster harness measures for
// its DeltaManager (bench/README.md puts them side by side): bytes on the
// wire per new session and per one-attribute update, memory per session
// copy, and the time a node takes to be ready with 50,000 sessions in the
// cluster.

// demoUser and demoCount are the demo app's login and counter attributes,
// encoded as the session middleware encodes them.
func demoUser(i int) session.Attr {
	v, _ := session.CBOR().Marshal(fmt.Sprintf("user%06d", i))
	return session.Attr{Key: "user", Value: v}
}

func demoCount(n int) session.Attr {
	v, _ := session.CBOR().Marshal(n)
	return session.Attr{Key: "count", Value: v}
}

// meter is a TCP relay that counts the bytes each way between a node and
// the peer it dials: what crosses the wire, TLS records included.
type meter struct {
	ln       net.Listener
	to       string
	up, down atomic.Int64 // dialer → listener (requests), and back (acks)
}

func newMeter(b *testing.B, to string) *meter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	m := &meter{ln: ln, to: to}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			go m.pipe(d, c, &m.up)
			go m.pipe(c, d, &m.down)
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return m
}

func (m *meter) pipe(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// BenchmarkWireBytes: n1 creates sessions holding the demo's login (a
// user attribute) and then updates one int attribute (the counter) of
// each, with the access time as the middleware sends it; its backup n2
// is reached only through a meter. Reported: bytes from n1 to n2 per new
// session and per update, and the acknowledgements' bytes back.
func BenchmarkWireBytes(b *testing.B) {
	const n = 2000
	for b.Loop() {
		c := start(b, false, "n1", "n2")
		m := newMeter(b, c.addrs["n2"])
		c.mu.Lock()
		c.addrs["n2"] = m.ln.Addr().String()
		c.mu.Unlock()
		n1 := c.ns["n1"]
		ctx := context.Background()
		// Steady state: for Settle (2 s) after a membership change a
		// primary reads the newest copy from the other owners before it
		// writes (a fetch per commit), which is not what a running
		// cluster sends.
		time.Sleep(settle)
		create := func(i int) string {
			key := n1.NewKey()
			now := time.Now()
			if err := n1.Create(ctx, session.Record{Key: key, Attrs: []session.Attr{demoUser(i)}, Created: now,
				LastAccess: now, IdleTimeout: 30 * time.Minute}); err != nil {
				b.Fatal(err)
			}
			return key
		}
		// Warm: the connection and its TLS handshake are not per session.
		for i := range 10 {
			create(i)
		}
		up0, down0 := m.up.Load(), m.down.Load()
		keys := make([]string, n)
		for i := range keys {
			keys[i] = create(i)
		}
		up1, down1 := m.up.Load(), m.down.Load()
		for i, key := range keys {
			if _, err := n1.Commit(ctx, key, session.Delta{Set: []session.Attr{demoCount(i + 1)}, Access: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
		up2, down2 := m.up.Load(), m.down.Load()
		b.ReportMetric(float64(up1-up0)/n, "B/new-session")
		b.ReportMetric(float64(up2-up1)/n, "B/update")
		b.ReportMetric(float64(down1-down0)/n, "B-ack/new-session")
		b.ReportMetric(float64(down2-down1)/n, "B-ack/update")
	}
}

// BenchmarkMemoryPerCopy: 50,000 sessions with the demo's user and
// counter, created on n1 and replicated to n2 (owners 2: every session
// has two copies). Reported: the live heap the copies add, per copy.
func BenchmarkMemoryPerCopy(b *testing.B) {
	const n = 50000
	for b.Loop() {
		c := start(b, false, "n1", "n2")
		n1 := c.ns["n1"]
		ctx := context.Background()
		keys := make([]string, n)
		for i := range keys {
			keys[i] = n1.NewKey()
		}
		before := liveHeap()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					now := time.Now()
					rec := session.Record{Key: keys[i], Attrs: []session.Attr{demoCount(1), demoUser(i)}, Created: now,
						LastAccess: now, IdleTimeout: 30 * time.Minute}
					if err := n1.Create(ctx, rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		after := liveHeap()
		copies := c.ns["n1"].Copies().Len() + c.ns["n2"].Copies().Len()
		if copies != 2*n {
			b.Fatalf("%d copies, want %d", copies, 2*n)
		}
		b.ReportMetric(float64(after-before)/float64(copies), "B/copy")
		runtime.KeepAlive(keys)
	}
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkReady: how long a node takes from New to ready (joined, and
// holding every session it owns): alone in an empty cluster, joining a
// node with no session, and joining a node that holds 50,000 sessions
// (owners 2 of two nodes: the new node receives all of them). Tomcat's
// figure is a restarted node's process start to first 200 with 50,000
// sessions in the cluster.
func BenchmarkReady(b *testing.B) {
	for _, tc := range []struct {
		name     string
		peer     bool
		sessions int
	}{{"alone", false, 0}, {"join-empty", true, 0}, {"join-50k", true, 50000}} {
		b.Run(tc.name, func(b *testing.B) {
			key := make([]byte, 32)
			rand.Read(key)
			var join []string
			if tc.peer {
				n1 := newStore(b, "n1", key, nil)
				fill(b, n1, tc.sessions)
				join = []string{n1.GossipAddr()}
			}
			// A new name each time: a name that just left is held for a
			// moment by the others' view, which is not what is measured.
			var times []time.Duration
			for b.Loop() {
				start := time.Now()
				n2 := newStore(b, fmt.Sprintf("n%d", len(times)+2), key, join)
				elapsed := time.Since(start)
				if n, _ := n2.Len(context.Background()); n != tc.sessions {
					b.Fatalf("ready with %d sessions, want %d", n, tc.sessions)
				}
				times = append(times, elapsed)
				b.StopTimer()
				n2.Close() // hands its copies back: n1 keeps every session
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms/ready")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms/ready")
		})
	}
}

func newStore(b *testing.B, name string, key []byte, join []string) *cluster.Store {
	cfg := cluster.DefaultLocalConfig()
	cfg.Name, cfg.HTTPAddr, cfg.Key, cfg.Join = name, "127.0.0.1:1", key, join
	st, err := cluster.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func fill(b *testing.B, st *cluster.Store, n int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				now := time.Now()
				rec := session.Record{Key: st.NewKey(), Attrs: []session.Attr{demoCount(1), demoUser(i)}, Created: now,
					LastAccess: now, IdleTimeout: 30 * time.Minute}
				if err := st.Create(ctx, rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// settle is replication's default Settle, and a margin.
const settle = 2*time.Second + 100*time.Millisecond
