// Package balancer is shoal's load balancer: a reverse proxy in front of
// shoal nodes (or any servers that put their route in session ids, such as
// Tomcat with jvmRoute) that does what Apache httpd's mod_proxy_balancer
// does for a Tomcat cluster: sticky sessions on JSESSIONID, load balancing
// of the rest, failover to another member, and health checks.
//
// # Promises
//
//   - Stickiness is Apache's stickysession=JSESSIONID|jsessionid: the
//     session id is taken from a ";jsessionid=" path parameter, else a
//     "jsessionid=" query parameter, else the JSESSIONID cookie (the URL
//     wins over the cookie); the route is the text after the id's first
//     '.'. A request whose route names a usable member goes to it, even
//     if that member is draining. An unknown route, or a member that is
//     not usable, sends the request to the method's choice, and the
//     balancer never rewrites the application's cookie: the node that
//     gets the session rebinds it (a new route suffix), as Tomcat's
//     JvmRouteBinderValve does behind Apache. The path parameter's value
//     ends at the next ';' or '/', as shoal's session middleware reads it
//     (Apache's scolonpathdelim=On), so both see the same id.
//   - Requests without a usable route are balanced by a Selector:
//     byrequests (Apache's weighted request counting, the default, with
//     Apache's exact sequence: sticky requests count too), bybusyness
//     (fewest in flight, ties by byrequests, as Apache), p2c (power of two
//     choices over in-flight × peak-EWMA latency) or hash (rendezvous
//     hashing of a header or cookie). Hot standby members take requests
//     only when no other member can; draining members (administratively,
//     or because their readiness check answers 503) take only their own
//     sessions' requests.
//   - Failover: a member that refuses the connection, fails to connect in
//     time, or fails before its response's headers arrive (timeout,
//     reset) is put in error for Retry (60 s, Apache's retry; the first
//     request after that may try it again) with one log line saying the
//     member, the reason and the retry time, and the request goes to
//     another usable member, up to MaxAttempts members. The client sees
//     nothing of it when the request could be sent again: always when the
//     connection failed (nothing was sent), and for idempotent requests
//     (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or an Idempotency-Key
//     header) otherwise. A status in FailOnStatus puts the member in error
//     too (Apache's failonstatus), and the request is sent again under the
//     same rule, or its response passed on if it cannot be. Failures after
//     the response started cannot be hidden: the client's connection is
//     cut. When every member is in error they are all tried again at once
//     (Apache's forcerecovery). When no member is left, the client gets
//     503 "no member available" and one log line.
//   - Active health checks (HealthConfig): Fall failures in a row put a
//     member in error, Rise answers in a row bring it back; a 503 from the
//     readiness path makes it draining until it answers 200.
//   - Request bodies over MaxBodyBytes get 413. Clients may speak
//     HTTP/1.1, HTTP/2 over TLS or h2c (NewFrontend, or NewServer for
//     net/http alone); members are spoken to in HTTP/1.1 over pooled
//     keep-alive connections, at most 1,024 per member: more requests
//     than that wait for one rather than exhausting file descriptors.
//     WebSocket and other upgrades pass through, and streamed responses
//     (unknown length, text/event-stream) are flushed as they come.
//   - Request framing is never forwarded ambiguously (request
//     smuggling): conflicting Content-Length and Transfer-Encoding,
//     Content-Length values that differ or are not digits,
//     Transfer-Encoding other than chunked, obs-fold, bare LF or CR,
//     a missing or repeated Host, invalid field names and control
//     characters are refused with 400 (501 for an unknown
//     transfer-coding), heads over 64 KiB or with more than 128 fields
//     with 431, and the connection is closed; repeated equal
//     Content-Lengths are forwarded as one, and chunked bodies are
//     re-framed (extensions and trailer fields dropped).
//   - Reload applies a new Config atomically and drops no request in
//     flight: a refused config changes nothing; members are matched by
//     route and keep their counters and state; the settings requests
//     read are one immutable value behind an atomic pointer, so a
//     request runs with one config from start to end.
//   - The client's Host header is kept (as HAProxy and Caddy do, and
//     Apache with ProxyPreserveHost On), so applications build their
//     absolute URLs and cookie domains as without a balancer.
//     X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto are set
//     afresh; the client's own are dropped, since the balancer is the
//     edge.
//
// # Design
//
// Two paths serve clients, and both run the same balancing code: pick
// (route, cluster owners, Selector), failover, error state, retries,
// in-flight counts and member counters.
//
// The fast path (Frontend) serves plain HTTP/1.1, which is nearly all
// traffic. It is hand-written because the stock path could not get near
// the proxies users run today: in the shared lb-peers harness on this
// project's 2-core machine, net/http's server with httputil.ReverseProxy
// measured 8,883 req/s against nginx's 20,042 and HAProxy's 19,376 in the
// same run, at 113 µs of CPU per request against their 33 and 38;
// in-process (BenchmarkProxy) a request through it allocated 150 objects
// (12 KiB), and the profile showed the cost spread over the server's and
// Transport's goroutine hand-offs, header maps and allocations rather than
// in one hot spot a tuning could remove. valyala/fasthttp was not
// measured: the fast path must hand a connection to net/http with the
// bytes already read at any request boundary, know for each attempt
// whether anything reached the member (failover), and refuse ambiguous
// framing by the exact rules above; inside fasthttp's server and client
// each of these meant working around them, for a path of about 2,000
// lines of its own. The fast path is one goroutine per
// client connection that reads each request head into a pooled 4 KiB
// buffer, parses it in place (spans into the buffer, no maps, no
// strings: the sticky route and the hash key are looked up on the bytes),
// writes the rewritten head (hop-by-hop fields dropped, X-Forwarded-*
// set) on a pooled keep-alive connection to the member, reads the
// response head strictly, and streams the body back, flushing whenever
// the member has sent nothing more yet. A request costs no allocation
// (BenchmarkFastPath). A body is replayed for failover from what the
// failed attempt read, as on the net/http path (small bodies already in
// the buffer are replayed for free); a body still arriving streams from
// a goroutine of its own while the response is awaited, so full-duplex
// exchanges and a member's early answer work. A pooled connection idle for more
// than a second is checked (a peek) before reuse, and a request whose
// reused connection turns out closed by the member goes again on a new
// one. The idle timeout and response header timeouts of 10 s or more
// are enforced by a sweep once a second rather than a read deadline per
// request (a runtime timer update each); shorter response header
// timeouts are deadlines. A plain TCP client connection is served from
// inside one RawConn.Read (clientConn.serveRaw): once a read has left
// room in the buffer the socket is known to be empty, so the wait for
// the next request skips the read that net.Conn's Read tries first and
// that finds nothing on most requests (such a wait is bounded by 250 ms,
// for an end of stream that came with the last request); and while it
// waits, the connection holds no buffer. Once the
// open connections fall to a quarter of their recent peak and stop
// falling, the memory is given back to the system at once (two
// collections and a scavenge, at most every 2 s) and the member pools
// trimmed.
//
// Everything else goes, with the bytes already read, to a net/http
// server over Balancer.ServeHTTP: HTTP/2 (TLS with ALPN h2, h2c prior
// knowledge), Upgrade (WebSocket), CONNECT, Expect: 100-continue,
// HTTP/1.0 and targets that are not origin-form. There the proxying is
// httputil.ReverseProxy with Rewrite (not the insecure Director): it
// removes hop-by-hop headers, handles upgrades, trailers, 1xx responses
// and flushing. Failover is a loop around ReverseProxy.ServeHTTP rather
// than a retrying RoundTripper: each attempt picks a member and calls
// ServeHTTP; the ErrorHandler writes nothing but records the error, so
// nothing has reached the client when an attempt fails before the
// response, and the loop can try another member. A thin RoundTripper
// wrapper tells the member's failures from the proxy's own and times
// responses for p2c; FailOnStatus works through ModifyResponse. A body is
// replayed from what the failed attempt read: up to RetryBodyBytes (64
// KiB) of what members read, never reading ahead of them.
//
// Measured in the shared lb-peers harness (wrk -t2 -c64 on the same two
// cores as the proxies and two Go backends, 3 interleaved rounds of 4 s,
// four runs on 2026-11-28; bench/README.md has the tables): the fast
// path serves 10,400-15,000 req/s, 1.4-2.3 times the Go ReverseProxy
// baseline, at 40-52 µs of CPU per request (the net/http path: 113).
// Against the peers in the same runs, round robin it is behind both
// (0.67-0.85 of nginx's throughput, 0.76-0.97 of HAProxy's), sticky it
// is level with them (0.82-1.13 of nginx's, 0.82-1.38 of HAProxy's), at
// about 1.3 times nginx's CPU per request: the target of being ahead of
// both is not met. The difference is the Go runtime's share, not the
// proxy's own code (no allocation, about a tenth of the CPU samples):
// measured apart, a request costs the balancer 20 µs in user mode and 31
// in the kernel where nginx spends 12 and 26, for a read that finds
// nothing before each wait (Go's netpoller reads first where nginx waits
// for epoll first: about 0.9 more system calls per request) and the
// scheduler's wake-ups. With 10,000 keep-alive clients it answered every
// request in all four runs (HAProxy failed 13,500-20,100 per run, nginx
// none in three runs of four), with at most 179 MiB resident, and gave
// most of it back after (43 MiB). Measured apart since: 2,000 idle
// keep-alive clients cost 28 MiB resident (36 when each held its read
// buffer), and with them still open after a burst of 8,000 more, 47 MiB
// remained 2 s after the burst where 180 used to stay. Most of what a
// burst of 10,000 leaves (about 37 MiB, 15 before it) is the runtime's
// own: it never frees a goroutine's descriptor (480 bytes each), nor the
// poller's state of a descriptor. Round robin and sticky cost the
// balancer the same per request (measured apart, alternating, wrk -c64:
// the same CPU, 6.4 system calls, about 0.4 context switches); round
// robin costs the two Go backends about a fifth more per request (two
// half-loaded processes wake more often: 4.0 system calls and 0.7
// context switches per request against 3.5 and 0.4), with nginx in front
// as with this balancer, and both had a round-robin to sticky throughput
// ratio of 0.96 there: the harness's wider gap was not reproduced.
// One of those reads is saved on the member's side: a request with no
// body to stream is written from inside the poller's wait for its answer
// (backendConn.exchange), so the first read is the one that gets the
// answer; measured alternating against the code before (wrk -t2 -c64, 4
// pairs of 5 s runs), 2-3 % more requests per second and 1-2 µs less CPU
// per request (medians). Run 5 of the harness, before that change: 0.93
// of HAProxy's and nginx's throughput round robin, 0.87-0.89 sticky, at
// HAProxy's CPU per request round robin (43.1 against 43.8 µs); run 6,
// after it, on a noisier machine: 0.97 and 0.90 round robin, 1.00 and
// 1.09 sticky. The client's side is saved since (serveRaw): reads that
// found nothing fell from 64 % of requests to 0.04 % (counted in a wrk
// -c64 run), and BenchmarkFastPath (client, balancer and member in one
// process) takes 6-7 % less time per request (medians of 5 alternating
// pairs). Runs 7 and 8, after it: 1.03 and 0.98 of HAProxy's throughput
// and 0.92 and 0.89 of nginx's round robin, at 35.2 and 40.0 µs of CPU per
// request (HAProxy 45.2 and 42.8, nginx 36.6 and 36.3); sticky 0.92 and
// 0.93 of HAProxy's, 0.90 and 0.86 of nginx's; p99 below HAProxy's in all
// four. The target of being ahead of both is still not met.
// System calls: the fast path's reads and writes on a socket it holds
// from inside RawConn.Read (the client's request, the exchange with the
// member, the response to the client) are made with RawSyscall
// (internal/sysconn), without the runtime's entry into and exit from a
// system call. The sockets are non-blocking, so each call returns at once (a
// full socket says EAGAIN, and the rest of a response goes through the
// connection, which waits for room); the bookkeeping it skips is for
// calls that may block, and it let the runtime's monitor hand the
// processor of a thread in a slow call to another thread, which costs a
// wake-up each time. Measured with bench/balancer/cpusplit.sh (wrk
// -t2 -c64, the harness's two backends, 4 alternating rounds of 5 s,
// medians): 32.8 → 29.2 µs of balancer CPU per request and 21,020 →
// 22,214 req/s, nginx 29.5 µs and 23,158 in the same run. `shoal
// balancer` runs with twice the processors Go would choose (cli
// balancerProcs): on top of the raw calls, 22,751 → 24,103 req/s (nginx
// 22,299) in the same kind of run. Runs 10-14 of the harness, with both
// (fifteen rounds, medians of the per-round ratios): round robin 1.03 of
// nginx's throughput and 1.11 of HAProxy's, sticky 0.99 and 1.04; p99
// below HAProxy's in 23 rounds of 30. Level with nginx, ahead of HAProxy.
// Killing a member under 2,000 req/s failed no request, added at most
// 8-31 ms, and the restarted member took requests again within 74-152
// ms.
//
// Member state lives in atomics on each Member, so the request path takes
// no lock except the byrequests counters' mutex, which Apache also takes.
//
// Cluster mode (JoinCluster): the balancer follows a shoal cluster's
// membership as an observer; the nodes become members as they join, are
// dropped as fast as the cluster declares them dead, and a request whose
// route's node is gone goes straight to a node that holds a copy of its
// session (placement over the ready nodes, as the nodes compute it).
//
// AJP members (ajp://) are spoken to through the ajp package's
// Transport, on the net/http path: while any member is AJP, every request
// takes that path.
//
// Not done yet: trusted upstream proxies (X-Forwarded-For appended
// instead of replaced), HTTPS to members. On the fast path, the client's
// trailer fields are dropped (a member's are passed on, and so is its 103
// Early Hints; other interim responses are not), and a client that goes away while its
// member is still working is noticed when the answer is written, not
// before (the net/http path cancels the member's request at once).
package balancer
