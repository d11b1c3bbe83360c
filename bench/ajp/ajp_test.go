// Package ajp_test measures the throughput of package ajp's Transport
// and Server against net/http's client and server, over loopback TCP,
// with the same handler on both: see bench/README.md.
package ajp_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/ajp"
)

const secret = "bench-secret"

// handler is the application both servers run: a small answer, a
// 64 KiB answer, and an upload it reads whole.
func handler() http.Handler {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	mux := http.NewServeMux()
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, world\n")
	})
	mux.HandleFunc("GET /64k", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(big)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n != 64<<10 {
			http.Error(w, "short upload", http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// setup starts the server of one protocol on loopback and returns a
// client and the base URL; both stop when the benchmark ends.
func setup(b *testing.B, proto string) (*http.Client, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	const conns = 64
	switch proto {
	case "http":
		srv := &http.Server{Handler: handler()}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://" + ln.Addr().String()
	case "ajp":
		srv := &ajp.Server{Handler: handler(), Secret: secret}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		tr := &ajp.Transport{Secret: secret, MaxIdleConnsPerHost: conns}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, "ajp://" + ln.Addr().String()
	}
	b.Fatalf("unknown protocol %s", proto)
	return nil, ""
}

func bench(b *testing.B, method, path string, body []byte, wantLen int) {
	for _, proto := range []string{"http", "ajp"} {
		b.Run(proto, func(b *testing.B) {
			c, base := setup(b, proto)
			do := func() error {
				var r io.Reader
				if body != nil {
					r = bytes.NewReader(body)
				}
				req, err := http.NewRequest(method, base+path, r)
				if err != nil {
					return err
				}
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					return err
				}
				if resp.StatusCode != 200 || int(n) != wantLen {
					b.Errorf("%s %s over %s: %s, %d bytes, want 200 and %d", method, path, proto, resp.Status, n, wantLen)
				}
				return nil
			}
			if err := do(); err != nil { // one before timing: the answer is right
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body) + wantLen))
			b.ReportAllocs()
			b.SetParallelism(8) // 8 × GOMAXPROCS requests in flight
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := do(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

func BenchmarkGetSmall(b *testing.B) { bench(b, "GET", "/small", nil, len("hello, world\n")) }
func BenchmarkGet64K(b *testing.B)   { bench(b, "GET", "/64k", nil, 64<<10) }
func BenchmarkPost64K(b *testing.B) {
	bench(b, "POST", "/upload", []byte(strings.Repeat("x", 64<<10)), len("ok\n"))
}
