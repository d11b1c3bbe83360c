package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
)

// doctorCluster is how `shoal doctor` finds the nodes by the cluster's own
// membership, as the balancer can: --cluster-join or --cluster-discover,
// with the key.
type doctorCluster struct {
	join, discover, keyFile, listen string
	insecure                        bool
}

func defineDoctorClusterFlags(fs flagDefiner) *doctorCluster {
	c := &doctorCluster{}
	fs.StringVar(&c.join, "cluster-join", "", "find the nodes by joining the cluster's gossip at `ADDRS` (comma-separated host:port), as an observer")
	fs.StringVar(&c.discover, "cluster-discover", "", "find the nodes by discovery: `URL` dns://NAME[:PORT] or multicast://GROUP[:PORT]")
	fs.StringVar(&c.keyFile, "cluster-key-file", "", "the cluster's key `FILE` (as the nodes')")
	fs.BoolVar(&c.insecure, "insecure-cluster", false, "the cluster runs without a key (loopback only)")
	fs.StringVar(&c.listen, "cluster-listen", "0.0.0.0:0", "gossip on `ADDR` while looking (port 0: any)")
	return c
}

// flagDefiner is the part of *flag.FlagSet that flag definitions use.
type flagDefiner interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}

func (c *doctorCluster) enabled() bool { return c.join != "" || c.discover != "" }

// doctorGossipWait bounds how long the doctor listens to the cluster.
const doctorGossipWait = 5 * time.Second

// nodeURLs joins the cluster as an observer, reads the member list, and
// leaves: the HTTP address of each node, as http://host:port. A refused
// join (a wrong key, nobody there) is an error that says so.
func (c *doctorCluster) nodeURLs(ctx context.Context) ([]string, error) {
	switch {
	case c.keyFile == "" && !c.insecure:
		return nil, errors.New("--cluster-join/--cluster-discover need --cluster-key-file (or --insecure-cluster on loopback)")
	case c.keyFile != "" && c.insecure:
		return nil, errors.New("--cluster-key-file and --insecure-cluster both set: choose one")
	}
	host, port, err := net.SplitHostPort(c.listen)
	if err != nil {
		return nil, fmt.Errorf("--cluster-listen %q: %w", c.listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("--cluster-listen %q: bad port", c.listen)
	}
	mc := membership.DefaultLANConfig()
	mc.Name, mc.Role, mc.BindAddr, mc.BindPort = "doctor-"+strconv.Itoa(os.Getpid()), membership.RoleObserver, host, p
	mc.Insecure, mc.Logger = c.insecure, slog.New(slog.DiscardHandler)
	var key []byte
	if !c.insecure {
		if key, err = membership.LoadKeyFile(c.keyFile); err != nil {
			return nil, fmt.Errorf("--cluster-key-file: %w", err)
		}
		if mc.Key, err = membership.GossipKey(key); err != nil {
			return nil, err
		}
	}
	mem, err := membership.New(mc)
	if err != nil {
		return nil, fmt.Errorf("doctor: cluster gossip: %w", err)
	}
	defer func() {
		mem.Leave(time.Second)
		mem.Close()
	}()
	ctx, cancel := context.WithTimeout(ctx, doctorGossipWait)
	defer cancel()
	var addrs []string
	if c.join != "" {
		addrs = strings.Split(c.join, ",")
	}
	if c.discover != "" {
		d, err := discovery.Parse(c.discover, membership.DefaultGossipPort)
		if err != nil {
			return nil, fmt.Errorf("--cluster-discover: %w", err)
		}
		if err := d.Start(ctx, discovery.Self{Cluster: "shoal", Key: key}); err != nil {
			if m, ok := d.(*discovery.Multicast); ok {
				err = fmt.Errorf("%w (%s)", err, m.Problem())
			}
			return nil, fmt.Errorf("--cluster-discover: %w", err)
		}
		found, err := d.Addrs(ctx)
		if err != nil {
			return nil, fmt.Errorf("--cluster-discover: %w", err)
		}
		addrs = append(addrs, found...)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("found no cluster member to join (--cluster-discover %s)", c.discover)
	}
	if _, err := mem.Join(ctx, addrs); err != nil {
		return nil, fmt.Errorf("could not join the cluster at %s (a wrong --cluster-key-file is refused like this): %w",
			strings.Join(addrs, ","), err)
	}
	var urls []string
	for _, m := range mem.Members() {
		if m.Role == membership.RoleNode && m.HTTPAddr != "" {
			urls = append(urls, "http://"+m.HTTPAddr)
		}
	}
	slices.Sort(urls)
	if len(urls) == 0 {
		return nil, errors.New("joined the cluster, but it lists no node")
	}
	return urls, nil
}
