package balancer

import (
	"fmt"
	"math"
	"net/url"
	"sort"
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
	tgt       atomic.Pointer[memberTarget] // where it is: Reload may change it
	lbfactor  atomic.Int64                 // weight ×100, as Apache stores a loadfactor; SetWeight changes it
	standby   atomic.Bool
	lbset     atomic.Int32 // Apache's lbset: lower tiers are used first
	routeHash uint64       // for the hash method

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

	stats memberStats

	// cfg is the config the member was last given (New, Reload), to tell
	// what a reload changes. The balancer's setMu guards it.
	cfg MemberConfig
	// retired is set when the member left the balancer (Reload, or its
	// node left the cluster): its requests in flight finish, and it is
	// never taken back.
	retired atomic.Bool
}

// retire marks the member as removed and closes its idle connections;
// its requests in flight finish, and their connections are closed after.
func (m *Member) retire() {
	m.retired.Store(true)
	m.target().pool.close()
}

// NewMember returns a member for mc, usable at once.
func NewMember(mc MemberConfig) (*Member, error) {
	u, err := mc.check()
	if err != nil {
		return nil, err
	}
	m := &Member{
		route:     mc.Route,
		routeHash: mix64(fnv1a(mc.Route)),
	}
	m.cfg = mc
	m.tgt.Store(newMemberTarget(u))
	m.standby.Store(mc.Standby)
	m.lbset.Store(int32(mc.LBSet))
	m.lbfactor.Store(mc.lbfactor())
	m.disabled.Store(mc.Disabled)
	m.draining.Store(mc.Draining)
	m.stats.state.Store(stateIndex(m.state(time.Now().UnixNano())))
	return m, nil
}

// Route returns the member's route: the suffix of its session ids.
func (m *Member) Route() string { return m.route }

// URL returns a copy of the member's base URL.
func (m *Member) URL() *url.URL { u := *m.target().url; return &u }

// target returns where the member is now.
func (m *Member) target() *memberTarget { return m.tgt.Load() }

// memberTarget is where a member is: its base URL and the pool of
// connections to it. Reload replaces it whole when the URL changes, so a
// request sees one URL and the pool that goes with it.
type memberTarget struct {
	url  *url.URL
	pool *connPool
}

func newMemberTarget(u *url.URL) *memberTarget {
	return &memberTarget{url: u, pool: newConnPool(u)}
}

// Weight returns the member's weight (Apache's loadfactor).
func (m *Member) Weight() float64 { return float64(m.lbfactor.Load()) / 100 }

// SetWeight changes the member's weight (Apache's loadfactor) from the
// next pick on: a number from 1 to 100, of which two decimals are kept,
// as --member's weight=N. The selectors' counters are kept, so
// byrequests moves to the new shares without a burst.
func (m *Member) SetWeight(w float64) error {
	if math.IsNaN(w) || w < 1 || w > 100 {
		return fmt.Errorf("weight %v: want a number from 1 to 100", w)
	}
	m.lbfactor.Store(int64(math.Round(w * 100)))
	return nil
}

// Standby reports whether the member is a hot standby.
func (m *Member) Standby() bool { return m.standby.Load() }

// LBSet returns the member's tier (Apache's lbset).
func (m *Member) LBSet() int { return int(m.lbset.Load()) }

// InFlight returns the number of requests the member is serving.
func (m *Member) InFlight() int64 { return m.inFlight.Load() }

// SetDisabled and SetDraining change the member's administrative state.
func (m *Member) SetDisabled(v bool) { m.disabled.Store(v); m.noteState(time.Now().UnixNano()) }
func (m *Member) SetDraining(v bool) { m.draining.Store(v); m.noteState(time.Now().UnixNano()) }

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
// failure, not one per request that saw it. It counts the failure under
// failRequest: callers that can tell the cause call markFailed.
func (m *Member) markError(now int64, retry time.Duration, reason string) (first bool) {
	return m.markFailed(now, retry, reason, failRequest)
}

// markFailed is markError for a failure whose cause is known: it counts
// it under why.
func (m *Member) markFailed(now int64, retry time.Duration, reason string, why failReason) (first bool) {
	m.lastError.Store(&reason)
	old := m.errorUntil.Swap(now + int64(retry))
	m.countError(why)
	m.noteState(now)
	return old == 0 || old <= now
}

// clearError ends an error whose retry time has passed, after a request
// to the member succeeded. It reports whether it did.
func (m *Member) clearError(now int64) bool {
	eu := m.errorUntil.Load()
	if eu != 0 && eu <= now && m.errorUntil.CompareAndSwap(eu, 0) {
		m.noteState(now)
		return true
	}
	return false
}

// State is a member's state as Status reports it.
type State string

// The states of a member, in the order Status picks the first that holds.
const (
	StateDisabled State = "disabled" // administratively: no requests
	StateError    State = "error"    // failed requests or health checks: no requests until it recovers
	StateDraining State = "draining" // only the sticky requests of its sessions
	StateOK       State = "ok"
	// StateStandby is never Status.State: it is what Status.Shown says of
	// a hot standby that is ok, for the manager and the metrics.
	StateStandby State = "standby"
)

// shownStates lists the states Status.Shown returns, in a fixed order.
var shownStates = [...]State{StateOK, StateStandby, StateDraining, StateError, StateDisabled}

// stateIndex returns the index of s in shownStates.
func stateIndex(s State) uint32 {
	for i, x := range shownStates {
		if x == s {
			return uint32(i)
		}
	}
	panic("balancer: unknown state " + string(s))
}

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

	// Requests counts the responses the member gave, whatever their
	// status; Errors its failed attempts (no response, a status in
	// FailOnStatus, or a failed health check).
	Requests uint64
	Errors   uint64
	// Latency is the member's latency estimate now: the peak EWMA of the
	// time to its responses' headers that p2c weighs members by (it
	// decays with a 10 s time constant while no response comes). Zero
	// before the first response.
	Latency time.Duration
	// MeanDuration is the mean time of the member's requests, from
	// sending to the end of the response; zero before the first.
	MeanDuration time.Duration
	// StateChanges counts the member's changes of State seen so far.
	StateChanges uint64
}

// Shown returns the state to show an operator: State, or StateStandby
// for a hot standby that is ok.
func (s Status) Shown() State {
	if s.State == StateOK && s.Standby {
		return StateStandby
	}
	return s.State
}

// Status returns a snapshot of the member's state.
func (m *Member) Status() Status {
	now := time.Now().UnixNano()
	s := Status{Route: m.route, URL: m.target().url.String(), Weight: m.Weight(), Standby: m.standby.Load(),
		State: StateOK, InFlight: m.inFlight.Load(),
		Requests: m.stats.requests(), Errors: m.stats.errorCount(), Latency: m.lat.current(now),
		MeanDuration: m.stats.meanDuration(), StateChanges: m.stats.stateChanges.Load()}
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

// current returns the estimate at now for display: as estimate, without
// its floor; 0 before the first response.
func (l *latency) current(now int64) time.Duration {
	if math.Float64frombits(l.ns.Load()) == 0 {
		return 0
	}
	return time.Duration(l.estimate(now))
}

// state returns the member's State at now, as Status's switch does.
func (m *Member) state(now int64) State {
	switch {
	case m.disabled.Load():
		return StateDisabled
	case m.down.Load(), m.inError(now):
		return StateError
	case m.draining.Load(), m.notReady.Load():
		return StateDraining
	}
	return StateOK
}

// noteState counts a change of the member's state (at now) since the
// last call. The member's own setters call it; changes made elsewhere
// (health checks, force recovery, the end of Retry) are counted at the
// next call, which the metrics collector makes at each scrape.
func (m *Member) noteState(now int64) {
	cur := stateIndex(m.state(now))
	for {
		old := m.stats.state.Load()
		if old == cur {
			return
		}
		if m.stats.state.CompareAndSwap(old, cur) {
			m.stats.stateChanges.Add(1)
			return
		}
	}
}

// failReason says why an attempt on a member failed, for the errors
// counters (the reason label of shoal_balancer_errors_total).
type failReason uint8

// The reasons of failures.
const (
	failConnect   failReason = iota // the connection failed: nothing was sent
	failTimeout                     // no response headers in time
	failTransport                   // the connection broke before the response (reset, EOF)
	failStatus                      // a status in FailOnStatus
	failHealth                      // a failed health check
	// failRequest is a failed request whose cause its caller did not
	// tell (markError): one of the four above.
	failRequest
	numFailReasons
)

var failReasonNames = [numFailReasons]string{"connect", "timeout", "transport", "status", "health", "request"}

// String returns the reason's metric label.
func (r failReason) String() string {
	if r < numFailReasons {
		return failReasonNames[r]
	}
	return fmt.Sprintf("failReason(%d)", uint8(r))
}

// failReasonOf classifies a transport error of an attempt.
func failReasonOf(err error) failReason {
	switch {
	case isDialError(err):
		return failConnect
	case isTimeout(err):
		return failTimeout
	}
	return failTransport
}

// durationBuckets are the upper bounds, in seconds, of the buckets in
// which members count their requests' durations (the histogram
// shoal_balancer_request_duration_seconds).
var durationBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// durationBounds are durationBuckets in ns, for the request path.
var durationBounds = func() (b [len(durationBuckets)]int64) {
	for i, s := range durationBuckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// memberStats are a member's counters. They are atomics, written on the
// request path and read by Status and the metrics collector; readers may
// see one counter a request ahead of another.
//
// Both request paths count responses and durations (observeResponse) and
// failed attempts by cause (markFailed); the health checks count their
// failures under failHealth. failRequest remains for callers of
// markError that cannot tell the cause.
type memberStats struct {
	byClass [6]atomic.Uint64 // responses by status class: [1] 1xx ... [5] 5xx; [0] unused
	// buckets counts durations: buckets[i] those in (durationBounds[i-1],
	// durationBounds[i]], the last one those above every bound.
	buckets  [len(durationBuckets) + 1]atomic.Uint64
	durSumNs atomic.Uint64
	errors   [numFailReasons]atomic.Uint64

	state        atomic.Uint32 // index in shownStates of the state noteState saw last
	stateChanges atomic.Uint64
}

// observeResponse counts a response of the member with status code, to a
// request that took d from sending to the end of the response.
func (m *Member) observeResponse(code int, d time.Duration) {
	if code < 100 || code > 599 {
		return
	}
	m.stats.byClass[code/100].Add(1)
	ns := max(int64(d), 0)
	i := sort.Search(len(durationBounds), func(i int) bool { return durationBounds[i] >= ns })
	m.stats.buckets[i].Add(1)
	m.stats.durSumNs.Add(uint64(ns))
}

// countError counts a failed attempt on the member.
func (m *Member) countError(why failReason) {
	if why < numFailReasons {
		m.stats.errors[why].Add(1)
	}
}

func (s *memberStats) requests() uint64 {
	var n uint64
	for i := range s.byClass {
		n += s.byClass[i].Load()
	}
	return n
}

func (s *memberStats) errorCount() uint64 {
	var n uint64
	for i := range s.errors {
		n += s.errors[i].Load()
	}
	return n
}

func (s *memberStats) meanDuration() time.Duration {
	var n uint64
	for i := range s.buckets {
		n += s.buckets[i].Load()
	}
	if n == 0 {
		return 0
	}
	return time.Duration(s.durSumNs.Load() / n)
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

// Sticky returns where the balancer finds a request's session id, as
// configured now ("COOKIE|param", or "" when stickiness is off): the
// manager reports it so that shoal doctor can check it against the
// nodes' cookie.
func (b *Balancer) Sticky() string { return b.cur.Load().cfg.Sticky }
