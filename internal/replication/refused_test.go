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

// When the connection to a peer ends from its side, the transport redials
// at once, with no request waiting: a peer that still listens gets a new
// connection and is not reported; a peer whose address refuses (its
// process is gone) is reported to OnRefused within a round trip.
func TestOnRefusedWhenPeerGoes(t *testing.T) {
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
	rec := &refusals{}
	a, err := replication.ListenTCP(replication.TCPConfig{Self: "a", Cluster: "test", Listen: "127.0.0.1:0", Key: key,
		Resolve: resolve, Handler: pongHandler{}, OnRefused: rec.record, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := replication.ListenTCP(replication.TCPConfig{Self: "b", Cluster: "test", Listen: "127.0.0.1:0", Key: key,
		Resolve: resolve, Handler: pongHandler{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rl := newRelay(t, b.Addr())
	bAddr := rl.ln.Addr().String() // a reaches b through the relay
	mu.Lock()
	addrs["a"], addrs["b"] = a.Addr(), bAddr
	mu.Unlock()

	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := a.Send("b", &wire.Ping{}).Wait(ctx)
		return err
	}
	if err := ping(); err != nil {
		t.Fatalf("ping b: %v", err)
	}

	// The connection drops but b still listens: redialled, not reported.
	rl.stop(false)
	deadline := time.Now().Add(5 * time.Second)
	for rl.acceptedCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no redial within 5 s of the connection dropping")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if calls, _ := rec.list(); len(calls) != 0 {
		t.Fatalf("OnRefused called for a peer that still listens: %v", calls)
	}
	if err := ping(); err != nil {
		t.Fatalf("ping b after the redial: %v", err)
	}

	// b's address refuses, as when its process is killed: the listener
	// and every connection close at once.
	gone := time.Now()
	rl.stop(true)
	deadline = time.Now().Add(5 * time.Second)
	for {
		calls, at := rec.list()
		if len(calls) > 0 {
			if len(calls) != 1 || calls[0] != "b@"+bAddr {
				t.Fatalf("OnRefused calls %v, want [b@%s]", calls, bAddr)
			}
			t.Logf("refusal reported %v after b went away, with no request sent", at[0].Sub(gone))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("OnRefused not called within 5 s of b going away")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ping(); err == nil {
		t.Fatal("ping of a gone peer succeeded")
	}
}
