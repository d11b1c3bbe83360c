// Package discovery finds the gossip addresses of cluster members to
// join, besides a static --join list: a DNS name whose A/AAAA records are
// the members (a Kubernetes headless service), re-resolved periodically so
// that nodes started later are found too; or UDP multicast beacons on a
// LAN (Multicast), so that a cluster forms with no configuration at all.
//
// It only finds addresses; joining is the caller's (membership.Join skips
// its own address, so a name that resolves to every member, this one
// included, is fine).
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Finder finds members' gossip addresses: *DNS or *Multicast.
type Finder interface {
	// Start begins what the finder does in the background (multicast
	// beacons) until ctx ends; DNS has nothing to start.
	Start(ctx context.Context, self Self) error
	// Addrs returns the addresses found now, sorted.
	Addrs(ctx context.Context) ([]string, error)
	String() string
}

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// DNS finds members by resolving Name; each address found, with Port, is
// a member's gossip address.
type DNS struct {
	Name     string
	Port     int
	Resolver Resolver // nil: net.DefaultResolver
}

// Start does nothing: DNS is asked on each Addrs.
func (d *DNS) Start(context.Context, Self) error { return nil }

func (d *DNS) String() string { return "dns://" + net.JoinHostPort(d.Name, strconv.Itoa(d.Port)) }

// Addrs resolves the name and returns "ip:port" for each address, sorted.
func (d *DNS) Addrs(ctx context.Context) ([]string, error) {
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupIPAddr(ctx, d.Name)
	if err != nil {
		return nil, fmt.Errorf("discovery: resolve %s: %w", d.Name, err)
	}
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.IP.String(), strconv.Itoa(d.Port)))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ErrUnsupported is returned by Parse for a discovery scheme this version
// does not have.
var ErrUnsupported = errors.New("discovery: unsupported")

// Parse reads a --discover value: "dns://NAME[:PORT]" (PORT defaults to
// defaultPort, the gossip port) or "multicast://GROUP[:PORT][?iface=NAME]"
// (PORT defaults to Tomcat's 45564). It says clearly what is wrong with
// any other value.
func Parse(s string, defaultPort int) (Finder, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("discovery: %q: want dns://NAME[:PORT] or multicast://GROUP[:PORT]", s)
	}
	switch u.Scheme {
	case "dns":
	case "multicast":
		return parseMulticast(u, s)
	default:
		return nil, fmt.Errorf("%w: %q: scheme %q, want dns://NAME[:PORT] or multicast://GROUP[:PORT]", ErrUnsupported, s, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("discovery: %q: want dns://NAME[:PORT] with nothing after", s)
	}
	d := &DNS{Name: u.Hostname(), Port: defaultPort}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("discovery: %q: bad port", s)
		}
		d.Port = n
	}
	return d, nil
}

// Loop asks d every interval (every beacon period for Multicast, which
// must have been started) and calls join with the addresses that known
// does not report, until ctx ends. The first round runs at once. Errors
// are passed to logf; they never stop the loop.
func Loop(ctx context.Context, d Finder, interval time.Duration, known func() []string, join func(ctx context.Context, addrs []string) error, logf func(err error)) {
	if m, ok := d.(*Multicast); ok {
		interval = m.period()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		addrs, err := d.Addrs(rctx)
		if err == nil {
			have := known()
			addrs = slices.DeleteFunc(addrs, func(a string) bool { return slices.Contains(have, a) })
			if len(addrs) > 0 {
				err = join(rctx, addrs)
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			logf(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
