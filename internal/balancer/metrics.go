package balancer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MemberLister lists a balancer's members. *Balancer is one.
type MemberLister interface {
	Members() []*Member
}

// retryCounter is what the collector reads shoal_balancer_retries_total
// from, if the MemberLister offers it.
type retryCounter interface {
	Retries() uint64
}

// ownerRouteCounter is what the collector reads
// shoal_balancer_owner_routes_total from, if the MemberLister offers it
// (*Balancer does).
type ownerRouteCounter interface {
	OwnerRoutes() int64
}

// Collector is a prometheus.Collector of a balancer's metrics, named
// shoal_balancer_*. It reads the members' counters at each scrape, so the
// request path pays only for the members' atomic counters, and members
// that come and go are followed. Register it in a prometheus.Registry of
// your own (the manager does); it is safe for concurrent use.
type Collector struct {
	src MemberLister

	requests     *prometheus.Desc
	duration     *prometheus.Desc
	errors       *prometheus.Desc
	retries      *prometheus.Desc
	inFlight     *prometheus.Desc
	state        *prometheus.Desc
	stateChanges *prometheus.Desc
	weight       *prometheus.Desc
	ownerRoutes  *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of the members src lists.
func NewCollector(src MemberLister) *Collector {
	const ns = "shoal_balancer_"
	return &Collector{
		src: src,
		requests: prometheus.NewDesc(ns+"requests_total",
			"Responses of a member, by status class (1xx-5xx).", []string{"member", "code_class"}, nil),
		duration: prometheus.NewDesc(ns+"request_duration_seconds",
			"Time of a member's requests that got a response, from sending to the end of the response.", []string{"member"}, nil),
		errors: prometheus.NewDesc(ns+"errors_total",
			"Failed attempts on a member, by reason: connect, timeout, transport, status (failonstatus), health (a failed health check), request (a failed request of unknown cause).",
			[]string{"member", "reason"}, nil),
		retries: prometheus.NewDesc(ns+"retries_total",
			"Requests sent again to another member after an attempt failed.", nil, nil),
		inFlight: prometheus.NewDesc(ns+"in_flight",
			"Requests a member is serving now.", []string{"member"}, nil),
		state: prometheus.NewDesc(ns+"member_state",
			"1 for a member's current state (ok, standby, draining, error, disabled), 0 for the others.", []string{"member", "state"}, nil),
		stateChanges: prometheus.NewDesc(ns+"state_changes_total",
			"Changes of a member's state (those made by health checks or the end of the retry time are seen at the next scrape at the latest).", []string{"member"}, nil),
		weight: prometheus.NewDesc(ns+"member_weight",
			"A member's weight (Apache's loadfactor).", []string{"member"}, nil),
		ownerRoutes: prometheus.NewDesc(ns+"owner_routes_total",
			"Requests sent to a session's owner because the member of their route was not usable (cluster mode).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.duration, c.errors, c.retries, c.inFlight, c.state,
		c.stateChanges, c.weight, c.ownerRoutes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var retries uint64
	if rc, ok := c.src.(retryCounter); ok {
		retries = rc.Retries()
	}
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(retries))
	if oc, ok := c.src.(ownerRouteCounter); ok {
		ch <- prometheus.MustNewConstMetric(c.ownerRoutes, prometheus.CounterValue, float64(oc.OwnerRoutes()))
	}

	members := c.src.Members()
	seen := make(map[string]bool, len(members))
	now := time.Now().UnixNano()
	for _, m := range members {
		if seen[m.route] { // two members of one route while a list changes: one set of series
			continue
		}
		seen[m.route] = true
		c.collectMember(ch, m, now)
	}
}

// classLabels are the code_class labels of byClass[1:].
var classLabels = [...]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (c *Collector) collectMember(ch chan<- prometheus.Metric, m *Member, now int64) {
	m.noteState(now)
	st := m.Status()
	r := m.route
	s := &m.stats
	for i := 1; i < len(s.byClass); i++ {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.byClass[i].Load()), r, classLabels[i])
	}

	buckets := make(map[float64]uint64, len(durationBuckets))
	var cum uint64
	for i, ub := range durationBuckets {
		cum += s.buckets[i].Load()
		buckets[ub] = cum
	}
	count := cum + s.buckets[len(durationBuckets)].Load()
	sum := time.Duration(s.durSumNs.Load()).Seconds()
	ch <- prometheus.MustNewConstHistogram(c.duration, count, sum, buckets, r)

	for why := range numFailReasons {
		n := s.errors[why].Load()
		if why == failRequest && n == 0 {
			continue // the interim reason: shown only once used
		}
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n), r, why.String())
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight), r)
	shown := st.Shown()
	for _, state := range shownStates {
		v := 0.0
		if state == shown {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, r, string(state))
	}
	ch <- prometheus.MustNewConstMetric(c.stateChanges, prometheus.CounterValue, float64(st.StateChanges), r)
	ch <- prometheus.MustNewConstMetric(c.weight, prometheus.GaugeValue, st.Weight, r)
}
