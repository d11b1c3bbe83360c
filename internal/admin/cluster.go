package admin

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

// How long the view remembers a member that is gone from the cluster,
// and how many at most.
const (
	goneKeep = 10 * time.Minute
	maxGone  = 64
)

// clusterView is the members and the cluster as the page and GET
// /api/cluster show them: the balancer's members, each with what its
// node says (sessions, replication lag) and what the cluster's nodes say
// of it (joining, ready, leaving; dead once they no longer list it).
type clusterView struct {
	At time.Time
	// Cluster is set when a node answered as a cluster node: the cluster
	// column then shows the nodes' view.
	Cluster bool
	Members []viewMember
	// Primary and Backup sum the session copies of the nodes that
	// answered; Reached counts them.
	Primary, Backup, Reached, Nodes int
	// States counts the cluster's nodes by cluster state.
	States map[string]int
	// Problems are one line each: views that differ, names that do not
	// match.
	Problems []string
}

// viewMember is one row: a member of the balancer, or a node of the
// cluster that is not one (or no longer: dead).
type viewMember struct {
	Route string
	URL   string
	// Member is nil for a node that is not a member of the balancer.
	Member *balancer.Member
	Status balancer.Status
	// ClusterState is joining, ready, leaving, dead or left in the
	// cluster's view, "" when unknown (not a cluster node, or no node
	// answered); ClusterNote says who sees it otherwise.
	ClusterState string
	ClusterNote  string
	Node         nodeReport
	// Lag is the mean replication round trip from this node to its
	// peers over LagSpan (since the previous view), or since the node
	// started when LagSpan is 0.
	Lag     time.Duration
	LagSpan time.Duration
	HasLag  bool
	// Rate is requests per second over RateSpan.
	Rate     float64
	RateSpan time.Duration
	HasRate  bool
}

// viewCache keeps the last view, what the next one needs of it (lag
// readings, members seen), and the members gone from the cluster.
type viewCache struct {
	mu   sync.Mutex // protects the fields below; held during a fetch, so that viewers at once share one
	last *clusterView
	// lags are the nodes' lag totals at the last view, by route.
	lags map[string]lagReading
	// seen are the cluster's nodes at the last view and their states.
	seen map[string]seenNode
	// gone are nodes that left the cluster's view, by route.
	gone map[string]goneNode
}

type lagReading struct {
	at time.Time
	t  lagTotals
}

type seenNode struct {
	state, url string
}

type goneNode struct {
	state string // dead, or left when it was leaving when last seen
	url   string
	since time.Time
}

// view returns the current view, fetching the nodes unless the last view
// is less than viewTTL old.
func (h *Handler) view(ctx context.Context) *clusterView {
	c := &h.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	members := h.b.Members()
	h.rates.observe(now, members)
	if c.last != nil && now.Sub(c.last.At) < viewTTL && sameRoutes(c.last, members) {
		// The nodes' reports are reused; the balancer's own state is
		// read now (a change made a moment ago shows).
		v := *c.last
		v.Members = slices.Clone(v.Members)
		for i := range v.Members {
			if m := v.Members[i].Member; m != nil {
				v.Members[i].Status = m.Status()
			}
		}
		h.setRates(&v)
		return &v
	}
	// Other viewers may share this fetch: it does not end with the
	// request that started it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nodeFetchTimeout)
	defer cancel()

	// Round 1: the balancer's members. Round 2: the cluster's nodes they
	// list that are not members.
	targets := make([]nodeReport, 0, len(members))
	byRoute := map[string]bool{}
	for _, m := range members {
		if len(targets) == maxNodes {
			break
		}
		t := nodeReport{Route: m.Route()}
		base, err := nodeBase(m.URL().String())
		if err != nil {
			t.Err = err.Error()
		}
		t.Base = base
		targets = append(targets, t)
		byRoute[m.Route()] = true
	}
	reports := fetchNodes(ctx, targets)
	var extra []nodeReport
	for _, r := range reports {
		if r.Status == nil || r.Status.Cluster == nil {
			continue
		}
		for _, m := range r.Status.Cluster.Members {
			if m.Role != "node" || byRoute[m.Name] || len(targets)+len(extra) >= maxNodes {
				continue
			}
			byRoute[m.Name] = true
			t := nodeReport{Route: m.Name}
			if host, port, err := net.SplitHostPort(m.HTTP); err == nil && host != "" && port != "" {
				t.Base = "http://" + m.HTTP
			} else {
				t.Err = "no HTTP address in the cluster's view"
			}
			extra = append(extra, t)
		}
	}
	if len(extra) > 0 {
		reports = append(reports, fetchNodes(ctx, extra)...)
	}
	v := c.build(now, members, reports)
	h.setRates(v)
	c.last = v
	return v
}

// setRates sets the members' request rates in v.
func (h *Handler) setRates(v *clusterView) {
	for i := range v.Members {
		vm := &v.Members[i]
		vm.Rate, vm.RateSpan, vm.HasRate = h.rates.rate(vm.Route)
	}
}

// sameRoutes reports whether v shows exactly the members (a reload or
// the cluster changed them: the view is stale).
func sameRoutes(v *clusterView, members []*balancer.Member) bool {
	n := 0
	for _, vm := range v.Members {
		if vm.Member != nil {
			if n >= len(members) || members[n] != vm.Member {
				return false
			}
			n++
		}
	}
	return n == len(members)
}

// build makes the view from the members and the nodes' reports; c.mu is
// held.
func (c *viewCache) build(now time.Time, members []*balancer.Member, reports []nodeReport) *clusterView {
	v := &clusterView{At: now, States: map[string]int{}}
	byRoute := make(map[string]nodeReport, len(reports))
	for _, r := range reports {
		byRoute[r.Route] = r
	}
	// The cluster's view of each node: what every node that answered
	// says of it (a node's word on itself first).
	views := map[string]map[string]string{} // node → viewer → state
	urls := map[string]string{}
	for _, r := range reports {
		st := r.Status
		if st == nil || st.Cluster == nil {
			continue
		}
		v.Cluster = true
		for _, m := range st.Cluster.Members {
			if m.Role != "node" {
				continue
			}
			if views[m.Name] == nil {
				views[m.Name] = map[string]string{}
			}
			views[m.Name][st.Node] = m.State
			if m.HTTP != "" {
				urls[m.Name] = "http://" + m.HTTP
			}
		}
		if views[st.Node] == nil {
			views[st.Node] = map[string]string{}
		}
		views[st.Node][st.Node] = st.State
	}
	if v.Cluster {
		c.remember(now, views, urls)
	}

	row := func(route string) viewMember {
		vm := viewMember{Route: route, Node: byRoute[route]}
		if r := vm.Node; r.Status != nil {
			v.Reached++
			v.Primary += r.Status.Sessions.Primary
			v.Backup += r.Status.Sessions.Backup
			if r.Status.Node != route {
				v.Problems = append(v.Problems, fmt.Sprintf("member %s answers as node %s: its sessions' ids name %s, not %s",
					route, r.Status.Node, r.Status.Node, route))
			}
		}
		if vs, ok := views[route]; ok {
			vm.ClusterState, vm.ClusterNote = consensus(route, vs)
			if vm.ClusterNote != "" {
				v.Problems = append(v.Problems, route+": "+vm.ClusterNote)
			}
		} else if g, ok := c.gone[route]; ok && v.Cluster {
			vm.ClusterState = g.state
			vm.ClusterNote = fmt.Sprintf("no node lists it since %s", g.since.UTC().Format("15:04:05 UTC"))
		}
		c.lag(now, &vm)
		return vm
	}
	shown := map[string]bool{}
	for _, m := range members {
		vm := row(m.Route())
		vm.Member, vm.Status, vm.URL = m, m.Status(), m.URL().String()
		v.Members = append(v.Members, vm)
		shown[vm.Route] = true
	}
	// Nodes of the cluster that are not members: live ones the balancer
	// does not route to, then the dead.
	for _, route := range slices.Sorted(maps.Keys(views)) {
		if !shown[route] {
			vm := row(route)
			vm.URL = urls[route]
			v.Members = append(v.Members, vm)
			shown[route] = true
		}
	}
	if v.Cluster {
		for _, route := range slices.Sorted(maps.Keys(c.gone)) {
			if !shown[route] {
				vm := row(route)
				vm.URL = c.gone[route].url
				v.Members = append(v.Members, vm)
			}
		}
	}
	for _, vm := range v.Members {
		if vm.ClusterState != "" {
			v.Nodes++
			v.States[vm.ClusterState]++
		}
	}
	return v
}

// consensus returns the state most viewers give route (its own word
// wins a tie), and a note naming the viewers that differ.
func consensus(route string, views map[string]string) (string, string) {
	counts := map[string]int{}
	for _, s := range views {
		counts[s]++
	}
	best, bestN := "", 0
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		if n := counts[s]; n > bestN || (n == bestN && s == views[route]) {
			best, bestN = s, n
		}
	}
	var differ []string
	for _, viewer := range slices.Sorted(maps.Keys(views)) {
		if views[viewer] != best {
			differ = append(differ, viewer+" sees it "+views[viewer])
		}
	}
	if len(differ) == 0 {
		return best, ""
	}
	return best, strings.Join(differ, ", ")
}

// remember updates the nodes seen and gone after a view of the cluster:
// a node seen before and listed by no node now is dead (or left, when it
// was leaving). c.mu is held.
func (c *viewCache) remember(now time.Time, views map[string]map[string]string, urls map[string]string) {
	if c.gone == nil {
		c.gone = map[string]goneNode{}
	}
	for route, prev := range c.seen {
		if _, live := views[route]; live {
			continue
		}
		state := "dead"
		if prev.state == "leaving" {
			state = "left"
		}
		if _, known := c.gone[route]; !known {
			c.gone[route] = goneNode{state: state, url: prev.url, since: now}
		}
	}
	seen := make(map[string]seenNode, len(views))
	for route, vs := range views {
		s, _ := consensus(route, vs)
		seen[route] = seenNode{state: s, url: urls[route]}
		delete(c.gone, route) // back
	}
	c.seen = seen
	for route, g := range c.gone {
		if now.Sub(g.since) > goneKeep {
			delete(c.gone, route)
		}
	}
	if len(c.gone) > maxGone {
		routes := slices.Collect(maps.Keys(c.gone))
		sort.Slice(routes, func(i, j int) bool { return c.gone[routes[i]].since.Before(c.gone[routes[j]].since) })
		for _, r := range routes[:len(routes)-maxGone] {
			delete(c.gone, r)
		}
	}
}

// lag sets vm's replication lag from its node's report: the mean round
// trip since the previous reading, or since the node started. c.mu is
// held.
func (c *viewCache) lag(now time.Time, vm *viewMember) {
	r := vm.Node
	if !r.HasLag {
		return
	}
	if c.lags == nil {
		c.lags = map[string]lagReading{}
	}
	prev, ok := c.lags[vm.Route]
	c.lags[vm.Route] = lagReading{at: now, t: r.Lag}
	if ok && r.Lag.Count > prev.t.Count && r.Lag.Sum >= prev.t.Sum && now.Sub(prev.at) <= maxRateAge {
		vm.Lag = seconds((r.Lag.Sum - prev.t.Sum) / float64(r.Lag.Count-prev.t.Count))
		vm.LagSpan, vm.HasLag = now.Sub(prev.at), true
		return
	}
	vm.Lag, vm.HasLag = seconds(r.Lag.Sum/float64(r.Lag.Count)), true
}

func seconds(s float64) time.Duration {
	if math.IsNaN(s) || s < 0 || s > 1e6 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// clusterJSON is the body of GET /api/cluster.
type clusterJSON struct {
	Time     string              `json:"time"`
	Cluster  bool                `json:"cluster"`
	Sessions clusterSessionsJSON `json:"sessions"`
	Problems []string            `json:"problems"`
	Members  []clusterMemberJSON `json:"members"`
}

type clusterSessionsJSON struct {
	Primary int `json:"primary"`
	Backup  int `json:"backup"`
	// Nodes is how many nodes answered, of NodesAsked.
	Nodes      int `json:"nodes_answered"`
	NodesAsked int `json:"nodes_asked"`
}

type clusterMemberJSON struct {
	Route string `json:"route"`
	URL   string `json:"url"`
	// Balancer is the member as GET /api/members/{route} shows it; null
	// for a node the balancer does not route to.
	Balancer *memberJSON `json:"balancer"`
	// ClusterState is joining, ready, leaving, dead, left, or "" (not a
	// cluster node, or no node answered).
	ClusterState string        `json:"cluster_state"`
	ClusterNote  string        `json:"cluster_note"`
	Node         *nodeJSON     `json:"node"`
	NodeError    *nodeErrJSON  `json:"node_error"`
	LagMs        *float64      `json:"replication_lag_ms"`
	LagSpanS     *float64      `json:"replication_lag_span_s"`
	LagError     string        `json:"replication_lag_error"`
	Rate         *float64      `json:"requests_per_second"`
	RateSpanS    *float64      `json:"requests_per_second_span_s"`
	Sessions     *sessionsJSON `json:"sessions"`
}

type nodeJSON struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Store string `json:"store"`
}

type nodeErrJSON struct {
	Unreachable bool   `json:"unreachable"`
	Error       string `json:"error"`
}

type sessionsJSON struct {
	Primary       int `json:"primary"`
	Backup        int `json:"backup"`
	MissingCopies int `json:"missing_copies"`
}

func ptr[T any](v T) *T { return &v }

func newClusterJSON(v *clusterView) clusterJSON {
	out := clusterJSON{Time: v.At.UTC().Format(time.RFC3339Nano), Cluster: v.Cluster,
		Sessions: clusterSessionsJSON{Primary: v.Primary, Backup: v.Backup, Nodes: v.Reached},
		Problems: append([]string{}, v.Problems...), Members: []clusterMemberJSON{}}
	for _, vm := range v.Members {
		j := clusterMemberJSON{Route: vm.Route, URL: vm.URL, ClusterState: vm.ClusterState, ClusterNote: vm.ClusterNote,
			LagError: vm.Node.LagErr}
		if vm.Member != nil {
			mj := memberJSONOf(vm.Status)
			j.Balancer = &mj
		}
		if vm.Node.Base != "" || vm.Node.Err != "" {
			out.Sessions.NodesAsked++
		}
		if st := vm.Node.Status; st != nil {
			j.Node = &nodeJSON{Name: st.Node, State: st.State, Store: st.Store}
			j.Sessions = &sessionsJSON{st.Sessions.Primary, st.Sessions.Backup, st.Sessions.MissingCopies}
		} else if vm.Node.Err != "" {
			j.NodeError = &nodeErrJSON{Unreachable: vm.Node.Unreachable, Error: vm.Node.Err}
		}
		if vm.HasLag {
			j.LagMs = ptr(roundMs(vm.Lag.Seconds() * 1e3))
			j.LagSpanS = ptr(math.Round(vm.LagSpan.Seconds()*10) / 10)
		}
		if vm.HasRate {
			j.Rate = ptr(math.Round(vm.Rate*100) / 100)
			j.RateSpanS = ptr(math.Round(vm.RateSpan.Seconds()*10) / 10)
		}
		out.Members = append(out.Members, j)
	}
	return out
}

// getCluster is GET /api/cluster.
func (h *Handler) getCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, newClusterJSON(h.view(r.Context())))
}
