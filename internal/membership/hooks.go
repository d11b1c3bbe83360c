package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-go/shoal/session"
)

// hooks implements memberlist's delegates for a Membership. memberlist
// calls the event and alive hooks with its node lock held, and from
// several goroutines: they only take m.mu (never call memberlist) and
// queue events for dispatchEvents.
type hooks struct {
	m *Membership
}

var (
	_ memberlist.Delegate         = (*hooks)(nil)
	_ memberlist.EventDelegate    = (*hooks)(nil)
	_ memberlist.AliveDelegate    = (*hooks)(nil)
	_ memberlist.MergeDelegate    = (*hooks)(nil)
	_ memberlist.ConflictDelegate = (*hooks)(nil)
)

// NodeMeta returns our encoded member metadata (at most 512 bytes, checked
// by New).
func (h *hooks) NodeMeta(limit int) []byte {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.selfMeta) > limit {
		return nil
	}
	return append([]byte(nil), m.selfMeta...)
}

// We gossip no user data of our own: replication has its own transport.
func (h *hooks) NotifyMsg([]byte)                           {}
func (h *hooks) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (h *hooks) LocalState(join bool) []byte                { return nil }
func (h *hooks) MergeRemoteState(buf []byte, join bool)     {}

// NotifyAlive vets every alive message before memberlist uses it: a peer
// whose name is not a route or whose metadata does not decode is not a
// shoal member. It is ignored (memberlist does not add it) and logged once.
func (h *hooks) NotifyAlive(peer *memberlist.Node) error {
	m := h.m
	if peer.Name == m.cfg.Name {
		return nil // ourselves; conflicts on our name are NotifyMerge's and NotifyConflict's
	}
	if err := session.ValidateRoute(peer.Name); err != nil {
		m.warnPeerOnce("ignoring peer: its name is not a valid route", peer, err)
		return err
	}
	if _, err := decodeMeta(peer.Meta); err != nil {
		m.warnPeerOnce("ignoring peer: cannot decode its member metadata", peer, err)
		return err
	}
	return nil
}

// NotifyJoin is called when memberlist adds a member.
func (h *hooks) NotifyJoin(n *memberlist.Node) {
	m := h.m
	mem, departing, ok := h.member(n)
	if !ok {
		return
	}
	m.mu.Lock()
	if n.Name == m.cfg.Name {
		e := m.members[n.Name]
		e.Gossip = mem.Gossip
		m.members[n.Name] = e
		m.mu.Unlock()
		return
	}
	m.members[n.Name] = memberEntry{Member: mem, departing: departing}
	m.forgetGoneLocked(n.Name)
	m.enqueueLocked(Event{Kind: EventJoin, Member: mem})
	m.mu.Unlock()
	m.log.Info("member joined", memberAttrs(mem)...)
}

// NotifyUpdate is called when a member's metadata changes.
func (h *hooks) NotifyUpdate(n *memberlist.Node) {
	m := h.m
	if n.Name == m.cfg.Name {
		return // SetState and Leave changed it already
	}
	mem, departing, ok := h.member(n)
	if !ok {
		return
	}
	m.mu.Lock()
	prev, known := m.members[n.Name]
	// A member reported dead by ReportRefused whose metadata changes is
	// a new process under the old name (a dead one gossips nothing): it
	// joins again.
	m.forgetGoneLocked(n.Name)
	m.members[n.Name] = memberEntry{Member: mem, departing: departing}
	kind := EventUpdate
	switch {
	case !known:
		kind = EventJoin
	case prev.Member == mem:
		m.mu.Unlock()
		return // only the departing flag changed
	}
	m.enqueueLocked(Event{Kind: kind, Member: mem})
	m.mu.Unlock()
	switch {
	case kind == EventJoin:
		m.log.Info("member joined", memberAttrs(mem)...)
	case prev.State != mem.State:
		// A state change (joining → ready, ready → leaving) is a
		// membership change operators follow: one line each.
		m.log.Info("member updated", memberAttrs(mem)...)
	default:
		m.log.Debug("member updated", memberAttrs(mem)...)
	}
}

// NotifyLeave is called when memberlist declares a member dead or learns
// that it left. memberlist does not say which (Node.State is not set
// here, hashicorp/memberlist#266): a member that announced its departure
// in its metadata (Leave) left, any other failed.
func (h *hooks) NotifyLeave(n *memberlist.Node) {
	m := h.m
	if n.Name == m.cfg.Name {
		return
	}
	m.mu.Lock()
	prev, known := m.members[n.Name]
	if !known {
		confirmed := m.forgetGoneLocked(n.Name)
		m.mu.Unlock()
		if confirmed {
			m.log.Debug("memberlist confirms a member reported dead", slog.String("name", n.Name))
		}
		return // never accepted (bad metadata), or reported already (ReportRefused)
	}
	m.dropLocked(n.Name, prev)
}

// dropLocked removes the member name (prev, its entry) and queues its
// event: Leave if it announced its departure, Dead otherwise; then it
// unlocks m.mu and logs the event, with attrs added (how it was known).
func (m *Membership) dropLocked(name string, prev memberEntry, attrs ...any) {
	delete(m.members, name)
	kind := EventDead
	if prev.departing {
		kind = EventLeave
	}
	m.enqueueLocked(Event{Kind: kind, Member: prev.Member})
	m.mu.Unlock()
	attrs = append(memberAttrs(prev.Member), attrs...)
	if kind == EventLeave {
		m.log.Info("member left", attrs...)
	} else {
		// One message however the death was known: operators and
		// scripts look for one line; an attribute says how.
		m.log.Warn("member declared dead", attrs...)
	}
}

// member decodes n into a Member; a node whose metadata does not decode
// is logged and skipped (NotifyAlive normally keeps it out already).
func (h *hooks) member(n *memberlist.Node) (Member, bool, bool) {
	mm, err := decodeMeta(n.Meta)
	if err != nil {
		h.m.warnPeerOnce("ignoring peer: cannot decode its member metadata", n, err)
		return Member{}, false, false
	}
	return Member{
		Name: n.Name, Role: mm.Role, State: mm.State,
		HTTPAddr: mm.HTTPAddr, ReplAddr: mm.ReplAddr, Gossip: n.Address(),
	}, mm.Departing, true
}

// NotifyMerge is called before memberlist merges the state of a member
// that joins us or that we join. It refuses the merge when that state has
// a live member with a name that is live here at another address: two
// processes with one name (one route) would split the sessions of that
// route. The joining side's Join returns ErrDuplicateName; both sides log
// it.
func (h *hooks) NotifyMerge(peers []*memberlist.Node) error {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	self, ok := m.members[m.cfg.Name]
	if !ok || self.Gossip == "" {
		return errors.New("shoal membership is starting; retry")
	}
	for _, p := range peers {
		if p.State != memberlist.StateAlive && p.State != memberlist.StateSuspect {
			continue
		}
		known, ok := m.members[p.Name]
		if !ok || known.Gossip == "" || sameHostPort(known.Gossip, p.Address()) {
			continue
		}
		var err error
		if p.Name == m.cfg.Name {
			err = fmt.Errorf("%w %q: we use it at %s and a live member at %s has it too"+
				" (if that one was just killed, retry once it is declared dead)",
				ErrDuplicateName, p.Name, known.Gossip, p.Address())
		} else {
			err = fmt.Errorf("%w %q: a live member at %s has it and a member at %s claims it too",
				ErrDuplicateName, p.Name, known.Gossip, p.Address())
		}
		m.joinRefusal = err
		m.warnOnceLocked("dup|"+p.Name+"|"+p.Address(), slog.LevelWarn, "refused merge: duplicate node name",
			slog.String("name", p.Name), slog.String("known_at", known.Gossip), slog.String("other", p.Address()))
		return err
	}
	return nil
}

// NotifyConflict is called when gossip says a member we know as alive is
// at another address: a duplicate name that got past NotifyMerge (or a
// member restarted elsewhere before its old self was declared dead).
// memberlist ignores the newcomer; we warn once per name and address.
func (h *hooks) NotifyConflict(existing, other *memberlist.Node) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.warnOnceLocked("dup|"+other.Name+"|"+other.Address(), slog.LevelWarn, "ignoring member: duplicate node name",
		slog.String("name", other.Name), slog.String("known_at", existing.Address()), slog.String("other", other.Address()))
}

// warnPeerOnce logs msg about peer once per peer name, address and error.
func (m *Membership) warnPeerOnce(msg string, peer *memberlist.Node, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.warnOnceLocked("peer|"+peer.Name+"|"+peer.Address()+"|"+err.Error(), slog.LevelWarn, msg,
		slog.String("name", peer.Name), slog.String("gossip", peer.Address()), slog.Any("err", err))
}

// warnOnceLocked logs at level once per key (then at debug level); m.mu is
// held. The memory of keys is bounded by maxWarned.
func (m *Membership) warnOnceLocked(key string, level slog.Level, msg string, attrs ...slog.Attr) {
	if _, done := m.warnedPeers[key]; done || len(m.warnedPeers) >= maxWarned {
		level = slog.LevelDebug
	} else {
		m.warnedPeers[key] = struct{}{}
	}
	m.log.LogAttrs(context.Background(), level, msg, attrs...)
}

func memberAttrs(mem Member) []any {
	return []any{
		slog.String("name", mem.Name), slog.String("role", mem.Role.String()), slog.String("state", mem.State.String()),
		slog.String("http", mem.HTTPAddr), slog.String("repl", mem.ReplAddr), slog.String("gossip", mem.Gossip),
	}
}
