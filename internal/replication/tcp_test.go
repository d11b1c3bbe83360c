package replication_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/internal/replication/wire"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tcpCluster is nodes on loopback TCP, each knowing the others' addresses.
type tcpCluster struct {
	mu    sync.Mutex
	addrs map[string]string
	trs   map[string]*replication.TCPTransport
	nodes map[string]*replication.Node
	logs  map[string]*syncBuf
}

func newTCPCluster() *tcpCluster {
	return &tcpCluster{addrs: map[string]string{}, trs: map[string]*replication.TCPTransport{},
		nodes: map[string]*replication.Node{}, logs: map[string]*syncBuf{}}
}

func (tc *tcpCluster) resolve(name string) (string, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	a, ok := tc.addrs[name]
	return a, ok
}

func (tc *tcpCluster) start(t *testing.T, name string, key []byte, insecure bool) *replication.Node {
	t.Helper()
	logs := &syncBuf{}
	n := replication.NewNode(replication.Config{Self: name, Owners: 2, Timeout: 2 * time.Second})
	tr, err := replication.ListenTCP(replication.TCPConfig{
		Self: name, Cluster: "test", Listen: "127.0.0.1:0", Key: key, Insecure: insecure,
		Resolve: tc.resolve, Handler: n, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(tr)
	tc.mu.Lock()
	tc.addrs[name], tc.trs[name], tc.nodes[name], tc.logs[name] = tr.Addr(), tr, n, logs
	tc.mu.Unlock()
	t.Cleanup(func() { tr.Close(); n.Close() })
	return n
}

func key32(t *testing.T) []byte {
	k := make([]byte, replication.KeySize)
	rand.Read(k)
	return k
}

func TestTCPCounter(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		name := "tls"
		if insecure {
			name = "insecure"
		}
		t.Run(name, func(t *testing.T) {
			tc := newTCPCluster()
			var key []byte
			if !insecure {
				key = key32(t)
			}
			names := []string{"n1", "n2", "n3"}
			for _, n := range names {
				tc.start(t, n, key, insecure)
			}
			for _, n := range names {
				tc.nodes[n].SetMembers(names)
			}
			c := &cluster{t: t, nodes: tc.nodes, names: names}
			k := c.newSession("n1")
			for i := 1; i <= 30; i++ {
				got, err := c.increment(names[i%3], k)
				if err != nil || got != i {
					t.Fatalf("request %d on %s: %d, %v", i, names[i%3], got, err)
				}
			}
			// Kill the primary's transport: the others go on at once.
			tc.trs["n1"].Close()
			for i := 31; i <= 40; i++ {
				node := names[1+i%2]
				got, err := c.increment(node, k)
				if err != nil || got != i {
					t.Fatalf("after n1 died, request %d on %s: %d, %v", i, node, got, err)
				}
			}
		})
	}
}

func TestTCPKeyMismatch(t *testing.T) {
	tc := newTCPCluster()
	good := key32(t)
	a := tc.start(t, "n1", good, false)
	tc.start(t, "n2", key32(t), false) // another key
	a.SetMembers([]string{"n1", "n2"})
	for range 5 {
		_, err := tc.trs["n1"].Send("n2", &wire.Ping{}).Wait(ctx)
		if !errors.Is(err, replication.ErrUnreachable) || !strings.Contains(err.Error(), "cluster key mismatch") {
			t.Fatalf("ping to a node with another key = %v, want unreachable: cluster key mismatch", err)
		}
		time.Sleep(250 * time.Millisecond) // past RetryAfter: dial again
	}
	for _, n := range []string{"n1", "n2"} {
		if got := strings.Count(tc.logs[n].String(), `reason="cluster key mismatch"`); got != 1 {
			t.Errorf("%s logged the mismatch %d times, want once:\n%s", n, got, tc.logs[n])
		}
	}
}

// TestTCPHostilePeer: garbage, a lying length and a half frame after a
// good handshake neither crash the node nor leave it unable to serve.
func TestTCPHostilePeer(t *testing.T) {
	tc := newTCPCluster()
	n := tc.start(t, "n1", nil, true)
	n.SetMembers([]string{"n1"})
	for _, payload := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		append(wire.AppendFrame(nil, 0, &wire.Hello{Protocol: wire.ProtocolVersion, Cluster: "test", Node: "evil"}), 0xff, 0xff, 0xff, 0xff, 0x0f),
		append(wire.AppendFrame(nil, 0, &wire.Hello{Protocol: wire.ProtocolVersion, Cluster: "test", Node: "evil"}), 5, byte(wire.TypeApply), 1, 0xff),
		wire.AppendFrame(nil, 0, &wire.Hello{Protocol: 99, Cluster: "test", Node: "evil"}),
		wire.AppendFrame(nil, 0, &wire.Hello{Protocol: wire.ProtocolVersion, Cluster: "other", Node: "evil"}),
	} {
		c, err := net.DialTimeout("tcp", tc.trs["n1"].Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite() // a half frame then EOF
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break // the node closed the connection (or the deadline hit)
			}
		}
		c.Close()
	}
	// Still serving.
	tc.start(t, "n2", nil, true)
	if _, err := tc.trs["n2"].Send("n1", &wire.Ping{}).Wait(ctx); err != nil {
		t.Fatalf("n1 no longer serves after hostile peers: %v", err)
	}
}

// ping sends a Ping from one node to another and requires a Pong.
func (tc *tcpCluster) ping(t *testing.T, from, to string) {
	t.Helper()
	tc.mu.Lock()
	tr := tc.trs[from]
	tc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := tr.Send(to, &wire.Ping{}).Wait(ctx)
	if err != nil {
		t.Fatalf("%s -> %s: %v", from, to, err)
	}
	if _, ok := reply.(*wire.Pong); !ok {
		t.Fatalf("%s -> %s: reply %T, want Pong", from, to, reply)
	}
}

// pingBothWays sends n pings at once, half from n1 to n2, half back.
func (tc *tcpCluster) pingBothWays(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		from, to := "n1", "n2"
		if i%2 == 1 {
			from, to = to, from
		}
		wg.Go(func() { tc.ping(t, from, to) })
	}
	wg.Wait()
}

// TestOneConnectionBothWays: once n1 has dialed n2, n2's requests to n1
// go over that connection (the accepting side's ids are even), so the
// pair has one connection, not one each way; many requests both ways at
// once each get their own reply.
func TestOneConnectionBothWays(t *testing.T) {
	tc := newTCPCluster()
	key := key32(t)
	tc.start(t, "n1", key, false)
	tc.start(t, "n2", key, false)
	tc.ping(t, "n1", "n2")
	tc.ping(t, "n2", "n1")
	if in1, in2 := tc.trs["n1"].InboundForTest(), tc.trs["n2"].InboundForTest(); in1 != 0 || in2 != 1 {
		t.Fatalf("connections dialed to n1: %d, to n2: %d; want 0 and 1", in1, in2)
	}
	tc.pingBothWays(t, 200)
	if in1, in2 := tc.trs["n1"].InboundForTest(), tc.trs["n2"].InboundForTest(); in1 != 0 || in2 != 1 {
		t.Fatalf("after 200 requests: connections dialed to n1: %d, to n2: %d; want 0 and 1", in1, in2)
	}
}

// TestDialBothWaysAtOnce: two nodes that dial each other at the same
// moment may keep two connections; every request still gets its reply.
func TestDialBothWaysAtOnce(t *testing.T) {
	tc := newTCPCluster()
	key := key32(t)
	tc.start(t, "n1", key, false)
	tc.start(t, "n2", key, false)
	tc.pingBothWays(t, 100)
	if in := tc.trs["n1"].InboundForTest() + tc.trs["n2"].InboundForTest(); in < 1 || in > 2 {
		t.Fatalf("%d connections between the two nodes, want 1 or 2", in)
	}
}
