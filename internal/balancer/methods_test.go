package balancer

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testMembers returns members named by routes with the given weights
// (0 means 1).
func testMembers(t testing.TB, routes string, weights ...float64) []*Member {
	t.Helper()
	var ms []*Member
	for i, route := range strings.Fields(routes) {
		mc := MemberConfig{Route: route, URL: "http://127.0.0.1:1"}
		if i < len(weights) {
			mc.Weight = weights[i]
		}
		m, err := NewMember(mc)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// picks returns the routes s picks for n requests to ms, space-separated.
func picks(s Selector, ms []*Member, n int) string {
	r := httptest.NewRequest("GET", "/", nil)
	var out []string
	for range n {
		out = append(out, s.Select(ms, r).Route())
	}
	return strings.Join(out, " ")
}

// counts returns how many of n picks went to each route.
func counts(s Selector, ms []*Member, n int) map[string]int {
	c := map[string]int{}
	for _, route := range strings.Fields(picks(s, ms, n)) {
		c[route]++
	}
	return c
}

func TestByRequestsApacheSequence(t *testing.T) {
	tests := []struct {
		name    string
		routes  string
		weights []float64
		want    string
	}{
		// lbstatus starts at 0 (Apache's reset); ties go to the first in order.
		{"weights 1:2:3", "a b c", []float64{1, 2, 3}, "c b a c b c c b a c b c"},
		{"equal weights round robin", "a b c d", nil, "a b c d a b c d"},
		// Apache's manual: 70/30 gives 7 a and 3 b interleaved over 10 picks.
		{"70/30", "a b", []float64{70, 30}, "a b a a a b a a b a"},
		{"fractional weights scale", "a b c", []float64{1.5, 3, 4.5}, "c b a c b c c b a c b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := testMembers(t, tt.routes, tt.weights...)
			n := len(strings.Fields(tt.want))
			if got := picks(&ByRequests{}, ms, n); got != tt.want {
				t.Errorf("picks = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestByRequestsWeightsExact(t *testing.T) {
	ms := testMembers(t, "a b c", 1, 2, 3)
	got := counts(&ByRequests{}, ms, 600)
	if got["a"] != 100 || got["b"] != 200 || got["c"] != 300 {
		t.Errorf("600 picks with weights 1:2:3 = %v, want a:100 b:200 c:300", got)
	}
}

func TestByRequestsMemberLeaves(t *testing.T) {
	// Apache's manual: four members of equal weight, b disabled: a c d a c d.
	ms := testMembers(t, "a b c d")
	without := []*Member{ms[0], ms[2], ms[3]}
	if got := picks(&ByRequests{}, without, 6); got != "a c d a c d" {
		t.Errorf("picks = %q, want \"a c d a c d\"", got)
	}
}

func TestByRequestsCountsSticky(t *testing.T) {
	ms := testMembers(t, "a b")
	s := &ByRequests{}
	// Two sticky requests to a: the next two new requests go to b.
	s.CountSticky(ms, ms[0])
	s.CountSticky(ms, ms[0])
	if got := picks(s, ms, 4); got != "b b a b" {
		t.Errorf("after two sticky requests to a, picks = %q, want \"b b a b\"", got)
	}
}

func TestByBusyness(t *testing.T) {
	ms := testMembers(t, "a b c")
	s := &ByBusyness{}
	r := httptest.NewRequest("GET", "/", nil)
	ms[0].inFlight.Store(2)
	ms[1].inFlight.Store(0)
	ms[2].inFlight.Store(1)
	if got := s.Select(ms, r).Route(); got != "b" {
		t.Errorf("in flight 2,0,1: picked %s, want b", got)
	}
	// Ties go by byrequests: with all idle, round robin.
	for _, m := range ms {
		m.inFlight.Store(0)
		m.lbstatus = 0
	}
	if got := picks(s, ms, 6); got != "a b c a b c" {
		t.Errorf("all idle: picks = %q, want \"a b c a b c\"", got)
	}
	// Weights break ties too: 1:2 idle members give b twice as often.
	ws := testMembers(t, "a b", 1, 2)
	if got := counts(&ByBusyness{}, ws, 300); got["a"] != 100 || got["b"] != 200 {
		t.Errorf("idle weights 1:2 over 300 picks = %v, want a:100 b:200", got)
	}
}

func TestP2C(t *testing.T) {
	ms := testMembers(t, "a b c")
	r := httptest.NewRequest("GET", "/", nil)
	// IntN returns 0 then 1: the first choice is members[0], the second
	// members[1+1] (the second draw skips the first).
	seq := []int{0, 1}
	next := 0
	s := &P2C{IntN: func(n int) int { v := seq[next%len(seq)] % n; next++; return v }}
	ms[0].inFlight.Store(3)
	if got := s.Select(ms, r).Route(); got != "c" {
		t.Errorf("a busy, c idle: picked %s, want c", got)
	}
	ms[0].inFlight.Store(0)
	ms[2].inFlight.Store(3)
	if got := s.Select(ms, r).Route(); got != "a" {
		t.Errorf("a idle, c busy: picked %s, want a", got)
	}
	// Latency counts: a slow member loses against an idle fast one.
	ms[2].inFlight.Store(0)
	now := time.Now().UnixNano()
	ms[0].lat.observe(now, 500e6)
	ms[2].lat.observe(now, 1e6)
	if got := s.Select(ms, r).Route(); got != "c" {
		t.Errorf("a slow: picked %s, want c", got)
	}
	if len(ms[:1]) == 1 && (&P2C{}).Select(ms[:1], r) != ms[0] {
		t.Error("one member: not picked")
	}
}

func TestP2CSpreads(t *testing.T) {
	ms := testMembers(t, "a b c d")
	got := counts(&P2C{}, ms, 4000)
	for _, m := range ms {
		if c := got[m.Route()]; c < 700 || c > 1300 {
			t.Errorf("idle equal members: %s got %d of 4000 picks, want about 1000 (%v)", m.Route(), c, got)
		}
	}
}

func TestLatencyEstimate(t *testing.T) {
	var l latency
	if got := l.estimate(0); got != latencyFloor {
		t.Errorf("no samples: estimate %v, want the floor %v", got, latencyFloor)
	}
	l.observe(0, 100e6)
	l.observe(1e6, 10e6) // a fast sample right after: barely lowers the peak
	if got := l.estimate(1e6); got < 99e6 {
		t.Errorf("peak then fast sample 1 ms later: estimate %v ns, want about 100 ms", got)
	}
	l.observe(2e6, 300e6) // a slower one: jumps to it
	if got := l.estimate(2e6); got != 300e6 {
		t.Errorf("after a peak: estimate %v, want 300e6", got)
	}
	if got := l.estimate(2e6 + int64(latencyDecay)); got > 300e6/2.7 || got < 300e6/2.8 {
		t.Errorf("one time constant later: estimate %v, want 300e6/e", got)
	}
}

func TestHash(t *testing.T) {
	ms := testMembers(t, "a b c d e")
	s, err := NewHash("header:X-User")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	spread := map[string]int{}
	for i := range 1000 {
		r := httptest.NewRequest("GET", "/", nil)
		user := fmt.Sprint("user", i)
		r.Header.Set("X-User", user)
		m := s.Select(ms, r)
		if again := s.Select(ms, r); again != m {
			t.Fatalf("%s: picked %s then %s", user, m.Route(), again.Route())
		}
		owner[user] = m.Route()
		spread[m.Route()]++
	}
	for _, m := range ms {
		if c := spread[m.Route()]; c < 130 || c > 270 {
			t.Errorf("%s owns %d of 1000 keys, want about 200 (%v)", m.Route(), c, spread)
		}
	}
	// Without c, only c's keys move.
	without := []*Member{ms[0], ms[1], ms[3], ms[4]}
	for user, route := range owner {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User", user)
		got := s.Select(without, r).Route()
		if route != "c" && got != route {
			t.Errorf("%s moved from %s to %s when c left", user, route, got)
		}
	}
	// No key: byrequests.
	if got := picks(s, ms, 5); got != "a b c d e" {
		t.Errorf("no key: picks = %q, want byrequests' \"a b c d e\"", got)
	}
}

func TestHashWeighted(t *testing.T) {
	ms := testMembers(t, "a b", 1, 3)
	s, err := NewHash("cookie:user")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for i := range 4000 {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", fmt.Sprintf("x=1; user=u%d", i))
		got[s.Select(ms, r).Route()]++
	}
	if got["a"] < 800 || got["a"] > 1200 {
		t.Errorf("weights 1:3 over 4000 keys = %v, want about a:1000 b:3000", got)
	}
}

func TestNewSelector(t *testing.T) {
	tests := []struct {
		method, key string
		want        string // type, or error substring
	}{
		{"", "", "*balancer.ByRequests"},
		{"byrequests", "", "*balancer.ByRequests"},
		{"bybusyness", "", "*balancer.ByBusyness"},
		{"p2c", "", "*balancer.P2C"},
		{"hash", "header:X-User", "*balancer.Hash"},
		{"hash", "cookie:JSESSIONID", "*balancer.Hash"},
		{"hash", "", `hash-key "": want header:NAME or cookie:NAME`},
		{"hash", "query:x", `hash-key "query:x"`},
		{"hash", "header:", `hash-key "header:"`},
		{"byrequests", "header:X", "only for method hash"},
		{"roundrobin", "", `method "roundrobin": want one of byrequests, bybusyness, p2c, hash`},
	}
	for _, tt := range tests {
		s, err := newSelector(tt.method, tt.key)
		got := fmt.Sprintf("%T", s)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("newSelector(%q, %q) = %s, want %s", tt.method, tt.key, got, tt.want)
		}
	}
}

func BenchmarkSelect3(b *testing.B)   { benchmarkSelect(b, 3) }
func BenchmarkSelect30(b *testing.B)  { benchmarkSelect(b, 30) }
func BenchmarkSelect300(b *testing.B) { benchmarkSelect(b, 300) }

func benchmarkSelect(b *testing.B, n int) {
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprint("n", i))
	}
	ms := testMembers(b, strings.Join(routes, " "))
	hash, err := NewHash("header:X-User")
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []struct {
		name string
		sel  Selector
	}{{"byrequests", &ByRequests{}}, {"bybusyness", &ByBusyness{}}, {"p2c", &P2C{}}, {"hash", hash}} {
		b.Run(s.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-User", "someone@example.com")
			b.ReportAllocs()
			for b.Loop() {
				if s.sel.Select(ms, r) == nil {
					b.Fatal("no member")
				}
			}
		})
	}
}
