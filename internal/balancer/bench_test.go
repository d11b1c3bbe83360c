package balancer

import (
	"io"
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
	} {
		front := httptest.NewServer(tc.handler)
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
		front.Close()
	}
}
