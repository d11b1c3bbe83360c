package cli

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-go/shoal/internal/latency"
)

// nodeCollector is the prometheus.Collector of a node's metrics, named
// shoal_* (docs/metrics.md lists them). Like the balancer's, it reads the
// session manager's and the cluster's counters at each scrape, so the
// request path pays only for their atomic adds.
type nodeCollector struct {
	rt *nodeRuntime

	ready, sessions, created, destroyed, rebinds, encodeFailures, commitFailures, refused, commitSeconds *prometheus.Desc

	members, memberEvents, refusals, missingCopies, conflicts, fetches, forwarded, fullSends, pushed,
	unreachable, takeovers, standIns, unreplicated, replEncodeFailures,
	bytesSent, bytesReceived, messagesSent, messagesReceived, ackSeconds *prometheus.Desc
}

var _ prometheus.Collector = (*nodeCollector)(nil)

func newNodeCollector(rt *nodeRuntime) *nodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &nodeCollector{
		rt:    rt,
		ready: d("shoal_node_ready", "1 while the node serves (a cluster node: joined and ready), else 0."),
		sessions: d("shoal_sessions",
			"Session copies this node holds, by its role for them: primary (the sum over the nodes is the sessions in the cluster) or backup.", "role"),
		created: d("shoal_sessions_created_total", "Sessions created on this node."),
		destroyed: d("shoal_sessions_destroyed_total",
			"Sessions destroyed through this node, by reason: expired (decided by their primary), invalidated (logout), evicted.", "reason"),
		rebinds: d("shoal_session_rebinds_total",
			"Sessions whose id named a node that is gone, taken over by this node (a new cookie with its route)."),
		encodeFailures: d("shoal_session_encode_failures_total",
			"Values the application tried to put in a session that cannot be encoded (refused by Put)."),
		commitFailures: d("shoal_session_commit_failures_total",
			"Requests whose session could not be loaded or committed: their client got a 500."),
		refused: d("shoal_sessions_refused_total", "New sessions refused because of --max-sessions (503)."),
		commitSeconds: d("shoal_session_commit_seconds",
			"Time the store took to commit a request's session changes (create or update; in sync mode, until every live owner applied them)."),

		members: d("shoal_cluster_members",
			"Live members in this node's view, by role (node, observer) and state (joining, ready, leaving).", "role", "state"),
		memberEvents: d("shoal_cluster_member_events_total",
			"Membership changes this node saw, by kind: join, update (a state change), leave, dead.", "kind"),
		refusals: d("shoal_cluster_refusals_total",
			"Peers refused (or refusing this node), by channel (gossip, replication) and reason (cluster key mismatch, ...).", "via", "reason"),
		missingCopies: d("shoal_replication_sessions_missing_copies",
			"Sessions this node is primary of that have fewer copies than --owners."),
		conflicts: d("shoal_replication_conflicts_total",
			"Commits on a session that another request changed after this one read it (concurrent requests; both kept per attribute)."),
		fetches:   d("shoal_replication_fetches_total", "Sessions fetched from an owner because this node had no copy it could trust."),
		forwarded: d("shoal_replication_forwarded_total", "Commits sent to the session's primary on another node."),
		fullSends: d("shoal_replication_full_sends_total", "Whole sessions sent to a backup that missed a version."),
		pushed:    d("shoal_replication_pushed_total", "Sessions sent to their new owners after a membership change or at leave."),
		unreachable: d("shoal_replication_unreachable_total",
			"Requests to a peer that could not be reached (killed, not yet declared dead, or partitioned)."),
		takeovers: d("shoal_replication_takeovers_total", "Sessions this node became primary of after a membership change."),
		standIns: d("shoal_replication_stand_ins_total",
			"Writes given to a node outside the session's owners because no owner could be reached."),
		unreplicated: d("shoal_replication_unreplicated_total",
			"Writes no other node could take (every other node unreachable): they live on this node alone."),
		replEncodeFailures: d("shoal_replication_encode_failures_total",
			"Replication messages that could not be encoded (over the frame size limit, or malformed) and were not sent."),
		bytesSent:        d("shoal_replication_sent_bytes_total", "Bytes sent to a peer over replication, TLS included.", "peer"),
		bytesReceived:    d("shoal_replication_received_bytes_total", "Bytes received from a peer over replication, TLS included.", "peer"),
		messagesSent:     d("shoal_replication_sent_messages_total", "Replication messages (requests and replies) sent to a peer.", "peer"),
		messagesReceived: d("shoal_replication_received_messages_total", "Replication messages (requests and replies) received from a peer.", "peer"),
		ackSeconds: d("shoal_replication_lag_seconds",
			"Replication lag as the round trip of a change: from sending it to a peer (a backup) until the peer acknowledged applying it.", "peer"),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.sessions, c.created, c.destroyed, c.rebinds, c.encodeFailures,
		c.commitFailures, c.refused, c.commitSeconds, c.members, c.memberEvents, c.refusals, c.missingCopies,
		c.conflicts, c.fetches, c.forwarded, c.fullSends, c.pushed, c.unreachable, c.takeovers, c.standIns,
		c.unreplicated, c.replEncodeFailures, c.bytesSent, c.bytesReceived, c.messagesSent, c.messagesReceived,
		c.ackSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := c.rt.status()
	ready := 0.0
	if st.State == "ready" {
		ready = 1
	}
	gauge(c.ready, ready)
	gauge(c.sessions, float64(st.Sessions.Primary), "primary")
	gauge(c.sessions, float64(st.Sessions.Backup), "backup")

	stats := c.rt.mgr.Stats()
	counter(c.created, stats.Created.Load())
	counter(c.destroyed, stats.Expired.Load(), "expired")
	counter(c.destroyed, stats.Invalidated.Load(), "invalidated")
	counter(c.destroyed, stats.Evicted.Load(), "evicted")
	counter(c.rebinds, stats.Rebinds.Load())
	counter(c.encodeFailures, stats.EncodeFailures.Load())
	counter(c.commitFailures, stats.CommitFailures.Load())
	counter(c.refused, stats.Refused.Load())
	bounds, cum, count, sum := stats.CommitLatency()
	ch <- prometheus.MustNewConstHistogram(c.commitSeconds, count, sum.Seconds(), histBuckets(bounds, cum))

	// The cluster's metrics exist on a cluster node only; a lone node
	// reports them as zero, so that dashboards need no special case.
	cs := c.rt.cluster
	byState := map[[2]string]int{}
	if st.Cluster != nil {
		for _, m := range st.Cluster.Members {
			byState[[2]string{m.Role, m.State}]++
		}
	}
	for _, role := range []string{"node", "observer"} {
		for _, state := range []string{"joining", "ready", "leaving"} {
			gauge(c.members, float64(byState[[2]string{role, state}]), role, state)
		}
	}
	events := map[string]int64{}
	if cs != nil {
		events = cs.MemberEvents()
	}
	for _, kind := range []string{"join", "update", "leave", "dead"} {
		counter(c.memberEvents, events[kind], kind)
	}
	refused := map[[2]string]int64{}
	if st.Cluster != nil {
		for _, r := range st.Cluster.Refusals {
			refused[[2]string{r.Via, r.Reason}] += r.Count
		}
	}
	refused[[2]string{"gossip", "cluster key mismatch"}] += 0 // always present: the alert to set
	refused[[2]string{"replication", "cluster key mismatch"}] += 0
	for k, v := range refused {
		counter(c.refusals, v, k[0], k[1])
	}
	gauge(c.missingCopies, float64(st.Sessions.MissingCopies))
	var rs struct {
		conflicts, fetched, forwarded, fullSends, pushed, unreachable, takeovers, standIns, unreplicated, encode int64
	}
	if cs != nil {
		s := cs.Stats()
		rs.conflicts, rs.fetched, rs.forwarded, rs.fullSends = s.Conflicts.Load(), s.Fetched.Load(), s.Forwarded.Load(), s.FullSends.Load()
		rs.pushed, rs.unreachable, rs.takeovers = s.Pushed.Load(), s.Unreachable.Load(), s.Takeovers.Load()
		rs.standIns, rs.unreplicated, rs.encode = s.StandIns.Load(), s.Unreplicated.Load(), cs.EncodeFailures()
	}
	counter(c.conflicts, rs.conflicts)
	counter(c.fetches, rs.fetched)
	counter(c.forwarded, rs.forwarded)
	counter(c.fullSends, rs.fullSends)
	counter(c.pushed, rs.pushed)
	counter(c.unreachable, rs.unreachable)
	counter(c.takeovers, rs.takeovers)
	counter(c.standIns, rs.standIns)
	counter(c.unreplicated, rs.unreplicated)
	counter(c.replEncodeFailures, rs.encode)
	if cs == nil {
		return
	}
	for _, p := range cs.Traffic() {
		counter(c.bytesSent, int64(p.BytesSent), p.Peer)
		counter(c.bytesReceived, int64(p.BytesReceived), p.Peer)
		counter(c.messagesSent, int64(p.MessagesSent), p.Peer)
		counter(c.messagesReceived, int64(p.MessagesReceived), p.Peer)
		ch <- prometheus.MustNewConstHistogram(c.ackSeconds, p.Ack.Count, p.Ack.Sum.Seconds(), histBuckets(latency.Bounds(), p.Ack.Cumulative), p.Peer)
	}
}

// histBuckets turns a latency histogram into Prometheus's buckets: upper
// bound in seconds → cumulative count.
func histBuckets(bounds []time.Duration, cum []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	for i, b := range bounds {
		out[b.Seconds()] = cum[i]
	}
	return out
}
