package membership

import (
	"log/slog"
	"time"
)

// A process that is killed, or crashes, closes its sockets: the kernel of
// its host answers a connection to its ports with a reset. memberlist
// cannot use that (a refused TCP fallback probe is just a failed probe),
// so it declares such a member dead only after its probe and suspicion
// times: about 0.6 s idle with the presets, and more on a host short of
// CPU, where the same timers that would make it faster also declare live
// but starved members dead. ReportRefused lets the user of a Membership
// (replication, which holds a connection to each peer it sends to) pass
// that evidence on: the member is reported dead at once, and memberlist's
// own declaration follows later as a no-op.
//
// It is evidence, not a failure detector of our own: a refused connection
// is the peer's host saying that nothing listens at that address. A
// member that is merely slow, partitioned or stopped (SIGSTOP) is not
// refused and is left to memberlist. Should a member reported this way
// still be alive in memberlist's view long after memberlist would have
// declared it dead (a port closed by a live process: a bug), it is taken
// back (see recheckGone).

// goneEntry is a member reported dead by ReportRefused whose death
// memberlist has not yet declared.
type goneEntry struct {
	member Member
	at     time.Time
}

// ReportRefused tells the membership that a connection to name's
// replication address replAddr was refused: the process that had it is
// gone. If name is a live member at that address, it is removed at once
// and reported as EventDead (EventLeave if it had announced its Leave),
// as if memberlist had declared it. Evidence about an address the member
// no longer has (a restarted member), about ourselves or about an
// unknown member is ignored. It reports whether the member was removed.
func (m *Membership) ReportRefused(name, replAddr string) bool {
	if name == m.cfg.Name || m.closed.Load() {
		return false
	}
	m.mu.Lock()
	prev, known := m.members[name]
	if !known || prev.ReplAddr != replAddr {
		m.mu.Unlock()
		return false
	}
	if m.gone == nil {
		m.gone = map[string]goneEntry{}
	}
	m.gone[name] = goneEntry{member: prev.Member, at: time.Now()}
	m.dropLocked(name, prev, slog.String("evidence", "replication connection refused"))
	m.scheduleRecheck()
	return true
}

// forgetGoneLocked drops name's gone entry: memberlist declared it dead or
// saw it alive again (a new process). It reports whether there was one.
// m.mu is held.
func (m *Membership) forgetGoneLocked(name string) bool {
	if _, ok := m.gone[name]; !ok {
		return false
	}
	delete(m.gone, name)
	return true
}

// recheckAfter is how long memberlist is given to confirm a death
// reported by ReportRefused before recheckGone doubts it: well past its
// slowest declaration (suspicion stretched to its maximum, a member
// short of CPU stretching its probes by AwarenessMaxMultiplier).
func (c *Config) recheckAfter() time.Duration {
	if c.recheckDelay > 0 {
		return c.recheckDelay
	}
	worst := c.ProbeInterval * time.Duration(2+c.SuspicionMult*max(c.SuspicionMaxTimeoutMult, 1)) * time.Duration(max(c.AwarenessMaxMultiplier, 1))
	return max(4*worst, 10*time.Second)
}

// scheduleRecheck arranges one recheckGone after recheckAfter.
func (m *Membership) scheduleRecheck() {
	m.wgMu.Lock()
	defer m.wgMu.Unlock()
	if m.closed.Load() {
		return
	}
	m.wg.Go(func() {
		t := time.NewTimer(m.cfg.recheckAfter())
		defer t.Stop()
		select {
		case <-m.stop:
		case <-t.C:
			m.recheckGone()
		}
	})
}

// recheckGone takes back the members reported dead by ReportRefused
// that memberlist, after recheckAfter, still counts as alive: the
// evidence was wrong (a live process that closed its replication port),
// and a member memberlist keeps seeing must not stay out of our view
// for good. It is logged, since it points at a bug.
func (m *Membership) recheckGone() {
	alive := map[string]bool{}
	for _, n := range m.ml.Members() {
		alive[n.Name] = true
	}
	due := time.Now().Add(-m.cfg.recheckAfter())
	var back []Member
	m.mu.Lock()
	for name, g := range m.gone {
		if g.at.After(due) {
			continue
		}
		delete(m.gone, name)
		if _, live := m.members[name]; live || !alive[name] {
			continue
		}
		m.members[name] = memberEntry{Member: g.member}
		m.enqueueLocked(Event{Kind: EventJoin, Member: g.member})
		back = append(back, g.member)
	}
	m.mu.Unlock()
	for _, mem := range back {
		m.log.Warn("member taken back: its replication connection was refused, but it still answers gossip",
			memberAttrs(mem)...)
	}
}
