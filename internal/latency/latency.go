// Package latency is a fixed-bucket histogram of durations that costs
// two atomic adds per observation and no allocation, so the session
// middleware and the replication transport can record every commit and
// every acknowledgement; the metrics collectors read it at scrape time.
// It depends on nothing, so the public session package can use it
// without pulling a metrics library into its users' builds.
package latency

import (
	"sync/atomic"
	"time"
)

// Bounds are the upper bounds of the buckets, shared by every Histogram:
// from 100 µs (a commit on one node, a LAN round trip) to 10 s (the
// longest a commit can wait for a peer before it times out).
var bounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Bounds returns the buckets' upper bounds, in increasing order.
func Bounds() []time.Duration { return bounds[:] }

// Histogram counts durations by bucket. The zero value is ready to use;
// it is safe for concurrent use and must not be copied after first use.
type Histogram struct {
	counts [len(bounds) + 1]atomic.Uint64 // the last one is +Inf
	sum    atomic.Int64                   // nanoseconds
}

// Observe records one duration; a negative one counts as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(bounds) && d > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot is a Histogram's content at one moment.
type Snapshot struct {
	// Cumulative[i] is how many observations were at most Bounds()[i].
	Cumulative []uint64
	// Count is how many observations there were in all.
	Count uint64
	// Sum is their total.
	Sum time.Duration
}

// Snapshot returns the histogram's counts. Observations made while it
// runs may be seen in some buckets and not in Count; the next snapshot
// sees them all.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Cumulative: make([]uint64, len(bounds))}
	var total uint64
	for i := range bounds {
		total += h.counts[i].Load()
		s.Cumulative[i] = total
	}
	s.Count = total + h.counts[len(bounds)].Load()
	s.Sum = time.Duration(h.sum.Load())
	return s
}
