package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkDeadDetection measures how long the other members take to
// report EventDead for a member that stops without Leave (Close without
// Leave is how a kill -9 looks to them), with the presets' timing on
// 127.0.0.1. Each iteration starts a fresh cluster, so run it with a count
// of iterations:
//
//	go test -run '^$' -bench DeadDetection -benchtime 20x ./internal/membership/
//
// ns/op is the mean time from Close until every other member saw
// EventDead (starting the cluster is not timed). Metrics, over the
// iterations: ms-to-dead is the median time from Close
// until every other member has seen EventDead, ms-to-first-dead the median
// until the first one has, ms-to-dead-max the slowest iteration.
func BenchmarkDeadDetection(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchmarkDeadDetection(b, n) })
	}
}

func benchmarkDeadDetection(b *testing.B, n int) {
	key := mustKey(b)
	var toAll, toFirst []float64
	for b.Loop() {
		all, first := deadDetectionOnce(b, n, key)
		toAll = append(toAll, ms(all))
		toFirst = append(toFirst, ms(first))
	}
	b.ReportMetric(median(toAll), "ms-to-dead")
	b.ReportMetric(median(toFirst), "ms-to-first-dead")
	b.ReportMetric(slices.Max(toAll), "ms-to-dead-max")
}

// deadDetectionOnce starts n members, closes the last one without Leave
// and returns how long until all the others, and the first of them, saw
// EventDead for it.
func deadDetectionOnce(b *testing.B, n int, key []byte) (all, first time.Duration) {
	b.StopTimer() // ns/op counts only the detection, not starting the cluster
	defer b.StartTimer()
	ms := startClusterWith(b, n, key, func(c *Config) {
		presetTiming(c)
		c.Logger = nil // formatting memberlist's debug lines would cost CPU time
	})
	victim, survivors := ms[n-1], ms[:n-1]
	name := victim.Self().Name
	b.StartTimer()
	stopped := time.Now()
	if err := victim.Close(); err != nil {
		b.Fatal(err)
	}
	var seen []time.Time
	eventually(b, 10*time.Second, "every survivor sees EventDead", func() bool {
		seen = seen[:0]
		for _, s := range survivors {
			at, ok := s.events.find(EventDead, name)
			if !ok {
				return false
			}
			seen = append(seen, at)
		}
		return true
	})
	b.StopTimer()
	for _, s := range survivors {
		if s.events.count(EventLeave, name) != 0 {
			b.Fatalf("%s reported a leave, not a failure", s.Self().Name)
		}
	}
	all, first = slices.MaxFunc(seen, time.Time.Compare).Sub(stopped), slices.MinFunc(seen, time.Time.Compare).Sub(stopped)
	for _, s := range survivors {
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return all, first
}

// presetTiming undoes the tests' tolerantTiming: the presets' values.
func presetTiming(c *Config) {
	p := DefaultLocalConfig()
	c.ProbeInterval, c.ProbeTimeout = p.ProbeInterval, p.ProbeTimeout
	c.SuspicionMult, c.AwarenessMaxMultiplier = p.SuspicionMult, p.AwarenessMaxMultiplier
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
