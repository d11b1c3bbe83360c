package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/latency"
)

// Stats are a Manager's counters since it started, for metrics and
// health checks (shoal node serves them as Prometheus metrics and in
// /healthz/cluster). The counters only grow; read them with Load. They
// name no session data.
type Stats struct {
	// Created counts the sessions this Manager created.
	Created atomic.Int64
	// Expired, Invalidated and Evicted count the sessions destroyed
	// through this Manager, by reason (SessionDestroyed's Reason).
	Expired, Invalidated, Evicted atomic.Int64
	// Rebinds counts sessions whose id named another node (gone, or no
	// node) and that this node took over: a new cookie with its route.
	Rebinds atomic.Int64
	// EncodeFailures counts values Put refused because they cannot be
	// encoded (a func, a channel, a cycle, ...).
	EncodeFailures atomic.Int64
	// CommitFailures counts requests whose session could not be loaded or
	// committed: their client got Config.ErrorFunc's response (500).
	CommitFailures atomic.Int64
	// Refused counts new sessions refused by Config.MaxSessions (503).
	Refused atomic.Int64

	commit latency.Histogram

	mu            sync.Mutex // protects the fields below
	lastEncodeErr string
	lastEncodeAt  time.Time
}

// Stats returns the Manager's counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// CommitLatency returns how long the store took to commit requests'
// changes (creating a session, or committing a request's delta), as a
// cumulative histogram: cumulative[i] commits took at most bounds[i],
// count took any time, sum in all.
func (s *Stats) CommitLatency() (bounds []time.Duration, cumulative []uint64, count uint64, sum time.Duration) {
	snap := s.commit.Snapshot()
	return latency.Bounds(), snap.Cumulative, snap.Count, snap.Sum
}

// LastEncodeError returns the message of the last value Put refused as
// unencodable (it names the key, the Go type and the field, never the
// value) and when; "" if none was.
func (s *Stats) LastEncodeError() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastEncodeErr, s.lastEncodeAt
}

func (s *Stats) encodeFailed(err *EncodeError) {
	s.EncodeFailures.Add(1)
	s.mu.Lock()
	s.lastEncodeErr, s.lastEncodeAt = err.Error(), time.Now()
	s.mu.Unlock()
}

func (s *Stats) destroyed(why Reason) {
	switch why {
	case ReasonExpired:
		s.Expired.Add(1)
	case ReasonInvalidated:
		s.Invalidated.Add(1)
	case ReasonEvicted:
		s.Evicted.Add(1)
	}
}
