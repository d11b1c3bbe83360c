package balancer

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// P2C is the power of two random choices: of two members picked at
// random, the one with the lower cost, where the cost is (requests in
// flight + 1) × the member's latency estimate, divided by its weight. The
// latency estimate is a peak-sensitive moving average of the time to the
// response's headers (Finagle's and Linkerd's "peak EWMA"): it jumps up
// at once on a slow response and decays with a time constant of 10 s, so
// a member that was slow once is tried again soon.
type P2C struct {
	// IntN returns a random number in [0, n). nil means math/rand/v2's.
	IntN func(n int) int
}

// Select implements Selector.
func (s *P2C) Select(members []*Member, _ *http.Request) *Member {
	n := len(members)
	if n == 1 {
		return members[0]
	}
	intN := s.IntN
	if intN == nil {
		intN = rand.IntN
	}
	i := intN(n)
	j := intN(n - 1)
	if j >= i {
		j++
	}
	a, b := members[i], members[j]
	now := time.Now().UnixNano()
	if b.cost(now) < a.cost(now) {
		return b
	}
	return a
}

// cost is the member's P2C cost at now.
func (m *Member) cost(now int64) float64 {
	return float64(m.inFlight.Load()+1) * m.lat.estimate(now) / float64(m.lbfactor.Load())
}

// Latency estimate parameters.
const (
	// latencyDecay is the time constant of the moving average, in ns.
	latencyDecay = float64(10 * time.Second)
	// latencyFloor is the least estimate, in ns, so that in-flight counts
	// still tell members apart before any latency is known.
	latencyFloor = float64(time.Microsecond)
)

// latency is a peak EWMA of a member's response times. Its two words are
// updated without a lock: a lost update under contention costs one sample
// of a moving average.
type latency struct {
	ns    atomic.Uint64 // float64 bits of the estimate, in ns
	stamp atomic.Int64  // unix ns of the last update
}

// estimate returns the estimate at now, decayed since its last update.
func (l *latency) estimate(now int64) float64 {
	est := math.Float64frombits(l.ns.Load())
	if est > 0 {
		if dt := now - l.stamp.Load(); dt > 0 {
			est *= math.Exp(-float64(dt) / latencyDecay)
		}
	}
	return max(est, latencyFloor)
}

// observe adds a response time d measured at now.
func (l *latency) observe(now int64, d time.Duration) {
	rtt := float64(d)
	prev := math.Float64frombits(l.ns.Load())
	est := rtt
	if dt := now - l.stamp.Load(); prev > 0 && rtt < prev && dt >= 0 {
		w := math.Exp(-float64(dt) / latencyDecay)
		est = prev*w + rtt*(1-w)
	}
	l.ns.Store(math.Float64bits(est))
	l.stamp.Store(now)
}
