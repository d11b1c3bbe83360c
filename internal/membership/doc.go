// Package membership tells each shoal process who is in the cluster: the
// nodes (their routes, HTTP and replication addresses, and whether they
// are joining, ready or leaving) and the balancer, which takes part as an
// observer that holds nothing.
//
// It is built on hashicorp/memberlist (SWIM gossip with Lifeguard's
// suspicion and self-awareness) rather than on a failure detector of our
// own: membership by gossip has no coordinator to lose, scales past the
// handful of nodes Tomcat's multicast membership was used for, works where
// multicast does not (clouds, containers), and memberlist is the library
// Consul, Nomad and Serf have run for a decade. The cost is that some of
// what it knows reaches us only as log text; see logbridge.go.
//
// Two parts of memberlist are replaced or turned off, for the memory they
// cost at the probe and gossip rates tuned here: its network transport,
// which allocates a 64 KiB buffer for every UDP packet received
// (transport.go reads them into one buffer and hands on copies of their
// size), and its LZW compression, which allocates a 64 KiB table for
// every message sent. Three idle nodes each allocated 2.9 MB/s with both,
// 0.17 MB/s without.
//
// # Promises
//
//   - Every member gossips its Member (route, role, state, addresses) in
//     memberlist's node metadata, in a small versioned binary encoding.
//     A peer whose metadata or name does not decode is ignored and logged
//     once; hostile input never crashes the process (FuzzDecodeMeta).
//   - All gossip is encrypted and authenticated with the cluster key
//     (AES-256-GCM) and carries the label "shoal". A member with another
//     key (or none), or a memberlist cluster of another program, cannot
//     join: Join returns an error wrapping ErrKeyMismatch (or
//     ErrNotShoalCluster when the peer only hung up), and each member it
//     tried logs one warning per peer host with the reason "cluster key
//     mismatch". Unencrypted gossip (Config.Insecure) is refused unless
//     it stays on loopback.
//   - Names are unique among live members: a second process joining with
//     a live member's name is refused (ErrDuplicateName) and logged.
//   - A member that calls Leave is reported to the others as EventLeave; a
//     member that stops answering (killed, cut off) as EventDead: with the
//     presets' timing a median of 0.55 s (3 members) to 0.6 s (5 members)
//     on loopback, under 0.85 s in every run of BenchmarkDeadDetection.
//     The price: a member starved of CPU for about half a second is
//     declared dead too (it rejoins by itself when it recovers).
//   - ReportRefused declares a member dead at once on the evidence that
//     its replication address refuses connections (its process is gone):
//     milliseconds instead of memberlist's detection time, with no false
//     positive from a member that is only slow (see gone.go).
//   - OnEvent is called for every change of another member, in order, one
//     call at a time, never with a lock of ours held.
//   - Close stops gossip and waits for the package's own goroutines; it is
//     idempotent. memberlist's internal goroutines stop on their own
//     shortly after (memberlist does not wait for them).
//
// # Use
//
//	cfg := membership.DefaultLANConfig()
//	cfg.Name, cfg.HTTPAddr, cfg.ReplAddr = "n1", "10.0.0.5:8080", "10.0.0.5:7070"
//	cfg.Key, err = membership.LoadKeyFile("/etc/shoal/cluster.key")
//	cfg.OnEvent = func(ev membership.Event) { ... }
//	m, err := membership.New(cfg)
//	defer m.Close()
//	_, err = m.Join(ctx, []string{"10.0.0.5:7947", "10.0.0.6:7947"})
//	... receive sessions ...
//	err = m.SetState(membership.StateReady) // queued for gossip, does not wait
//	... on shutdown: SetState(StateLeaving), hand sessions over, then
//	err = m.Leave(2 * time.Second)
package membership
