package latency

import (
	"sync"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{-time.Second, 0, 100 * time.Microsecond, 101 * time.Microsecond, time.Millisecond, time.Minute} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if s.Count != 6 {
		t.Fatalf("Count %d, want 6", s.Count)
	}
	if want := 100*time.Microsecond + 101*time.Microsecond + time.Millisecond + time.Minute; s.Sum != want {
		t.Errorf("Sum %v, want %v", s.Sum, want)
	}
	b := Bounds()
	for i, want := range map[int]uint64{0: 3, 1: 4, 3: 5, len(b) - 1: 5} {
		if s.Cumulative[i] != want {
			t.Errorf("Cumulative[%d] (<= %v) = %d, want %d", i, b[i], s.Cumulative[i], want)
		}
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("bounds not increasing at %d: %v", i, b)
		}
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Observe(time.Duration(i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 8000 {
		t.Fatalf("Count %d, want 8000", s.Count)
	}
}
