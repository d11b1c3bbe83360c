// Package admin is the balancer's manager: a JSON API, a server-rendered
// HTML page and Prometheus metrics, served by `shoal balancer
// --admin-listen` on a listener of its own. It is the counterpart of
// Apache httpd's balancer-manager, whose CVE history (CSRF in
// CVE-2007-6420, XSS in CVE-2007-6421 and CVE-2012-4558) shapes its
// defences.
//
// # Routes
//
//	GET  /healthz                200 "ok", the only route without authentication
//	GET  /                       the page: a table of members and the cluster's nodes, with forms to change them, and a chart
//	POST /members/{route}        the page's forms: change a member, then 303 back to /
//	GET  /api/balancer           {"sticky": "COOKIE|param"} (null when the balancer does not report it)
//	GET  /api/cluster            the page's view of the members and the cluster, read from the nodes
//	GET  /api/rates              each member's requests per second over the last two minutes, for the chart
//	GET  /api/members            {"members": [member, ...]}
//	GET  /api/members/{route}    member
//	POST /api/members/{route}    change a member (JSON or form: action, weight); answers member
//	GET  /metrics                Prometheus exposition of shoal_balancer_* (and go_*, process_*)
//	GET  /static/{file}          the page's stylesheet, auto-refresh script and chart script
//
// No GET changes anything.
//
// # Protection
//
// Every request but /healthz is authenticated: "Authorization: Bearer
// TOKEN", or HTTP basic authentication with user "admin" and the token as
// password, so that a browser can log in. The comparison hashes both
// sides and compares the digests with crypto/subtle, so it leaks neither
// the token nor its length through timing.
//
// The page's forms (POST /members/{route}) always carry a form nonce, and
// a POST to the API authenticated by basic authentication must carry one
// too. The browser resends basic credentials on its own, so a
// page on another site could otherwise have a visitor's browser post a
// change (CSRF). A nonce is base64url(expiry ‖ 16 random bytes ‖
// HMAC-SHA256(key, route ‖ expiry ‖ random bytes)), with a random key
// per process; the check recomputes the MAC and compares it with
// hmac.Equal, then checks the expiry (one hour) and that the nonce was
// issued for the member the form changes. This is stateless like a
// double-submit cookie, without its weakness: another site on the same
// host (cookies are not separated by port) or a sibling domain can
// plant a cookie, but it cannot forge the MAC. A POST authenticated by a
// bearer token needs no nonce: browsers never attach an Authorization
// header on their own, and a page of another origin that sets one in
// fetch triggers a CORS preflight this server never approves, so a
// request with the token was made by someone who holds it. The manager
// sets no cookies, and authenticates nothing by cookie.
//
// Every authenticated POST from another origin (Sec-Fetch-Site, or an
// Origin header whose host is not the request's Host) is refused with
// 403 before anything else looks at it (net/http's
// CrossOriginProtection). Every response carries
// a Content-Security-Policy that allows scripts and styles from this
// server only, X-Frame-Options DENY, Cache-Control no-store, nosniff and
// no Referer; the page is an html/template, so every value in it is
// escaped for its context.
package admin
