// Package cluster is the replicated session.Store: sessions live on
// several nodes, so a user's session survives whichever node serves the
// next request, and survives a node being killed.
//
//	cfg := cluster.DefaultLANConfig()
//	cfg.Name, cfg.HTTPAddr, cfg.Key = "n1", "10.0.0.5:8080", key
//	cfg.Join = []string{"10.0.0.6:7946"}
//	st, err := cluster.New(cfg)
//	...
//	m, err := session.New(session.Config{Store: st, Route: "n1"})
//
// # What it promises
//
//   - Membership is gossip (hashicorp/memberlist): a silent node is
//     declared dead in well under a second on a LAN, and a killed one
//     within milliseconds, when its host refuses the redial of a
//     replication connection.
//   - Each session has Owners copies (default 2; AllOwners puts every
//     session on every node), placed by rendezvous hashing over the ready
//     nodes; a new session's key is drawn so that the node creating it is
//     its primary, so its route names a node that holds it.
//   - In the default (sync) mode a commit returns, and so the response is
//     written, only after every live owner applied it: no acknowledged
//     write is lost when one node dies. Async mode returns at once and may
//     lose the last changes of a node that dies.
//   - Traffic between nodes (gossip and replication) is encrypted and
//     authenticated with the cluster key; a node without it is refused
//     and logged once with its address and "cluster key mismatch".
//
// docs/design.md ("The cluster store") describes the protocol.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/session"
)

// AllOwners, as Config.Owners, puts every session on every node (Tomcat
// DeltaManager's all-to-all mode, for clusters of 2 to 4 nodes).
const AllOwners = -1

// Config configures a cluster Store. Start from DefaultLANConfig or
// DefaultLocalConfig and set Name, HTTPAddr and Key (or Insecure).
type Config struct {
	// Name is this node's name: its route in session ids, unique in the
	// cluster. Required.
	Name string
	// HTTPAddr is the host:port of this node's HTTP server, as others
	// (the balancer, shoal doctor) reach it. Required.
	HTTPAddr string
	// GossipAddr is where membership gossip listens (TCP and UDP). Port 0
	// picks a free one.
	GossipAddr string
	// ReplAddr is where replication listens. Default: GossipAddr's host,
	// any free port.
	ReplAddr string
	// Join lists gossip addresses of members to join; empty starts a new
	// cluster.
	Join []string
	// Discover finds members by DNS: "dns://NAME[:PORT]", every A/AAAA
	// record of NAME being a member's gossip address (PORT defaults to
	// membership's gossip port), resolved at start and every
	// DiscoverInterval, so nodes started later are found. Or by UDP
	// multicast beacons on a LAN: "multicast://GROUP[:PORT][?iface=NAME]"
	// (Tomcat's default is multicast://228.0.0.4:45564), authenticated by
	// Key; New fails, saying why, when this host cannot do multicast.
	Discover string
	// DiscoverInterval is how often a DNS Discover is resolved. Default
	// 10 s. Multicast beacons go once a second.
	DiscoverInterval time.Duration
	// Key is the cluster key (32 bytes; shoal node --gen-key prints one).
	Key []byte
	// Insecure runs without encryption; refused unless every address is
	// loopback.
	Insecure bool
	// Owners is how many nodes hold each session. Default 2; AllOwners
	// for every node.
	Owners int
	// Async returns from a commit before the backups applied it.
	Async bool
	// DeadAfter is about how long a node that stopped answering takes to
	// be declared dead. Default (0): about 0.6 s, for a LAN. Raise it where
	// a live node can stall longer (an overloaded VM): a live node declared
	// dead costs a membership change and a rebalance.
	DeadAfter time.Duration
	// ClusterName separates clusters that share a key by mistake. Default
	// "shoal".
	ClusterName string
	// Logger receives the cluster's log lines. Default: discard.
	Logger *slog.Logger

	local bool // DefaultLocalConfig's membership timing
	// tune, if set, adjusts the membership config (tests slow failure
	// detection down so that a CPU-starved -race run is not a death).
	tune func(*membership.Config)
	// resolver, if set, replaces DNS for Discover (tests).
	resolver discovery.Resolver
}

// DefaultLANConfig returns a new Config for nodes on one LAN.
func DefaultLANConfig() *Config {
	return &Config{GossipAddr: net.JoinHostPort("0.0.0.0", strconv.Itoa(membership.DefaultGossipPort)), Owners: 2, ClusterName: "shoal"}
}

// DefaultLocalConfig returns a new Config for nodes on one machine (tests
// and demos): loopback addresses, free ports.
func DefaultLocalConfig() *Config {
	return &Config{GossipAddr: "127.0.0.1:0", Owners: 2, ClusterName: "shoal", local: true}
}

// Store is the replicated session.Store of one node. Close it to leave
// the cluster, handing this node's sessions over first.
type Store struct {
	cfg  Config
	log  *slog.Logger
	node *replication.Node
	tr   *replication.TCPTransport
	mem  *membership.Membership
	// admitMem is mem, published for isMember: the transport serves
	// peers (their Pulls) before New has made mem.
	admitMem atomic.Pointer[membership.Membership]

	addrsMu sync.RWMutex      // protects addrs
	addrs   map[string]string // member name → replication address

	ready     atomic.Bool
	events    memberEvents // membership changes seen, by kind
	closeOnce sync.Once
	closeErr  error
	stopLoops context.CancelFunc // ends the discovery loop
	loops     sync.WaitGroup
}

var (
	_ session.Store        = (*Store)(nil)
	_ session.RouteChecker = (*Store)(nil)
	_ session.KeyGenerator = (*Store)(nil)
)

// New starts this node's replication and membership, joins cfg.Join and
// reports ready. It returns an error that names what is wrong: a bad
// setting, an address in use, a cluster that refused it (wrong key,
// duplicate name).
func New(cfg *Config) (*Store, error) {
	c := *cfg
	if err := session.ValidateRoute(c.Name); err != nil {
		return nil, fmt.Errorf("cluster: Name: %w", err)
	}
	if c.HTTPAddr == "" {
		return nil, errors.New("cluster: HTTPAddr is required")
	}
	if c.ClusterName == "" {
		c.ClusterName = "shoal"
	}
	switch {
	case c.Owners == 0:
		c.Owners = 2
	case c.Owners < AllOwners:
		return nil, fmt.Errorf("cluster: Owners %d: want 1 or more, or AllOwners", c.Owners)
	}
	if c.Insecure && len(c.Key) > 0 {
		return nil, errors.New("cluster: Key and Insecure both set")
	}
	if !c.Insecure && len(c.Key) != replication.KeySize {
		return nil, fmt.Errorf("cluster: Key is %d bytes, want %d (or Insecure on loopback)", len(c.Key), replication.KeySize)
	}
	gossipHost, gossipPort, err := splitHostPort(c.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: GossipAddr: %w", err)
	}
	if c.ReplAddr == "" {
		c.ReplAddr = net.JoinHostPort(gossipHost, "0")
	}
	if c.Insecure {
		for _, a := range []string{c.GossipAddr, c.ReplAddr} {
			if !isLoopback(a) {
				return nil, fmt.Errorf("cluster: Insecure is refused on %s: unencrypted cluster traffic only on loopback", a)
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var finder discovery.Finder
	if c.Discover != "" {
		if finder, err = discovery.Parse(c.Discover, membership.DefaultGossipPort); err != nil {
			return nil, fmt.Errorf("cluster: Discover: %w", err)
		}
		if dns, ok := finder.(*discovery.DNS); ok {
			dns.Resolver = c.resolver
		}
		if c.DiscoverInterval <= 0 {
			c.DiscoverInterval = 10 * time.Second
		}
	}
	s := &Store{cfg: c, log: c.Logger, addrs: map[string]string{}, stopLoops: func() {}}
	nodeOwners := c.Owners
	if nodeOwners == AllOwners {
		nodeOwners = 0
	}
	s.node = replication.NewNode(replication.Config{Self: c.Name, Owners: nodeOwners, Async: c.Async, Logger: c.Logger,
		Admit: s.isMember})
	// One key, two uses: membership and replication each derive their own
	// key from it (HKDF, with distinct labels).
	var gossipKey []byte
	if !c.Insecure {
		if gossipKey, err = membership.GossipKey(c.Key); err != nil {
			return nil, err
		}
	}
	s.tr, err = replication.ListenTCP(replication.TCPConfig{
		Self: c.Name, Cluster: c.ClusterName, Listen: c.ReplAddr, Key: c.Key, Insecure: c.Insecure,
		Resolve: s.resolve, Handler: s.node, Logger: c.Logger, OnRefused: s.peerRefused,
	})
	if err != nil {
		s.node.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s.node.Attach(s.tr)

	mc := membership.DefaultLANConfig()
	if c.local {
		mc = membership.DefaultLocalConfig()
	}
	mc.Name, mc.Role, mc.HTTPAddr, mc.ReplAddr = c.Name, membership.RoleNode, c.HTTPAddr, s.tr.Addr()
	mc.BindAddr, mc.BindPort = gossipHost, gossipPort
	mc.Key, mc.Insecure, mc.Logger = gossipKey, c.Insecure, c.Logger
	mc.OnEvent = s.onEvent
	mc.SetDeadAfter(c.DeadAfter)
	if c.tune != nil {
		c.tune(mc)
	}
	s.mem, err = membership.New(mc)
	if err != nil {
		s.tr.Close()
		s.node.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s.admitMem.Store(s.mem)
	if len(c.Join) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.mem.Join(ctx, c.Join)
		// A node restarted at once after a kill finds its old self still
		// alive in the others' view until it is declared dead (under a
		// second) and its name released: wait for that, bounded.
		for errors.Is(err, membership.ErrDuplicateName) && ctx.Err() == nil {
			s.log.Info("cluster: our name is still held by our previous run; retrying", slog.Any("err", err))
			time.Sleep(500 * time.Millisecond)
			_, err = s.mem.Join(ctx, c.Join)
		}
		cancel()
		if err != nil {
			s.shutdown()
			return nil, fmt.Errorf("cluster: join %s: %w", strings.Join(c.Join, ","), err)
		}
	}
	if finder != nil {
		var lctx context.Context
		lctx, s.stopLoops = context.WithCancel(context.Background())
		self := discovery.Self{Cluster: c.ClusterName, Gossip: s.mem.Self().Gossip, Key: c.Key, Log: c.Logger}
		if c.Insecure {
			self.Key = nil
		}
		if err := finder.Start(lctx, self); err != nil {
			if m, ok := finder.(*discovery.Multicast); ok {
				err = fmt.Errorf("%w (%s)", err, m.Problem())
			}
			s.shutdown()
			return nil, fmt.Errorf("cluster: discovery: %w", err)
		}
		// One round now, so that the node pulls its sessions from the
		// cluster it finds; then one every DiscoverInterval (every beacon
		// period for multicast).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if addrs, err := finder.Addrs(ctx); err != nil {
			s.log.Warn("cluster: discovery", slog.Any("err", err))
		} else if _, err := s.mem.Join(ctx, addrs); err != nil && !errors.Is(err, membership.ErrDuplicateName) {
			s.log.Info("cluster: discovery found no member to join yet", slog.String("discover", c.Discover), slog.Any("err", err))
		}
		cancel()
		s.loops.Go(func() {
			discovery.Loop(lctx, finder, c.DiscoverInterval, s.mem.GossipAddrs, func(ctx context.Context, addrs []string) error {
				_, err := s.mem.Join(ctx, addrs)
				return err
			}, func(err error) { s.log.Debug("cluster: discovery", slog.Any("err", err)) })
		})
	}
	s.refresh() // addresses of the members joined
	var peers []string
	for _, m := range s.mem.Members() {
		if m.Role == membership.RoleNode && m.State == membership.StateReady && m.Name != c.Name {
			peers = append(peers, m.Name)
		}
	}
	if len(peers) > 0 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		got, err := s.node.Pull(ctx, peers)
		// A node restarted soon after it was killed may have joined the
		// gossip while the others still bind its name to its previous run:
		// they refuse it until they accept the new address. Serving before
		// then would split the cluster, so wait (bounded), joining again.
		for errors.Is(err, replication.ErrNotAdmitted) && ctx.Err() == nil {
			s.log.Info("cluster: waiting for the members to accept this node", slog.Any("err", err))
			time.Sleep(500 * time.Millisecond)
			if len(c.Join) > 0 {
				s.mem.Join(ctx, c.Join)
			}
			var more int
			more, err = s.node.Pull(ctx, peers)
			got += more
		}
		cancel()
		if errors.Is(err, replication.ErrNotAdmitted) {
			s.shutdown()
			return nil, fmt.Errorf("cluster: the members did not accept this node within 2 minutes: %w", err)
		}
		if err != nil {
			// Not fatal: what did not arrive is fetched from its owners on
			// first use, and rebalancing sends it.
			s.log.Warn("cluster: receiving sessions failed", slog.Any("err", err))
		}
		s.log.Info("cluster: received the sessions this node owns", slog.Int("sessions", got),
			slog.Duration("took", time.Since(start)), slog.String("from", strings.Join(peers, ",")))
	}
	if err := s.mem.SetState(membership.StateReady); err != nil {
		s.shutdown()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s.ready.Store(true)
	s.refresh()
	var names []string
	for _, m := range s.mem.Members() {
		names = append(names, m.Name)
	}
	mode := "sync"
	if c.Async {
		mode = "async"
	}
	owners := fmt.Sprint(c.Owners)
	if c.Owners == AllOwners {
		owners = "all"
	}
	s.log.Info(fmt.Sprintf("cluster: joined %d members [%s], owners=%s, replication=%s", len(names), strings.Join(names, " "), owners, mode),
		slog.String("gossip", s.mem.Self().Gossip), slog.String("replication", s.tr.Addr()))
	return s, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, p, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// onEvent follows membership: it updates the replication addresses and
// the ready set the placement uses.
func (s *Store) onEvent(ev membership.Event) {
	if ev.Kind >= membership.EventJoin && ev.Kind <= membership.EventDead {
		s.events[ev.Kind].Add(1)
	}
	// membership logs each change once ("member joined", "member updated",
	// "member left", "member declared dead"): not again here.
	s.refresh()
}

// peerRefused passes the transport's evidence that a peer's process is
// gone (its replication port refuses connections) to membership, which
// reports it dead at once instead of after its failure detection time.
func (s *Store) peerRefused(peer, addr string) {
	if s.mem != nil {
		s.mem.ReportRefused(peer, addr)
	}
}

// refresh recomputes the addresses and the ready set from membership.
func (s *Store) refresh() {
	members := s.mem.Members()
	addrs := make(map[string]string, len(members))
	var ready []string
	for _, m := range members {
		if m.Role != membership.RoleNode {
			continue
		}
		addrs[m.Name] = m.ReplAddr
		if m.State == membership.StateReady {
			ready = append(ready, m.Name)
		}
	}
	s.addrsMu.Lock()
	s.addrs = addrs
	s.addrsMu.Unlock()
	if !s.ready.Load() {
		ready = slices.DeleteFunc(ready, func(n string) bool { return n == s.cfg.Name })
	}
	s.node.SetMembers(ready)
}

// isMember reports whether name is a live member in this node's view.
func (s *Store) isMember(name string) bool {
	mem := s.admitMem.Load()
	if mem == nil {
		return false // not started yet: no member in view (the peer asks again)
	}
	for _, m := range mem.Members() {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (s *Store) resolve(name string) (string, bool) {
	s.addrsMu.RLock()
	defer s.addrsMu.RUnlock()
	a, ok := s.addrs[name]
	return a, ok && a != ""
}

// GossipAddr returns the address this node gossips on, for others' Join.
func (s *Store) GossipAddr() string { return s.mem.Self().Gossip }

// Ready reports whether this node serves sessions (for /healthz/ready).
func (s *Store) Ready() bool { return s.ready.Load() }

// Members returns the names of the ready nodes, sorted.
func (s *Store) Members() []string { return s.node.Ring().Members() }

// Stats returns the replication engine's counters.
func (s *Store) Stats() *replication.Stats { return &s.node.Stats }

// Close leaves the cluster: the node stops being an owner, hands its
// sessions to the nodes that own them now, leaves the membership, and
// stops. No session expires because a node stopped. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		if err := s.mem.SetState(membership.StateLeaving); err != nil {
			s.log.Warn("cluster: leaving", slog.Any("err", err))
		}
		s.refresh() // the ring without this node
		if err := s.node.Handover(context.Background()); err != nil {
			s.log.Warn("cluster: handing sessions over failed", slog.Any("err", err))
		}
		if err := s.mem.Leave(2 * time.Second); err != nil {
			s.log.Warn("cluster: leave", slog.Any("err", err))
		}
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

func (s *Store) shutdown() error {
	s.stopLoops()
	s.loops.Wait()
	return errors.Join(s.mem.Close(), s.tr.Close(), s.node.Close())
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	return s.node.Load(ctx, key)
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, rec session.Record) error { return s.node.Create(ctx, rec) }

// Commit implements session.Store.
func (s *Store) Commit(ctx context.Context, key string, d session.Delta) (uint64, error) {
	return s.node.Commit(ctx, key, d)
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error { return s.node.Delete(ctx, key) }

// Expire implements session.Store: this node expires the sessions it is
// primary of and tells their other owners.
func (s *Store) Expire(ctx context.Context, now time.Time, limit int) ([]session.Record, error) {
	return s.node.Expire(ctx, now, limit)
}

// WatchCopiesDestroyed implements session.CopyWatcher: fn learns of the
// copies this node drops because their primary expired or deleted them
// (session.Config.DestroyedOnEveryCopy uses it).
func (s *Store) WatchCopiesDestroyed(fn func(rec session.Record, why session.Reason)) {
	s.node.WatchCopiesDestroyed(fn)
}

// Len implements session.Store: the session copies this node holds.
func (s *Store) Len(ctx context.Context) (int, error) { return s.node.Len(ctx) }

// NewKey implements session.KeyGenerator.
func (s *Store) NewKey() string { return s.node.NewKey() }

// RouteAlive implements session.RouteChecker: the route's node is ready.
func (s *Store) RouteAlive(route string) bool { return s.node.RouteAlive(route) }
