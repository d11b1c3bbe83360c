package balancer

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkProxy compares the balancer with a bare httputil.ReverseProxy
// (Rewrite with SetURL and SetXForwarded, a transport with the same pool
// size) in front of the same backend, in the same run. Client, proxy and
// backend share the process, so ns/op and allocs/op are the whole round
// trip's; the difference between the two is the balancer's cost. The
// bare proxy allocates a 32 KiB copy buffer per request, which the
// balancer pools; httputil-bufferpool gives it the same pool, to show the
// cost of the balancer's own work.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	}))
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	if err != nil {
		b.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.Health.Path = ""
	cfg.Members = []MemberConfig{{Route: "n1", URL: backend.URL}}
	bal, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer bal.Close()
	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: maxIdleConnsPerMember, DisableCompression: true},
	}

	pooled := &httputil.ReverseProxy{Rewrite: bare.Rewrite, Transport: bare.Transport, BufferPool: copyBuffers{}}

	for _, tc := range []struct {
		name    string
		handler http.Handler
		cookie  string
	}{
		{"httputil", bare, ""},
		{"httputil-bufferpool", pooled, ""}, // the same copy buffer pool as the balancer's
		{"balancer", bal, ""},
		{"balancer-sticky", bal, "JSESSIONID=0123456789abcdefghijklmnopqrstuv.n1"},
		{"frontend", nil, ""}, // the fast path
		{"frontend-sticky", nil, "JSESSIONID=0123456789abcdefghijklmnopqrstuv.n1"},
	} {
		var front *httptest.Server
		if tc.handler == nil {
			front = httptest.NewUnstartedServer(nil)
			fe := NewFrontend(bal, nil)
			go fe.Serve(front.Listener)
			front.URL = "http://" + front.Listener.Addr().String()
			front.Config.Handler = http.NotFoundHandler()
			defer fe.Close()
		} else {
			front = httptest.NewServer(tc.handler)
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxIdleConnsPerMember}}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, err := http.NewRequest("GET", front.URL+"/counter", nil)
				if err != nil {
					b.Error(err)
					return
				}
				if tc.cookie != "" {
					req.Header.Set("Cookie", tc.cookie)
				}
				for pb.Next() {
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
		})
		client.CloseIdleConnections()
		if tc.handler != nil {
			front.Close()
		}
	}
}

// BenchmarkFastPath measures the fast path alone: a raw TCP client sends
// a keep-alive GET and reads the reply, through a Frontend, to a raw
// member that answers each request head with a fixed 100-byte response.
// Client and member allocate nothing, so allocs/op is the proxy's: 0.
func BenchmarkFastPath(b *testing.B) {
	const body = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Node: n1\r\nContent-Length: 100\r\n\r\n" + body
	ln := rawMember(b, func(c net.Conn, rd *hreader) {
		out := []byte(resp)
		for {
			if _, err := rd.readHead(maxHeadBytes); err != nil {
				return
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
	for _, tc := range []struct{ name, cookie string }{{"rr", ""}, {"sticky", "Cookie: JSESSIONID=0123456789abcdefghijklmnopqrstuv.n1\r\n"}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Health.Path = ""
			cfg.Members = []MemberConfig{{Route: "n1", URL: "http://" + ln.Addr().String()}, {Route: "n2", URL: "http://" + ln.Addr().String()}}
			bal, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			fln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			fe := NewFrontend(bal, nil)
			go fe.Serve(fln)
			defer fe.Close()
			req := []byte("GET /counter HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench\r\nAccept: */*\r\n" + tc.cookie + "\r\n")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", fln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					got := 0
					for got < len(resp) {
						n, err := c.Read(buf)
						if err != nil {
							b.Error(err)
							return
						}
						got += n
					}
				}
			})
		})
	}
}
