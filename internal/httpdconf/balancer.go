package httpdconf

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/balancerconf"
)

// Apache's defaults where shoal's differ or must be written out.
const (
	apacheRetry       = 60 * time.Second // a worker's retry
	apacheTimeout     = 60 * time.Second // Timeout, hence ProxyTimeout and a worker's timeout
	apacheHCInterval  = 30 * time.Second // hcinterval
	apacheHCPassFails = 1                // hcpasses, hcfails
)

// translate writes the settings of balancer b and of the server around
// it into out.
func (t *translator) translate(b *balancerDef, passes []*pass, out *output) {
	prefix, _ := t.memberPath(passes)
	t.listen(out)
	t.tls(out)
	if t.manager != nil {
		t.report(t.manager.Line, Note, t.manager.String(), "shoal's manager (balancer-manager) listens apart from clients, "+
			"with a token: set admin-listen (commented out in the output; an address other than loopback needs admin-token-file)")
		out.manager = true
	}
	t.balancerParams(b, out)
	t.members(b, prefix, out)
	if t.maxBody != nil {
		out.set("max-body", strconv.FormatInt(t.maxBody.v, 10), t.maxBody.line)
	}
	if t.preserve == nil || !t.preserve.v {
		line := 0
		if len(passes) > 0 {
			line = passes[0].d.Line
		}
		if t.preserve != nil {
			line = t.preserve.line
		}
		t.report(line, Note, "ProxyPreserveHost Off", "shoal's balancer sends the client's Host header to members "+
			"(as Apache with ProxyPreserveHost On); Apache sent the member's host:port here")
	}
	for _, d := range t.reverse {
		t.report(d.Line, Note, d.String(), "not needed: members get the client's Host, so the redirects they build "+
			"name the balancer already")
	}
}

// listen translates Listen.
func (t *translator) listen(out *output) {
	if len(t.listens) == 0 {
		if len(t.vhosts) == 1 && len(t.vhosts[0].Args) == 1 {
			v := t.vhosts[0]
			host, port, err := net.SplitHostPort(v.Args[0])
			if _, perr := strconv.Atoi(port); err == nil && perr == nil {
				if host == "*" || host == "_default_" {
					host = ""
				}
				out.set("listen", tomlString(net.JoinHostPort(host, port)), v.Line)
				t.report(v.Line, Note, v.String(), "no Listen line: listen is the virtual host's address")
				return
			}
		}
		t.report(0, Note, "", "no Listen line: listen stays %s unless you set it", "127.0.0.1:8000")
		return
	}
	d := t.listens[0]
	for _, other := range t.listens[1:] {
		t.report(other.Line, NotTranslated, other.String(), "shoal's balancer listens on one address (the first Listen, line %d): "+
			"run one balancer per address", d.Line)
	}
	if len(d.Args) == 0 || len(d.Args) > 2 {
		t.report(d.Line, NotTranslated, d.String(), "want Listen [ADDRESS:]PORT [PROTOCOL]")
		return
	}
	addr := d.Args[0]
	if !strings.Contains(addr, ":") || strings.HasSuffix(addr, "]") {
		addr = ":" + addr // a port alone: every address, as Apache
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		t.report(d.Line, NotTranslated, d.String(), "want Listen [ADDRESS:]PORT")
		return
	}
	if len(d.Args) == 2 && !strings.EqualFold(d.Args[1], "http") && !strings.EqualFold(d.Args[1], "https") {
		t.report(d.Line, NotTranslated, d.String(), "shoal's balancer speaks HTTP (or HTTPS with tls-cert), not %s", d.Args[1])
	}
	out.set("listen", tomlString(addr), d.Line)
}

// tls translates SSLEngine on with its certificate and key.
func (t *translator) tls(out *output) {
	if t.ssl == nil {
		for _, d := range []*Directive{t.cert, t.key} {
			if d != nil {
				t.report(d.Line, Note, d.String(), "no SSLEngine on in this file: not translated (clients are served plain HTTP)")
			}
		}
		return
	}
	if t.cert == nil || len(t.cert.Args) != 1 {
		t.report(t.ssl.Line, NotTranslated, t.ssl.String(), "no SSLCertificateFile FILE: set tls-cert and tls-key")
		return
	}
	cert, key := t.cert.Args[0], t.cert.Args[0] // a key in the certificate's file, as Apache allows
	keyLine := t.cert.Line
	if t.key != nil && len(t.key.Args) == 1 {
		key, keyLine = t.key.Args[0], t.key.Line
	}
	out.set("tls-cert", tomlString(cert), t.cert.Line)
	out.set("tls-key", tomlString(key), keyLine)
	if !strings.HasPrefix(cert, "/") || !strings.HasPrefix(key, "/") {
		t.report(t.cert.Line, Note, t.cert.String(), "a relative file name: Apache reads it from its ServerRoot, "+
			"shoal from the config file's directory")
	}
}

// balancerParams translates the balancer's parameters (ProxySet and
// ProxyPass).
func (t *translator) balancerParams(b *balancerDef, out *output) {
	out.set("sticky", tomlString(""), 0) // Apache's default: no stickiness
	out.set("method", tomlString("byrequests"), 0)
	for _, p := range b.params {
		nt := func(format string, args ...any) { t.report(p.line, NotTranslated, p.raw, format, args...) }
		note := func(format string, args ...any) { t.report(p.line, Note, p.raw, format, args...) }
		switch p.key {
		case "stickysession":
			if err := balancerconf.CheckChange(func(c *balancer.Config) { c.Sticky = p.val }); err != nil {
				nt("%v", err)
				continue
			}
			out.set("sticky", tomlString(p.val), p.line)
		case "stickysessionsep":
			if p.val != "." {
				nt("shoal's route is the text after the session id's first '.': no other separator")
			}
		case "scolonpathdelim":
			if _, err := onOff(p.val); err != nil {
				nt("%v", err)
			}
			// On: shoal ends a ;jsessionid= path parameter's value at
			// the next ';' already.
		case "nofailover":
			on, err := onOff(p.val)
			if err != nil {
				nt("%v", err)
			} else if on {
				nt("shoal's balancer always fails over to another member when the session's member is not usable: " +
					"with shoal nodes (or replicating Tomcats) the session is there too")
			}
		case "lbmethod":
			switch strings.ToLower(p.val) {
			case "byrequests", "bybusyness":
				out.set("method", tomlString(strings.ToLower(p.val)), p.line)
			case "bytraffic":
				nt("shoal has no bytraffic: its methods are byrequests, bybusyness, p2c and hash (method = \"bybusyness\" is the nearest)")
			case "heartbeat":
				nt("shoal has no heartbeat method: follow a shoal cluster (cluster-join) to learn the nodes instead")
			default:
				nt("not an lbmethod: want byrequests, bybusyness, bytraffic or heartbeat")
			}
		case "maxattempts":
			n, err := integer(p.val, 1000)
			if err != nil {
				nt("%v", err)
				continue
			}
			// Apache counts the attempts after the first, shoal all of them.
			out.set("max-attempts", strconv.Itoa(n+1), p.line)
		case "failonstatus":
			codes, err := statusList(p.val)
			if err != nil {
				nt("%v", err)
				continue
			}
			s := make([]string, len(codes))
			for i, c := range codes {
				s[i] = strconv.Itoa(c)
			}
			out.set("failonstatus", "["+strings.Join(s, ", ")+"]", p.line)
		case "failontimeout":
			if _, err := onOff(p.val); err != nil {
				nt("%v", err)
			}
			// shoal always puts a member whose response timed out in
			// error (Apache's On); the guide says so.
		case "forcerecovery":
			on, err := onOff(p.val)
			if err != nil {
				nt("%v", err)
			} else if !on {
				out.set("no-force-recovery", "true", p.line)
			}
		case "timeout":
			nt("shoal's balancer does not wait for a busy member to become free: with none usable, it answers 503 at once")
		case "nonce":
			note("not needed: shoal's manager protects each form with its own nonce")
		case "growth":
			note("not needed: shoal adds members when its config file is reloaded (SIGHUP)")
		default:
			nt("not a balancer parameter (Apache refuses it on a balancer)")
		}
	}
}

// memberOut is what one BalancerMember becomes.
type memberOut struct {
	d              *Directive
	route, url     string
	weight         float64
	lbset          int
	standby        bool
	disabled       bool
	drain          bool
	retry, timeout time.Duration
	connect        time.Duration
	// The lines that set retry, timeout and connect: 0 for Apache's
	// defaults (timeout: the line of ProxyTimeout or Timeout, if set).
	retryLine, timeoutLine, connectLine int
	hc                                  healthCheck
	hcLine                              int // the line of its hcmethod
}

// healthCheck is a member's mod_proxy_hcheck parameters.
type healthCheck struct {
	method, uri    string
	interval       time.Duration
	passes, fails  int
	expr, template string
}

// members translates the BalancerMember lines of b, and the settings
// shoal has once for all members (retry, timeouts, health checks).
func (t *translator) members(b *balancerDef, prefix string, out *output) {
	timeout, timeoutLine := apacheTimeout, 0
	for _, set := range []*setting[time.Duration]{t.timeout, t.pTimeout} {
		if set != nil {
			timeout, timeoutLine = set.v, set.line
		}
	}
	routes := map[string]bool{}
	for _, m := range b.members {
		for _, p := range m.params {
			if p.key == "route" {
				routes[p.val] = true
			}
		}
	}
	var all []*memberOut
	first := map[string]int{} // route → line of its first member
	for i, m := range b.members {
		mo := t.member(m, i, prefix, timeout, timeoutLine, routes)
		if l, dup := first[mo.route]; dup {
			t.report(m.d.Line, NotTranslated, m.d.String(), "route %q is used on line %d too: shoal's routes must be unique "+
				"(a route names one node); only the first is kept", mo.route, l)
			continue
		}
		first[mo.route] = m.d.Line
		all = append(all, mo)
		out.members = append(out.members, mo)
	}
	if len(all) == 0 {
		return
	}
	retry := func(m *memberOut) (time.Duration, int) { return m.retry, m.retryLine }
	t.shared(all, "retry", retry, func(d time.Duration, line int) {
		out.set("retry", tomlString(formatDuration(d)), line)
	})
	wait := func(m *memberOut) (time.Duration, int) { return m.timeout, m.timeoutLine }
	t.shared(all, "timeout", wait, func(d time.Duration, line int) {
		out.set("response-header-timeout", tomlString(formatDuration(d)), line)
		if line > 0 {
			t.report(line, Note, "timeout", "translated as response-header-timeout: Apache's bounds every wait for "+
				"data from the member, shoal's the wait for the response's headers (a slow body is not cut)")
		}
	})
	if slices.ContainsFunc(all, func(m *memberOut) bool { return m.connectLine > 0 }) {
		// Apache's connectiontimeout defaults to the worker's timeout.
		connect := func(m *memberOut) (time.Duration, int) {
			if m.connectLine > 0 {
				return m.connect, m.connectLine
			}
			return m.timeout, m.timeoutLine
		}
		t.shared(all, "connectiontimeout", connect, func(d time.Duration, line int) {
			out.set("connect-timeout", tomlString(formatDuration(d)), line)
		})
	}
	t.health(all, out)
}

// shared calls set with the value of a setting every member has the
// same of (and the first line that sets it, 0 if none does), and
// reports the first member that differs otherwise.
func (t *translator) shared(all []*memberOut, name string, get func(*memberOut) (time.Duration, int), set func(time.Duration, int)) {
	first, line := get(all[0])
	for _, m := range all[1:] {
		v, l := get(m)
		if v != first {
			t.report(m.d.Line, NotTranslated, m.d.String(), "%s %s here, %s on line %d: shoal has one %s for all members "+
				"(the output keeps shoal's default)", name, formatDuration(v), formatDuration(first), all[0].d.Line, name)
			return
		}
		if line == 0 {
			line = l
		}
	}
	set(first, line)
}

// health translates mod_proxy_hcheck's parameters, which shoal has once
// for all members.
func (t *translator) health(all []*memberOut, out *output) {
	first, line := all[0].hc, all[0].hcLine
	for _, m := range all {
		if m.hc.expr != "" || m.hc.template != "" {
			t.report(m.hcLine, NotTranslated, m.d.String(), "hcexpr and hctemplate: shoal's checks pass on 200 "+
				"(503: alive, not ready) and are set once for all members")
			return
		}
		if m.hc != first {
			t.report(m.d.Line, NotTranslated, m.d.String(), "health checks differ from line %d's: shoal checks every member "+
				"the same way (health-path and the health-* keys)", all[0].d.Line)
			return
		}
	}
	switch strings.ToUpper(first.method) {
	case "", "NONE":
		out.set("health-path", tomlString(""), 0)
		out.noHealth = true
		return
	case "GET", "GET11", "HEAD", "HEAD11":
	default:
		t.report(line, NotTranslated, "hcmethod="+first.method, "shoal's health checks are HTTP GETs "+
			"(set health-path to a path the members answer 200 on)")
		return
	}
	path := "/" + strings.TrimPrefix(first.uri, "/")
	if err := balancerconf.CheckChange(func(c *balancer.Config) { c.Health.Path = path }); err != nil || strings.ContainsAny(path, "?#") {
		t.report(line, NotTranslated, "hcuri="+first.uri, "want a path (health-path)")
		return
	}
	out.set("health-path", tomlString(path), line)
	out.set("health-interval", tomlString(formatDuration(first.interval)), line)
	out.set("health-rise", strconv.Itoa(first.passes), line)
	out.set("health-fall", strconv.Itoa(first.fails), line)
	t.report(line, Note, "hcmethod="+first.method, "shoal's check is a GET that passes on 200 and takes 503 as "+
		"alive but not ready (no new sessions); Apache's passed on any 2xx or 3xx")
}

// member translates one BalancerMember. routes holds the routes the
// members give (a member without one gets a free name).
func (t *translator) member(m *memberDef, i int, prefix string, timeout time.Duration, timeoutLine int, routes map[string]bool) *memberOut {
	d := m.d
	mo := &memberOut{d: d, retry: apacheRetry, timeout: timeout, timeoutLine: timeoutLine,
		hc: healthCheck{interval: apacheHCInterval, passes: apacheHCPassFails, fails: apacheHCPassFails}, hcLine: d.Line}
	nt := func(p param, format string, args ...any) { t.report(d.Line, NotTranslated, p.raw, format, args...) }
	note := func(p param, format string, args ...any) { t.report(d.Line, Note, p.raw, format, args...) }
	var secret *param
	var status workerStatus
	for _, p := range m.params {
		switch p.key {
		case "route":
			mo.route = p.val
		case "loadfactor":
			w, err := strconv.ParseFloat(p.val, 64)
			if err != nil || !(w >= 1 && w <= 100) {
				nt(p, "want a number from 1 to 100")
				continue
			}
			mo.weight = w
		case "lbset":
			n, err := integer(p.val, balancer.MaxLBSet)
			if err != nil {
				nt(p, "%v", err)
				continue
			}
			mo.lbset = n
		case "status":
			s, err := parseStatus(p.val)
			if err != nil {
				nt(p, "%v", err)
				continue
			}
			status = s
		case "retry":
			mo.retry, mo.retryLine = t.memberDuration(d, p, apacheRetry), d.Line
		case "timeout":
			mo.timeout, mo.timeoutLine = t.memberDuration(d, p, timeout), d.Line
		case "connectiontimeout":
			mo.connect, mo.connectLine = t.memberDuration(d, p, 0), d.Line
		case "secret":
			secret = &p
		case "redirect":
			nt(p, "shoal has no fixed redirect route: the sessions of a member that is not usable go to a node that "+
				"holds a copy (following a shoal cluster) or by the balancing method")
		case "mapping":
			nt(p, "shoal's balancer sends paths as they come")
		case "ping":
			note(p, "not needed: shoal sends a request again on a new connection when a pooled one turns out closed, "+
				"and its health checks find a dead member")
		case "upgrade":
			note(p, "not needed: shoal passes protocol upgrades (WebSocket) on to http:// members by itself")
		case "min", "max", "smax", "ttl", "acquire", "keepalive", "disablereuse", "enablereuse", "flushpackets",
			"flushwait", "iobuffersize", "receivebuffersize", "responsefieldsize", "addressttl":
			note(p, "not needed: shoal's balancer keeps and sizes its own pool of connections per member")
		case "hcmethod":
			mo.hc.method = p.val
		case "hcuri":
			mo.hc.uri = p.val
		case "hcinterval":
			mo.hc.interval = t.memberDuration(d, p, apacheHCInterval)
		case "hcpasses", "hcfails":
			n, err := integer(p.val, 1000)
			if err != nil || n == 0 {
				nt(p, "want a number from 1 to 1000")
				continue
			}
			if p.key == "hcpasses" {
				mo.hc.passes = n
			} else {
				mo.hc.fails = n
			}
		case "hcexpr":
			mo.hc.expr = p.val
		case "hctemplate":
			mo.hc.template = p.val
		default:
			nt(p, "not a BalancerMember parameter (Apache refuses it)")
		}
	}
	if mo.route == "" {
		mo.route = freeRoute(i, routes)
		t.report(d.Line, Note, d.String(), "no route: named %q here; set route to the node's name (Tomcat's jvmRoute, "+
			"shoal node's --name) for sticky sessions", mo.route)
	}
	t.status(d, status, mo)
	mo.url = t.memberURL(d, m.url, prefix, mo, secret)
	return mo
}

// memberDuration parses a member's time parameter, reporting a bad one
// (then def is kept).
func (t *translator) memberDuration(d *Directive, p param, def time.Duration) time.Duration {
	v, err := seconds(p.val)
	if err != nil {
		t.report(d.Line, NotTranslated, p.raw, "%v", err)
		return def
	}
	return v
}

// freeRoute returns a route no member gives, for the i-th member.
func freeRoute(i int, routes map[string]bool) string {
	for n := i + 1; ; n++ {
		r := "member" + strconv.Itoa(n)
		if !routes[r] {
			routes[r] = true
			return r
		}
	}
}

// status translates a member's status flags.
func (t *translator) status(d *Directive, s workerStatus, mo *memberOut) {
	mo.disabled = s.disabled || s.stopped
	mo.standby = s.standby || s.spare
	mo.drain = s.drain
	if s.spare {
		t.report(d.Line, NotTranslated, "status=+R", "shoal has no hot spare (taking the place of each member that is not "+
			"usable); the member is a standby (used only when no other member is usable)")
	}
	if s.ignoreErrors {
		t.report(d.Line, NotTranslated, "status=+I", "shoal always puts a member that fails in error")
	}
	if s.inError {
		t.report(d.Line, Note, "status=+E", "shoal starts every member usable: a failed request or health check puts it in error")
	}
}

// memberURL returns the member's URL for shoal (with the ProxyPass path
// prefix), reporting it if the balancer cannot proxy to it.
func (t *translator) memberURL(d *Directive, raw, prefix string, mo *memberOut, secret *param) string {
	u, err := checkURL(raw)
	if err != nil {
		t.report(d.Line, NotTranslated, d.String(), "URL %q: %v", raw, err)
		return raw
	}
	full := u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/") + prefix
	if u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		full = raw // refused below, as it is
	}
	scheme := strings.ToLower(u.Scheme)
	err = balancerconf.CheckChange(func(c *balancer.Config) {
		c.Members = []balancer.MemberConfig{{Route: mo.route, URL: full, Weight: mo.weight, LBSet: mo.lbset}}
	})
	switch {
	case err != nil && scheme == "ajp":
		t.report(d.Line, NotTranslated, d.String(), "this shoal version's balancer proxies to http:// members only, not ajp:// "+
			"yet: give the member's HTTP address instead (Tomcat's HTTP connector; a shoal node's --listen)")
	case err != nil && (scheme == "https" || scheme == "h2" || scheme == "wss"):
		t.report(d.Line, NotTranslated, d.String(), "this shoal version talks plain HTTP to members (%v)", balancerconf.Innermost(err))
	case err != nil:
		t.report(d.Line, NotTranslated, d.String(), "%v", balancerconf.Innermost(err))
	case secret != nil && scheme == "ajp":
		t.report(d.Line, NotTranslated, secret.raw, "a secret is not written into the config: put it in a file of mode 600 "+
			"and set ajp-secret-file = \"FILE\" (or --ajp-secret-file FILE); shoal sends one secret to every ajp:// member")
	case secret != nil:
		t.report(d.Line, Note, secret.raw, "not needed: secret is for ajp:// members (Apache ignores it here)")
	}
	return full
}
