package cluster

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/cluster"
)

// timedStore is a cluster store whose Commit durations are recorded: in
// sync mode a commit returns once every live owner has applied it, so its
// duration is the write→visible-everywhere lag of that change.
type timedStore struct {
	*cluster.Store
	mu    sync.Mutex
	on    bool
	times []time.Duration
}

func (s *timedStore) Commit(ctx context.Context, key string, d session.Delta) (uint64, error) {
	start := time.Now()
	v, err := s.Store.Commit(ctx, key, d)
	el := time.Since(start)
	s.mu.Lock()
	if s.on {
		s.times = append(s.times, el)
	}
	s.mu.Unlock()
	return v, err
}

func (s *timedStore) record(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
}

// BenchmarkLagUnderLoad: three nodes (the demo app behind the session
// middleware on real HTTP, replication over TLS, owners 2, sync) under a
// /counter load of 32 clients, each session's requests sent to its own
// node (sticky) or spread round robin over the nodes (two thirds of them
// then land on a node that is not the session's primary). A prober meanwhile writes /counter on one node and
// at once reads it back on another. Reported: commit latency p50/p99
// (write → applied on every owner), the share of probe reads that missed
// the write just completed (stale), and the load's requests per second.
func BenchmarkLagUnderLoad(b *testing.B) {
	for _, sticky := range []bool{true, false} {
		b.Run(map[bool]string{true: "sticky", false: "round-robin"}[sticky], func(b *testing.B) {
			for b.Loop() {
				lagUnderLoad(b, 5*time.Second, sticky)
			}
		})
	}
}

// lagUnderLoad runs the load for load; sticky sends each session's
// requests to the node it logged in on (its primary), as a balancer with
// sticky routes does, instead of round robin.
func lagUnderLoad(b *testing.B, load time.Duration, sticky bool) {
	key := make([]byte, 32)
	crand.Read(key)
	var stores []*timedStore
	var urls []string
	var join []string
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		srv := httptest.NewUnstartedServer(nil)
		cfg := cluster.DefaultLocalConfig()
		cfg.Name, cfg.HTTPAddr, cfg.Key, cfg.Join = name, srv.Listener.Addr().String(), key, join
		st, err := cluster.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ts := &timedStore{Store: st}
		mgr, err := session.New(session.Config{Store: ts, Route: name})
		if err != nil {
			b.Fatal(err)
		}
		srv.Config.Handler = mgr.Handler(demoapp.New(name, nil))
		srv.Start()
		b.Cleanup(func() { srv.Close(); mgr.Close(); st.Close() })
		stores, urls = append(stores, ts), append(urls, srv.URL)
		join = []string{st.GossipAddr()}
	}
	time.Sleep(settle)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	get := func(u, cookie string) (demoapp.Counter, error) {
		req, _ := http.NewRequest("GET", u+"/counter", nil)
		req.Header.Set("Cookie", "JSESSIONID="+cookie)
		resp, err := client.Do(req)
		if err != nil {
			return demoapp.Counter{}, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var c demoapp.Counter
		if resp.StatusCode != 200 {
			return c, fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return c, json.Unmarshal(body, &c)
	}
	login := func(u, user string) string {
		resp, err := client.PostForm(u+"/login", url.Values{"user": {user}})
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "JSESSIONID" {
				return c.Value
			}
		}
		b.Fatal("no cookie")
		return ""
	}
	const sessions, clients = 256, 32
	cookies := make([]string, sessions)
	for i := range cookies {
		cookies[i] = login(urls[i%3], fmt.Sprintf("u%d", i))
	}
	probe := login(urls[0], "probe")

	for _, s := range stores {
		s.record(true)
	}
	var requests, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := c + clients*(i%(sessions/clients))
				to := (c + i) % 3
				if sticky {
					to = k % 3 // where it logged in
				}
				if _, err := get(urls[to], cookies[k]); err != nil {
					failed.Add(1)
				}
				requests.Add(1)
			}
		})
	}
	var probes, stale int
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for time.Since(start) < load {
		a := rng.IntN(3)
		bn := (a + 1 + rng.IntN(2)) % 3
		w, err := get(urls[a], probe)
		if err != nil {
			b.Fatal(err)
		}
		r, err := get(urls[bn], probe)
		if err != nil {
			b.Fatal(err)
		}
		probes++
		if r.Count != w.Count+1 {
			stale++
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	var all []time.Duration
	for _, s := range stores {
		s.record(false)
		s.mu.Lock()
		all = append(all, s.times...)
		s.mu.Unlock()
	}
	slices.Sort(all)
	if len(all) == 0 || failed.Load() > 0 {
		b.Fatalf("%d commits recorded, %d failed requests", len(all), failed.Load())
	}
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "ms-commit-p50")
	b.ReportMetric(pct(0.99), "ms-commit-p99")
	b.ReportMetric(100*float64(stale)/float64(probes), "%stale")
	b.ReportMetric(float64(requests.Load())/elapsed.Seconds(), "load-req/s")
}
