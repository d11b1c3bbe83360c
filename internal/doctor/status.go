package doctor

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-go/shoal/session"
)

// The JSON a node serves for the doctor. `shoal node` fills these types
// (internal/cli), the doctor reads them: one definition for both sides.

// Endpoints of a node's HTTP listener.
const (
	// StatusPath answers GET with a NodeStatus.
	StatusPath = "/healthz/cluster"
	// ProbePath answers POST (write a probe session: a Probe), GET
	// ?session=ID (read it back: a Probe, 404 if it is not there) and
	// DELETE ?session=ID (remove it).
	ProbePath = "/healthz/probe"
)

// NodeStatus is one node's view of itself and of the cluster. It names
// no session data.
type NodeStatus struct {
	Node    string    `json:"node"`
	State   string    `json:"state"` // joining, ready, leaving (a lone node: ready)
	Time    time.Time `json:"time"`  // the node's clock when it answered
	Started time.Time `json:"started"`
	Version string    `json:"version"`
	Cookie  string    `json:"cookie"` // the session cookie's name
	Store   string    `json:"store"`  // "memory" (a lone node) or "cluster"
	// Cluster is nil for a lone node.
	Cluster  *ClusterStatus `json:"cluster,omitempty"`
	Sessions SessionCounts  `json:"sessions"`
	Counters Counters       `json:"counters"`
	// LastEncodeError is the last value Put refused (key, Go type and
	// field; never the value), and when.
	LastEncodeError   string     `json:"last_encode_error,omitempty"`
	LastEncodeErrorAt *time.Time `json:"last_encode_error_at,omitempty"`
}

// ClusterStatus is the cluster as one node sees it.
type ClusterStatus struct {
	Owners      string    `json:"owners"`      // "2", ..., or "all"
	Replication string    `json:"replication"` // sync or async
	Discover    string    `json:"discover,omitempty"`
	Gossip      string    `json:"gossip"`
	Repl        string    `json:"replication_addr"`
	Members     []Member  `json:"members"`
	Refusals    []Refusal `json:"refusals"`
	// Multicast is set when the node discovers members by multicast: what
	// this node's host offers for it.
	Multicast *Multicast `json:"multicast,omitempty"`
}

// Member is a live member in one node's view.
type Member struct {
	Name   string `json:"name"`
	Role   string `json:"role"`  // node or observer (a balancer)
	State  string `json:"state"` // joining, ready or leaving
	HTTP   string `json:"http,omitempty"`
	Repl   string `json:"replication,omitempty"`
	Gossip string `json:"gossip"`
}

// Refusal is a peer a node refused, or that refused it.
type Refusal struct {
	Via    string    `json:"via"` // gossip or replication
	Remote string    `json:"remote"`
	Reason string    `json:"reason"`
	Count  int64     `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// Multicast says whether multicast discovery can work on a node's host.
type Multicast struct {
	Group      string   `json:"group"`      // host:port of --discover multicast://
	Interfaces []string `json:"interfaces"` // up, with the MULTICAST flag, not loopback
	Route      bool     `json:"route"`      // the host has a route to the group
	Problem    string   `json:"problem,omitempty"`
}

// SessionCounts are the session copies a node holds.
type SessionCounts struct {
	Primary       int `json:"primary"`
	Backup        int `json:"backup"`
	MissingCopies int `json:"missing_copies"`
}

// Counters are a node's counters since it started.
type Counters struct {
	Created            int64 `json:"created"`
	Expired            int64 `json:"expired"`
	Invalidated        int64 `json:"invalidated"`
	Rebinds            int64 `json:"rebinds"`
	EncodeFailures     int64 `json:"encode_failures"`
	CommitFailures     int64 `json:"commit_failures"`
	Refused            int64 `json:"refused"`
	Conflicts          int64 `json:"conflicts"`
	Fetched            int64 `json:"fetched"`
	Unreachable        int64 `json:"unreachable"`
	Unreplicated       int64 `json:"unreplicated"`
	ReplEncodeFailures int64 `json:"replication_encode_failures"`
}

// Probe is the answer of ProbePath: a probe session written (POST) or read
// back (GET).
type Probe struct {
	Node      string    `json:"node"`
	Session   string    `json:"session"`
	WrittenAt time.Time `json:"written_at"` // the writer's clock
	WrittenBy string    `json:"written_by"`
}

// validate checks what the doctor relies on in a status a node sent.
func (s *NodeStatus) validate() error {
	if err := session.ValidateRoute(s.Node); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	if s.Time.IsZero() {
		return errors.New("no time")
	}
	if s.Cookie == "" {
		return errors.New("no cookie name")
	}
	switch s.Store {
	case "memory":
	case "cluster":
		if s.Cluster == nil {
			return errors.New(`store "cluster" without cluster status`)
		}
		if len(s.Cluster.Members) > maxMembers {
			return fmt.Errorf("%d members, over the %d the doctor reads", len(s.Cluster.Members), maxMembers)
		}
		for _, m := range s.Cluster.Members {
			if err := session.ValidateRoute(m.Name); err != nil {
				return fmt.Errorf("member name: %w", err)
			}
		}
	default:
		return fmt.Errorf("store %q: want memory or cluster", s.Store)
	}
	return nil
}

// maxMembers bounds the members and nodes the doctor handles.
const maxMembers = 256
