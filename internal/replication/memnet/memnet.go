// Package memnet is an in-memory Transport for testing the replication
// engine and the cluster store in one process: nodes on a Network reach
// each other by name, and a test can drop, delay or cut any link, or take
// a node down, to see what the engine does with it.
//
// Each directed link delivers its requests in order, like a TCP
// connection, and the receiver handles them as the Transport contract
// says: in order, except forwarded commits, each on a goroutine of its own.
package memnet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/internal/replication/wire"
)

// Network connects in-memory nodes. Close stops its goroutines.
type Network struct {
	mu      sync.Mutex // protects everything below
	nodes   map[string]replication.Handler
	down    map[string]bool
	cut     map[[2]string]bool
	drop    map[[2]string]bool
	delay   map[[2]string]time.Duration
	links   map[[2]string]*link
	closed  bool
	stopped chan struct{}
	wg      sync.WaitGroup
}

// New returns an empty Network.
func New() *Network {
	return &Network{
		nodes: map[string]replication.Handler{}, down: map[string]bool{},
		cut: map[[2]string]bool{}, drop: map[[2]string]bool{}, delay: map[[2]string]time.Duration{},
		links: map[[2]string]*link{}, stopped: make(chan struct{}),
	}
}

// Join puts a node on the network (again, after Down) and returns the
// Transport it sends with.
func (n *Network) Join(name string, h replication.Handler) replication.Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[name] = h
	delete(n.down, name)
	return &transport{net: n, from: name}
}

// Down takes a node off the network, as kill -9 would: requests to it
// fail with ErrUnreachable, and so do its own.
func (n *Network) Down(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[name] = true
}

// Cut cuts the link between a and b both ways (a partition); Heal mends it.
func (n *Network) Cut(a, b string) { n.set(n.cut, a, b, true) }

// Heal mends the link between a and b.
func (n *Network) Heal(a, b string) { n.set(n.cut, a, b, false) }

// Drop makes the link from a to b lose its requests silently: the sender
// waits until its context ends, as with a lost packet.
func (n *Network) Drop(a, b string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop[[2]string{a, b}] = on
}

// Delay delays each request from a to b by d (0: no delay).
func (n *Network) Delay(a, b string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay[[2]string{a, b}] = d
}

func (n *Network) set(m map[[2]string]bool, a, b string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m[[2]string{a, b}], m[[2]string{b, a}] = on, on
}

// Close stops the links' goroutines; later sends fail.
func (n *Network) Close() {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.stopped)
	}
	n.mu.Unlock()
	n.wg.Wait()
}

type transport struct {
	net  *Network
	from string
}

type call struct {
	req   wire.Message
	done  chan struct{}
	reply wire.Message
	err   error
}

func (c *call) Wait(ctx context.Context) (wire.Message, error) {
	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// link is one direction between two nodes: a queue drained in order.
type link struct {
	q chan *call
}

func (t *transport) Send(peer string, req wire.Message) replication.Pending {
	n := t.net
	key := [2]string{t.from, peer}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return replication.Failed(fmt.Errorf("memnet closed: %w", replication.ErrUnreachable))
	}
	l := n.links[key]
	if l == nil {
		l = &link{q: make(chan *call, 1<<16)}
		n.links[key] = l
		n.wg.Add(1)
		go n.deliver(key, l)
	}
	c := &call{req: req, done: make(chan struct{})}
	select {
	case l.q <- c:
	default:
		return replication.Failed(fmt.Errorf("memnet %s->%s: queue full: %w", t.from, peer, replication.ErrUnreachable))
	}
	return c
}

// deliver runs one link: it hands requests to the receiver in order.
func (n *Network) deliver(key [2]string, l *link) {
	defer n.wg.Done()
	for {
		select {
		case <-n.stopped:
			return
		case c := <-l.q:
			n.mu.Lock()
			h := n.nodes[key[1]]
			unreachable := h == nil || n.down[key[0]] || n.down[key[1]] || n.cut[key]
			dropped, delay := n.drop[key], n.delay[key]
			n.mu.Unlock()
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-n.stopped:
					return
				}
			}
			switch {
			case unreachable:
				c.err = fmt.Errorf("memnet %s->%s: %w", key[0], key[1], replication.ErrUnreachable)
				close(c.done)
			case dropped:
				// never answered
			case replication.Inline(c.req):
				c.reply = h.Handle(context.Background(), key[0], c.req)
				close(c.done)
			default:
				n.wg.Add(1)
				go n.handle(h, key[0], c)
			}
		}
	}
}

func (n *Network) handle(h replication.Handler, from string, c *call) {
	defer n.wg.Done()
	c.reply = h.Handle(context.Background(), from, c.req)
	close(c.done)
}
