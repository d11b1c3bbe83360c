package replication_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication"
	"github.com/shoal-go/shoal/internal/replication/memnet"
	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/sessiontest"
)

type cluster struct {
	t     *testing.T
	net   *memnet.Network
	nodes map[string]*replication.Node
	names []string
}

func newCluster(t *testing.T, owners int, async bool, names ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, net: memnet.New(), nodes: map[string]*replication.Node{}, names: names}
	for _, name := range names {
		c.add(name, owners, async)
	}
	c.setMembers(names...)
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
		c.net.Close()
	})
	return c
}

func (c *cluster) add(name string, owners int, async bool) *replication.Node {
	n := replication.NewNode(replication.Config{Self: name, Owners: owners, Async: async, Timeout: 2 * time.Second})
	n.Attach(c.net.Join(name, n))
	c.nodes[name] = n
	return n
}

// setMembers tells every live node the ready set, as membership would.
func (c *cluster) setMembers(ready ...string) {
	for _, name := range ready {
		c.nodes[name].SetMembers(ready)
	}
}

var ctx = context.Background()

func counterDelta(n int) session.Delta {
	return session.Delta{Set: []session.Attr{{Key: "count", Value: []byte(strconv.Itoa(n))}}, Access: time.Now()}
}

func count(t *testing.T, rec session.Record) int {
	t.Helper()
	for _, a := range rec.Attrs {
		if a.Key == "count" {
			n, err := strconv.Atoi(string(a.Value))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// newSession creates a session on node name, as its Manager would.
func (c *cluster) newSession(name string) string {
	c.t.Helper()
	n := c.nodes[name]
	key := n.NewKey()
	now := time.Now()
	if err := n.Create(ctx, session.Record{Key: key, Created: now, LastAccess: now, IdleTimeout: time.Hour}); err != nil {
		c.t.Fatalf("create on %s: %v (key %s owners %v copies %v)", name, err, key, n.Ring().Owners(nil, key, 2), c.copies(key))
	}
	return key
}

// increment does what /counter does on node name: load, then commit +1.
func (c *cluster) increment(name, key string) (int, error) {
	n := c.nodes[name]
	rec, err := n.Load(ctx, key)
	if err != nil {
		return 0, err
	}
	next := count(c.t, rec) + 1
	if _, err := n.Commit(ctx, key, counterDelta(next)); err != nil {
		return 0, err
	}
	return next, nil
}

// copies returns the names of the nodes holding key and their versions.
func (c *cluster) copies(key string) map[string]uint64 {
	out := map[string]uint64{}
	for name, n := range c.nodes {
		if rec, ok := n.Copies().Get(key); ok {
			out[name] = rec.Version
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clusterView is the whole cluster as one session.Store: requests go
// through n1, and expiry and counts, which each node does for the sessions
// it is primary of, are summed over the nodes (each node's Manager sweeps
// its own).
type clusterView struct {
	*replication.Node
	c *cluster
}

func (v clusterView) Expire(ctx context.Context, now time.Time, limit int) ([]session.Record, error) {
	var out []session.Record
	for _, name := range v.c.names {
		recs, err := v.c.nodes[name].Expire(ctx, now, limit-len(out))
		if err != nil {
			return out, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func (v clusterView) Len(context.Context) (int, error) {
	total := 0
	for _, n := range v.c.nodes {
		total += n.PrimaryCount()
	}
	return total, nil
}

func TestStoreConformance(t *testing.T) {
	// The conformance suite's keys are not chosen by NewKey, so most are
	// owned by nodes other than the one it talks to.
	sessiontest.RunStoreTests(t, func(t *testing.T) session.Store {
		c := newCluster(t, 2, false, "n1", "n2", "n3")
		return clusterView{c.nodes["n1"], c}
	})
}

func TestNewKeyIsLocal(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	for range 50 {
		key := c.newSession("n2")
		if p := c.nodes["n1"].Ring().Primary(key); p != "n2" {
			t.Fatalf("a session created on n2 has primary %s", p)
		}
		if got := c.copies(key); len(got) != 2 || got["n2"] != 1 {
			t.Fatalf("copies after create: %v, want 2 at version 1 incl. n2", got)
		}
	}
}

// TestRoundRobinCounter: /counter on n2, n3, n1, n2… without stickiness:
// every read sees the previous write, whichever node served it.
func TestRoundRobinCounter(t *testing.T) {
	for _, mode := range []struct {
		name   string
		owners int
	}{{"owners=2", 2}, {"owners=all", 0}} {
		t.Run(mode.name, func(t *testing.T) {
			c := newCluster(t, mode.owners, false, "n1", "n2", "n3")
			key := c.newSession("n1")
			for i := 1; i <= 30; i++ {
				got, err := c.increment(c.names[i%3], key)
				if err != nil || got != i {
					t.Fatalf("request %d on %s: count %d, %v", i, c.names[i%3], got, err)
				}
			}
			want := 2
			if mode.owners == 0 {
				want = 3
			}
			if got := c.copies(key); len(got) != want {
				t.Fatalf("copies = %v, want %d", got, want)
			}
		})
	}
}

// TestPrimaryKilled: the primary dies (kill -9) and the others keep the
// count without a gap, before membership notices (the next owner acts as
// primary) and after (re-replication restores two copies).
func TestPrimaryKilled(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	var keys []string
	for range 30 {
		keys = append(keys, c.newSession("n1"))
	}
	for _, k := range keys {
		for i := 1; i <= 3; i++ {
			if got, err := c.increment(c.names[i%3], k); err != nil || got != i {
				t.Fatalf("before kill: %d, %v", got, err)
			}
		}
	}
	c.net.Down("n1")
	// Not yet noticed: n2 and n3 still think n1 is the primary.
	for _, k := range keys {
		for i, node := range []string{"n2", "n3"} {
			if got, err := c.increment(node, k); err != nil || got != 4+i {
				t.Fatalf("after kill, before detection, on %s: %d, %v", node, got, err)
			}
		}
	}
	c.setMembers("n2", "n3")
	waitFor(t, "two copies of every session on the survivors", func() bool {
		for _, k := range keys {
			cp := c.copies(k)
			if cp["n2"] == 0 || cp["n3"] == 0 || cp["n2"] != cp["n3"] {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		if got, err := c.increment("n3", k); err != nil || got != 6 {
			t.Fatalf("after detection: %d, %v", got, err)
		}
	}
}

// TestBackupMissedWrites: a backup cut off while writes happen catches up
// when the link heals (NeedFull, then the whole record).
func TestBackupMissedWrites(t *testing.T) {
	c := newCluster(t, 0, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	c.net.Cut("n1", "n3")
	for i := 1; i <= 5; i++ {
		if got, err := c.increment("n1", key); err != nil || got != i {
			t.Fatalf("during the cut: %d, %v", got, err)
		}
	}
	if v := c.copies(key)["n3"]; v != 1 {
		t.Fatalf("n3 at version %d during the cut", v)
	}
	c.net.Heal("n1", "n3")
	if _, err := c.increment("n1", key); err != nil {
		t.Fatal(err)
	}
	got := c.copies(key)
	if got["n1"] != 7 || got["n2"] != 7 || got["n3"] != 7 {
		t.Fatalf("after heal: %v, want all at version 7", got)
	}
	if rec, _ := c.nodes["n3"].Copies().Get(key); count(t, rec) != 6 {
		t.Fatalf("n3 count = %d", count(t, rec))
	}
}

// TestPartitionHeals: concurrent writers on both sides of a partition;
// after it heals every copy converges to the newest version.
func TestPartitionHeals(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3", "n4")
	var keys []string
	for _, n := range c.names {
		for range 5 {
			keys = append(keys, c.newSession(n))
		}
	}
	c.net.Cut("n1", "n2")
	c.net.Cut("n1", "n3")
	c.net.Cut("n4", "n2")
	c.net.Cut("n4", "n3")
	for _, k := range keys {
		for _, n := range c.names {
			c.increment(n, k) // some fail: a side without any owner
		}
	}
	for _, a := range []string{"n1", "n4"} {
		for _, b := range []string{"n2", "n3"} {
			c.net.Heal(a, b)
		}
	}
	for _, k := range keys {
		if _, err := c.increment("n2", k); err != nil {
			t.Fatalf("after heal: %v", err)
		}
		// The owners converge; a node that stood in for an unreachable
		// owner during the partition may keep an older copy until the
		// next rebalance, and is never read without the owners' newer one.
		cp := c.copies(k)
		var versions []uint64
		for _, o := range c.nodes["n1"].Ring().Owners(nil, k, 2) {
			versions = append(versions, cp[o])
		}
		if slices.Min(versions) == 0 || slices.Min(versions) != slices.Max(versions) {
			t.Fatalf("%s copies after heal: %v", k, cp)
		}
	}
}

func TestJoinReceivesSessions(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	var keys []string
	for range 200 {
		keys = append(keys, c.newSession(c.names[len(keys)%3]))
	}
	c.add("n4", 2, false)
	c.setMembers("n1", "n2", "n3", "n4")
	waitFor(t, "n4 holds every session it owns, and only 2 copies of each exist", func() bool {
		for _, k := range keys {
			cp := c.copies(k)
			if len(cp) != 2 {
				return false
			}
			if c.nodes["n4"].Ring().IsOwner(k, "n4", 2) && cp["n4"] == 0 {
				return false
			}
		}
		return true
	})
	held := c.nodes["n4"].Copies().Len()
	if held < 60 || held > 140 {
		t.Fatalf("n4 holds %d copies of 200 sessions × 2 owners / 4 nodes (want ~100)", held)
	}
}

func TestRenameMovesOwners(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	c.increment("n2", key)
	newKey := c.nodes["n2"].NewKey()
	v, err := c.nodes["n2"].Commit(ctx, key, session.Delta{NewKey: newKey, Access: time.Now(), Set: []session.Attr{{Key: "user", Value: []byte("alice")}}})
	if err != nil {
		t.Fatal(err)
	}
	if v != 3 {
		t.Fatalf("version after rename = %d", v)
	}
	if got := c.copies(key); len(got) != 0 {
		t.Fatalf("old key still held: %v", got)
	}
	if got := c.copies(newKey); len(got) != 2 || got["n2"] != 3 {
		t.Fatalf("new key copies: %v", got)
	}
	rec, err := c.nodes["n3"].Load(ctx, newKey)
	if err != nil || count(t, rec) != 1 || len(rec.Attrs) != 2 {
		t.Fatalf("load renamed on n3: %+v %v", rec, err)
	}
}

func TestExpireOnPrimaryOnly(t *testing.T) {
	c := newCluster(t, 0, false, "n1", "n2", "n3")
	key := c.newSession("n2")
	later := time.Now().Add(2 * time.Hour)
	for _, name := range []string{"n1", "n3"} {
		recs, err := c.nodes[name].Expire(ctx, later, 100)
		if err != nil || len(recs) != 0 {
			t.Fatalf("backup %s expired %d sessions", name, len(recs))
		}
	}
	recs, err := c.nodes["n2"].Expire(ctx, later, 100)
	if err != nil || len(recs) != 1 {
		t.Fatalf("primary expired %d, %v", len(recs), err)
	}
	if got := c.copies(key); len(got) != 0 {
		t.Fatalf("copies after expiry: %v", got)
	}
}

// TestTakeoverRestartsIdleClock: reads went to a primary that died, so the
// backup's access time is old; the new primary must not expire the
// session at once.
func TestTakeoverRestartsIdleClock(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	backup := c.nodes["n1"].Ring().Owners(nil, key, 2)[1]
	c.net.Down("n1")
	c.setMembers("n2", "n3")
	recs, _ := c.nodes[backup].Expire(ctx, time.Now().Add(59*time.Minute), 100)
	if len(recs) != 0 {
		t.Fatal("the new primary expired a session it had just taken over")
	}
}

func TestTouchesCoalesced(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	owners := c.nodes["n1"].Ring().Owners(nil, key, 2)
	other := ""
	for _, n := range c.names {
		if !slices.Contains(owners, n) {
			other = n
		}
	}
	before := c.nodes[other].Stats.Forwarded.Load()
	at := time.Now().Add(time.Minute)
	for range 100 {
		if _, err := c.nodes[other].Commit(ctx, key, session.Delta{Access: at}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.nodes[other].Stats.Forwarded.Load() - before; got != 0 {
		t.Fatalf("100 touches sent %d forwards at once, want them gathered", got)
	}
	waitFor(t, "the primary to get the access time", func() bool {
		rec, _ := c.nodes["n1"].Copies().Get(key)
		return !rec.LastAccess.Before(at)
	})
}

func TestConcurrentCommitsOneSession(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Go(func() {
			d := session.Delta{Set: []session.Attr{{Key: fmt.Sprintf("k%02d", i), Value: []byte("v")}}, Access: time.Now()}
			_, err := c.nodes[c.names[i%3]].Commit(ctx, key, d)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cp := c.copies(key)
	if len(cp) != 2 {
		t.Fatalf("copies: %v", cp)
	}
	for name, v := range cp {
		rec, _ := c.nodes[name].Copies().Get(key)
		if v != 61 || len(rec.Attrs) != 60 {
			t.Fatalf("%s: version %d with %d attrs, want 61 and 60", name, v, len(rec.Attrs))
		}
	}
}

func TestLoadNoOwnerReachable(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	owners := c.nodes["n1"].Ring().Owners(nil, key, 2)
	var other string
	for _, n := range c.names {
		if !slices.Contains(owners, n) {
			other = n
		}
	}
	for _, o := range owners {
		c.net.Down(o)
	}
	if _, err := c.nodes[other].Load(ctx, key); err == nil || errors.Is(err, session.ErrNotFound) {
		t.Fatalf("load with every owner down = %v, want an error that is not ErrNotFound", err)
	}
}

func TestAsync(t *testing.T) {
	c := newCluster(t, 2, true, "n1", "n2", "n3")
	key := c.newSession("n1")
	for i := 1; i <= 10; i++ {
		if got, err := c.increment("n1", key); err != nil || got != i {
			t.Fatalf("%d, %v", got, err)
		}
	}
	waitFor(t, "the backup to catch up", func() bool {
		cp := c.copies(key)
		return len(cp) == 2 && cp["n1"] == 11 && slices.Min([]uint64{cp["n1"], cp["n2"] + cp["n3"]}) == 11
	})
}

// TestStaleCopyAfterTakeover: a node that becomes primary holding an old
// copy (pushed by a rebalance pass that read it before later writes) must
// build on the newest version the other owners hold, not on its own.
func TestStaleCopyAfterTakeover(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3", "n4")
	three := []string{"n1", "n2", "n3"}
	c.setMembers(three...) // n1..n3 do not know n4 yet
	c.nodes["n4"].SetMembers([]string{"n1", "n2", "n3", "n4"})
	// A key n1 owns now and n4 will own.
	var key string
	for range 10000 {
		k := c.nodes["n1"].NewKey()
		if c.nodes["n4"].Ring().Primary(k) == "n4" {
			key = k
			break
		}
	}
	if key == "" {
		t.Fatal("no key moves from n1 to n4")
	}
	now := time.Now()
	if err := c.nodes["n1"].Create(ctx, session.Record{Key: key, Created: now, LastAccess: now, IdleTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		c.increment("n1", key)
	}
	stale, _ := c.nodes["n1"].Copies().Get(key)
	c.nodes["n4"].Handle(ctx, "n1", &wire.Records{Recs: []session.Record{stale}}) // the old push
	for i := 3; i <= 5; i++ {
		if got, err := c.increment("n1", key); err != nil || got != i {
			t.Fatalf("on n1: %d, %v", got, err)
		}
	}
	got, err := c.increment("n4", key)
	if err != nil || got != 6 {
		t.Fatalf("first request on the new primary n4: count %d, %v; want 6 (built on the newest copy, not the stale one)", got, err)
	}
}

func TestConflictsCounted(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	d := session.Delta{Set: []session.Attr{{Key: "a", Value: []byte("1")}}, Access: time.Now(), BaseVersion: 1}
	for i := range 3 { // three requests that all read version 1
		if _, err := c.nodes[c.names[i]].Commit(ctx, key, d); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, n := range c.nodes {
		total += n.Stats.Conflicts.Load()
	}
	if total != 2 {
		t.Fatalf("conflicts = %d, want 2 (the 2nd and 3rd commit of version-1 reads)", total)
	}
}

func TestPullBeforeReady(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	var keys []string
	for i := range 300 {
		keys = append(keys, c.newSession(c.names[i%3]))
	}
	n4 := c.add("n4", 2, false)
	got, err := n4.Pull(ctx, []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	c.setMembers("n1", "n2", "n3", "n4")
	for _, k := range keys {
		if c.nodes["n1"].Ring().IsOwner(k, "n4", 2) {
			want++
			if _, ok := n4.Copies().Get(k); !ok {
				t.Fatalf("n4 will own %s but did not receive it", k)
			}
		}
	}
	if got != want || want < 100 || want > 200 {
		t.Fatalf("pulled %d sessions, want %d (~150 of 300×2/4)", got, want)
	}
}

// TestTwoNodesOneKilled: in a two-node cluster whose other node was just
// killed, writes go on (kept on the survivor, counted) instead of failing
// until the death is noticed; with a third node, a stand-in takes them.
func TestTwoNodesOneKilled(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2")
	key := c.newSession("n1")
	c.net.Down("n2")
	for i := 1; i <= 3; i++ {
		if got, err := c.increment("n1", key); err != nil || got != i {
			t.Fatalf("with n2 killed: %d, %v", got, err)
		}
	}
	if got := c.nodes["n1"].Stats.Unreplicated.Load(); got != 3 {
		t.Fatalf("unreplicated = %d, want 3", got)
	}

	c3 := newCluster(t, 2, false, "n1", "n2", "n3")
	key = c3.newSession("n1")
	backup := c3.nodes["n1"].Ring().Owners(nil, key, 2)[1]
	c3.net.Down(backup)
	if got, err := c3.increment("n1", key); err != nil || got != 1 {
		t.Fatalf("with the backup killed: %d, %v", got, err)
	}
	if c3.nodes["n1"].Stats.StandIns.Load() != 1 || c3.nodes["n1"].Stats.Unreplicated.Load() != 0 {
		t.Fatalf("stand-ins %d, unreplicated %d: want the third node to stand in", c3.nodes["n1"].Stats.StandIns.Load(), c3.nodes["n1"].Stats.Unreplicated.Load())
	}
}

// TestStrayCopiesGoHome: a copy held by a node that does not own the
// session (a stand-in's) reaches the owners and leaves the stand-in.
func TestStrayCopiesGoHome(t *testing.T) {
	c := newCluster(t, 2, false, "n1", "n2", "n3")
	key := c.newSession("n1")
	backup := c.nodes["n1"].Ring().Owners(nil, key, 2)[1]
	c.net.Down(backup)
	c.increment("n1", key) // the stand-in gets version 2
	var standIn string
	for _, n := range c.names {
		if n != "n1" && n != backup {
			standIn = n
		}
	}
	if v := c.copies(key)[standIn]; v != 2 {
		t.Fatalf("stand-in %s holds version %d, want 2", standIn, v)
	}
	c.net.Join(backup, c.nodes[backup]) // reachable again, no membership change
	c.nodes[standIn].SendStraysForTest()
	if _, ok := c.nodes[standIn].Copies().Get(key); ok {
		t.Fatal("the stand-in kept a copy it does not own after the primary took it")
	}
	if v := c.copies(key)["n1"]; v != 2 {
		t.Fatalf("primary at version %d", v)
	}
}
