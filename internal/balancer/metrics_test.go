package balancer

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather registers c in a registry of its own and returns its metric
// families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// metric returns the metric of family name whose labels are exactly
// labels ("k=v" each), or nil.
func metric(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	sort.Strings(labels)
	for _, m := range mf.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		sort.Strings(got)
		if strings.Join(got, ",") == strings.Join(labels, ",") {
			return m
		}
	}
	return nil
}

// value returns a counter's or gauge's value, failing the test if the
// metric is missing.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := metric(mfs, name, labels...)
	if m == nil {
		t.Fatalf("no %s{%s}", name, strings.Join(labels, ","))
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// lister is a MemberLister with optional counters, as a *Balancer.
type lister struct {
	ms []*Member
}

func (l lister) Members() []*Member { return l.ms }

type listerWithCounters struct{ lister }

func (listerWithCounters) Retries() uint64    { return 7 }
func (listerWithCounters) OwnerRoutes() int64 { return 3 }

func TestCollector(t *testing.T) {
	ms := testMembers(t, "a b", 1, 2.5)
	a, b := ms[0], ms[1]
	a.observeResponse(200, 500*time.Microsecond)
	a.observeResponse(200, 20*time.Millisecond)
	a.observeResponse(404, 2*time.Minute) // beyond the last bucket
	a.inFlight.Store(2)
	now := time.Now().UnixNano()
	b.markFailed(now, time.Minute, "dial tcp: connection refused", failConnect)
	b.markError(now, time.Minute, "reset")

	mfs := gather(t, NewCollector(lister{ms}))
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shoal_balancer_requests_total", []string{"member=a", "code_class=2xx"}, 2},
		{"shoal_balancer_requests_total", []string{"member=a", "code_class=4xx"}, 1},
		{"shoal_balancer_requests_total", []string{"member=a", "code_class=5xx"}, 0},
		{"shoal_balancer_requests_total", []string{"member=b", "code_class=1xx"}, 0},
		{"shoal_balancer_errors_total", []string{"member=b", "reason=connect"}, 1},
		{"shoal_balancer_errors_total", []string{"member=b", "reason=request"}, 1},
		{"shoal_balancer_errors_total", []string{"member=b", "reason=health"}, 0},
		{"shoal_balancer_errors_total", []string{"member=a", "reason=timeout"}, 0},
		{"shoal_balancer_retries_total", nil, 0},
		{"shoal_balancer_in_flight", []string{"member=a"}, 2},
		{"shoal_balancer_member_state", []string{"member=a", "state=ok"}, 1},
		{"shoal_balancer_member_state", []string{"member=a", "state=error"}, 0},
		{"shoal_balancer_member_state", []string{"member=b", "state=error"}, 1},
		{"shoal_balancer_member_state", []string{"member=b", "state=ok"}, 0},
		{"shoal_balancer_state_changes_total", []string{"member=b"}, 1},
		{"shoal_balancer_state_changes_total", []string{"member=a"}, 0},
		{"shoal_balancer_member_weight", []string{"member=b"}, 2.5},
	} {
		if got := value(t, mfs, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s{%s} = %v, want %v", tt.name, strings.Join(tt.labels, ","), got, tt.want)
		}
	}
	if m := metric(mfs, "shoal_balancer_errors_total", "member=a", "reason=request"); m != nil {
		t.Error("errors_total{reason=request} shown at 0: it is only for members that have some")
	}
	if mfs["shoal_balancer_owner_routes_total"] != nil {
		t.Error("owner_routes_total without a source that counts them")
	}

	h := metric(mfs, "shoal_balancer_request_duration_seconds", "member=a").GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() < 120.02 || h.GetSampleSum() > 120.021 {
		t.Errorf("histogram count %d sum %v, want 3 and 120.0205", h.GetSampleCount(), h.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, bk := range h.GetBucket() {
		cum[bk.GetUpperBound()] = bk.GetCumulativeCount()
	}
	if cum[0.001] != 1 || cum[0.01] != 1 || cum[0.025] != 2 || cum[60] != 2 {
		t.Errorf("buckets %v, want le=0.001:1 le=0.01:1 le=0.025:2 le=60:2", cum)
	}
	if h := metric(mfs, "shoal_balancer_request_duration_seconds", "member=b").GetHistogram(); h.GetSampleCount() != 0 {
		t.Errorf("b's histogram count = %d, want 0", h.GetSampleCount())
	}

	// State changes made behind the member's setters are counted at the
	// next scrape.
	a.down.Store(true)
	mfs = gather(t, NewCollector(lister{ms}))
	if got := value(t, mfs, "shoal_balancer_state_changes_total", "member=a"); got != 1 {
		t.Errorf("state_changes_total{a} after health failure = %v, want 1", got)
	}

	mfs = gather(t, NewCollector(listerWithCounters{lister{ms}}))
	if value(t, mfs, "shoal_balancer_retries_total") != 7 || value(t, mfs, "shoal_balancer_owner_routes_total") != 3 {
		t.Error("retries_total or owner_routes_total not read from the source")
	}
}

func TestCollectorOneSeriesPerRoute(t *testing.T) {
	ms := append(testMembers(t, "a b"), testMembers(t, "a")...)
	mfs := gather(t, NewCollector(lister{ms})) // would fail on duplicate series
	if n := len(mfs["shoal_balancer_in_flight"].GetMetric()); n != 2 {
		t.Errorf("%d in_flight series, want 2", n)
	}
}

func TestCollectorOfBalancer(t *testing.T) {
	be := newBackend(t, "n1")
	tb := startBalancer(t, testConfig(t, be.member(), "n2="+deadURL(t)))
	for range 4 {
		if r := tb.get(t, "/"); r.code != 200 {
			t.Fatalf("GET / = %d", r.code)
		}
	}
	mfs := gather(t, NewCollector(tb.Balancer))
	if got := value(t, mfs, "shoal_balancer_member_state", "member=n2", "state=error"); got != 1 {
		t.Errorf("n2 state error = %v, want 1", got)
	}
	if got := value(t, mfs, "shoal_balancer_errors_total", "member=n2", "reason=connect"); got != 1 {
		t.Errorf("n2 errors = %v, want 1", got)
	}
	if mfs["shoal_balancer_owner_routes_total"] == nil {
		t.Error("no owner_routes_total from a *Balancer")
	}
}

func BenchmarkObserveResponse(b *testing.B) {
	m := testMembers(b, "a")[0]
	b.ReportAllocs()
	for b.Loop() {
		m.observeResponse(200, 3*time.Millisecond)
	}
}
