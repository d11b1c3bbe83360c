package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/placement"
	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/session"
)

// Config configures a Node.
type Config struct {
	// Self is this node's name (its route), as the other nodes know it.
	Self string
	// Owners is how many nodes hold each session, the primary included.
	// Zero or negative: every node (all-to-all, for 2 to 4 nodes).
	Owners int
	// Async sends changes to the backups without waiting for them (a
	// node that dies loses its last changes); the default waits until
	// every live owner has applied a change before the commit returns.
	Async bool
	// MaxAsync bounds the async writes not yet acknowledged by the
	// backups; a commit beyond it waits. Default 256.
	MaxAsync int
	// Settle is how long after a membership change other nodes may still
	// place sessions by the previous membership (gossip takes time to
	// spread): for that long a node trusts no copy of its own, and reads
	// the newest of the owners under the previous and the new placement.
	// Default 2 s.
	Settle time.Duration
	// Timeout bounds one request to a peer. Default 5 s.
	Timeout time.Duration
	// BatchSize is how many sessions one Records message carries when
	// sessions move between nodes. Default 256.
	BatchSize int
	// Logger receives the node's log lines. Default: discard.
	Logger *slog.Logger
	// Admit, if set, says whether a node that asks to join (Pull) is a
	// live member in this node's view. A joiner that is not (the cluster
	// has not accepted it yet) is refused, so it does not report ready
	// while the others ignore it.
	Admit func(name string) bool
}

// Stats are a Node's counters since it started.
type Stats struct {
	Forwarded   atomic.Int64 // commits sent to another node's primary
	Fetched     atomic.Int64 // sessions fetched from an owner
	FullSends   atomic.Int64 // whole records sent to a backup that missed a version
	Pushed      atomic.Int64 // sessions sent to new owners after a membership change
	Unreachable atomic.Int64 // requests to a peer that could not be reached
	Takeovers   atomic.Int64 // sessions this node became primary of after a change
	StandIns    atomic.Int64 // writes handed to a stand-in because no owner could be reached
	// Unreplicated counts writes no other node could take (every other
	// node unreachable): they live on this node alone.
	Unreplicated atomic.Int64
	// Conflicts counts commits made on a session that another request
	// changed after this one read it (concurrent requests of one session):
	// both changes are kept per attribute, the later wins on a shared one.
	Conflicts atomic.Int64
}

// Node is one node's replication engine: a session.Store whose sessions
// live on their owners. Attach a Transport, then use it; SetMembers tells
// it who is ready.
type Node struct {
	cfg    Config
	log    *slog.Logger
	copies *Copies
	tr     Transport

	async   chan struct{} // one token per async write not yet acknowledged
	leaving atomic.Bool   // set by Handover: peers' writes are refused

	// onCopyDestroyed is WatchCopiesDestroyed's fn, or nil.
	onCopyDestroyed atomic.Pointer[func(session.Record, session.Reason)]

	touchMu sync.Mutex           // protects touches
	touches map[string]time.Time // access times to send to primaries elsewhere

	short shortCopies // sessions whose last write missed an owner

	mu   sync.Mutex // serialises SetMembers; protects placed
	ring atomic.Pointer[placement.Ring]
	// prev is the ring before the last change, and unsettledUntil (Unix
	// ns) the end of the time after that change when other nodes may still
	// place sessions by prev: reads then ask the owners under both.
	prev           atomic.Pointer[placement.Ring]
	unsettledUntil atomic.Int64
	placed         *placement.Ring // the ring the last rebalance pass finished for
	kick           chan struct{}
	done           chan struct{}
	wg             sync.WaitGroup
	stopOnce       sync.Once

	Stats Stats
}

var (
	_ session.Store        = (*Node)(nil)
	_ session.KeyGenerator = (*Node)(nil)
	_ Handler              = (*Node)(nil)
)

// NewNode returns a Node that knows only itself; SetMembers adds the
// others. Attach a transport before using it; Close stops it.
func NewNode(cfg Config) *Node {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.MaxAsync <= 0 {
		cfg.MaxAsync = 256
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, copies: NewCopies(), kick: make(chan struct{}, 1), done: make(chan struct{}),
		touches: map[string]time.Time{}, async: make(chan struct{}, cfg.MaxAsync)}
	r := placement.New([]string{cfg.Self})
	n.ring.Store(r)
	n.prev.Store(r)
	n.placed = r
	return n
}

// Attach sets the transport the node sends with and starts the goroutine
// that moves sessions after membership changes. Call it once, before the
// node is used.
func (n *Node) Attach(t Transport) {
	n.tr = t
	n.wg.Add(1)
	go n.rebalanceLoop()
}

// Close stops the node's goroutine. It is idempotent.
func (n *Node) Close() error {
	n.stopOnce.Do(func() { close(n.done) })
	n.wg.Wait()
	return nil
}

// Copies returns the node's copies (for tests and metrics).
func (n *Node) Copies() *Copies { return n.copies }

// Ring returns the placement the node uses now.
func (n *Node) Ring() *placement.Ring { return n.ring.Load() }

func (n *Node) owners(key string) []string {
	return n.ring.Load().Owners(make([]string, 0, 4), key, n.cfg.Owners)
}

// SetMembers sets the nodes that hold sessions (the ready members,
// including this one when it is ready). Sessions this node becomes
// primary of get a fresh access time, so that one whose reads went to a
// dead primary is not expired for it; then the rebalance goroutine sends
// sessions to owners that lack them.
func (n *Node) SetMembers(ready []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.ring.Load()
	r := placement.New(ready)
	if slices.Equal(old.Members(), r.Members()) {
		return
	}
	n.prev.Store(old)
	n.ring.Store(r)
	now := time.Now()
	n.unsettledUntil.Store(now.Add(n.cfg.Settle).UnixNano())
	n.copies.Range(func(rec session.Record) bool {
		if r.Primary(rec.Key) == n.cfg.Self && old.Primary(rec.Key) != n.cfg.Self {
			n.copies.Touch(rec.Key, now)
			n.copies.Unverify(rec.Key)
			n.Stats.Takeovers.Add(1)
		}
		return true
	})
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// NewKey implements session.KeyGenerator: a key this node is primary of.
func (n *Node) NewKey() string { return n.ring.Load().NewOwnedKey(n.cfg.Self, session.NewBase) }

// RouteAlive implements session.RouteChecker.
func (n *Node) RouteAlive(route string) bool { return n.ring.Load().Has(route) }

func (n *Node) call(ctx context.Context, peer string, req wire.Message) (wire.Message, error) {
	reply, err := waitFor(ctx, n.tr.Send(peer, req), n.cfg.Timeout)
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			n.Stats.Unreachable.Add(1)
		}
		return nil, fmt.Errorf("%s to %s: %w", req.Type(), peer, err)
	}
	return reply, nil
}

// ackErr turns a peer's Ack into an error, nil for StatusOK.
func ackErr(peer string, reply wire.Message) (*wire.Ack, error) {
	ack, ok := reply.(*wire.Ack)
	if !ok {
		return nil, fmt.Errorf("replication: %s answered %T, want an Ack", peer, reply)
	}
	switch ack.Status {
	case wire.StatusOK:
		return ack, nil
	case wire.StatusNotFound:
		return ack, session.ErrNotFound
	case wire.StatusExists:
		return ack, session.ErrExists
	}
	return ack, fmt.Errorf("replication: %s answered %s: %s", peer, ack.Status, ack.Message)
}

// Load implements session.Store: the local copy if this node is an owner
// and has one, else the first owner's that answers. An access time this
// node gathered but has not sent yet is reflected.
func (n *Node) Load(ctx context.Context, key string) (session.Record, error) {
	rec, err := n.load(ctx, key)
	if err == nil {
		n.touchMu.Lock()
		if at, ok := n.touches[key]; ok && at.After(rec.LastAccess) {
			rec.LastAccess = at
		}
		n.touchMu.Unlock()
	}
	return rec, err
}

func (n *Node) load(ctx context.Context, key string) (session.Record, error) {
	owners := n.owners(key)
	if n.trusted(key, owners) {
		if rec, ok := n.copies.Get(key); ok {
			return rec, nil
		}
	}
	return n.newest(ctx, key, n.readOwners(key, owners))
}

// trusted reports whether this node may serve key from its own copy
// without asking the other owners: it is the primary, its copy is not
// marked unverified, and the membership has settled.
func (n *Node) trusted(key string, owners []string) bool {
	return len(owners) > 0 && owners[0] == n.cfg.Self && !n.copies.Unverified(key) &&
		time.Now().UnixNano() >= n.unsettledUntil.Load()
}

// readOwners returns the nodes to ask for the newest copy of key: its
// owners, and while the membership settles, its owners under the previous
// placement too (a node that has not seen the change yet writes there).
func (n *Node) readOwners(key string, owners []string) []string {
	if time.Now().UnixNano() >= n.unsettledUntil.Load() {
		return owners
	}
	out := slices.Clone(owners)
	for _, o := range n.prev.Load().Owners(nil, key, n.cfg.Owners) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// newest asks every other owner for its copy, in parallel, and returns
// the newest of theirs and this node's own: a copy can be behind after a
// membership change (a node took over, or received an old copy), and the
// newest one holds every acknowledged write. If this node is the primary,
// it keeps the result as its verified copy. It returns ErrNotFound only if
// every owner answered that it has none.
func (n *Node) newest(ctx context.Context, key string, owners []string) (session.Record, error) {
	best, found := n.copies.Get(key)
	type answer struct {
		rec   session.Record
		found bool
		err   error
	}
	answers := make(chan answer, len(owners))
	asked := 0
	for _, o := range owners {
		if o == n.cfg.Self {
			continue
		}
		asked++
		go func(peer string) {
			reply, err := n.call(ctx, peer, &wire.Fetch{Key: key})
			if err != nil {
				answers <- answer{err: err}
				return
			}
			recs, ok := reply.(*wire.Records)
			if !ok {
				answers <- answer{err: fmt.Errorf("replication: %s answered a Fetch with %T", peer, reply)}
				return
			}
			if len(recs.Recs) == 1 {
				answers <- answer{rec: recs.Recs[0], found: true}
				return
			}
			answers <- answer{}
		}(o)
	}
	var failed error
	for range asked {
		a := <-answers
		switch {
		case a.err != nil:
			failed = a.err
		case a.found:
			n.Stats.Fetched.Add(1)
			if !found || a.rec.Version > best.Version {
				best, found = a.rec, true
			}
		}
	}
	if found {
		if n.ring.Load().Primary(key) == n.cfg.Self && failed == nil {
			n.copies.Put(best)
			n.copies.Verify(key)
		}
		return best, nil
	}
	if failed != nil {
		// An owner that could not answer may hold it: saying "not found"
		// would log its user out.
		return session.Record{}, fmt.Errorf("replication: load: an owner did not answer: %w", failed)
	}
	return session.Record{}, session.ErrNotFound
}

// Create implements session.Store: every owner gets the new session.
func (n *Node) Create(ctx context.Context, rec session.Record) error {
	rec.Version = 1
	var pend []peerPending
	for _, o := range n.owners(rec.Key) {
		if o == n.cfg.Self {
			if err := n.copies.Create(rec); err != nil {
				return err
			}
			continue
		}
		pend = append(pend, peerPending{o, n.tr.Send(o, &wire.Create{Rec: rec})})
	}
	err := n.await(ctx, rec.Key, pend)
	if errors.Is(err, session.ErrExists) {
		return session.ErrExists
	}
	return err
}

type peerPending struct {
	peer string
	p    Pending
}

// await waits for the owners' acks (sync mode) or lets them go (async).
// An owner that cannot be reached (killed, not yet declared dead) does not
// fail the write as long as another node holds it (see awaitSync); one that
// missed a version gets the whole record.
func (n *Node) await(ctx context.Context, key string, pend []peerPending) error {
	if n.cfg.Async {
		if len(pend) > 0 {
			// Bounded: when MaxAsync writes are still unacknowledged, the
			// next one waits, so the loss window (and memory) stays bounded
			// however fast the writers are.
			select {
			case n.async <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-n.async }()
				n.awaitSync(context.Background(), key, pend)
			}()
		}
		return nil
	}
	return n.awaitSync(ctx, key, pend)
}

// ErrNoReplica is returned for a write that no other node acknowledged
// although the cluster has other nodes: in sync mode it is not
// acknowledged to the client, since this node alone could lose it.
var ErrNoReplica = errors.New("replication: no other node holds the change")

// awaitSync waits for the owners' acks. A write must reach at least one
// other node: if every other owner is unreachable, the whole record goes
// to the next node in the session's placement order, which is the node
// that becomes its backup once the dead owner is removed from the ring.
func (n *Node) awaitSync(ctx context.Context, key string, pend []peerPending) error {
	var firstErr error
	acked := 0
	for _, pp := range pend {
		reply, err := waitFor(ctx, pp.p, n.cfg.Timeout)
		if err != nil {
			if errors.Is(err, ErrUnreachable) {
				n.Stats.Unreachable.Add(1)
				n.log.Debug("owner unreachable", slog.String("peer", pp.peer), slog.String("session", session.Fingerprint(key)), slog.Any("err", err))
				continue
			}
			firstErr = cmpErr(firstErr, fmt.Errorf("replicate to %s: %w", pp.peer, err))
			continue
		}
		ack, err := ackErr(pp.peer, reply)
		if ack != nil && ack.Status == wire.StatusRefused {
			continue // leaving: not an owner any more, like an unreachable one
		}
		if ack != nil && ack.Status == wire.StatusNeedFull {
			err = n.sendFull(ctx, pp.peer, key)
		}
		if err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("replicate to %s: %w", pp.peer, err))
			continue
		}
		acked++
	}
	if acked == len(pend) {
		n.short.clear(key)
	} else {
		n.short.mark(key)
	}
	if firstErr != nil || acked > 0 || len(pend) == 0 {
		return firstErr
	}
	return n.standIn(ctx, key, pend)
}

// standIn hands the whole record to the first node, in key's placement
// order, that is neither this node nor an owner that could not be reached.
// If no other node answers at all (a two-node cluster whose other node was
// just killed), the write stays on this node alone, as it will once the
// dead node is declared dead: refusing it would fail every request until
// then, and no second death is being survived either way. That case is
// logged and counted (Stats.Unreplicated).
func (n *Node) standIn(ctx context.Context, key string, tried []peerPending) error {
	rec, ok := n.copies.Get(key)
	if !ok {
		return fmt.Errorf("%w: every owner of %s is unreachable", ErrNoReplica, session.Fingerprint(key))
	}
	for _, cand := range n.ring.Load().Owners(nil, key, 0) {
		if cand == n.cfg.Self || slices.ContainsFunc(tried, func(pp peerPending) bool { return pp.peer == cand }) {
			continue
		}
		reply, err := n.call(ctx, cand, &wire.Records{Recs: []session.Record{rec}, Last: true})
		if err != nil {
			continue
		}
		if _, err := ackErr(cand, reply); err != nil {
			continue
		}
		n.Stats.StandIns.Add(1)
		return nil
	}
	if n.Stats.Unreplicated.Add(1)%1000 == 1 {
		n.log.Warn("no other node reachable: changes are kept on this node only until one is",
			slog.String("session", session.Fingerprint(key)), slog.Int64("writes_so_far", n.Stats.Unreplicated.Load()))
	}
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// sendFull sends this node's whole copy of key to peer.
func (n *Node) sendFull(ctx context.Context, peer, key string) error {
	rec, ok := n.copies.Get(key)
	if !ok {
		return nil // deleted meanwhile
	}
	n.Stats.FullSends.Add(1)
	reply, err := n.call(ctx, peer, &wire.Records{Recs: []session.Record{rec}, Last: true})
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			return nil
		}
		return err
	}
	_, err = ackErr(peer, reply)
	return err
}

// Commit implements session.Store. The session's primary orders its
// writes: on the primary the change is applied and sent to the backups;
// elsewhere it is forwarded to the primary. A primary that cannot be
// reached (killed, not yet declared dead) is skipped, and the next owner
// acts as primary from its copy, which holds every acknowledged write.
func (n *Node) Commit(ctx context.Context, key string, d session.Delta) (uint64, error) {
	if d.NewKey != "" {
		return n.rename(ctx, key, d)
	}
	owners := n.owners(key)
	if d.TouchOnly() {
		return n.touch(key, d.Access, owners)
	}
	var lastErr error
	for _, o := range owners {
		if o == n.cfg.Self {
			return n.commitPrimary(ctx, key, d, owners)
		}
		n.Stats.Forwarded.Add(1)
		reply, err := n.call(ctx, o, &wire.Forward{Key: key, Delta: d})
		if errors.Is(err, ErrUnreachable) {
			lastErr = err
			continue
		}
		if err != nil {
			return 0, err
		}
		ack, err := ackErr(o, reply)
		if ack != nil && ack.Status == wire.StatusRefused {
			lastErr = err
			continue
		}
		if err != nil {
			return 0, err
		}
		return ack.Version, nil
	}
	return 0, fmt.Errorf("replication: commit: no owner reachable: %w", lastErr)
}

// touchInterval is how often a node sends the access times it gathered
// for sessions whose primary is elsewhere: one message per session per
// interval, however many requests read it.
const touchInterval = time.Second

// touch records a request's access time. Access times stay with the
// primary, which alone decides expiry (a node that takes a session over
// restarts its idle clock in SetMembers), so they are not replicated to
// backups; a node that is not the primary updates its own copy, if any,
// and sends the primary the latest time once per touchInterval.
func (n *Node) touch(key string, at time.Time, owners []string) (uint64, error) {
	v, ok := n.copies.Touch(key, at)
	if len(owners) > 0 && owners[0] == n.cfg.Self {
		if !ok {
			return 0, session.ErrNotFound
		}
		return v, nil
	}
	n.touchMu.Lock()
	if prev, queued := n.touches[key]; !queued || at.After(prev) {
		n.touches[key] = at
	}
	n.touchMu.Unlock()
	return v, nil
}

// flushTouches sends the gathered access times to the sessions' primaries.
func (n *Node) flushTouches() {
	n.touchMu.Lock()
	pending := n.touches
	n.touches = make(map[string]time.Time, len(pending))
	n.touchMu.Unlock()
	for key, at := range pending {
		owners := n.owners(key)
		if len(owners) == 0 || owners[0] == n.cfg.Self {
			n.copies.Touch(key, at)
			continue
		}
		// Fire and forget: a lost access time only shortens a session's
		// life by touchInterval at most.
		n.tr.Send(owners[0], &wire.Forward{Key: key, Delta: session.Delta{Access: at}})
	}
}

// commitPrimary applies d as the session's (acting) primary and sends it
// to the other owners.
func (n *Node) commitPrimary(ctx context.Context, key string, d session.Delta, owners []string) (uint64, error) {
	var pend []peerPending
	send := func(v uint64, _ *session.Record) {
		if d.BaseVersion != 0 && d.BaseVersion < v-1 {
			n.Stats.Conflicts.Add(1)
		}
		pend = pend[:0]
		for _, o := range owners {
			if o != n.cfg.Self {
				pend = append(pend, peerPending{o, n.tr.Send(o, &wire.Apply{Key: key, Delta: d, Version: v})})
			}
		}
	}
	if _, have := n.copies.Get(key); !have || !n.trusted(key, owners) {
		// A primary without a copy it can trust (it took the session over,
		// the copy came by a rebalance, or the membership is settling):
		// take the newest from the owners first, or the write would build
		// on an old version.
		rec, err := n.newest(ctx, key, n.readOwners(key, owners))
		if err != nil {
			return 0, err
		}
		// An acting primary (the primary refused or is unreachable) may
		// hold no copy: build on the newest found.
		n.copies.Put(rec)
	}
	v, err := n.copies.Commit(key, d, send)
	if err != nil {
		return 0, err
	}
	return v, n.await(ctx, key, pend)
}

// rename moves a session to d.NewKey (RenewID): the new key has other
// owners, so the session is created there (with d applied) and then
// deleted under the old key. If this fails half-way, the old id still
// works: the client has not seen the new one.
func (n *Node) rename(ctx context.Context, key string, d session.Delta) (uint64, error) {
	rec, err := n.Load(ctx, key)
	if err != nil {
		return 0, err
	}
	next := session.ApplyDelta(rec, d)
	next.Version = rec.Version + 1
	var pend []peerPending
	for _, o := range n.owners(next.Key) {
		if o == n.cfg.Self {
			if _, taken := n.copies.Get(next.Key); taken {
				return 0, session.ErrExists
			}
			n.copies.Put(next)
			continue
		}
		pend = append(pend, peerPending{o, n.tr.Send(o, &wire.Create{Rec: next})})
	}
	if err := n.awaitSync(ctx, next.Key, pend); err != nil {
		return 0, err
	}
	if err := n.Delete(ctx, key); err != nil {
		n.log.Warn("renamed session: old copy not deleted", slog.String("session", session.Fingerprint(key)), slog.Any("err", err))
	}
	return next.Version, nil
}

// Delete implements session.Store: every owner drops the session.
func (n *Node) Delete(ctx context.Context, key string) error {
	n.copies.Delete(key, 0)
	var pend []peerPending
	for _, o := range n.owners(key) {
		if o != n.cfg.Self {
			pend = append(pend, peerPending{o, n.tr.Send(o, &wire.Delete{Key: key})})
		}
	}
	return n.await(ctx, key, pend)
}

// Expire implements session.Store: the primary decides expiry, drops its
// copy and tells the other owners, so listeners fire once in the cluster.
func (n *Node) Expire(ctx context.Context, now time.Time, limit int) ([]session.Record, error) {
	r := n.ring.Load()
	recs := n.copies.Expire(now, limit, func(key string) bool { return r.Primary(key) == n.cfg.Self })
	byPeer := map[string][]string{}
	for _, rec := range recs {
		for _, o := range r.Owners(nil, rec.Key, n.cfg.Owners) {
			if o != n.cfg.Self {
				byPeer[o] = append(byPeer[o], rec.Key)
			}
		}
	}
	for peer, keys := range byPeer {
		for chunk := range slices.Chunk(keys, wire.MaxBatch) {
			if _, err := n.call(ctx, peer, &wire.Expired{Keys: chunk}); err != nil {
				n.log.Debug("expired: peer not told", slog.String("peer", peer), slog.Any("err", err))
			}
		}
	}
	return recs, nil
}

// WatchCopiesDestroyed implements session.CopyWatcher: fn is called for
// each copy this node drops because another node expired (ReasonExpired)
// or deleted (ReasonInvalidated) the session. It runs on the replication
// connection's goroutine, so it must not block for long. A later call
// replaces fn; nil stops the calls.
func (n *Node) WatchCopiesDestroyed(fn func(rec session.Record, why session.Reason)) {
	if fn == nil {
		n.onCopyDestroyed.Store(nil)
		return
	}
	n.onCopyDestroyed.Store(&fn)
}

func (n *Node) copyDestroyed(rec session.Record, why session.Reason) {
	if fn := n.onCopyDestroyed.Load(); fn != nil {
		(*fn)(rec, why)
	}
}

// Len implements session.Store: the sessions this node holds a copy of,
// primary or backup (Config.MaxSessions then bounds a node's memory).
func (n *Node) Len(context.Context) (int, error) { return n.copies.Len(), nil }

// PrimaryCount returns how many of its copies this node is primary of: the
// sum over the nodes is the number of sessions in the cluster. It walks
// every copy.
func (n *Node) PrimaryCount() int {
	r := n.ring.Load()
	count := 0
	n.copies.Range(func(rec session.Record) bool {
		if r.Primary(rec.Key) == n.cfg.Self {
			count++
		}
		return true
	})
	return count
}

// Handle implements Handler: what a node does with its peers' requests.
func (n *Node) Handle(ctx context.Context, from string, req wire.Message) wire.Message {
	switch m := req.(type) {
	case *wire.Forward:
		if n.leaving.Load() {
			// Leaving (or not ready): the sender tries the next owner,
			// which holds what this node handed over.
			return &wire.Ack{Status: wire.StatusRefused, Message: "not serving sessions"}
		}
		if m.Delta.TouchOnly() {
			if v, ok := n.copies.Touch(m.Key, m.Delta.Access); ok {
				return &wire.Ack{Status: wire.StatusOK, Version: v}
			}
			return &wire.Ack{Status: wire.StatusNotFound}
		}
		// Only a forwarded commit waits (on the backups): the other
		// requests are answered at once and need no deadline, or a
		// timer each.
		ctx, cancel := context.WithTimeout(ctx, 2*n.cfg.Timeout)
		defer cancel()
		v, err := n.commitPrimary(ctx, m.Key, m.Delta, n.owners(m.Key))
		return ackFor(v, err)
	case *wire.Apply:
		if n.leaving.Load() {
			return &wire.Ack{Status: wire.StatusRefused, Message: "leaving"}
		}
		switch n.copies.Apply(m.Key, m.Delta, m.Version) {
		case Applied, Duplicate:
			return &wire.Ack{Status: wire.StatusOK, Version: m.Version}
		default:
			return &wire.Ack{Status: wire.StatusNeedFull}
		}
	case *wire.Create:
		if n.leaving.Load() {
			return &wire.Ack{Status: wire.StatusRefused, Message: "leaving"}
		}
		if cur, taken := n.copies.Get(m.Rec.Key); taken && !sameRecord(cur, m.Rec) {
			// A copy equal to the new one came first by another way (a
			// rebalance pass racing the create): not a collision.
			return &wire.Ack{Status: wire.StatusExists}
		}
		n.copies.Put(m.Rec)
		return &wire.Ack{Status: wire.StatusOK, Version: m.Rec.Version}
	case *wire.Records:
		for _, rec := range m.Recs {
			if n.copies.Put(rec) {
				// Sent by a rebalance pass or a leaving node: it may be
				// older than another owner's copy.
				n.copies.Unverify(rec.Key)
			}
		}
		return &wire.Ack{Status: wire.StatusOK}
	case *wire.Fetch:
		if rec, ok := n.copies.Get(m.Key); ok {
			return &wire.Records{Recs: []session.Record{rec}, Last: true}
		}
		return &wire.Records{Last: true}
	case *wire.Delete:
		if rec, ok := n.copies.Remove(m.Key, m.Version); ok {
			n.copyDestroyed(rec, session.ReasonInvalidated)
		}
		return &wire.Ack{Status: wire.StatusOK}
	case *wire.Expired:
		for _, k := range m.Keys {
			if rec, ok := n.copies.Remove(k, 0); ok {
				n.copyDestroyed(rec, session.ReasonExpired)
			}
		}
		return &wire.Ack{Status: wire.StatusOK}
	case *wire.Ping:
		return &wire.Pong{}
	case *wire.Pull:
		return n.servePull(m)
	}
	return &wire.Ack{Status: wire.StatusError, Message: fmt.Sprintf("unexpected %s from %s", req.Type(), from)}
}

func ackFor(v uint64, err error) *wire.Ack {
	switch {
	case err == nil:
		return &wire.Ack{Status: wire.StatusOK, Version: v}
	case errors.Is(err, session.ErrNotFound):
		return &wire.Ack{Status: wire.StatusNotFound}
	case errors.Is(err, session.ErrExists):
		return &wire.Ack{Status: wire.StatusExists}
	}
	return &wire.Ack{Status: wire.StatusError, Message: err.Error()}
}

// sendRecords sends recs to peer in batches of BatchSize, each
// acknowledged before the next is sent, and calls sent with each batch the
// peer acknowledged. It stops at the first failure and returns it.
func (n *Node) sendRecords(ctx context.Context, peer string, recs []session.Record, sent func(batch []session.Record)) error {
	for chunk := range slices.Chunk(recs, n.cfg.BatchSize) {
		reply, err := n.call(ctx, peer, &wire.Records{Recs: chunk})
		if err == nil {
			_, err = ackErr(peer, reply)
		}
		if err != nil {
			return err
		}
		if sent != nil {
			sent(chunk)
		}
	}
	return nil
}

// pushed counts a batch moved to its new owners.
func (n *Node) pushed(batch []session.Record) { n.Stats.Pushed.Add(int64(len(batch))) }

// Handover sends every session this node holds to its owners under the
// current ring, and waits: a node leaving the cluster calls it after
// SetMembers without itself, so that no session is lost because it
// stopped, whatever the number of owners. From then on the node refuses
// writes from its peers (they go to the next owner instead).
func (n *Node) Handover(ctx context.Context) error {
	n.leaving.Store(true)
	r := n.ring.Load()
	batches := map[string][]session.Record{}
	n.copies.Range(func(rec session.Record) bool {
		for _, o := range r.Owners(nil, rec.Key, n.cfg.Owners) {
			if o != n.cfg.Self {
				batches[o] = append(batches[o], rec)
			}
		}
		return true
	})
	var errs []error
	for peer, recs := range batches {
		if err := n.sendRecords(ctx, peer, recs, n.pushed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// servePull answers a joining node's Pull: the sessions of one part that
// this node is primary of and that the joiner will own once it is ready.
func (n *Node) servePull(m *wire.Pull) wire.Message {
	if n.cfg.Admit != nil && !n.cfg.Admit(m.Node) {
		return &wire.Ack{Status: wire.StatusRefused, Message: notAdmitted}
	}
	parts := n.copies.Parts()
	if int(m.Part) >= parts {
		return &wire.Ack{Status: wire.StatusRefused, Message: fmt.Sprintf("part %d of %d", m.Part, parts)}
	}
	cur := n.ring.Load()
	future := placement.New(append(cur.Members(), m.Node))
	reply := &wire.Records{Last: int(m.Part) == parts-1}
	n.copies.RangePart(int(m.Part), func(rec session.Record) bool {
		if cur.Primary(rec.Key) == n.cfg.Self && future.IsOwner(rec.Key, m.Node, n.cfg.Owners) {
			reply.Recs = append(reply.Recs, rec)
		}
		return true
	})
	return reply
}

const notAdmitted = "not a live member in this node's view yet"

// ErrNotAdmitted is returned by Pull when a peer does not see this node
// as a live member yet (its previous run may still hold its name).
var ErrNotAdmitted = errors.New("replication: a peer does not see this node as a member yet")

// Pull fetches from each of peers the sessions this node will own once it
// joins them, part by part (the next part is asked for when the last one
// is stored, which is the transfer's back-pressure), and returns how many
// it received. Call it before this node reports ready. The copies it
// stores are checked against the other owners on first use, since writes
// go on meanwhile.
func (n *Node) Pull(ctx context.Context, peers []string) (int, error) {
	var (
		mu    sync.Mutex
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	for _, peer := range peers {
		if peer == n.cfg.Self {
			continue
		}
		wg.Go(func() {
			got, err := n.pullFrom(ctx, peer)
			mu.Lock()
			defer mu.Unlock()
			total += got
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// pullWindow is how many parts of a transfer are asked for at once: the
// requests are pipelined on one connection, and the window is the
// back-pressure.
const pullWindow = 32

func (n *Node) pullFrom(ctx context.Context, peer string) (int, error) {
	parts := n.copies.Parts() // the same on every node of this version
	type result struct {
		got int
		err error
	}
	results := make(chan result, parts)
	window := make(chan struct{}, pullWindow)
	var wg sync.WaitGroup
	for part := range parts {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-window }()
			got, err := n.pullPart(ctx, peer, uint32(part))
			results <- result{got, err}
		})
	}
	wg.Wait()
	close(results)
	total := 0
	var errs []error
	for r := range results {
		total += r.got
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		return total, errs[0] // the parts fail alike (refused, unreachable)
	}
	return total, nil
}

func (n *Node) pullPart(ctx context.Context, peer string, part uint32) (int, error) {
	reply, err := n.call(ctx, peer, &wire.Pull{Node: n.cfg.Self, Part: part})
	if err != nil {
		return 0, err
	}
	recs, ok := reply.(*wire.Records)
	if !ok {
		ack, err := ackErr(peer, reply)
		if ack != nil && ack.Status == wire.StatusRefused && ack.Message == notAdmitted {
			return 0, fmt.Errorf("pull from %s: %w", peer, ErrNotAdmitted)
		}
		return 0, fmt.Errorf("pull from %s: %w", peer, err)
	}
	got := 0
	for _, rec := range recs.Recs {
		if n.copies.Put(rec) {
			n.copies.Unverify(rec.Key)
			got++
		}
	}
	return got, nil
}

// rebalanceLoop moves sessions after membership changes and sends the
// gathered access times.
func (n *Node) rebalanceLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(touchInterval)
	defer tick.Stop()
	sweep := time.NewTicker(strayInterval)
	defer sweep.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.kick:
			n.rebalance()
		case now := <-tick.C:
			n.flushTouches()
			n.copies.PruneTombstones(now)
			n.short.prune(func(key string) bool {
				_, ok := n.copies.Get(key)
				return ok
			})
		case <-sweep.C:
			n.sendStrays(context.Background())
		}
	}
}

// strayInterval is how often a node hands the copies it holds without
// owning them (a stand-in's, or one a rebalance pass could not move) to
// their owners and drops them.
const strayInterval = 30 * time.Second

// sendStrays sends each copy this node holds but does not own to the
// session's primary (which keeps it only if it is newer than its own) and
// drops it once the primary has it.
func (n *Node) sendStrays(ctx context.Context) {
	if time.Now().UnixNano() < n.unsettledUntil.Load() {
		return // placement still moving: the next pass
	}
	r := n.ring.Load()
	byPrimary := map[string][]session.Record{}
	n.copies.Range(func(rec session.Record) bool {
		owners := r.Owners(nil, rec.Key, n.cfg.Owners)
		if len(owners) > 0 && !slices.Contains(owners, n.cfg.Self) {
			byPrimary[owners[0]] = append(byPrimary[owners[0]], rec)
		}
		return true
	})
	for peer, recs := range byPrimary {
		err := n.sendRecords(ctx, peer, recs, func(batch []session.Record) {
			for _, rec := range batch {
				n.copies.Drop(rec.Key, rec.Version)
			}
		})
		if err != nil {
			n.log.Debug("stray copies not sent", slog.String("peer", peer), slog.Any("err", err))
		}
	}
}

// rebalance sends every session to the owners the current ring gives it,
// once per change. For each session the sender is the first owner under
// the previous ring that is still a member (the old primary, or the
// backup that took over from a dead one), so that one node, not all,
// sends. A node that is no longer an owner drops its copy once the new
// owners have it.
func (n *Node) rebalance() {
	n.mu.Lock()
	prev, cur := n.placed, n.ring.Load()
	n.mu.Unlock()
	self := n.cfg.Self
	batches := map[string][]session.Record{}
	var drop []session.Record
	n.copies.Range(func(rec session.Record) bool {
		newOwners := cur.Owners(nil, rec.Key, n.cfg.Owners)
		sender := ""
		for _, o := range prev.Owners(nil, rec.Key, n.cfg.Owners) {
			if cur.Has(o) {
				sender = o
				break
			}
		}
		if sender == "" { // every old owner is gone but this copy: keep it alive
			sender = self
		}
		if sender == self {
			for _, o := range newOwners {
				if o != self {
					batches[o] = append(batches[o], rec)
				}
			}
		}
		if !slices.Contains(newOwners, self) {
			drop = append(drop, rec)
		}
		return true
	})
	ok := map[string]bool{}
	ctx := context.Background()
	for peer, recs := range batches {
		err := n.sendRecords(ctx, peer, recs, n.pushed)
		ok[peer] = err == nil
		if err != nil {
			n.log.Warn("moving sessions failed", slog.String("peer", peer), slog.Any("err", err))
		}
	}
	for peer, recs := range batches {
		for _, rec := range recs {
			if !ok[peer] {
				n.short.mark(rec.Key)
			}
		}
	}
	for peer, recs := range batches {
		if !ok[peer] {
			continue
		}
		for _, rec := range recs {
			full := true
			for _, o := range cur.Owners(nil, rec.Key, n.cfg.Owners) {
				if o != self && !ok[o] {
					full = false
				}
			}
			if full {
				n.short.clear(rec.Key)
			}
		}
	}
	for _, rec := range drop {
		safe := true
		for _, o := range cur.Owners(nil, rec.Key, n.cfg.Owners) {
			if batch, sent := batches[o]; sent && len(batch) > 0 && !ok[o] {
				safe = false
			}
		}
		if safe {
			n.copies.Drop(rec.Key, rec.Version)
		}
	}
	n.mu.Lock()
	if n.ring.Load() == cur {
		n.placed = cur
	}
	n.mu.Unlock()
}

// sameRecord reports whether two copies hold the same version of the same
// session (times compared at the wire's millisecond precision).
func sameRecord(a, b session.Record) bool {
	if a.Version != b.Version || a.Created.UnixMilli() != b.Created.UnixMilli() || len(a.Attrs) != len(b.Attrs) {
		return false
	}
	for i := range a.Attrs {
		if a.Attrs[i].Key != b.Attrs[i].Key || !bytes.Equal(a.Attrs[i].Value, b.Attrs[i].Value) {
			return false
		}
	}
	return true
}
