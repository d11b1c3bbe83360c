package replication_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/internal/replication/wire"
)

// pongHandler answers every request with Pong.
type pongHandler struct{}

func (pongHandler) Handle(context.Context, string, wire.Message) wire.Message { return &wire.Pong{} }

// refusals records OnRefused calls.
type refusals struct {
	mu    sync.Mutex
	calls []string
	at    []time.Time
}

func (r *refusals) record(peer, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, peer+"@"+addr)
	r.at = append(r.at, time.Now())
}

func (r *refusals) list() ([]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...), append([]time.Time(nil), r.at...)
}

// relay forwards loopback TCP connections to target, and can cut them.
type relay struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	dying    bool // the next connection accepted is reset, then the listener closes
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			dying := r.dying
			r.mu.Unlock()
			if dying {
				c.(*net.TCPConn).SetLinger(0) // close sends a reset
				c.Close()
				ln.Close()
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.accepted++
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { r.stop(true) })
	return r
}

func (r *relay) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// die cuts every relayed connection and leaves the listener open until it
// has reset one more connection, as a killed process whose connections
// are torn down before its listener.
func (r *relay) die() {
	r.mu.Lock()
	r.dying = true
	r.mu.Unlock()
	r.stop(false)
}

// stop cuts every relayed connection, and closes the listener too if
// listener is set (the address then refuses connections).
func (r *relay) stop(listener bool) {
	if listener {
		r.ln.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// refusalPair is transport a, which reports refusals to rec, and
// transport b, which a reaches through the relay rl at bAddr.
type refusalPair struct {
	a, b  *replication.TCPTransport
	rl    *relay
	bAddr string
	rec   *refusals
}

func newRefusalPair(t *testing.T) *refusalPair {
	key := key32(t)
	var mu sync.Mutex
	addrs := map[string]string{}
	resolve := func(name string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := addrs[name]
		return a, ok
	}
	quiet := slog.New(slog.DiscardHandler)
	p := &refusalPair{rec: &refusals{}}
	var err error
	p.a, err = replication.ListenTCP(replication.TCPConfig{Self: "a", Cluster: "test", Listen: "127.0.0.1:0", Key: key,
		Resolve: resolve, Handler: pongHandler{}, OnRefused: p.rec.record, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.a.Close() })
	p.b, err = replication.ListenTCP(replication.TCPConfig{Self: "b", Cluster: "test", Listen: "127.0.0.1:0", Key: key,
		Resolve: resolve, Handler: pongHandler{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.b.Close() })
	p.rl = newRelay(t, p.b.Addr())
	p.bAddr = p.rl.ln.Addr().String() // a reaches b through the relay
	mu.Lock()
	addrs["a"], addrs["b"] = p.a.Addr(), p.bAddr
	mu.Unlock()
	return p
}

// ping sends a Ping from a to b and waits for the answer.
func (p *refusalPair) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.a.Send("b", &wire.Ping{}).Wait(ctx)
	return err
}

// waitRefusal waits up to 5 s for the one OnRefused call, b's, and
// returns how long after gone it came.
func (p *refusalPair) waitRefusal(t *testing.T, gone time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls, at := p.rec.list()
		if len(calls) > 0 {
			if len(calls) != 1 || calls[0] != "b@"+p.bAddr {
				t.Fatalf("OnRefused calls %v, want [b@%s]", calls, p.bAddr)
			}
			return at[0].Sub(gone)
		}
		if time.Now().After(deadline) {
			t.Fatal("OnRefused not called within 5 s of b going away")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// When the connection to a peer ends from its side, the transport redials
// at once, with no request waiting: a peer that still listens gets a new
// connection and is not reported; a peer whose address refuses (its
// process is gone) is reported to OnRefused within a round trip.
func TestOnRefusedWhenPeerGoes(t *testing.T) {
	p := newRefusalPair(t)
	if err := p.ping(); err != nil {
		t.Fatalf("ping b: %v", err)
	}

	// The connection drops but b still listens: redialled, not reported.
	p.rl.stop(false)
	deadline := time.Now().Add(5 * time.Second)
	for p.rl.acceptedCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no redial within 5 s of the connection dropping")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if calls, _ := p.rec.list(); len(calls) != 0 {
		t.Fatalf("OnRefused called for a peer that still listens: %v", calls)
	}
	if err := p.ping(); err != nil {
		t.Fatalf("ping b after the redial: %v", err)
	}

	// b's address refuses, as when its process is killed: the listener
	// and every connection close at once.
	gone := time.Now()
	p.rl.stop(true)
	t.Logf("refusal reported %v after b went away, with no request sent", p.waitRefusal(t, gone))
	if err := p.ping(); err == nil {
		t.Fatal("ping of a gone peer succeeded")
	}
}

// A killed process's sockets close one after the other. When the redial
// that follows the end of a connection reaches the peer's listener before
// it closes and is reset with it, that reset says nothing; the transport
// dials again shortly and reports the refusal that follows.
func TestOnRefusedAfterResetRedial(t *testing.T) {
	p := newRefusalPair(t)
	if err := p.ping(); err != nil {
		t.Fatalf("ping b: %v", err)
	}
	gone := time.Now()
	p.rl.die()
	t.Logf("refusal reported %v after b went away, through a reset redial", p.waitRefusal(t, gone))
}
