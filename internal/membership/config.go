package membership

import (
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-go/shoal/session"
)

// DefaultGossipPort is the gossip port (TCP and UDP) of DefaultLANConfig.
// memberlist's own default, 7946, is taken by Docker Swarm and Serf on
// many hosts.
const DefaultGossipPort = 7947

// gossipLabel is memberlist's Label on every packet and stream (and GCM
// authenticated data): a memberlist cluster of another program, even one
// without encryption, is told apart from a shoal cluster.
const gossipLabel = "shoal"

// Config configures a Membership. Start from DefaultLANConfig or
// DefaultLocalConfig and set the fields that have no default (Name,
// HTTPAddr, ReplAddr, Key). New checks it and copies it: later changes
// to the Config have no effect.
type Config struct {
	// Name is the member's route: 1-64 characters of [A-Za-z0-9_-],
	// unique among the live members. Required.
	Name string
	// Role is RoleNode (default) or RoleObserver.
	Role Role
	// HTTPAddr and ReplAddr are the host:port others use to reach this
	// member's HTTP server and replication listener. Required for
	// RoleNode, optional for RoleObserver.
	HTTPAddr, ReplAddr string

	// BindAddr is the IP address the gossip listener binds (TCP and UDP),
	// BindPort its port; port 0 picks a free one (Self().Gossip tells).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what others dial, when that is
	// not BindAddr (NAT, or BindAddr 0.0.0.0). If AdvertiseAddr is empty,
	// memberlist advertises BindAddr, or a private IP of this host when
	// BindAddr is 0.0.0.0. AdvertisePort 0 means the bound port.
	AdvertiseAddr string
	AdvertisePort int

	// Key is the cluster key, exactly KeySize (32) bytes: every gossip
	// packet and stream is encrypted and authenticated with it (AES-256-GCM).
	// A member with another key cannot join. Required unless Insecure.
	Key []byte
	// Insecure runs gossip without encryption. New refuses it unless
	// BindAddr (and AdvertiseAddr, if set) are loopback addresses: it is
	// for tests and single-machine demos only. Key must then be empty.
	Insecure bool

	// Logger receives the membership's records: members joining and
	// leaving (info), members declared dead, refused peers and duplicate
	// names (warn), and memberlist's own lines (debug). If nil, nothing is
	// logged.
	Logger *slog.Logger

	// OnEvent, if not nil, is called for every change of another member
	// (our own changes are not reported; Self tells them). Calls are made
	// one at a time, in order, from one goroutine, with no lock of the
	// Membership held, so OnEvent may call Members, Self, SetState and
	// Join. It must not block for long (events queue up behind it) and
	// must not call Close or Leave (they wait for it). After Close
	// returns it is not called.
	OnEvent func(Event)

	// The timing knobs below are copied into memberlist.Config; see its
	// documentation. With fewer than 10 members, memberlist declares a
	// member that stopped answering dead about
	//
	//	ProbeInterval (until one member probes it)
	//	+ ProbeInterval (direct, indirect and TCP probes fail)
	//	+ SuspicionMult·ProbeInterval (time to refute the suspicion; up to
	//	  SuspicionMaxTimeoutMult times that while other members have not
	//	  confirmed it, when there are enough of them to confirm)
	//
	// after it stopped: about 0.6 s with the presets' values.

	// ProbeInterval is the time between failure probes of one member by
	// another (round robin over the members).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for an ack before
	// asking IndirectChecks other members to probe too. Keep it at most
	// ProbeInterval/2 so that their answers arrive within the interval.
	ProbeTimeout time.Duration
	// IndirectChecks is how many members are asked to probe indirectly.
	IndirectChecks int
	// SuspicionMult times ProbeInterval (times log10 of the member count,
	// from 10 members up) is how long a suspected member has to refute
	// before it is declared dead.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion time while the
	// confirmations memberlist expects from other members have not come.
	SuspicionMaxTimeoutMult int
	// AwarenessMaxMultiplier bounds how far a member that finds itself
	// unhealthy (its probes go unanswered by everyone, Lifeguard) stretches
	// its probe timeouts: a factor of 1 to AwarenessMaxMultiplier.
	AwarenessMaxMultiplier int
	// GossipInterval is the time between gossip rounds, each to
	// GossipNodes random members; RetransmitMult·log10(N+1) is how many
	// times each message is sent.
	GossipInterval time.Duration
	GossipNodes    int
	RetransmitMult int
	// PushPullInterval is the time between full state syncs with a random
	// member (0 disables them).
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long a dead member is still gossiped to
	// (so it can refute) and remembered.
	GossipToTheDeadTime time.Duration
	// DeadNodeReclaimTime is how long a dead member's name stays bound to
	// its old address: after it, a member with that name may join from
	// another address (a killed node restarted elsewhere). 0 means only
	// once the dead member is forgotten (GossipToTheDeadTime).
	DeadNodeReclaimTime time.Duration
	// TCPTimeout bounds dialing and reading a gossip stream (Join, state
	// syncs, TCP fallback probes).
	TCPTimeout time.Duration

	// recheckDelay, if set, replaces recheckAfter's delay (tests).
	recheckDelay time.Duration
}

// DefaultLANConfig returns a new Config for members on one LAN: gossip on
// 0.0.0.0:DefaultGossipPort, and timing that declares a killed member dead
// in well under a second (BenchmarkDeadDetection measures it).
func DefaultLANConfig() *Config {
	return &Config{
		Role:     RoleNode,
		BindAddr: "0.0.0.0",
		BindPort: DefaultGossipPort,

		ProbeInterval:           100 * time.Millisecond,
		ProbeTimeout:            40 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 2,
		AwarenessMaxMultiplier:  3,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        10 * time.Second,
		GossipToTheDeadTime:     15 * time.Second,
		DeadNodeReclaimTime:     2 * time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// DefaultLocalConfig returns a new Config for members on one machine
// (tests, demos): gossip on 127.0.0.1 with a free port, and the timing of
// DefaultLANConfig with shorter TCP timeouts.
func DefaultLocalConfig() *Config {
	c := DefaultLANConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.TCPTimeout = time.Second
	c.PushPullInterval = 5 * time.Second
	c.GossipToTheDeadTime = 5 * time.Second
	return c
}

// validate checks c and returns an error wrapping ErrInvalidConfig that
// names the field.
func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if err := session.ValidateRoute(c.Name); err != nil {
		return bad("Name: %v", err)
	}
	if !c.Role.valid() {
		return bad("Role %d unknown", uint8(c.Role))
	}
	if err := (memberMeta{Role: c.Role, State: StateJoining, HTTPAddr: c.HTTPAddr, ReplAddr: c.ReplAddr}).validate(); err != nil {
		return bad("HTTPAddr/ReplAddr: %v", err)
	}
	bind := net.ParseIP(c.BindAddr)
	if bind == nil {
		return bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	var adv net.IP
	if c.AdvertiseAddr != "" {
		if adv = net.ParseIP(c.AdvertiseAddr); adv == nil {
			return bad("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
		}
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return bad("BindPort %d out of range 0-65535", c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("AdvertisePort %d out of range 0-65535", c.AdvertisePort)
	}
	if c.Insecure {
		if len(c.Key) != 0 {
			return bad("both Key and Insecure are set: choose one")
		}
		if !bind.IsLoopback() {
			return fmt.Errorf("%w: %w: BindAddr %s is not loopback; set Key (a %d-byte cluster key) to gossip on a network",
				ErrInvalidConfig, ErrInsecureNotLoopback, c.BindAddr, KeySize)
		}
		if adv != nil && !adv.IsLoopback() {
			return fmt.Errorf("%w: %w: AdvertiseAddr %s is not loopback; set Key (a %d-byte cluster key) to gossip on a network",
				ErrInvalidConfig, ErrInsecureNotLoopback, c.AdvertiseAddr, KeySize)
		}
	} else if len(c.Key) != KeySize {
		if len(c.Key) == 0 {
			return bad("Key is required: a %d-byte cluster key shared by all members (Insecure is for loopback tests only)", KeySize)
		}
		return bad("Key is %d bytes, want exactly %d", len(c.Key), KeySize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"GossipToTheDeadTime", c.GossipToTheDeadTime},
		{"TCPTimeout", c.TCPTimeout},
	} {
		if d.v <= 0 {
			return bad("%s %v must be positive", d.name, d.v)
		}
	}
	if c.PushPullInterval < 0 || c.DeadNodeReclaimTime < 0 {
		return bad("PushPullInterval and DeadNodeReclaimTime must not be negative")
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("ProbeTimeout %v must be shorter than ProbeInterval %v (at most half)", c.ProbeTimeout, c.ProbeInterval)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"SuspicionMult", c.SuspicionMult}, {"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult},
		{"AwarenessMaxMultiplier", c.AwarenessMaxMultiplier}, {"GossipNodes", c.GossipNodes},
		{"RetransmitMult", c.RetransmitMult},
	} {
		if n.v < 1 {
			return bad("%s %d must be at least 1", n.name, n.v)
		}
	}
	if c.IndirectChecks < 0 {
		return bad("IndirectChecks %d must not be negative", c.IndirectChecks)
	}
	return nil
}

// memberlistConfig returns the memberlist configuration for c, with h as
// every delegate and w as its log output.
func (c *Config) memberlistConfig(h *hooks, w *logBridge) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	mc.Label = gossipLabel
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort // memberlist replaces it with the picked port when BindPort is 0
	}
	if !c.Insecure {
		mc.SecretKey = append([]byte(nil), c.Key...)
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}

	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.IndirectChecks = c.IndirectChecks
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	mc.AwarenessMaxMultiplier = c.AwarenessMaxMultiplier
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.RetransmitMult = c.RetransmitMult
	mc.PushPullInterval = c.PushPullInterval
	mc.GossipToTheDeadTime = c.GossipToTheDeadTime
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	mc.TCPTimeout = c.TCPTimeout
	// No LZW: memberlist would compress every message, and each
	// compression allocates a 64 KiB table (each decompression ~20 KiB),
	// for UDP packets of at most 1,400 bytes (a ping, an ack, a few
	// members' states) and state syncs that a LAN carries in no time.
	// Messages from a peer that compresses are still read.
	mc.EnableCompression = false

	mc.Delegate = h
	mc.Events = h
	mc.Alive = h
	mc.Merge = h
	mc.Conflict = h
	mc.Logger = log.New(w, "", 0)
	return mc
}
