package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRefresh bounds the page's auto-refresh period, in seconds.
const maxRefresh = 3600

// pageData is what web/index.html renders.
type pageData struct {
	Members  []memberRow
	Flash    string
	FlashErr bool
	Refresh  int // seconds between reloads by web/static/admin.js; 0: none
	Now      string
	// Cluster is set when a node answered as a cluster node.
	Cluster bool
	// Summary is the cluster in one line: nodes by state, sessions.
	Summary  string
	Problems []string
}

// memberRow is one member in the page's table, with the nonces of its
// two forms, or a node of the cluster that is not a member (IsMember
// false: no forms).
type memberRow struct {
	Route, URL    string
	IsMember      bool
	State, Reason string
	RetryIn       string // "" unless in error until a known time
	Weight        string
	Standby       bool
	InFlight      int64
	Requests      uint64
	Errors        uint64
	Latency       string // p2c's estimate
	MeanDuration  string
	StateNonce    string // for Enable, Disable, Drain
	WeightNonce   string // for the weight form

	// ClusterState is joining, ready, leaving, dead or left in the
	// cluster's view ("" unknown); ClusterNote says who differs.
	ClusterState, ClusterNote string
	// Node is the node's own name and state when it answered; NodeErr
	// says why it did not, Unreachable when it did not answer at all.
	NodeName, NodeState string
	NodeErr             string
	Unreachable         bool
	HasSessions         bool
	Primary, Backup     int
	Missing             int
	Lag, LagNote        string // "-" when unknown; LagNote: over what span, or why not
	Rate, RateNote      string
}

// servePage is GET /: the members' table, rendered on the server. The
// optional query parameters are refresh (seconds, for the auto-refresh
// script) and flash (a message signed by pageAction).
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	q := r.URL.Query()
	data := pageData{Now: now.UTC().Format("2006-01-02 15:04:05 UTC")}
	if n, err := strconv.Atoi(q.Get("refresh")); err == nil && n > 0 && n <= maxRefresh {
		data.Refresh = n
	}
	if f := q.Get("flash"); f != "" {
		data.Flash, data.FlashErr = h.keys.openFlash(f)
	}
	v := h.view(r.Context())
	for _, vm := range v.Members {
		data.Members = append(data.Members, h.row(vm, now))
	}
	data.Cluster, data.Problems = v.Cluster, v.Problems
	data.Summary = summary(v)
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, data); err != nil {
		writeText(w, http.StatusInternalServerError, "rendering the page: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func (h *Handler) row(vm viewMember, now time.Time) memberRow {
	row := memberRow{Route: vm.Route, URL: vm.URL, ClusterState: vm.ClusterState, ClusterNote: vm.ClusterNote,
		Lag: "-", Rate: "-"}
	if vm.Member != nil {
		st := vm.Status
		row.IsMember = true
		row.State, row.Reason = string(st.Shown()), st.Reason
		row.Weight, row.Standby, row.InFlight = formatWeight(st.Weight), st.Standby, st.InFlight
		row.Requests, row.Errors = st.Requests, st.Errors
		row.Latency, row.MeanDuration = formatDuration(st.Latency), formatDuration(st.MeanDuration)
		row.StateNonce = h.keys.issueNonce(st.Route, now)
		row.WeightNonce = h.keys.issueNonce(st.Route, now)
		if !st.ErrorUntil.IsZero() {
			row.RetryIn = st.ErrorUntil.Sub(now).Round(time.Second).String()
		}
	}
	n := vm.Node
	switch {
	case n.Status != nil:
		row.NodeName, row.NodeState = n.Status.Node, n.Status.State
		row.HasSessions = true
		row.Primary, row.Backup, row.Missing = n.Status.Sessions.Primary, n.Status.Sessions.Backup, n.Status.Sessions.MissingCopies
	case n.Err != "":
		row.NodeErr, row.Unreachable = n.Err, n.Unreachable
	}
	switch {
	case vm.HasLag && vm.LagSpan > 0:
		row.Lag, row.LagNote = formatDuration(vm.Lag), "mean round trip over the last "+vm.LagSpan.Round(time.Second).String()
	case vm.HasLag:
		row.Lag, row.LagNote = formatDuration(vm.Lag), "mean round trip since the node started"
	case n.LagErr != "":
		row.LagNote = n.LagErr
	case n.Status != nil && n.Status.Store == "cluster":
		row.LagNote = "nothing replicated yet"
	case n.Status != nil:
		row.LagNote = "a lone node: no replication"
	}
	if vm.HasRate {
		row.Rate = strconv.FormatFloat(vm.Rate, 'f', 1, 64) + "/s"
		row.RateNote = "over the last " + vm.RateSpan.Round(time.Second).String()
	} else if vm.Member != nil {
		row.RateNote = "measured between two views of this page (or of its chart): reload to see it"
	}
	return row
}

// summary says the cluster in one line.
func summary(v *clusterView) string {
	if !v.Cluster {
		if v.Reached == 0 {
			return ""
		}
		return fmt.Sprintf("%s on %s (not a cluster)", plural(v.Primary, "session"), plural(v.Reached, "lone node"))
	}
	var states []string
	for _, s := range []string{"ready", "joining", "leaving", "dead", "left"} {
		if n := v.States[s]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, s))
		}
	}
	return fmt.Sprintf("cluster of %s (%s) · %s, %s, on the %s that answered",
		plural(v.Nodes, "node"), strings.Join(states, ", "), plural(v.Primary, "session"),
		plural(v.Backup, "backup copy"), plural(v.Reached, "node"))
}

// plural says n things: "1 node", "2 nodes", "3 backup copies".
func plural(n int, thing string) string {
	if n != 1 {
		if s, ok := strings.CutSuffix(thing, "y"); ok {
			thing = s + "ie"
		}
		thing += "s"
	}
	return strconv.Itoa(n) + " " + thing
}

// formatDuration writes d in ms with up to three significant decimals,
// or "-" for 0 (nothing measured).
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	ms := d.Seconds() * 1e3
	prec := 0
	switch {
	case ms < 1:
		prec = 3
	case ms < 10:
		prec = 2
	case ms < 100:
		prec = 1
	}
	return strconv.FormatFloat(ms, 'f', prec, 64) + " ms"
}
