package discovery

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Multicast finds members by UDP multicast beacons, as Tomcat's
// McastService does (its default group is 228.0.0.4:45564): every member
// that announces sends its gossip address to the group once per Period,
// and at start a query that the others answer at once, so a new member
// finds the cluster in one round trip instead of one period. Addrs
// returns the addresses heard within the last three periods.
//
// Beacons carry the cluster's name and, unless the cluster is insecure,
// an HMAC from a key derived from the cluster key: a beacon from another
// cluster is ignored, and one with a wrong MAC is logged once per source
// address as a cluster key mismatch. Beacons only say where to gossip;
// memberlist's own encryption still decides who joins.
type Multicast struct {
	Group  netip.AddrPort // the group and port, e.g. 228.0.0.4:45564
	Iface  string         // the interface to use; "" lets the routing table choose
	Period time.Duration  // beacon period; 0 means DefaultBeaconPeriod

	mu      sync.Mutex
	started bool
	start   time.Time
	heard   map[string]time.Time // gossip address → last beacon
	warned  map[netip.Addr]bool  // sources already logged as mismatched
}

// DefaultBeaconPeriod is how often a member announces itself.
const DefaultBeaconPeriod = time.Second

// firstWait is how long the first Addrs waits for the answers to the
// start-up query: answers come in about a round trip on a LAN.
const firstWait = 300 * time.Millisecond

// DefaultMulticastPort is Tomcat's McastService port, used when the
// multicast:// value has none.
const DefaultMulticastPort = 45564

// Self is what a member tells others about itself in its beacons.
type Self struct {
	Cluster string // cluster name; beacons of other names are ignored
	// Gossip is the gossip address to announce ("host:port"); "" listens
	// only (a balancer following the cluster need not be found).
	Gossip string
	// Key is the cluster key (32 bytes), nil for an insecure cluster.
	Key []byte
	Log *slog.Logger
}

func parseMulticast(u *url.URL, s string) (*Multicast, error) {
	if u.Path != "" && u.Path != "/" || u.User != nil {
		return nil, fmt.Errorf("discovery: %q: want multicast://GROUP[:PORT][?iface=NAME]", s)
	}
	for k := range u.Query() {
		if k != "iface" {
			return nil, fmt.Errorf("discovery: %q: unknown parameter %q (only iface=NAME)", s, k)
		}
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || !ip.IsMulticast() {
		return nil, fmt.Errorf("discovery: %q: %q is not a multicast group address (224.0.0.0/4 or ff00::/8)", s, u.Hostname())
	}
	port := DefaultMulticastPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("discovery: %q: bad port", s)
		}
		port = n
	}
	return &Multicast{Group: netip.AddrPortFrom(ip, uint16(port)), Iface: u.Query().Get("iface")}, nil
}

func (m *Multicast) period() time.Duration {
	if m.Period > 0 {
		return m.Period
	}
	return DefaultBeaconPeriod
}

func (m *Multicast) String() string { return "multicast://" + m.Group.String() }

// Start joins the group and, if self.Gossip is set, announces it until
// ctx ends. It fails when the group cannot be joined or sent to (no
// multicast route or interface): Problem says why.
func (m *Multicast) Start(ctx context.Context, self Self) error {
	if self.Log == nil {
		self.Log = slog.New(slog.DiscardHandler)
	}
	var key []byte
	if self.Key != nil {
		k, err := hkdf.Key(sha256.New, self.Key, nil, "shoal multicast beacon v1", 32)
		if err != nil {
			return fmt.Errorf("discovery: beacon key: %w", err)
		}
		key = k
	}
	ifi, err := m.iface()
	if err != nil {
		return err
	}
	network := "udp4"
	if m.Group.Addr().Is6() {
		network = "udp6"
	}
	group := net.UDPAddrFromAddrPort(m.Group)
	rc, err := net.ListenMulticastUDP(network, ifi, group)
	if err != nil {
		return fmt.Errorf("discovery: join %s: %w", m, err)
	}
	sc, err := net.DialUDP(network, nil, group)
	if err != nil {
		rc.Close()
		return fmt.Errorf("discovery: send to %s: %w", m, err)
	}
	m.mu.Lock()
	m.started, m.start = true, time.Now()
	m.heard, m.warned = map[string]time.Time{}, map[netip.Addr]bool{}
	m.mu.Unlock()

	send := func(query bool) error {
		if self.Gossip == "" && !query {
			return nil
		}
		b := beacon{Query: query, Cluster: self.Cluster, Gossip: self.Gossip}
		_, err := sc.Write(b.marshal(key))
		return err
	}
	// The start-up query: those who hear it answer at once.
	if err := send(true); err != nil {
		rc.Close()
		sc.Close()
		return fmt.Errorf("discovery: send to %s: %w", m, err)
	}
	go func() {
		<-ctx.Done()
		rc.Close()
		sc.Close()
	}()
	go func() {
		t := time.NewTicker(m.period())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := send(false); err != nil && ctx.Err() == nil {
					self.Log.Debug("discovery: beacon", slog.Any("err", err))
				}
			}
		}
	}()
	go func() {
		buf := make([]byte, maxBeacon+1)
		var lastAnswer time.Time
		for {
			n, from, err := rc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed
			}
			got, err := parseBeacon(buf[:n], key)
			src := from.Addr().Unmap()
			switch {
			case errors.Is(err, errBadMAC):
				m.mu.Lock()
				first := !m.warned[src]
				m.warned[src] = true
				m.mu.Unlock()
				if first {
					self.Log.Warn("cluster key mismatch: multicast beacon refused", slog.String("from", src.String()),
						slog.String("reason", "cluster key mismatch"))
				}
				continue
			case err != nil:
				self.Log.Debug("discovery: bad beacon", slog.String("from", src.String()), slog.Any("err", err))
				continue
			case got.Cluster != self.Cluster:
				continue
			}
			if got.Gossip == self.Gossip {
				continue // our own, looped back
			}
			if got.Gossip != "" {
				m.noteHeard(got.Gossip, src)
			}
			if got.Query && time.Since(lastAnswer) > m.period()/10 {
				lastAnswer = time.Now()
				send(false)
			}
		}
	}()
	return nil
}

// noteHeard records a gossip address, replacing an unspecified host
// (a member bound to 0.0.0.0) by the beacon's source address.
func (m *Multicast) noteHeard(gossip string, src netip.Addr) {
	if ap, err := netip.ParseAddrPort(gossip); err == nil && ap.Addr().IsUnspecified() {
		gossip = netip.AddrPortFrom(src, ap.Port()).String()
	}
	m.mu.Lock()
	m.heard[gossip] = time.Now()
	m.mu.Unlock()
}

// Addrs returns the gossip addresses heard within the last three
// periods, sorted. The first call after Start waits (bounded by ctx) for
// the answers to the start-up query.
func (m *Multicast) Addrs(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	if !m.started {
		m.mu.Unlock()
		return nil, fmt.Errorf("discovery: %s not started", m)
	}
	wait := time.Until(m.start.Add(firstWait))
	m.mu.Unlock()
	if wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for a, at := range m.heard {
		if time.Since(at) > 3*m.period() {
			delete(m.heard, a)
			continue
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return out, nil
}

func (m *Multicast) iface() (*net.Interface, error) {
	if m.Iface == "" {
		return nil, nil
	}
	ifi, err := net.InterfaceByName(m.Iface)
	if err != nil {
		return nil, fmt.Errorf("discovery: %s: interface %q: %w", m, m.Iface, err)
	}
	return ifi, nil
}

// Problem says why multicast discovery cannot work on this host, or ""
// when it can as far as can be told without peers: the interface (or
// some interface, when none is named) must be up with the MULTICAST flag,
// and a packet to the group must have a route.
func (m *Multicast) Problem() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "cannot list interfaces: " + err.Error()
	}
	ok := false
	for _, ifi := range ifs {
		if m.Iface != "" && ifi.Name != m.Iface {
			continue
		}
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			ok = true
		}
	}
	switch {
	case !ok && m.Iface != "":
		return fmt.Sprintf("interface %s is missing, down or without the MULTICAST flag (ip link set %s multicast on)", m.Iface, m.Iface)
	case !ok:
		return "no interface is up with the MULTICAST flag (ip link set DEV multicast on)"
	}
	network := "udp4"
	if m.Group.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(m.Group))
	if err != nil {
		return fmt.Sprintf("no route to %s (add one, e.g. ip route add 224.0.0.0/4 dev DEV): %v", m.Group.Addr(), err)
	}
	c.Close() // connecting a UDP socket looks the route up; nothing is sent
	return ""
}

// The beacon: "SHB1", flags, the cluster name and the gossip address
// (each a length byte and bytes), then with flagMAC an HMAC-SHA256 of
// everything before it.
const (
	beaconMagic = "SHB1"
	flagQuery   = 1 << 0
	flagMAC     = 1 << 1
	macSize     = sha256.Size
	maxBeacon   = len(beaconMagic) + 1 + 1 + 255 + 1 + 255 + macSize
)

var (
	errBadMAC      = errors.New("beacon MAC does not match: cluster key mismatch")
	errShortBeacon = errors.New("beacon truncated")
)

type beacon struct {
	Query   bool
	Cluster string
	Gossip  string
}

// marshal encodes b, with a MAC when key is set. Names longer than 255
// bytes are cut (membership refuses such names long before).
func (b beacon) marshal(key []byte) []byte {
	out := make([]byte, 0, maxBeacon)
	out = append(out, beaconMagic...)
	var flags byte
	if b.Query {
		flags |= flagQuery
	}
	if key != nil {
		flags |= flagMAC
	}
	out = append(out, flags)
	for _, s := range []string{b.Cluster, b.Gossip} {
		s = s[:min(len(s), 255)]
		out = append(out, byte(len(s)))
		out = append(out, s...)
	}
	if key != nil {
		h := hmac.New(sha256.New, key)
		h.Write(out)
		out = h.Sum(out)
	}
	return out
}

// parseBeacon decodes p. With a key, a beacon without a MAC or with a
// wrong one is refused with errBadMAC; without one, a beacon with a MAC
// is refused too (an insecure member never joins a keyed cluster).
func parseBeacon(p []byte, key []byte) (beacon, error) {
	var b beacon
	if len(p) > maxBeacon {
		return b, fmt.Errorf("beacon of %d bytes, over %d", len(p), maxBeacon)
	}
	if len(p) < len(beaconMagic)+1 || string(p[:len(beaconMagic)]) != beaconMagic {
		return b, errors.New("not a shoal beacon")
	}
	flags := p[len(beaconMagic)]
	if flags&^(flagQuery|flagMAC) != 0 {
		return b, fmt.Errorf("unknown beacon flags %#x", flags)
	}
	rest := p[len(beaconMagic)+1:]
	var fields [2]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return b, errShortBeacon
		}
		fields[i] = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	body := p[:len(p)-len(rest)]
	switch {
	case flags&flagMAC != 0:
		if len(rest) != macSize {
			return b, fmt.Errorf("beacon MAC of %d bytes, want %d", len(rest), macSize)
		}
		if key == nil {
			return b, errBadMAC
		}
		h := hmac.New(sha256.New, key)
		h.Write(body)
		if !hmac.Equal(h.Sum(nil), rest) {
			return b, errBadMAC
		}
	case len(rest) != 0:
		return b, fmt.Errorf("%d stray bytes after the beacon", len(rest))
	case key != nil:
		return b, errBadMAC
	}
	b.Query = flags&flagQuery != 0
	b.Cluster, b.Gossip = fields[0], fields[1]
	return b, nil
}
