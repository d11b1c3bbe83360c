package cluster

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/internal/replication"
)

// Status is one node's view of the cluster, for health checks, metrics
// and shoal doctor. It names no session data: counts, member names and
// addresses, and the peers this node refused.
type Status struct {
	Name     string // this node
	State    string // joining, ready or leaving, as this node gossips it
	Owners   int    // copies per session; AllOwners for every node
	Async    bool   // replication mode
	Discover string // Config.Discover
	Gossip   string // the address this node gossips on
	Repl     string // the address it replicates on

	// Members are the live members in this node's view, itself and
	// observers (balancers) included, sorted by name.
	Members []Member
	// Refusals are the peers refused since start, by gossip and by
	// replication, oldest first.
	Refusals []Refusal

	// Primary and Backup count the session copies this node holds, by
	// its role for them; MissingCopies the sessions it is primary of
	// that have fewer copies than Owners (see replication's
	// Node.MissingCopies).
	Primary, Backup, MissingCopies int
}

// Member is a live member as one node sees it.
type Member struct {
	Name     string
	Role     string // node or observer
	State    string // joining, ready or leaving
	HTTPAddr string
	ReplAddr string
	Gossip   string
}

// Refusal is a peer refused (or refusing us), by remote host and reason.
type Refusal struct {
	Via         string // "gossip" or "replication"
	Remote      string
	Reason      string // "cluster key mismatch", ...
	Count       int64
	First, Last time.Time
}

// memberEvents counts membership changes by kind (index: EventKind).
type memberEvents [membership.EventDead + 1]atomic.Int64

// Status returns this node's view of the cluster. It walks the node's
// session copies once.
func (s *Store) Status() Status {
	self := s.mem.Self()
	st := Status{Name: s.cfg.Name, State: self.State.String(), Owners: s.cfg.Owners, Async: s.cfg.Async,
		Discover: s.cfg.Discover, Gossip: self.Gossip, Repl: s.tr.Addr()}
	for _, m := range s.mem.Members() {
		st.Members = append(st.Members, Member{Name: m.Name, Role: m.Role.String(), State: m.State.String(),
			HTTPAddr: m.HTTPAddr, ReplAddr: m.ReplAddr, Gossip: m.Gossip})
	}
	for _, r := range s.mem.Refusals() {
		st.Refusals = append(st.Refusals, Refusal{Via: "gossip", Remote: r.Remote, Reason: r.Reason, Count: r.Count, First: r.First, Last: r.Last})
	}
	for _, r := range s.tr.Refusals() {
		st.Refusals = append(st.Refusals, Refusal{Via: "replication", Remote: r.Remote, Reason: r.Reason, Count: r.Count, First: r.First, Last: r.Last})
	}
	slices.SortFunc(st.Refusals, func(a, b Refusal) int { return a.First.Compare(b.First) })
	held := s.node.Copies().Len()
	st.Primary = s.node.PrimaryCount()
	st.Backup = max(held-st.Primary, 0)
	st.MissingCopies = s.node.MissingCopies()
	return st
}

// Traffic returns what this node exchanged with each peer over
// replication since it started.
func (s *Store) Traffic() []replication.PeerTraffic { return s.tr.Traffic() }

// EncodeFailures counts replication messages that could not be encoded
// (and so were not sent) since start.
func (s *Store) EncodeFailures() int64 { return s.tr.EncodeFailures() }

// MemberEvents returns how many membership changes this node saw since
// it started, by kind: "join", "update", "leave", "dead".
func (s *Store) MemberEvents() map[string]int64 {
	out := make(map[string]int64, 4)
	for k := membership.EventJoin; k <= membership.EventDead; k++ {
		out[strings.ToLower(k.String())] = s.events[k].Load()
	}
	return out
}
