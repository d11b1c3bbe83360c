package membership

import "fmt"

// State is where a member is in its life in the cluster. Members announce
// it in their gossip metadata; SetState changes ours.
type State uint8

const (
	// StateJoining is a member that is up but not ready to serve: it may
	// still be receiving the sessions it will own. Every member starts here.
	StateJoining State = iota
	// StateReady is a member that serves requests and owns sessions.
	StateReady
	// StateLeaving is a member that is handing its sessions over before it
	// leaves; the balancer sends it no new sessions.
	StateLeaving
)

// String returns "joining", "ready" or "leaving".
func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateReady:
		return "ready"
	case StateLeaving:
		return "leaving"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

func (s State) valid() bool { return s <= StateLeaving }

// Role says what a member does in the cluster.
type Role uint8

const (
	// RoleNode is a member that serves the application and holds sessions.
	RoleNode Role = iota
	// RoleObserver is a member that only learns the membership and holds
	// nothing: the balancer.
	RoleObserver
)

// String returns "node" or "observer".
func (r Role) String() string {
	switch r {
	case RoleNode:
		return "node"
	case RoleObserver:
		return "observer"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

func (r Role) valid() bool { return r <= RoleObserver }

// Member is one member of the cluster as the others see it.
type Member struct {
	Name     string // the member's route, unique in the cluster
	Role     Role
	State    State
	HTTPAddr string // host:port of its HTTP server ("" for an observer that has none)
	ReplAddr string // host:port of its replication listener ("" for an observer)
	Gossip   string // host:port memberlist uses to reach it
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoin: a member became alive (first seen, or back after Leave or Dead).
	EventJoin EventKind = iota + 1
	// EventUpdate: a live member changed its State or addresses.
	EventUpdate
	// EventLeave: a member left cleanly (its Leave was called).
	EventLeave
	// EventDead: a member stopped answering and was declared failed.
	EventDead
)

// String returns "join", "update", "leave" or "dead".
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventDead:
		return "dead"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change in the membership. For EventLeave and EventDead,
// Member is the member as it was last known.
type Event struct {
	Kind   EventKind
	Member Member
}
