package replication_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/internal/replication/wire"
)

// TestTCPTraffic: what one node counts as sent to a peer is what the peer
// counts as received from it, bytes and messages, and the changes' acks
// are timed.
func TestTCPTraffic(t *testing.T) {
	tc := newTCPCluster()
	key := key32(t)
	names := []string{"n1", "n2", "n3"}
	for _, n := range names {
		tc.start(t, n, key, false)
	}
	for _, n := range names {
		tc.nodes[n].SetMembers(names)
	}
	c := &cluster{t: t, nodes: tc.nodes, names: names}
	k := c.newSession("n1")
	for i := 1; i <= 20; i++ {
		if _, err := c.increment(names[i%3], k); err != nil {
			t.Fatal(err)
		}
	}
	traffic := func(node, peer string) replication.PeerTraffic {
		for _, p := range tc.trs[node].Traffic() {
			if p.Peer == peer {
				return p
			}
		}
		return replication.PeerTraffic{}
	}
	// Replies may still be on their way: wait until both sides agree.
	deadline := time.Now().Add(5 * time.Second)
	for {
		agree := true
		for _, a := range names {
			for _, b := range names {
				if a == b {
					continue
				}
				ab, ba := traffic(a, b), traffic(b, a)
				if ab.MessagesSent != ba.MessagesReceived || ab.BytesSent != ba.BytesReceived {
					agree = false
				}
			}
		}
		if agree {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes' counts never agreed: n1→n2 %+v, n2→n1 %+v", traffic("n1", "n2"), traffic("n2", "n1"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, peer := range []string{"n2", "n3"} {
		p := traffic("n1", peer)
		if p.MessagesSent == 0 || p.MessagesReceived == 0 || p.BytesSent < p.MessagesSent || p.BytesReceived == 0 {
			t.Errorf("n1 → %s: %+v, want traffic both ways", peer, p)
		}
	}
	// n1 is the session's primary: it sent the changes and timed their acks.
	acks := traffic("n1", "n2").Ack.Count + traffic("n1", "n3").Ack.Count
	if acks == 0 {
		t.Errorf("n1 timed no acknowledgement of its changes")
	}
	if tr := tc.trs["n1"].Refusals(); len(tr) != 0 {
		t.Errorf("refusals in a healthy cluster: %+v", tr)
	}
}

// TestTCPRefusalsCounted: a peer with another key is logged once but
// counted every time.
func TestTCPRefusalsCounted(t *testing.T) {
	tc := newTCPCluster()
	tc.start(t, "n1", key32(t), false)
	tc.start(t, "n2", key32(t), false)
	for range 3 {
		_, err := tc.trs["n1"].Send("n2", &wire.Ping{}).Wait(ctx)
		if !errors.Is(err, replication.ErrUnreachable) {
			t.Fatalf("ping across keys = %v", err)
		}
		time.Sleep(250 * time.Millisecond) // past RetryAfter: dial again
	}
	for _, n := range []string{"n1", "n2"} {
		var found bool
		deadline := time.Now().Add(5 * time.Second)
		for !found && time.Now().Before(deadline) {
			for _, r := range tc.trs[n].Refusals() {
				if r.Reason == "cluster key mismatch" && r.Remote == "127.0.0.1" && r.Count >= 1 && !r.First.IsZero() {
					found = true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !found {
			t.Errorf("%s: refusals %+v, want a cluster key mismatch from 127.0.0.1", n, tc.trs[n].Refusals())
		}
	}
	if r := tc.trs["n1"].Refusals(); len(r) == 1 && r[0].Count < 3 {
		t.Errorf("n1 counted %d refusals of 3 dials", r[0].Count)
	}
}
