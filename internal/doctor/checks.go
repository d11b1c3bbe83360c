package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Check names, as printed.
const (
	checkReachable = "nodes reachable and ready"
	checkMembers   = "same member list"
	checkProbe     = "replication"
	checkRoutes    = "balancer routes"
	checkCookie    = "sticky cookie"
	checkStates    = "balancer and cluster agree"
	checkKey       = "cluster key"
	checkPeers     = "peers"
	checkMulticast = "multicast discovery"
	checkClocks    = "clocks"
	checkEncode    = "encode failures"
	checkCommit    = "commit failures"
	checkCopies    = "session copies"
	checkConflicts = "conflicts"
)

// checkReachable: every node answers its status and is ready.
func (d *doctor) checkReachable() Result {
	r := Result{Check: checkReachable}
	if len(d.nodes) == 0 {
		r.Level, r.Evidence = Fail, "no node to check: the balancer lists no member and no --node was given"
		r.Action = "give the nodes' HTTP addresses with --node"
		return r
	}
	var bad, notReady, ok []string
	for _, n := range d.nodes {
		switch {
		case n.status == nil:
			bad = append(bad, fmt.Sprintf("%s: %v", n.url, n.err))
		case !n.ready || n.status.State != "ready":
			notReady = append(notReady, fmt.Sprintf("%s (%s)", n.name(), n.status.State))
		default:
			ok = append(ok, n.name())
		}
	}
	switch {
	case len(bad) > 0:
		r.Level = Fail
		r.Evidence = "unreachable: " + strings.Join(bad, "; ")
		r.Action = "start the node, or check the address and that nothing between here and it drops HTTP"
	case len(notReady) > 0:
		r.Level = Fail
		r.Evidence = "not ready: " + strings.Join(notReady, ", ")
		r.Action = "a joining node becomes ready once it received its sessions; if it stays joining, read its log"
	default:
		r.Level, r.Evidence = Pass, strings.Join(ok, ", ")+" ready"
	}
	return r
}

// view is the sorted names of the cluster nodes a node sees.
func view(n *nodeInfo) []string {
	var v []string
	for _, m := range n.status.Cluster.Members {
		if m.Role == "node" {
			v = append(v, m.Name)
		}
	}
	slices.Sort(v)
	return v
}

// checkMembers: every cluster node sees the same nodes; a split view
// says who sees whom.
func (d *doctor) checkMembers() []Result {
	nodes := d.clusterNodes()
	if len(nodes) == 0 {
		return nil
	}
	type group struct {
		view []string
		who  []*nodeInfo
	}
	var groups []*group
	for _, n := range nodes {
		v := view(n)
		i := slices.IndexFunc(groups, func(g *group) bool { return slices.Equal(g.view, v) })
		if i < 0 {
			groups = append(groups, &group{view: v})
			i = len(groups) - 1
		}
		groups[i].who = append(groups[i].who, n)
	}
	r := Result{Check: checkMembers}
	if len(groups) == 1 {
		r.Level, r.Evidence = Pass, fmt.Sprintf("%d nodes see [%s]", len(nodes), strings.Join(groups[0].view, " "))
		return []Result{r}
	}
	var parts []string
	for _, g := range groups {
		verb := "sees"
		if len(g.who) > 1 {
			verb = "see"
		}
		parts = append(parts, fmt.Sprintf("%s %s [%s]", names(g.who), verb, strings.Join(g.view, " ")))
	}
	r.Level = Fail
	r.Evidence = "split view: " + strings.Join(parts, "; ")
	r.Action = "the groups are separate clusters: give every node a --join list (or --discover) that reaches the others, " +
		"the same key, and open the gossip port (TCP and UDP) between them"
	return []Result{r}
}

// checkProbe writes a probe session on each cluster node and reads it on
// every other one, measuring how long it took to be readable there.
func (d *doctor) checkProbe(ctx context.Context) []Result {
	nodes := slices.DeleteFunc(d.clusterNodes(), func(n *nodeInfo) bool { return !n.ready })
	if len(nodes) < 2 {
		return nil
	}
	const maxWriters = 16
	var failures, lags []string
	var worst time.Duration
	for i, w := range nodes {
		if i == maxWriters {
			break
		}
		code, body, err := d.do(ctx, "POST", w.url+ProbePath, "")
		if err != nil || code != http.StatusOK {
			failures = append(failures, fmt.Sprintf("write on %s: %s", w.name(), answer(code, body, err)))
			continue
		}
		written := time.Now()
		var p Probe
		if err := json.Unmarshal(body, &p); err != nil || p.Session == "" {
			failures = append(failures, fmt.Sprintf("write on %s: not a probe answer: %s", w.name(), firstLine(body)))
			continue
		}
		q := url.Values{"session": {p.Session}}.Encode()
		for _, r := range nodes {
			if r == w {
				continue
			}
			lag, err := d.readProbe(ctx, r.url+ProbePath+"?"+q, p, written)
			if err != nil {
				failures = append(failures, fmt.Sprintf("written on %s, not read on %s: %v", w.name(), r.name(), err))
				continue
			}
			worst = max(worst, lag)
			lags = append(lags, fmt.Sprintf("%s→%s %s", w.name(), r.name(), lag.Round(100*time.Microsecond)))
		}
		// Best effort: the probe expires within a minute anyway.
		d.do(ctx, "DELETE", w.url+ProbePath+"?"+q, "")
	}
	r := Result{Check: checkProbe}
	if len(failures) > 0 {
		r.Level = Fail
		r.Evidence = strings.Join(failures, "; ")
		r.Action = "a session written on one node is not seen on the other: check the split view and key checks above, " +
			"and that the replication port (--repl-listen) is open between the nodes"
		return []Result{r}
	}
	r.Level = Pass
	r.Evidence = fmt.Sprintf("a probe session written on each node was read on every other (worst %s): %s",
		worst.Round(100*time.Microsecond), strings.Join(lags, ", "))
	return []Result{r}
}

// readProbe polls a node for probe p until it reads it or ProbeWait
// passes, and returns the time since written.
func (d *doctor) readProbe(ctx context.Context, u string, p Probe, written time.Time) (time.Duration, error) {
	deadline := written.Add(d.cfg.ProbeWait)
	var last string
	for try := 0; try < 1000; try++ {
		code, body, err := d.do(ctx, "GET", u, "")
		if err == nil && code == http.StatusOK {
			var got Probe
			if err := json.Unmarshal(body, &got); err != nil {
				return 0, fmt.Errorf("not a probe answer: %s", firstLine(body))
			}
			if !got.WrittenAt.Equal(p.WrittenAt) || got.WrittenBy != p.WrittenBy {
				return 0, fmt.Errorf("read another probe (written by %s at %v)", got.WrittenBy, got.WrittenAt)
			}
			return time.Since(written), nil
		}
		last = answer(code, body, err)
		if code != http.StatusNotFound && code != http.StatusTooManyRequests && err == nil {
			return 0, fmt.Errorf("%s", last)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not there after %v (%s)", d.cfg.ProbeWait, last)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("not there after 1000 reads (%s)", last)
}

// answer describes a failed request.
func answer(code int, body []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %s", code, firstLine(body))
}

// checkBalancer compares the balancer's members with the nodes.
func (d *doctor) checkBalancer() []Result {
	if d.lb.err != nil {
		return []Result{{Check: checkRoutes, Level: Fail, Evidence: d.lb.err.Error(),
			Action: "give the manager's address (--admin-listen) with --balancer and its token with --admin-token-file"}}
	}
	var out []Result

	// Routes: each member's URL answers as the node its route names.
	routes := Result{Check: checkRoutes}
	var wrong, unknown, ok []string
	inCluster := map[string]bool{}
	for _, n := range d.clusterNodes() {
		for _, name := range view(n) {
			inCluster[name] = true
		}
	}
	for _, m := range d.lb.members {
		u, _ := baseURL(m.URL) // checked by fetchBalancer
		n := d.byHost[hostOf(u)]
		switch {
		case n == nil || n.status == nil:
			unknown = append(unknown, fmt.Sprintf("%s → %s (unreachable)", m.Route, m.URL))
		case n.status.Node != m.Route:
			wrong = append(wrong, fmt.Sprintf("member %s → %s answers as node %s", m.Route, m.URL, n.status.Node))
		default:
			ok = append(ok, m.Route)
		}
	}
	switch {
	case len(wrong) > 0:
		routes.Level = Fail
		routes.Evidence = strings.Join(wrong, "; ")
		routes.Action = "a member's route must be the --name of the node at its URL, or sessions go to the wrong node: fix the balancer's --member ROUTE=URL"
	case len(unknown) > 0:
		routes.Level = Fail
		routes.Evidence = "cannot check: " + strings.Join(unknown, "; ")
		routes.Action = "start the node, or fix the member's URL in the balancer's --member list"
	case len(ok) == 0:
		routes.Level = Warn
		routes.Evidence = "the balancer has no member"
		routes.Action = "give it --member ROUTE=URL, or --cluster-join to follow the cluster"
	default:
		routes.Level, routes.Evidence = Pass, "every member's URL answers as the node its route names: "+strings.Join(ok, ", ")
	}
	out = append(out, routes)

	// The sticky cookie: the balancer reads the id where the nodes put it.
	cookie := Result{Check: checkCookie}
	cookies := map[string][]string{}
	for _, n := range d.live() {
		cookies[n.status.Cookie] = append(cookies[n.status.Cookie], n.name())
	}
	var nodeCookies []string
	for c := range cookies {
		nodeCookies = append(nodeCookies, c)
	}
	slices.Sort(nodeCookies)
	switch {
	case len(nodeCookies) > 1:
		var parts []string
		for _, c := range nodeCookies {
			parts = append(parts, fmt.Sprintf("%s on %s", c, strings.Join(cookies[c], ", ")))
		}
		cookie.Level, cookie.Evidence = Fail, "the nodes use different cookies: "+strings.Join(parts, "; ")
		cookie.Action = "give every node the same session cookie name"
	case d.lb.sticky == nil:
		cookie.Level = Warn
		cookie.Evidence = fmt.Sprintf("the balancer does not report its sticky names; the nodes' cookie is %s", strings.Join(nodeCookies, ""))
		cookie.Action = "check that the balancer's --sticky names " + strings.Join(nodeCookies, "") + " (its default, JSESSIONID|jsessionid, does)"
	case len(nodeCookies) == 1 && *d.lb.sticky == "":
		// Off on purpose: every request is balanced, and the cluster
		// serves any session on any node.
		cookie.Level, cookie.Evidence = Pass, "the balancer's stickiness is off (--sticky \"\"): requests are spread over the nodes, which share the sessions"
	case len(nodeCookies) == 1:
		name, _, _ := strings.Cut(*d.lb.sticky, "|")
		if name != nodeCookies[0] {
			cookie.Level = Fail
			cookie.Evidence = fmt.Sprintf("the balancer looks for cookie %s (--sticky %s), the nodes set %s", name, *d.lb.sticky, nodeCookies[0])
			cookie.Action = "set the balancer's --sticky to the nodes' cookie name, or sessions are not sticky"
		} else {
			cookie.Level, cookie.Evidence = Pass, "balancer and nodes use "+name
		}
	}
	if cookie.Level != "" {
		out = append(out, cookie)
	}

	// States: a member up in the balancer but dead in the cluster, and the
	// reverse.
	if len(inCluster) == 0 {
		return out
	}
	states := Result{Check: checkStates}
	var upDead, readyDown []string
	lbRoutes := map[string]balancerMember{}
	for _, m := range d.lb.members {
		lbRoutes[m.Route] = m
		up := m.State == "ok" || m.State == "standby" || m.State == "draining"
		if up && !inCluster[m.Route] {
			upDead = append(upDead, m.Route)
		}
	}
	for name := range inCluster {
		m, ok := lbRoutes[name]
		switch {
		case !ok:
			readyDown = append(readyDown, name+" (not a member)")
		case m.State == "error" || m.State == "disabled":
			reason := ""
			if m.Reason != "" {
				reason = ": " + m.Reason
			}
			readyDown = append(readyDown, fmt.Sprintf("%s (%s%s)", name, m.State, reason))
		}
	}
	slices.Sort(readyDown)
	switch {
	case len(upDead) > 0:
		states.Level = Fail
		states.Evidence = "up in the balancer, not a live node in the cluster: " + strings.Join(upDead, ", ")
		states.Action = "the balancer sends requests to a node the cluster does not know: start it in the cluster, or remove it from the balancer"
	case len(readyDown) > 0:
		states.Level = Warn
		states.Evidence = "live in the cluster, not taking requests from the balancer: " + strings.Join(readyDown, ", ")
		states.Action = "add or enable the member in the balancer (its manager: action=enable), or check why its health checks fail"
	default:
		states.Level, states.Evidence = Pass, "every member up in the balancer is a live node, and every live node is an up member"
	}
	return append(out, states)
}

// checkRefusals reports peers refused for a key mismatch (FAIL) or
// another reason (WARN).
func (d *doctor) checkRefusals() []Result {
	nodes := d.clusterNodes()
	if len(nodes) == 0 {
		return nil
	}
	var key, other []string
	now := time.Now()
	for _, n := range nodes {
		for _, r := range n.status.Cluster.Refusals {
			line := fmt.Sprintf("%s refused %s over %s %d× (last %s ago): %s", n.name(), r.Remote, r.Via, r.Count,
				now.Sub(r.Last.Add(-n.offset)).Round(time.Second), r.Reason)
			if r.Reason == "cluster key mismatch" {
				key = append(key, line)
			} else {
				other = append(other, line)
			}
		}
	}
	out := []Result{{Check: checkKey, Level: Pass, Evidence: "no node refused a peer for its key"}}
	if len(key) > 0 {
		out[0] = Result{Check: checkKey, Level: Fail, Evidence: strings.Join(key, "; "),
			Action: "a process at that address uses another cluster key (or none): give every node the same --cluster-key-file"}
	}
	if len(other) > 0 {
		out = append(out, Result{Check: checkPeers, Level: Warn, Evidence: strings.Join(other, "; "),
			Action: "check the --join addresses and ports, and that the gossip port is open for UDP as well as TCP"})
	}
	return out
}

// checkMulticast: a node that discovers by multicast on a host where it
// cannot work.
func (d *doctor) checkMulticast() []Result {
	var used bool
	var bad, ok []string
	for _, n := range d.clusterNodes() {
		c := n.status.Cluster
		if !strings.HasPrefix(c.Discover, "multicast://") {
			continue
		}
		used = true
		switch {
		case c.Multicast == nil:
			bad = append(bad, n.name()+": no multicast report")
		case c.Multicast.Problem != "":
			bad = append(bad, fmt.Sprintf("%s (%s): %s", n.name(), c.Discover, c.Multicast.Problem))
		default:
			ok = append(ok, fmt.Sprintf("%s on %s", n.name(), strings.Join(c.Multicast.Interfaces, ",")))
		}
	}
	if !used {
		return nil
	}
	if len(bad) > 0 {
		return []Result{{Check: checkMulticast, Level: Fail, Evidence: strings.Join(bad, "; "),
			Action: "multicast needs an interface that is up with the MULTICAST flag and a route to the group " +
				"(ip route add 224.0.0.0/4 dev IFACE); where the network drops multicast (most clouds), use --join or --discover dns://"}}
	}
	return []Result{{Check: checkMulticast, Level: Pass, Evidence: "multicast can work: " + strings.Join(ok, "; ")}}
}

// checkClocks compares the nodes' clocks (each against this machine's,
// within the request's round trip).
func (d *doctor) checkClocks() []Result {
	nodes := d.live()
	if len(nodes) < 2 {
		return nil
	}
	lo, hi := nodes[0], nodes[0]
	var slack time.Duration
	for _, n := range nodes {
		if n.offset < lo.offset {
			lo = n
		}
		if n.offset > hi.offset {
			hi = n
		}
		slack = max(slack, n.rtt/2)
	}
	skew := hi.offset - lo.offset
	r := Result{Check: checkClocks}
	ev := fmt.Sprintf("%s is %s ahead of %s (±%s)", hi.name(), skew.Round(time.Millisecond), lo.name(), (2 * slack).Round(time.Millisecond))
	if skew-2*slack > d.cfg.MaxSkew {
		r.Level, r.Evidence = Fail, ev+", over "+d.cfg.MaxSkew.String()
		r.Action = "sessions' access times and expiry move between nodes: run NTP (chrony, systemd-timesyncd) on every node"
	} else {
		r.Level, r.Evidence = Pass, ev
	}
	return []Result{r}
}

// checkCounters reports encode and commit failures, sessions missing
// copies and conflicts, counted since each node started.
func (d *doctor) checkCounters() []Result {
	nodes := d.live()
	if len(nodes) == 0 {
		return nil
	}
	sum := func(f func(*NodeStatus) int64) (int64, []string) {
		var total int64
		var parts []string
		for _, n := range nodes {
			if v := f(n.status); v > 0 {
				total += v
				parts = append(parts, fmt.Sprintf("%s %d", n.name(), v))
			}
		}
		return total, parts
	}
	var out []Result

	enc, parts := sum(func(s *NodeStatus) int64 { return s.Counters.EncodeFailures + s.Counters.ReplEncodeFailures })
	r := Result{Check: checkEncode, Level: Pass, Evidence: "none since the nodes started"}
	if enc > 0 {
		last := ""
		for _, n := range nodes {
			if n.status.LastEncodeError != "" {
				last = fmt.Sprintf("; last on %s: %s", n.name(), n.status.LastEncodeError)
			}
		}
		r = Result{Check: checkEncode, Level: Fail,
			Evidence: fmt.Sprintf("values refused since start: %d (%s)%s", enc, strings.Join(parts, ", "), last),
			Action:   "the application puts a value that cannot be encoded (a func, a channel, unexported fields): store plain data instead; the error names the key, the type and the field"}
	}
	out = append(out, r)

	commits, parts := sum(func(s *NodeStatus) int64 { return s.Counters.CommitFailures })
	r = Result{Check: checkCommit, Level: Pass, Evidence: "none since the nodes started"}
	if commits > 0 {
		r = Result{Check: checkCommit, Level: Fail,
			Evidence: fmt.Sprintf("%d requests got a 500 because their session could not be stored (%s), since start", commits, strings.Join(parts, ", ")),
			Action:   `read the nodes' logs for "session commit failed": an owner unreachable, a node leaving, a store error`}
	}
	out = append(out, r)

	if len(d.clusterNodes()) == 0 {
		return out
	}
	var missing int64
	var mparts []string
	for _, n := range d.clusterNodes() {
		if v := n.status.Sessions.MissingCopies; v > 0 {
			missing += int64(v)
			mparts = append(mparts, fmt.Sprintf("%s %d (owners %s)", n.name(), v, n.status.Cluster.Owners))
		}
	}
	r = Result{Check: checkCopies, Level: Pass, Evidence: "every session has its copies"}
	if missing > 0 {
		r = Result{Check: checkCopies, Level: Warn,
			Evidence: fmt.Sprintf("%d sessions have fewer copies than their owners: %s", missing, strings.Join(mparts, ", ")),
			Action:   "a node died or cannot be reached: copies come back once a node is ready again; fewer ready nodes than --owners keeps them short"}
	}
	out = append(out, r)

	conflicts, parts := sum(func(s *NodeStatus) int64 { return s.Counters.Conflicts })
	r = Result{Check: checkConflicts, Level: Pass, Evidence: "no concurrent writes to one session"}
	if conflicts > 0 {
		r = Result{Check: checkConflicts, Level: Warn,
			Evidence: fmt.Sprintf("%d commits raced another request of the same session (%s), since start", conflicts, strings.Join(parts, ", ")),
			Action:   "both writes were kept per attribute, the later one wins on a shared key; many of them mean a client sends parallel requests that change the same session"}
	}
	return append(out, r)
}
