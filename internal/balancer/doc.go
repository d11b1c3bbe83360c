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
//     HTTP/1.1, HTTP/2 over TLS or h2c (NewServer); members are spoken to
//     in HTTP/1.1 over one shared, pooled transport. WebSocket and other
//     upgrades pass through, and streamed responses (unknown length,
//     text/event-stream) are flushed as they come.
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
// The proxying itself is net/http/httputil.ReverseProxy with Rewrite (not
// the insecure Director): it already removes hop-by-hop headers, handles
// upgrades, trailers, 1xx responses and flushing. Failover is a loop
// around ReverseProxy.ServeHTTP rather than a retrying RoundTripper: each
// attempt picks a member and calls ServeHTTP; the ErrorHandler writes
// nothing but records the error, so nothing has reached the client when
// an attempt fails before the response, and the loop can try another
// member. The loop needs to know the member per attempt (for stickiness,
// exclusion of the members tried, in-flight counts that last until the
// response body is copied), which a RoundTripper below ReverseProxy would
// not see; a thin RoundTripper wrapper only tells the member's failures
// (the transport's errors) from the proxy's own, and times responses for
// p2c. FailOnStatus works through ModifyResponse, whose error makes the
// ReverseProxy drop the response.
//
// A body is replayed from what the failed attempt read: the balancer
// keeps up to RetryBodyBytes (64 KiB) of what members read, never reading
// ahead of them (a client that streams its body while reading the
// response is not stalled). A request can be sent again while everything
// read from its body is kept, so a large body still fails over when the
// connection to the first member failed.
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
// Not done yet: trusted upstream proxies
// (X-Forwarded-For appended instead of replaced), HTTPS and AJP to
// members.
package balancer
