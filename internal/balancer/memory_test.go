package balancer

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"
)

// memRetained returns the memory the runtime holds from the system
// (mapped and not released) and the bytes of heap objects.
func memRetained() (retained, objects uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64(), s[2].Value.Uint64()
}

// openIdleConns opens n keep-alive connections to addr, and makes one
// request on each, reading its whole response; the connections stay
// open. Eight dialers share the work.
func openIdleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	// Both ends are in this process, and the balancer's member
	// connections too.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*n+256) {
		t.Skipf("%d connections need more file descriptors than the limit, %d", n, lim.Cur)
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			buf := make([]byte, 1024)
			for i := w; i < n; i += 8 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
					errs <- err
					return
				}
				// The backend answers "n1" with a Content-Length: the
				// response ends with it.
				var got []byte
				for !bytes.HasSuffix(got, []byte("\r\n\r\nn1")) && len(got) < 4096 {
					k, err := c.Read(buf)
					if err != nil {
						errs <- fmt.Errorf("response %d: %v after %q", i, err, got)
						return
					}
					got = append(got, buf[:k]...)
				}
				c.SetDeadline(time.Time{})
			}
		})
	}
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for err := range errs {
		t.Fatal(err)
	}
	return conns
}

// waitAllIdle waits until every client connection of f waits for a
// request.
func waitAllIdle(t *testing.T, f *Frontend, n int) {
	t.Helper()
	waitFor(t, "the connections idle", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.conns) != n {
			return false
		}
		for cc := range f.conns {
			if cc.state.Load() != connIdle {
				return false
			}
		}
		return true
	})
}

// TestIdleConnsHoldNoBuffer: a keep-alive connection waiting for its
// next request holds no read buffer, so that many idle clients cost
// little, where one in the middle of a request head holds one; and the
// requests that come after the wait are served.
func TestIdleConnsHoldNoBuffer(t *testing.T) {
	const n = 400
	tb := startBalancer(t, testConfig(t, newBackend(t, "n1").member()))
	heap := func() int64 {
		runtime.GC()
		runtime.GC() // and sync.Pool's victim cache
		_, objects := memRetained()
		return int64(objects)
	}
	conns := openIdleConns(t, tb.front.Addr, n)
	waitAllIdle(t, tb.frontend, n)
	// A connection gives its buffer back right after it turns idle: the
	// few that might not have yet weigh little on the average.
	idle := heap()

	// Half a head on each: every connection now reads into a buffer.
	for _, c := range conns {
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	// A connection reading a head holds the buffer (and a timer for its
	// deadline); an idle one nothing of it. Bounded: until each holds
	// three quarters of a buffer more, or 2 s.
	var perConn int64
	for range 100 {
		if perConn = (heap() - idle) / n; perConn >= clientBufSize*3/4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("heap objects: %d bytes more per connection reading a head than per idle one", perConn)
	if perConn < clientBufSize*3/4 {
		t.Errorf("a connection reading a head holds %d bytes more than an idle one, want about the %d-byte buffer the idle one gave back", perConn, clientBufSize)
	}

	// The rest of the heads: every connection is served.
	buf := make([]byte, 1024)
	for i, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("Host: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for !bytes.HasSuffix(got, []byte("\r\n\r\nn1")) && len(got) < 4096 {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("connection %d, second request: %v after %q", i, err, got)
			}
			got = append(got, buf[:k]...)
		}
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 200 ")) {
			t.Fatalf("connection %d, second request: %q", i, got)
		}
	}
}

// TestMemoryBackAfterBurst: once a burst of connections is mostly over
// (here 850 of 1,000 close, 150 stay open), the balancer gives the
// memory the closed ones used back to the system within a few of the
// housekeeper's runs, without anything else happening in the process (no
// allocation that would make the collector run).
func TestMemoryBackAfterBurst(t *testing.T) {
	const n, stay = 1000, 150
	oldEvery, oldAfter, oldMin := sweepEvery, trimAfterConns, trimMinInterval
	sweepEvery, trimAfterConns, trimMinInterval = 20*time.Millisecond, n/2, 0
	t.Cleanup(func() { sweepEvery, trimAfterConns, trimMinInterval = oldEvery, oldAfter, oldMin })
	tb := startBalancer(t, testConfig(t, newBackend(t, "n1").member()))
	f := tb.frontend

	runtime.GC()
	debug.FreeOSMemory()
	base, _ := memRetained()
	conns := openIdleConns(t, tb.front.Addr, n)
	waitAllIdle(t, f, n)
	peak, _ := memRetained()
	// Each connection's goroutine has a stack of several KiB: a
	// thousand of them are some MiB.
	if peak < base+2<<20 {
		t.Fatalf("retained %d KiB with %d connections open, %d KiB before: the burst is too small to see", peak>>10, n, base>>10)
	}
	if got := f.trims.Load(); got != 0 {
		t.Fatalf("memory given back %d times while the connections were open", got)
	}

	for _, c := range conns[stay:] {
		c.Close()
	}
	// What the connections that stay hold is at most stay/n of the
	// growth: half of it must go back. Bounded: 3 s at most, in steps of
	// 20 ms.
	want := base + (peak-base)/2
	var now uint64
	for range 150 {
		time.Sleep(20 * time.Millisecond)
		if now, _ = memRetained(); f.open.Load() == stay && f.trims.Load() > 0 && now < want {
			break
		}
	}
	t.Logf("retained: %d KiB before, %d KiB with %d connections, %d KiB with %d (%d trims)", base>>10, peak>>10, n, now>>10, f.open.Load(), f.trims.Load())
	if now >= want {
		t.Errorf("retained %d KiB 3 s after %d of %d connections closed, want less than half way back from %d KiB to %d KiB", now>>10, n-stay, n, peak>>10, base>>10)
	}
}
