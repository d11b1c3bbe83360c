package balancer

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Selector picks the member for a request that has no usable route. The
// balancer calls Select with the members that may take new requests (all
// usable, none draining; the hot standbys only when no other member is),
// in configuration order, never with an empty slice; Select returns one
// of them. It must be safe for concurrent use and must not keep members.
type Selector interface {
	Select(members []*Member, r *http.Request) *Member
}

// SelectorFunc adapts a function to Selector.
type SelectorFunc func(members []*Member, r *http.Request) *Member

// Select calls f(members, r).
func (f SelectorFunc) Select(members []*Member, r *http.Request) *Member { return f(members, r) }

// stickyCounter is implemented by selectors that account for the sticky
// requests too, as Apache's byrequests does: CountSticky is called with
// every usable member and the one the request's route chose.
type stickyCounter interface {
	CountSticky(usable []*Member, chosen *Member)
}

var (
	_ Selector      = SelectorFunc(nil)
	_ Selector      = (*ByRequests)(nil)
	_ Selector      = (*ByBusyness)(nil)
	_ Selector      = (*P2C)(nil)
	_ Selector      = (*Hash)(nil)
	_ stickyCounter = (*ByRequests)(nil)
	_ stickyCounter = (*ByBusyness)(nil)
)

// methods lists the names newSelector accepts.
var methods = []string{"byrequests", "bybusyness", "p2c", "hash"}

// newSelector returns the selector for a method name.
func newSelector(method, hashKey string) (Selector, error) {
	return newSharedSelector(method, hashKey, nil)
}

// newSharedSelector returns the selector for a method name whose
// byrequests counting (byrequests, bybusyness's ties, hash's fallback)
// takes counts' lock, or its own if counts is nil.
func newSharedSelector(method, hashKey string, counts *ByRequests) (Selector, error) {
	if method != "hash" && hashKey != "" {
		return nil, fmt.Errorf("hash-key %q is only for method hash", hashKey)
	}
	switch method {
	case "", "byrequests":
		if counts != nil {
			return counts, nil
		}
		return &ByRequests{}, nil
	case "bybusyness":
		return &ByBusyness{shared: counts}, nil
	case "p2c":
		return &P2C{}, nil
	case "hash":
		h, err := NewHash(hashKey)
		if h != nil {
			h.shared = counts
		}
		return h, err
	}
	return nil, fmt.Errorf("method %q: want one of %s", method, strings.Join(methods, ", "))
}

// ByRequests is Apache's byrequests method, weighted request counting: on
// each pick every member's lbstatus grows by its weight, the member with
// the highest lbstatus (the first in order on a tie) is picked and its
// lbstatus drops by the sum of the weights. Over any run of requests each
// member's share is its weight's share, and the picks are interleaved
// (weights 1:2:3 give c b a c b c, repeating).
//
// A ByRequests keeps its counters in the members: use one per set of
// members.
type ByRequests struct {
	mu sync.Mutex // guards the lbstatus of the members passed to Select and CountSticky
}

// Select implements Selector.
func (s *ByRequests) Select(members []*Member, _ *http.Request) *Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Member
	var total int64
	for _, m := range members {
		lf := m.lbfactor.Load() // once: SetWeight may change it meanwhile
		m.lbstatus += lf
		total += lf
		if best == nil || m.lbstatus > best.lbstatus {
			best = m
		}
	}
	if best != nil {
		best.lbstatus -= total
	}
	return best
}

// CountSticky counts a sticky request as Apache does, so that the
// members' shares stay fair when sessions stick unevenly.
func (s *ByRequests) CountSticky(usable []*Member, chosen *Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for _, m := range usable {
		lf := m.lbfactor.Load() // once: SetWeight may change it meanwhile
		m.lbstatus += lf
		total += lf
	}
	chosen.lbstatus -= total
}

// ByBusyness is Apache's bybusyness method: the member with the fewest
// requests in flight; ties go to the byrequests order (the counters are
// updated on every pick, as in Apache).
type ByBusyness struct {
	counts ByRequests
	shared *ByRequests // if set, the counter whose lock guards the members' counters, instead of counts
}

func (s *ByBusyness) byRequests() *ByRequests {
	if s.shared != nil {
		return s.shared
	}
	return &s.counts
}

// Select implements Selector.
func (s *ByBusyness) Select(members []*Member, _ *http.Request) *Member {
	c := s.byRequests()
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *Member
	var bestBusy, total int64
	for _, m := range members {
		lf := m.lbfactor.Load() // once: SetWeight may change it meanwhile
		m.lbstatus += lf
		total += lf
		busy := m.inFlight.Load()
		if best == nil || busy < bestBusy || (busy == bestBusy && m.lbstatus > best.lbstatus) {
			best, bestBusy = m, busy
		}
	}
	if best != nil {
		best.lbstatus -= total
	}
	return best
}

// CountSticky implements stickyCounter.
func (s *ByBusyness) CountSticky(usable []*Member, chosen *Member) {
	s.byRequests().CountSticky(usable, chosen)
}
