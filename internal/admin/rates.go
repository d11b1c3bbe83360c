package admin

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

// Request rates are measured by sampling the members' request counters
// when the manager is asked for something (the page, GET /api/rates,
// GET /api/cluster), at most once per minSampleGap: the manager has no
// goroutine of its own, and nothing is sampled while nobody looks. The
// page's chart asks every two seconds, so while it is open the samples
// are two seconds apart; a page seen without JavaScript measures its
// rates over the time since the previous view, up to rateWindow.
const (
	minSampleGap = 900 * time.Millisecond
	maxSamples   = 180              // six minutes at the chart's two seconds
	chartWindow  = 2 * time.Minute  // what GET /api/rates returns
	rateWindow   = 10 * time.Second // the page's rate column, at least
	maxRateAge   = 5 * time.Minute  // the page's rate column, at most
	maxSampled   = 256              // members counted per sample
)

// rateSample is the members' request counters at one time.
type rateSample struct {
	at     time.Time
	counts map[string]uint64 // by route
}

// rateSampler keeps the recent samples. It is safe for concurrent use.
type rateSampler struct {
	mu      sync.Mutex   // protects samples
	samples []rateSample // oldest first, at most maxSamples
}

// observe takes a sample of members at now, unless the last one is less
// than minSampleGap old.
func (s *rateSampler) observe(now time.Time, members []*balancer.Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.samples); n > 0 && now.Sub(s.samples[n-1].at) < minSampleGap {
		return
	}
	counts := make(map[string]uint64, min(len(members), maxSampled))
	for _, m := range members {
		if len(counts) == maxSampled {
			break
		}
		counts[m.Route()] = m.Status().Requests
	}
	if len(s.samples) == maxSamples {
		copy(s.samples, s.samples[1:])
		s.samples = s.samples[:maxSamples-1]
	}
	s.samples = append(s.samples, rateSample{at: now, counts: counts})
}

// delta returns how many requests route served from a to b: a counter
// that went down was restarted (a member of that route was replaced),
// so it counts from 0 as Prometheus's rate does.
func delta(a, b rateSample, route string) (uint64, bool) {
	cb, ok := b.counts[route]
	if !ok {
		return 0, false
	}
	ca, ok := a.counts[route]
	if !ok || cb < ca {
		return cb, ok
	}
	return cb - ca, true
}

// rate returns route's requests per second between the newest sample and
// the newest one at least rateWindow older (or, failing that, the oldest
// one not older than maxRateAge), and the span it was measured over.
func (s *rateSampler) rate(route string) (float64, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.samples)
	if n < 2 {
		return 0, 0, false
	}
	last := s.samples[n-1]
	from := -1
	for i := n - 2; i >= 0; i-- {
		age := last.at.Sub(s.samples[i].at)
		if age > maxRateAge {
			break
		}
		from = i
		if age >= rateWindow {
			break
		}
	}
	if from < 0 {
		return 0, 0, false
	}
	first := s.samples[from]
	d, ok := delta(first, last, route)
	span := last.at.Sub(first.at)
	if !ok || span <= 0 {
		return 0, 0, false
	}
	return float64(d) / span.Seconds(), span, true
}

// ratesJSON is the body of GET /api/rates: each member's requests per
// second between consecutive samples of the last two minutes, for the
// page's chart. A point is [unix ms of the interval's end, requests/s].
type ratesJSON struct {
	NowMs   int64        `json:"now_ms"`
	WindowS int          `json:"window_s"`
	Series  []seriesJSON `json:"series"`
}

type seriesJSON struct {
	Route  string       `json:"route"`
	State  string       `json:"state"`
	Points [][2]float64 `json:"points"`
}

// series returns the chart's data for members at now.
func (s *rateSampler) series(now time.Time, members []*balancer.Member) ratesJSON {
	out := ratesJSON{NowMs: now.UnixMilli(), WindowS: int(chartWindow / time.Second), Series: []seriesJSON{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	start := len(s.samples)
	for start > 0 && now.Sub(s.samples[start-1].at) <= chartWindow+minSampleGap {
		start--
	}
	for _, m := range members {
		if len(out.Series) == maxSampled {
			break
		}
		st := m.Status()
		ser := seriesJSON{Route: st.Route, State: string(st.Shown()), Points: [][2]float64{}}
		for i := max(start, 1); i < len(s.samples); i++ {
			a, b := s.samples[i-1], s.samples[i]
			d, ok := delta(a, b, st.Route)
			if !ok {
				continue
			}
			r := float64(d) / b.at.Sub(a.at).Seconds()
			ser.Points = append(ser.Points, [2]float64{float64(b.at.UnixMilli()), math.Round(r*100) / 100})
		}
		out.Series = append(out.Series, ser)
	}
	return out
}

// getRates is GET /api/rates.
func (h *Handler) getRates(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	members := h.b.Members()
	h.rates.observe(now, members)
	writeJSON(w, http.StatusOK, h.rates.series(now, members))
}
