package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/internal/placement"
)

// ClusterConfig makes the balancer a member of a shoal cluster, as an
// observer: it holds no session, and learns from membership which nodes
// exist, their routes, their HTTP addresses and their state, as fast as
// the nodes learn it themselves (a killed node is out in well under a
// second, before an HTTP health check would notice).
type ClusterConfig struct {
	// Name is the balancer's member name, unique in the cluster.
	Name string
	// GossipAddr is where the balancer's gossip listens (port 0: any).
	GossipAddr string
	// Join and Discover find the cluster, as for nodes.
	Join     []string
	Discover string
	// Key is the cluster key (32 bytes); Insecure runs without one on
	// loopback only.
	Key      []byte
	Insecure bool
	// Owners is the cluster's number of owners per session (nodes' --owners;
	// 0 means every node). It must match the nodes' so that the balancer
	// finds a session's copies where they are.
	Owners int
	// DeadAfter is the nodes' --dead-after (0: the default).
	DeadAfter time.Duration
}

// clusterFollower keeps the balancer's cluster members in step with
// membership.
type clusterFollower struct {
	b      *Balancer
	mem    *membership.Membership
	owners int
	stop   context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// JoinCluster joins the cluster as an observer and from then on routes to
// its ready nodes besides the configured members. A request whose route
// names a node that is gone goes to a node that holds a copy of its
// session. Close leaves the cluster.
func (b *Balancer) JoinCluster(cfg ClusterConfig) error {
	if b.cluster != nil {
		return errors.New("balancer: already in a cluster")
	}
	mc := membership.DefaultLANConfig()
	host, port, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("balancer: cluster gossip address %q: %w", cfg.GossipAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("balancer: cluster gossip address %q: bad port", cfg.GossipAddr)
	}
	mc.Name, mc.Role, mc.BindAddr, mc.BindPort = cfg.Name, membership.RoleObserver, host, p
	mc.Insecure, mc.Logger = cfg.Insecure, b.log
	if !cfg.Insecure {
		if mc.Key, err = membership.GossipKey(cfg.Key); err != nil {
			return fmt.Errorf("balancer: %w", err)
		}
	}
	mc.SetDeadAfter(cfg.DeadAfter)
	f := &clusterFollower{b: b, owners: cfg.Owners}
	mc.OnEvent = func(membership.Event) { f.refresh() }
	f.mem, err = membership.New(mc)
	if err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	join := func(ctx context.Context, addrs []string) error {
		_, err := f.mem.Join(ctx, addrs)
		return err
	}
	if len(cfg.Join) > 0 {
		jctx, jcancel := context.WithTimeout(ctx, 10*time.Second)
		err := join(jctx, cfg.Join)
		jcancel()
		if err != nil {
			cancel()
			f.mem.Close()
			return fmt.Errorf("balancer: join the cluster: %w", err)
		}
	}
	if cfg.Discover != "" {
		d, err := discovery.Parse(cfg.Discover, membership.DefaultGossipPort)
		if err != nil {
			cancel()
			f.mem.Close()
			return fmt.Errorf("balancer: %w", err)
		}
		// A balancer listens to multicast beacons but announces nothing:
		// nodes need not find it. "shoal" is the nodes' cluster name.
		self := discovery.Self{Cluster: "shoal", Key: cfg.Key, Log: b.log}
		if err := d.Start(ctx, self); err != nil {
			if m, ok := d.(*discovery.Multicast); ok {
				err = fmt.Errorf("%w (%s)", err, m.Problem())
			}
			cancel()
			f.mem.Close()
			return fmt.Errorf("balancer: discovery: %w", err)
		}
		f.wg.Go(func() {
			discovery.Loop(ctx, d, 10*time.Second, f.mem.GossipAddrs, join, func(err error) {
				b.log.Debug("balancer: discovery", slog.Any("err", err))
			})
		})
	}
	b.setMu.Lock()
	b.cluster = f
	f.refreshLocked()
	b.setMu.Unlock()
	b.log.Info("balancer: following the cluster", slog.String("name", cfg.Name),
		slog.Any("nodes", f.b.clusterRoutes()), slog.String("gossip", f.mem.Self().Gossip))
	return nil
}

// refresh rebuilds the member set from membership: configured members
// first, then one member per live node (ready nodes take new sessions;
// joining and leaving ones only their sticky requests), and the placement
// of sessions over the ready nodes.
func (f *clusterFollower) refresh() {
	f.b.setMu.Lock()
	defer f.b.setMu.Unlock()
	f.refreshLocked()
}

// refreshLocked is refresh for a caller that holds setMu.
func (f *clusterFollower) refreshLocked() {
	b := f.b
	old := b.set.Load()
	list := slices.Clone(b.static)
	configured := newMemberSet(b.static).byRoute
	var ready []string
	for _, node := range f.mem.Members() {
		if node.Role != membership.RoleNode || node.HTTPAddr == "" {
			continue
		}
		if _, static := configured[node.Name]; static {
			continue // configured explicitly: the configuration wins
		}
		u := "http://" + node.HTTPAddr
		m := old.byRoute[node.Name]
		if m == nil || m.target().url.String() != u || m.retired.Load() {
			var err error
			m, err = NewMember(MemberConfig{Route: node.Name, URL: u})
			if err != nil {
				b.log.Warn("balancer: cluster node ignored", slog.String("node", node.Name), slog.Any("err", err))
				continue
			}
			b.log.Info("balancer: cluster node added", slog.String("node", node.Name), slog.String("url", u),
				slog.String("state", node.State.String()))
		}
		if was := m.notReady.Swap(node.State != membership.StateReady); was != (node.State != membership.StateReady) && old.byRoute[node.Name] == m {
			b.log.Info("balancer: cluster node state", slog.String("node", node.Name), slog.String("state", node.State.String()))
		}
		if node.State == membership.StateReady {
			ready = append(ready, node.Name)
		}
		list = append(list, m)
	}
	for _, m := range old.list {
		if !slices.Contains(list, m) && !slices.Contains(b.static, m) {
			b.log.Info("balancer: cluster node removed", slog.String("node", m.route))
			m.retire()
		}
	}
	set := newMemberSet(list)
	set.owners = placement.New(ready)
	set.ownersN = f.owners
	b.set.Store(set)
}

func (f *clusterFollower) close() {
	f.once.Do(func() {
		f.stop()
		f.wg.Wait()
		if err := f.mem.Leave(time.Second); err != nil {
			f.b.log.Debug("balancer: leave", slog.Any("err", err))
		}
		f.mem.Close()
	})
}

// clusterRoutes returns the routes of the cluster's nodes the balancer
// knows now.
func (b *Balancer) clusterRoutes() []string {
	var out []string
	for _, m := range b.set.Load().list {
		if !slices.Contains(b.static, m) {
			out = append(out, m.route)
		}
	}
	return out
}

// OwnerRoutes returns how many requests went to a session's owner because
// the member of their route was not usable (cluster mode).
func (b *Balancer) OwnerRoutes() int64 { return b.ownerRoutes.Load() }
