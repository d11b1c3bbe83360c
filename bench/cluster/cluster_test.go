// Package cluster measures the replicated store in one process over real
// loopback TCP (TLS): the commit latency of sync and async replication and
// what a primary's death loses in each mode. Run:
//
//	go test -run '^$' -bench . -benchtime 1x -count 5 ./bench/cluster/
//
// See bench/README.md for the figures.
package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/session"
)

type nodes struct {
	mu    sync.Mutex
	addrs map[string]string
	trs   map[string]*replication.TCPTransport
	ns    map[string]*replication.Node
}

func (c *nodes) resolve(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[name]
	return a, ok
}

func start(b *testing.B, async bool, names ...string) *nodes {
	key := make([]byte, replication.KeySize)
	rand.Read(key)
	c := &nodes{addrs: map[string]string{}, trs: map[string]*replication.TCPTransport{}, ns: map[string]*replication.Node{}}
	for _, name := range names {
		n := replication.NewNode(replication.Config{Self: name, Owners: 2, Async: async, Timeout: 2 * time.Second})
		tr, err := replication.ListenTCP(replication.TCPConfig{Self: name, Cluster: "bench", Listen: "127.0.0.1:0", Key: key,
			Resolve: c.resolve, Handler: n, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		n.Attach(tr)
		c.addrs[name], c.trs[name], c.ns[name] = tr.Addr(), tr, n
	}
	for _, n := range c.ns {
		n.SetMembers(names)
	}
	b.Cleanup(func() {
		for name := range c.ns {
			c.trs[name].Close()
			c.ns[name].Close()
		}
	})
	return c
}

func counter(v int) session.Delta {
	return session.Delta{Set: []session.Attr{{Key: "count", Value: []byte(strconv.Itoa(v))}}, Access: time.Now()}
}

// BenchmarkCommit: one-attribute commits on the primary, replicated to
// its backup before returning (sync) or not (async).
func BenchmarkCommit(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(fmt.Sprintf("async=%v", async), func(b *testing.B) {
			c := start(b, async, "n1", "n2", "n3")
			n1 := c.ns["n1"]
			time.Sleep(settle) // steady state: see BenchmarkWireBytes
			key := n1.NewKey()
			now := time.Now()
			if err := n1.Create(context.Background(), session.Record{Key: key, Created: now, LastAccess: now, IdleTimeout: time.Hour}); err != nil {
				b.Fatal(err)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := n1.Commit(context.Background(), key, counter(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommitParallel: 32 writers, each committing to a session of
// its own whose primary is n1 (sync), as the requests of a loaded node
// do. Reported: the time per commit over all writers, and the process's
// CPU (user + system, the three nodes together) per commit, which is
// what batching and the hand-offs between goroutines change.
func BenchmarkCommitParallel(b *testing.B) {
	c := start(b, false, "n1", "n2", "n3")
	n1 := c.ns["n1"]
	time.Sleep(settle)
	const writers = 32
	keys := make(chan string, writers)
	for range writers {
		key := n1.NewKey()
		now := time.Now()
		if err := n1.Create(context.Background(), session.Record{Key: key, Created: now, LastAccess: now, IdleTimeout: time.Hour}); err != nil {
			b.Fatal(err)
		}
		keys <- key
	}
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := <-keys
		i := 0
		for pb.Next() {
			i++
			if _, err := n1.Commit(context.Background(), key, counter(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrimaryDeath: 64 sessions whose primary is n1, each with a
// writer committing counter+1 as fast as it can; after 300 ms n1 dies
// (its transport and node stop: kill -9 as far as the others can tell).
// Reported: acknowledged writes, and how many of them the surviving copy
// lacks (lost-acked), per mode.
func BenchmarkPrimaryDeath(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(fmt.Sprintf("async=%v", async), func(b *testing.B) {
			for b.Loop() {
				acked, lost, st := primaryDeath(b, async)
				b.ReportMetric(float64(acked), "acked-writes")
				b.ReportMetric(float64(lost), "lost-acked")
				b.ReportMetric(float64(st.FullSends.Load()), "full-sends")
				b.ReportMetric(float64(st.StandIns.Load()), "stand-ins")
			}
		})
	}
}

func primaryDeath(b *testing.B, async bool) (acked, lost int, stats *replication.Stats) {
	c := start(b, async, "n1", "n2", "n3")
	n1 := c.ns["n1"]
	const sessions = 64
	keys := make([]string, sessions)
	for i := range keys {
		keys[i] = n1.NewKey()
		now := time.Now()
		if err := n1.Create(context.Background(), session.Record{Key: keys[i], Created: now, LastAccess: now, IdleTimeout: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	last := make([]int, sessions) // last acknowledged count per session
	stop := make(chan struct{})
	// dead marks the instant of the kill: an acknowledgement returned
	// after it would not reach a client of a killed process.
	var dead atomic.Bool
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			for v := 1; ; v++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := n1.Commit(context.Background(), keys[i], counter(v)); err != nil {
					return // n1 died under the writer
				}
				if dead.Load() {
					return
				}
				last[i] = v
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	dead.Store(true)
	c.trs["n1"].Close() // the process dies: connections drop, nothing more is sent
	close(stop)
	wg.Wait()
	n1.Close()
	for i, key := range keys {
		acked += last[i]
		backup := n1.Ring().Owners(nil, key, 2)[1]
		rec, ok := c.ns[backup].Copies().Get(key)
		have := 0
		if ok {
			for _, a := range rec.Attrs {
				if a.Key == "count" {
					have, _ = strconv.Atoi(string(a.Value))
				}
			}
		}
		if have < last[i] {
			lost += last[i] - have
		}
	}
	return acked, lost, &n1.Stats
}
