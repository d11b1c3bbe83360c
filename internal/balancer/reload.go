package balancer

import (
	"fmt"
	"log/slog"
	"slices"
)

// Reload makes the balancer run cfg from the next request on, without
// dropping a request in flight. cfg is checked first as New checks it;
// an error wraps ErrInvalidConfig and changes nothing.
//
// Members are matched by route. A member whose route stays keeps its
// *Member, and with it its counters, its error and health state and its
// connections; of its settings, those that cfg changes from the config
// it was last given are applied (URL, weight, standby, disabled,
// draining), so a reload of an unchanged file keeps what the manager
// changed at run time. A member whose URL changes gets new connections;
// requests in flight on the old ones finish there. New routes are added;
// dropped members take no new request, and their requests in flight
// finish. Every other setting (stickiness, method, hash key,
// failonstatus, max attempts, retry, body limits, timeouts, health
// checks) applies to requests that start after Reload returns; requests
// in flight finish with the settings they started with. Health checks
// restart when their settings or the members change. Logger is not
// changed. Reload is safe for concurrent use with requests and with
// itself.
func (b *Balancer) Reload(cfg Config) error {
	b.setMu.Lock()
	defer b.setMu.Unlock()
	if b.cluster != nil {
		cfg.FromCluster = true // members may come from the cluster alone
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	select {
	case <-b.done:
		return fmt.Errorf("balancer: reload after Close")
	default:
	}

	// Build everything first: nothing below can fail, so a reload is
	// applied whole or not at all.
	prev := b.cur.Load()
	old := make(map[string]*Member, len(b.static))
	for _, m := range b.static {
		old[m.route] = m
	}
	var (
		static           []*Member
		added, changed   []string
		retargeted       []*memberTarget // targets replaced: closed once the new ones are in place
		membersChanged   bool
		newTargets       = map[*Member]*memberTarget{}
		pendingDisabled  = map[*Member]bool{}
		pendingDraining  = map[*Member]bool{}
		pendingStandby   = map[*Member]bool{}
		pendingLBSets    = map[*Member]int{}
		pendingLBFactors = map[*Member]int64{}
	)
	for _, mc := range cfg.Members {
		u, _ := mc.check() // Check accepted it
		m := old[mc.Route]
		if m == nil {
			nm, err := NewMember(mc)
			if err != nil { // cannot happen: Check accepted it
				return fmt.Errorf("%w: member %s: %v", ErrInvalidConfig, mc.Route, err)
			}
			static = append(static, nm)
			added = append(added, mc.Route)
			membersChanged = true
			continue
		}
		delete(old, mc.Route)
		static = append(static, m)
		was := m.cfg
		if mc == was {
			continue
		}
		changed = append(changed, mc.Route)
		if mc.URL != was.URL {
			newTargets[m] = newMemberTarget(u)
		}
		if mc.lbfactor() != was.lbfactor() {
			pendingLBFactors[m] = mc.lbfactor()
		}
		if mc.Standby != was.Standby {
			pendingStandby[m] = mc.Standby
		}
		if mc.LBSet != was.LBSet {
			pendingLBSets[m] = mc.LBSet
		}
		if mc.Disabled != was.Disabled {
			pendingDisabled[m] = mc.Disabled
		}
		if mc.Draining != was.Draining {
			pendingDraining[m] = mc.Draining
		}
	}
	var removed []*Member
	for _, m := range b.static {
		if _, gone := old[m.route]; gone {
			removed = append(removed, m)
			membersChanged = true
		}
	}
	if !slices.Equal(memberRoutes(static), memberRoutes(b.static)) {
		membersChanged = true // the order breaks byrequests ties
	}
	s := b.newSettings(cfg, prev)

	// Apply.
	for _, m := range static {
		if t := newTargets[m]; t != nil {
			retargeted = append(retargeted, m.tgt.Swap(t))
		}
		if lf, ok := pendingLBFactors[m]; ok {
			m.lbfactor.Store(lf)
		}
		if v, ok := pendingLBSets[m]; ok {
			m.lbset.Store(int32(v))
		}
		if v, ok := pendingStandby[m]; ok {
			m.standby.Store(v)
		}
		if v, ok := pendingDisabled[m]; ok {
			m.SetDisabled(v)
		}
		if v, ok := pendingDraining[m]; ok {
			m.SetDraining(v)
		}
	}
	for i, mc := range cfg.Members {
		static[i].cfg = mc
	}
	healthChanged := prev.cfg.Health != cfg.Health || s.transport != prev.transport || membersChanged
	if healthChanged {
		b.stopHealthLocked()
	}
	b.static = static
	b.cur.Store(s)
	if b.cluster != nil {
		b.cluster.refreshLocked()
	} else {
		b.set.Store(newMemberSet(static))
	}
	for _, m := range removed {
		m.retire()
	}
	for _, t := range retargeted {
		t.pool.close() // requests in flight on it finish first
	}
	if s.transport != prev.transport {
		prev.transport.CloseIdleConnections()
	}
	if healthChanged {
		b.startHealth(s)
	}
	b.log.Info("balancer config reloaded", slog.Any("added", added), slog.Any("changed", changed),
		slog.Any("removed", memberRoutes(removed)), slog.String("method", methodName(cfg.Method)),
		slog.String("sticky", cfg.Sticky))
	return nil
}

// memberRoutes returns the routes of ms, in order.
func memberRoutes(ms []*Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.route
	}
	return out
}

// methodName returns the name of a Config.Method: "" is byrequests.
func methodName(m string) string {
	if m == "" {
		return "byrequests"
	}
	return m
}
