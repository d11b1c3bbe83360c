package membership

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// transport is memberlist's network transport: one TCP listener and one
// UDP socket on the same address, as memberlist's own NetTransport has.
// It exists because NetTransport allocates a fresh 64 KiB buffer for
// every UDP packet it receives: with the LAN timings here (a probe every
// 100 ms, gossip every 50 ms) that was 1.4 MB/s of garbage per idle node,
// 77 % of its allocations and most of its GC. This one reads every
// packet into one buffer and hands memberlist a copy of the packet's
// size. Everything else behaves as NetTransport does.
type transport struct {
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{} // closed by Shutdown
	once     sync.Once
	wg       sync.WaitGroup
	logger   *log.Logger
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// maxUDPPacket is the largest UDP payload there is; memberlist's own
// packets are at most its UDPBufferSize (1,400 bytes by default).
const maxUDPPacket = 65536

// newTransport binds TCP and UDP on addr:port. With port 0 it picks a
// port free for both, trying a few times (another process may take the
// UDP port between the two binds).
func newTransport(addr string, port int, logger *log.Logger) (*transport, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", addr)
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var t *transport
		if t, err = bindTransport(ip, port, logger); err == nil {
			t.wg.Add(2)
			go t.acceptLoop()
			go t.readLoop()
			return t, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, err
}

func bindTransport(ip net.IP, port int, logger *log.Logger) (*transport, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip TCP listener on %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("gossip UDP socket on %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
	}
	// A large receive buffer, so that a burst of gossip is not dropped
	// while the reader is busy; as large as the system allows, down to
	// 64 KiB.
	for size := 2 << 20; size >= 64<<10; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	return &transport{
		tcp:      tcp,
		udp:      udp,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
		logger:   logger,
	}, nil
}

// port is the bound port (the same for TCP and UDP).
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is NetTransport's rule: the given address, else the
// bound one, else (bound to all addresses) a private IP of this host;
// port 0 means the bound port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.port()
	}
	var addr net.IP
	switch bound := t.tcp.Addr().(*net.TCPAddr).IP; {
	case ip != "":
		addr = net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
	case bound.IsUnspecified():
		private, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("finding this host's private IP address: %w", err)
		}
		if private == "" {
			return nil, 0, errors.New("no private IP address found to advertise: set the advertise address")
		}
		addr = net.ParseIP(private)
	default:
		addr = bound
	}
	if ip4 := addr.To4(); ip4 != nil {
		addr = ip4
	}
	return addr, port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	return time.Now(), err
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *transport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// Shutdown closes the sockets and waits for the loops to end. It may be
// called more than once.
func (t *transport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.tcp.Close()
		t.udp.Close()
	})
	t.wg.Wait()
	return nil
}

func (t *transport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// acceptLoop hands accepted connections to memberlist, backing off on
// errors (a full descriptor table) as NetTransport does.
func (t *transport) acceptLoop() {
	defer t.wg.Done()
	const maxDelay = time.Second
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), maxDelay)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			select {
			case <-time.After(delay):
				continue
			case <-t.done:
				return
			}
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			c.Close()
			return
		}
	}
}

// readLoop reads UDP packets into one buffer and hands memberlist each
// as a copy of its own size.
func (t *transport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, maxUDPPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if t.closed() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			t.logger.Printf("[ERR] memberlist: UDP packet too short (%d bytes) %s", n, memberlist.LogAddress(from))
			continue
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: now}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}
