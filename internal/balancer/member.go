package balancer

import (
	"net/url"
	"sync/atomic"
	"time"
)

// Member is one backend of a Balancer. Its methods are safe for
// concurrent use. A Member must not be copied.
//
// Its state follows Apache's worker status flags: a member is usable
// unless it is disabled, in error after a failed request (until Retry has
// passed), or failing its health checks; a usable member that is draining
// (administratively, or because its readiness check answers 503) takes
// only the sticky requests of its own sessions; a hot standby takes
// requests only when no other member can.
type Member struct {
	route     string
	url       *url.URL
	healthURL string
	weight    float64
	lbfactor  int64 // weight ×100, as Apache stores a loadfactor
	standby   bool
	routeHash uint64 // for the hash method

	// lbstatus is Apache's byrequests counter. It is read and written only
	// by the balancer's selector, under that selector's mutex.
	lbstatus int64

	inFlight   atomic.Int64
	errorUntil atomic.Int64 // unix ns until which the member is in error; 0: not in error
	lastError  atomic.Pointer[string]
	disabled   atomic.Bool
	draining   atomic.Bool // administratively: --member ...,drain
	notReady   atomic.Bool // its readiness check answered 503
	down       atomic.Bool // it failed Fall health checks in a row
	lat        latency
}

// NewMember returns a member for mc, usable at once.
func NewMember(mc MemberConfig) (*Member, error) {
	u, err := mc.check()
	if err != nil {
		return nil, err
	}
	m := &Member{
		route:     mc.Route,
		url:       u,
		weight:    float64(mc.lbfactor()) / 100,
		lbfactor:  mc.lbfactor(),
		standby:   mc.Standby,
		routeHash: mix64(fnv1a(mc.Route)),
	}
	m.disabled.Store(mc.Disabled)
	m.draining.Store(mc.Draining)
	return m, nil
}

// Route returns the member's route: the suffix of its session ids.
func (m *Member) Route() string { return m.route }

// URL returns a copy of the member's base URL.
func (m *Member) URL() *url.URL { u := *m.url; return &u }

// Weight returns the member's weight (Apache's loadfactor).
func (m *Member) Weight() float64 { return m.weight }

// Standby reports whether the member is a hot standby.
func (m *Member) Standby() bool { return m.standby }

// InFlight returns the number of requests the member is serving.
func (m *Member) InFlight() int64 { return m.inFlight.Load() }

// SetDisabled and SetDraining change the member's administrative state.
func (m *Member) SetDisabled(v bool) { m.disabled.Store(v) }
func (m *Member) SetDraining(v bool) { m.draining.Store(v) }

// usable reports whether the member may take a request now (a sticky one
// at least): Apache's PROXY_WORKER_IS_USABLE, with the retry check folded
// in: a member whose error time has passed is usable again.
func (m *Member) usable(now int64) bool {
	if m.disabled.Load() || m.down.Load() {
		return false
	}
	eu := m.errorUntil.Load()
	return eu == 0 || now >= eu
}

// acceptsNew reports whether the member may take requests that do not
// belong to one of its sessions.
func (m *Member) acceptsNew(now int64) bool {
	return m.usable(now) && !m.draining.Load() && !m.notReady.Load()
}

// inError reports whether the member is in error (not yet retried) at now.
func (m *Member) inError(now int64) bool {
	eu := m.errorUntil.Load()
	return eu != 0 && now < eu
}

// markError puts the member in error until now+retry. It reports whether
// the member was not in error before, so that one line is logged per
// failure, not one per request that saw it.
func (m *Member) markError(now int64, retry time.Duration, reason string) (first bool) {
	m.lastError.Store(&reason)
	old := m.errorUntil.Swap(now + int64(retry))
	return old == 0 || old <= now
}

// clearError ends an error whose retry time has passed, after a request
// to the member succeeded. It reports whether it did.
func (m *Member) clearError(now int64) bool {
	eu := m.errorUntil.Load()
	return eu != 0 && eu <= now && m.errorUntil.CompareAndSwap(eu, 0)
}

// State is a member's state as Status reports it.
type State string

// The states of a member, in the order Status picks the first that holds.
const (
	StateDisabled State = "disabled" // administratively: no requests
	StateError    State = "error"    // failed requests or health checks: no requests until it recovers
	StateDraining State = "draining" // only the sticky requests of its sessions
	StateOK       State = "ok"
)

// Status is a snapshot of a member.
type Status struct {
	Route   string
	URL     string
	Weight  float64
	Standby bool
	State   State
	// Reason says why the member is in error or draining.
	Reason string
	// ErrorUntil is when a member in error after failed requests may be
	// tried again; zero otherwise.
	ErrorUntil time.Time
	InFlight   int64
}

// Status returns a snapshot of the member's state.
func (m *Member) Status() Status {
	s := Status{Route: m.route, URL: m.url.String(), Weight: m.weight, Standby: m.standby,
		State: StateOK, InFlight: m.inFlight.Load()}
	now := time.Now().UnixNano()
	switch {
	case m.disabled.Load():
		s.State = StateDisabled
	case m.down.Load():
		s.State, s.Reason = StateError, "failed health checks"
	case m.inError(now):
		s.State, s.ErrorUntil = StateError, time.Unix(0, m.errorUntil.Load())
		if r := m.lastError.Load(); r != nil {
			s.Reason = *r
		}
	case m.draining.Load():
		s.State, s.Reason = StateDraining, "drain"
	case m.notReady.Load():
		s.State, s.Reason = StateDraining, "not ready"
	}
	return s
}

// mix64 is a 64-bit finalizer (splitmix64's): it spreads the bits of x.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
