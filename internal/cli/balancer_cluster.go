package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/session"
)

// balancerCluster holds `shoal balancer`'s cluster flags: with them the
// balancer follows a shoal cluster's membership instead of (or besides) a
// static --member list.
type balancerCluster struct {
	join      string
	discover  string
	listen    string
	keyFile   string
	insecure  bool
	name      string
	owners    string
	deadAfter time.Duration
}

func defineBalancerClusterFlags(fs *flag.FlagSet) *balancerCluster {
	c := &balancerCluster{}
	fs.StringVar(&c.join, "cluster-join", "", "follow the shoal cluster reached through the members at `ADDRS`\n"+
		"(comma-separated gossip host:port): its nodes become members, and a request\n"+
		"whose node is gone goes straight to a node that holds its session")
	fs.StringVar(&c.discover, "cluster-discover", "", "follow the cluster found by DNS (`URL` dns://NAME[:PORT])\n"+
		"or by multicast beacons (multicast://GROUP[:PORT], e.g. multicast://228.0.0.4:45564)")
	fs.StringVar(&c.listen, "cluster-listen", "127.0.0.1:0", "gossip on `ADDR` when following a cluster")
	fs.StringVar(&c.keyFile, "cluster-key-file", "", "the cluster's key `FILE` (as the nodes')")
	fs.BoolVar(&c.insecure, "insecure-cluster", false, "follow a cluster that runs without a key (loopback only)")
	fs.StringVar(&c.name, "cluster-name", "", "the balancer's `NAME` in the cluster (default: balancer-<pid>)")
	fs.StringVar(&c.owners, "owners", "2", "the cluster's copies per session, `N` or all, as the nodes' --owners")
	fs.DurationVar(&c.deadAfter, "dead-after", 0, "as the nodes' --dead-after `DURATION`")
	return c
}

// enabled reports whether a cluster is to be followed.
func (c *balancerCluster) enabled() bool { return c.join != "" || c.discover != "" }

// config checks the flags and returns the ClusterConfig.
func (c *balancerCluster) config() (balancer.ClusterConfig, error) {
	var cc balancer.ClusterConfig
	if !c.enabled() {
		if c.keyFile != "" || c.insecure {
			return cc, errors.New("--cluster-key-file and --insecure-cluster need --cluster-join or --cluster-discover")
		}
		return cc, nil
	}
	switch {
	case c.keyFile == "" && !c.insecure:
		return cc, errors.New("following a cluster needs --cluster-key-file (or --insecure-cluster on loopback)")
	case c.keyFile != "" && c.insecure:
		return cc, errors.New("--cluster-key-file and --insecure-cluster both set: choose one")
	}
	if c.discover != "" {
		if _, err := discovery.Parse(c.discover, membership.DefaultGossipPort); err != nil {
			return cc, fmt.Errorf("--cluster-discover: %w", err)
		}
	}
	name := c.name
	if name == "" {
		name = "balancer-" + strconv.Itoa(os.Getpid())
	}
	if err := session.ValidateRoute(name); err != nil {
		return cc, fmt.Errorf("--cluster-name: %w", err)
	}
	owners := 0 // all
	if c.owners != "all" {
		n, err := strconv.Atoi(c.owners)
		if err != nil || n < 1 {
			return cc, fmt.Errorf("--owners %q: want a number of nodes (1 or more) or \"all\"", c.owners)
		}
		owners = n
	}
	if c.deadAfter < 0 {
		return cc, fmt.Errorf("--dead-after %v is negative", c.deadAfter)
	}
	cc = balancer.ClusterConfig{Name: name, GossipAddr: c.listen, Discover: c.discover, Insecure: c.insecure,
		Owners: owners, DeadAfter: c.deadAfter}
	if c.join != "" {
		cc.Join = strings.Split(c.join, ",")
	}
	if c.keyFile != "" {
		key, err := membership.LoadKeyFile(c.keyFile)
		if err != nil {
			return cc, fmt.Errorf("--cluster-key-file: %w", err)
		}
		cc.Key = key
	}
	return cc, nil
}
