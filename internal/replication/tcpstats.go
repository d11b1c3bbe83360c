package replication

import (
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/latency"
	"github.com/shoal-go/shoal/internal/replication/wire"
)

// PeerTraffic is what a TCPTransport exchanged with one peer since it
// started, both directions, over every connection (the one this node
// dialed and the one the peer dialed).
type PeerTraffic struct {
	Peer string
	// Bytes on the wire (TLS records included), and frames.
	BytesSent, BytesReceived       uint64
	MessagesSent, MessagesReceived uint64
	// Ack is the time from sending a change (Apply, Create) to the peer
	// until its acknowledgement arrived: the replication round trip, an
	// upper bound of the time the change took to be applied there.
	Ack latency.Snapshot
}

// Refusal is a peer the transport refused (or that refused it), by remote
// host and reason: how many times, first and last.
type Refusal struct {
	Remote      string // the remote host (ephemeral ports left out)
	Reason      string // "cluster key mismatch", "handshake failed"
	Count       int64
	First, Last time.Time
}

// maxTrafficPeers bounds the peers counted apart (names come from
// authenticated peers, but a key holder could invent many): the others
// share the entry otherPeers.
const (
	maxTrafficPeers = 256
	otherPeers      = "_other"
	maxRefusals     = 256
)

// peerCounters are the live counters behind a PeerTraffic.
type peerCounters struct {
	bytesSent, bytesReceived atomic.Uint64
	msgsSent, msgsReceived   atomic.Uint64
	ack                      latency.Histogram
}

// counters returns the counters of peer, creating them.
func (t *TCPTransport) counters(peer string) *peerCounters {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.countersLocked(peer)
}

// countersLocked is counters with t.mu held.
func (t *TCPTransport) countersLocked(peer string) *peerCounters {
	if c, ok := t.traffic[peer]; ok {
		return c
	}
	if len(t.traffic) >= maxTrafficPeers {
		peer = otherPeers
		if c, ok := t.traffic[peer]; ok {
			return c
		}
	}
	c := &peerCounters{}
	t.traffic[peer] = c
	return c
}

// Traffic returns what the transport exchanged with each peer, by name.
func (t *TCPTransport) Traffic() []PeerTraffic {
	t.mu.Lock()
	out := make([]PeerTraffic, 0, len(t.traffic))
	for name, c := range t.traffic {
		out = append(out, PeerTraffic{Peer: name,
			BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load(),
			MessagesSent: c.msgsSent.Load(), MessagesReceived: c.msgsReceived.Load(),
			Ack: c.ack.Snapshot()})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerTraffic) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

// Refusals returns the peers refused since start (key mismatches, failed
// handshakes), at most maxRefusals of them.
func (t *TCPTransport) Refusals() []Refusal {
	t.mu.Lock()
	out := make([]Refusal, 0, len(t.refusals))
	for _, r := range t.refusals {
		out = append(out, *r)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Refusal) int { return a.First.Compare(b.First) })
	return out
}

// EncodeFailures counts messages that could not be encoded into a frame
// (malformed, or over the frame size limit): they were not sent.
func (t *TCPTransport) EncodeFailures() int64 { return t.encodeFailures.Load() }

// isChange reports whether req carries a session change to a backup,
// whose acknowledgement time is the replication round trip.
func isChange(req wire.Message) bool {
	switch req.(type) {
	case *wire.Apply, *wire.Create:
		return true
	}
	return false
}

// countingConn counts the bytes of a connection into the counters of its
// peer, which an inbound connection learns only from the peer's Hello:
// until attach, they are kept aside.
type countingConn struct {
	net.Conn
	ctr        atomic.Pointer[peerCounters]
	preR, preW atomic.Uint64 // before attach
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if p := c.ctr.Load(); p != nil {
		p.bytesReceived.Add(uint64(n))
	} else {
		c.preR.Add(uint64(n))
	}
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if p := c.ctr.Load(); p != nil {
		p.bytesSent.Add(uint64(n))
	} else {
		c.preW.Add(uint64(n))
	}
	return n, err
}

// attach makes p the connection's counters, adding what was counted
// before. Call it once, from the goroutine that did the handshake, before
// other goroutines use the connection.
func (c *countingConn) attach(p *peerCounters) {
	c.ctr.Store(p)
	p.bytesReceived.Add(c.preR.Swap(0))
	p.bytesSent.Add(c.preW.Swap(0))
}
