package balancer

import (
	"errors"
	"math"
	"net"
	"sync"
	"testing"
	"time"
)

func TestSetWeight(t *testing.T) {
	ms := testMembers(t, "a b", 1, 1)
	for _, w := range []float64{0, 0.99, 100.01, -1, math.NaN(), math.Inf(1)} {
		if err := ms[0].SetWeight(w); err == nil {
			t.Errorf("SetWeight(%v) = nil, want an error", w)
		}
	}
	if ms[0].Weight() != 1 {
		t.Fatalf("a refused weight changed the weight to %v", ms[0].Weight())
	}
	if err := ms[0].SetWeight(2.555); err != nil || ms[0].Weight() != 2.56 || ms[0].Status().Weight != 2.56 {
		t.Errorf("SetWeight(2.555) = %v, weight %v; want nil and 2.56 (two decimals, as --member)", err, ms[0].Weight())
	}
	// The selectors follow at once: byrequests gives a 3:1 share.
	if err := ms[0].SetWeight(3); err != nil {
		t.Fatal(err)
	}
	if c := counts(&ByRequests{}, ms, 400); c["a"] != 300 || c["b"] != 100 {
		t.Errorf("byrequests after SetWeight(3) gave %v, want a 300 b 100", c)
	}
}

// TestSetWeightWhileSelecting is for the race detector: weights change
// while each selector picks (one selector per set of members, as a
// balancer has).
func TestSetWeightWhileSelecting(t *testing.T) {
	h, err := NewHash("header:X-User")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []Selector{&ByRequests{}, &ByBusyness{}, &P2C{}, h} {
		ms := testMembers(t, "a b c", 1, 2, 3)
		wg.Go(func() { picks(s, ms, 500) })
		wg.Go(func() {
			for i := range 500 {
				ms[i%3].SetWeight(float64(1 + i%100))
			}
		})
	}
	wg.Wait()
}

func TestMemberCounters(t *testing.T) {
	m := testMembers(t, "a")[0]
	st := m.Status()
	if st.Requests != 0 || st.Errors != 0 || st.Latency != 0 || st.MeanDuration != 0 || st.StateChanges != 0 {
		t.Fatalf("a new member has counts: %+v", st)
	}
	m.observeResponse(200, 2*time.Millisecond)
	m.observeResponse(503, 4*time.Millisecond)
	m.observeResponse(0, time.Hour) // no response: not counted
	m.observeResponse(700, time.Hour)
	if st := m.Status(); st.Requests != 2 || st.MeanDuration != 3*time.Millisecond {
		t.Errorf("after 2 responses: requests %d, mean %v; want 2, 3ms", st.Requests, st.MeanDuration)
	}
	if m.stats.byClass[2].Load() != 1 || m.stats.byClass[5].Load() != 1 {
		t.Errorf("by class: 2xx %d 5xx %d, want 1 1", m.stats.byClass[2].Load(), m.stats.byClass[5].Load())
	}

	now := time.Now().UnixNano()
	if !m.markError(now, time.Minute, "dial tcp: connection refused") {
		t.Error("first markError = false")
	}
	m.markFailed(now, time.Minute, "answered 503 (failonstatus)", failStatus)
	m.countError(failHealth)
	st = m.Status()
	if st.Errors != 3 || m.stats.errors[failRequest].Load() != 1 || m.stats.errors[failStatus].Load() != 1 {
		t.Errorf("errors %d (request %d, status %d), want 3 (1, 1)", st.Errors,
			m.stats.errors[failRequest].Load(), m.stats.errors[failStatus].Load())
	}
	if st.State != StateError || st.StateChanges != 1 {
		t.Errorf("after errors: %s, %d changes; want error, 1 (one change for two errors)", st.State, st.StateChanges)
	}
}

func TestFailReasonOf(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tt := range []struct {
		err  error
		want failReason
	}{{dial, failConnect}, {timeoutErr{}, failTimeout}, {read, failTransport}, {errors.New("EOF"), failTransport}} {
		if got := failReasonOf(tt.err); got != tt.want {
			t.Errorf("failReasonOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if failReason(99).String() != "failReason(99)" {
		t.Errorf("failReason(99).String() = %q", failReason(99).String())
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return false }

func TestStateChanges(t *testing.T) {
	ms := testMembers(t, "a")
	m := ms[0]
	now := time.Now().UnixNano()
	steps := []struct {
		name  string
		do    func()
		state State
		n     uint64
	}{
		{"disable", func() { m.SetDisabled(true) }, StateDisabled, 1},
		{"disable again", func() { m.SetDisabled(true) }, StateDisabled, 1},
		{"drain while disabled", func() { m.SetDraining(true) }, StateDisabled, 1},
		{"enable", func() { m.SetDisabled(false) }, StateDraining, 2},
		{"end drain", func() { m.SetDraining(false) }, StateOK, 3},
		{"health checks fail (seen at the next note)", func() { m.down.Store(true); m.noteState(now) }, StateError, 4},
		{"health checks pass", func() { m.down.Store(false); m.noteState(now) }, StateOK, 5},
		{"request error", func() { m.markError(now, time.Minute, "x") }, StateError, 6},
		{"retry time over, then success", func() { m.clearError(now + int64(time.Minute)) }, StateOK, 7},
	}
	for _, s := range steps {
		s.do()
		if st := m.Status(); st.State != s.state || st.StateChanges != s.n {
			t.Errorf("%s: %s with %d changes, want %s with %d", s.name, st.State, st.StateChanges, s.state, s.n)
		}
	}
}

func TestShownState(t *testing.T) {
	ms := testMembers(t, "a")
	m, err := NewMember(MemberConfig{Route: "spare", URL: "http://127.0.0.1:1", Standby: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Status().Shown(); got != StateStandby {
		t.Errorf("standby shows %s, want standby", got)
	}
	m.SetDraining(true)
	if got := m.Status().Shown(); got != StateDraining {
		t.Errorf("draining standby shows %s, want draining", got)
	}
	if got := ms[0].Status().Shown(); got != StateOK {
		t.Errorf("ok member shows %s", got)
	}
}
