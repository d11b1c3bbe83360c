// Package doctor checks a running shoal deployment, the way `shoal
// doctor` does: it asks every node for its view (GET /healthz/cluster),
// writes a probe session on each node and reads it on the others
// (/healthz/probe), and asks the balancer's manager for its members
// (GET /api/members), then compares what they say.
//
// It promises one Result per check, each PASS, WARN or FAIL with one line
// of evidence naming the nodes, members or peers concerned, and for a
// WARN or a FAIL one line of what to do. A node or a balancer that cannot
// be reached, or that answers something the doctor cannot read, is a
// FAIL that says so; the doctor never passes a check it could not make.
// It reads no session data and changes nothing but its own probe
// sessions, which it deletes.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shoal-go/shoal/session"
)

// Config says what to check.
type Config struct {
	// Balancer is the base URL of the balancer's manager (its
	// --admin-listen), or "" for none.
	Balancer string
	// Token is the manager's token (Authorization: Bearer).
	Token string
	// Nodes are base URLs of nodes (their --listen). The doctor also
	// checks the nodes the balancer routes to and those the nodes list as
	// members.
	Nodes []string
	// Client makes the requests. Default: a client with Timeout.
	Client *http.Client
	// Timeout bounds each request. Default 5 s.
	Timeout time.Duration
	// ProbeWait bounds how long a probe session may take to be readable
	// on another node. Default 2 s.
	ProbeWait time.Duration
	// MaxSkew is the clock difference between nodes beyond which the
	// clock check fails. Default 1 s.
	MaxSkew time.Duration
}

// Level is a check's verdict.
type Level string

// The verdicts: a FAIL makes `shoal doctor` exit 1.
const (
	Pass Level = "PASS"
	Warn Level = "WARN"
	Fail Level = "FAIL"
)

// Result is one check's verdict.
type Result struct {
	Check    string `json:"check"`
	Level    Level  `json:"level"`
	Evidence string `json:"evidence"`
	Action   string `json:"action,omitempty"`
}

// Report is every check's result.
type Report struct {
	OK      bool     `json:"ok"` // no FAIL
	Results []Result `json:"results"`
}

// maxBody bounds what the doctor reads of one answer.
const maxBody = 1 << 20

// nodeInfo is what the doctor learned of one node.
type nodeInfo struct {
	url    string // base URL, as given or discovered
	given  bool   // named by --node
	status *NodeStatus
	err    error // why there is no status
	ready  bool
	// offset is the node's clock minus ours at the middle of the status
	// request, give or take rtt/2.
	offset, rtt time.Duration
}

// name returns the node's name, or its URL if it gave none.
func (n *nodeInfo) name() string {
	if n.status != nil {
		return n.status.Node
	}
	return n.url
}

// balancerMember is a member as the manager's API describes it.
type balancerMember struct {
	Route  string `json:"route"`
	URL    string `json:"url"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// balancerInfo is what the doctor learned of the balancer.
type balancerInfo struct {
	members []balancerMember
	sticky  *string // nil: not reported
	err     error
}

type doctor struct {
	cfg    Config
	client *http.Client
	nodes  []*nodeInfo
	byHost map[string]*nodeInfo // by URL host (host:port)
	lb     *balancerInfo
}

// Run checks the deployment cfg describes and returns the results. It
// returns an error only for a Config it cannot use (no node and no
// balancer, a URL it cannot parse); what it finds wrong in the deployment
// is in the Report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Balancer == "" && len(cfg.Nodes) == 0 {
		return Report{}, errors.New("nothing to check: give the balancer's manager URL or node URLs")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.ProbeWait <= 0 {
		cfg.ProbeWait = 2 * time.Second
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = time.Second
	}
	d := &doctor{cfg: cfg, client: cfg.Client, byHost: map[string]*nodeInfo{}}
	if d.client == nil {
		d.client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Balancer != "" {
		u, err := baseURL(cfg.Balancer)
		if err != nil {
			return Report{}, fmt.Errorf("balancer URL: %w", err)
		}
		d.cfg.Balancer = u
	}
	for _, raw := range cfg.Nodes {
		u, err := baseURL(raw)
		if err != nil {
			return Report{}, fmt.Errorf("node URL: %w", err)
		}
		if n := d.addNode(u); n != nil {
			n.given = true
		}
	}
	if d.cfg.Balancer != "" {
		d.lb = d.fetchBalancer(ctx)
		for _, m := range d.lb.members {
			if u, err := baseURL(m.URL); err == nil {
				d.addNode(u)
			}
		}
	}
	d.fetchNodes(ctx)
	// Reports name nodes in a stable order: by name, those that did not
	// answer last.
	slices.SortStableFunc(d.nodes, func(a, b *nodeInfo) int {
		if (a.status == nil) != (b.status == nil) {
			if a.status == nil {
				return 1
			}
			return -1
		}
		return strings.Compare(a.name(), b.name())
	})
	var results []Result
	results = append(results, d.checkReachable())
	results = append(results, d.checkMembers()...)
	results = append(results, d.checkProbe(ctx)...)
	if d.lb != nil {
		results = append(results, d.checkBalancer()...)
	}
	results = append(results, d.checkRefusals()...)
	results = append(results, d.checkMulticast()...)
	results = append(results, d.checkClocks()...)
	results = append(results, d.checkCounters()...)
	rep := Report{OK: true, Results: results}
	for _, r := range results {
		if r.Level == Fail {
			rep.OK = false
		}
	}
	return rep, nil
}

// baseURL checks a URL given for a node or the balancer and returns it
// without a trailing slash; "host:port" means http://host:port.
func baseURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q: want scheme://host:port[/path] only", raw)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// addNode adds the node at base URL u unless it is known or there are
// maxMembers already; it returns the node, or nil.
func (d *doctor) addNode(u string) *nodeInfo {
	host := hostOf(u)
	if n, ok := d.byHost[host]; ok {
		return n
	}
	if len(d.nodes) >= maxMembers {
		return nil
	}
	n := &nodeInfo{url: u}
	d.nodes = append(d.nodes, n)
	d.byHost[host] = n
	return n
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// get sends a request and returns the answer's status and body (at most
// maxBody bytes).
func (d *doctor) do(ctx context.Context, method, u, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if len(body) > maxBody {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: answer over %d bytes", method, u, maxBody)
	}
	return resp.StatusCode, body, nil
}

// fetchBalancer reads the manager's members and settings.
func (d *doctor) fetchBalancer(ctx context.Context) *balancerInfo {
	lb := &balancerInfo{}
	u := d.cfg.Balancer + "/api/members"
	code, body, err := d.do(ctx, "GET", u, d.cfg.Token)
	switch {
	case err != nil:
		lb.err = fmt.Errorf("GET %s: %w", u, err)
		return lb
	case code == http.StatusUnauthorized:
		lb.err = fmt.Errorf("GET %s: 401: the manager refused the token (give --admin-token-file)", u)
		return lb
	case code != http.StatusOK:
		lb.err = fmt.Errorf("GET %s: %d %s", u, code, firstLine(body))
		return lb
	}
	var list struct {
		Members []balancerMember `json:"members"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		lb.err = fmt.Errorf("GET %s: not the manager's JSON: %w", u, err)
		return lb
	}
	if list.Members == nil {
		lb.err = fmt.Errorf("GET %s: no \"members\" in the answer: is this a shoal balancer's manager?", u)
		return lb
	}
	if len(list.Members) > maxMembers {
		lb.err = fmt.Errorf("GET %s: %d members, over the %d the doctor reads", u, len(list.Members), maxMembers)
		return lb
	}
	for _, m := range list.Members {
		if err := session.ValidateRoute(m.Route); err != nil {
			lb.err = fmt.Errorf("GET %s: member route %q: %w", u, m.Route, err)
			return lb
		}
		if _, err := baseURL(m.URL); err != nil {
			lb.err = fmt.Errorf("GET %s: member %s: %w", u, m.Route, err)
			return lb
		}
	}
	lb.members = list.Members
	// The settings: an older manager has no /api/balancer.
	u = d.cfg.Balancer + "/api/balancer"
	if code, body, err := d.do(ctx, "GET", u, d.cfg.Token); err == nil && code == http.StatusOK {
		var info struct {
			Sticky *string `json:"sticky"`
		}
		if json.Unmarshal(body, &info) == nil {
			lb.sticky = info.Sticky
		}
	}
	return lb
}

// fetchNodes reads every node's status, adding the members they list
// (bounded: maxMembers nodes, two rounds).
func (d *doctor) fetchNodes(ctx context.Context) {
	done := 0
	for range 2 {
		todo := d.nodes[done:]
		done = len(d.nodes)
		results := make(chan struct{}, len(todo))
		for _, n := range todo {
			go func() {
				d.fetchNode(ctx, n)
				results <- struct{}{}
			}()
		}
		for range todo {
			<-results
		}
		for _, n := range todo {
			if n.status == nil || n.status.Cluster == nil {
				continue
			}
			for _, m := range n.status.Cluster.Members {
				if m.Role == "node" && m.HTTP != "" {
					d.addNode("http://" + m.HTTP)
				}
			}
		}
		if len(d.nodes) == done {
			return
		}
	}
}

// fetchNode reads one node's readiness and status.
func (d *doctor) fetchNode(ctx context.Context, n *nodeInfo) {
	code, _, err := d.do(ctx, "GET", n.url+"/healthz/ready", "")
	if err != nil {
		n.err = err
		return
	}
	n.ready = code == http.StatusOK
	u := n.url + StatusPath
	start := time.Now()
	code, body, err := d.do(ctx, "GET", u, "")
	rtt := time.Since(start)
	switch {
	case err != nil:
		n.err = err
		return
	case code == http.StatusServiceUnavailable:
		n.err = fmt.Errorf("GET %s: 503: starting (joining the cluster)", u)
		return
	case code == http.StatusNotFound:
		n.err = fmt.Errorf("GET %s: 404: not a shoal node, or one older than %s", u, StatusPath)
		return
	case code != http.StatusOK:
		n.err = fmt.Errorf("GET %s: %d %s", u, code, firstLine(body))
		return
	}
	var st NodeStatus
	if err := json.Unmarshal(body, &st); err != nil {
		n.err = fmt.Errorf("GET %s: not a node status: %w", u, err)
		return
	}
	if err := st.validate(); err != nil {
		n.err = fmt.Errorf("GET %s: bad status: %w", u, err)
		return
	}
	n.status = &st
	n.rtt = rtt
	n.offset = st.Time.Sub(start.Add(rtt / 2))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// live returns the nodes that answered their status, in order.
func (d *doctor) live() []*nodeInfo {
	var out []*nodeInfo
	for _, n := range d.nodes {
		if n.status != nil {
			out = append(out, n)
		}
	}
	return out
}

// clusterNodes returns the live nodes of a cluster (not lone nodes).
func (d *doctor) clusterNodes() []*nodeInfo {
	return slices.DeleteFunc(d.live(), func(n *nodeInfo) bool { return n.status.Cluster == nil })
}

// names joins the nodes' names.
func names(ns []*nodeInfo) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name())
	}
	return strings.Join(s, ", ")
}
