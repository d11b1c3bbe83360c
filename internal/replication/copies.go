// Package replication is the cluster's engine: which node sends which
// session change to which other node, and the version rules that keep
// every copy of a session converging to its newest state. docs/design.md
// ("The cluster store") describes the protocol; this package implements it
// piece by piece, each tested alone. wire (the frames) and Copies (the
// version rules) are the first pieces.
package replication

import (
	"errors"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/recordmap"
	"github.com/shoal-go/shoal/session"
)

// Copies holds a node's copies of sessions, as primary or backup, and
// enforces the version rules: the primary gives each commit the next
// version, and a backup applies a version only on top of the one before
// it, so a stale, duplicated or reordered delta never overwrites a newer
// state.
type Copies struct {
	m *recordmap.Map

	tombMu sync.Mutex           // protects tombs
	tombs  map[string]time.Time // deleted keys, until TombstoneTTL after

	unverifiedMu sync.Mutex          // protects unverified
	unverified   map[string]struct{} // keys whose copy may be behind another owner's
}

// TombstoneTTL is how long a deleted key is remembered: a copy of it that
// arrives later (a rebalance pass that read it before the delete) is
// refused rather than bringing a logged-out session back. Keys are never
// reused (a new session or RenewID draws a new random key), so refusing
// them is always right; the TTL only bounds the memory.
const TombstoneTTL = time.Minute

// NewCopies returns an empty set of copies.
func NewCopies() *Copies {
	return &Copies{m: recordmap.New(), tombs: map[string]time.Time{}, unverified: map[string]struct{}{}}
}

// Unverify marks the copy under key as possibly behind another owner's
// (it came from a rebalance, or this node just took the session over):
// the primary fetches the owners' copies before trusting it.
func (c *Copies) Unverify(key string) {
	c.unverifiedMu.Lock()
	defer c.unverifiedMu.Unlock()
	c.unverified[key] = struct{}{}
}

// Unverified reports whether the copy under key is marked unverified.
func (c *Copies) Unverified(key string) bool {
	c.unverifiedMu.Lock()
	defer c.unverifiedMu.Unlock()
	_, ok := c.unverified[key]
	return ok
}

// Verify clears the mark: the copy is the newest of the owners'. Deleting
// or dropping a copy clears it too.
func (c *Copies) Verify(key string) {
	c.unverifiedMu.Lock()
	defer c.unverifiedMu.Unlock()
	delete(c.unverified, key)
}

func (c *Copies) buried(key string) bool {
	c.tombMu.Lock()
	defer c.tombMu.Unlock()
	_, ok := c.tombs[key]
	return ok
}

func (c *Copies) bury(key string) {
	c.tombMu.Lock()
	defer c.tombMu.Unlock()
	c.tombs[key] = time.Now()
}

// PruneTombstones forgets deleted keys older than TombstoneTTL.
func (c *Copies) PruneTombstones(now time.Time) {
	c.tombMu.Lock()
	defer c.tombMu.Unlock()
	for k, at := range c.tombs {
		if now.Sub(at) > TombstoneTTL {
			delete(c.tombs, k)
		}
	}
}

// ApplyResult says what a backup did with a primary's delta.
type ApplyResult int

const (
	// Applied: the copy was at version-1 and is now at version.
	Applied ApplyResult = iota + 1
	// Duplicate: the copy was already at version or newer; nothing changed.
	Duplicate
	// Gap: the copy is older than version-1 (a delta was lost); the
	// primary must send the whole record.
	Gap
	// Missing: there is no copy; the primary must send the whole record.
	Missing
)

func (r ApplyResult) String() string {
	switch r {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Gap:
		return "gap"
	case Missing:
		return "missing"
	}
	return "unknown"
}

// ErrRename is returned by Commit for a delta with NewKey: a new key has
// other owners, so a rename is a create at the new owners and a delete at
// the old ones, which the engine sends, not a change of one copy.
var ErrRename = errors.New("replication: a delta with NewKey is not committed to one copy")

// Get returns the copy under key.
func (c *Copies) Get(key string) (session.Record, bool) { return c.m.Get(key) }

// Len returns the number of copies held.
func (c *Copies) Len() int { return c.m.Len() }

// Create stores a new session as its primary does, at version 1. It
// returns session.ErrExists if the key is taken.
func (c *Copies) Create(rec session.Record) error {
	rec.Version = 1
	return c.m.Update(rec.Key, func(cur session.Record, found bool) (session.Record, bool, error) {
		if found || c.buried(rec.Key) {
			return cur, found, session.ErrExists
		}
		return rec, true, nil
	})
}

// Commit applies d as the session's primary: the copy moves to the next
// version, which Commit returns. sent, if not nil, is called under the
// session's lock with the new version and record, so that the messages it
// enqueues for the backups leave in version order. It returns
// session.ErrNotFound if there is no copy.
func (c *Copies) Commit(key string, d session.Delta, sent func(version uint64, rec *session.Record)) (uint64, error) {
	if d.NewKey != "" {
		return 0, ErrRename
	}
	var version uint64
	err := c.m.Update(key, func(cur session.Record, found bool) (session.Record, bool, error) {
		if !found {
			return cur, false, session.ErrNotFound
		}
		next := session.ApplyDelta(cur, d)
		next.Version = cur.Version + 1
		version = next.Version
		if sent != nil {
			sent(version, &next)
		}
		return next, true, nil
	})
	return version, err
}

// Apply applies a primary's delta that brings the session to version.
func (c *Copies) Apply(key string, d session.Delta, version uint64) ApplyResult {
	if d.NewKey != "" {
		return Gap // never sent by a primary; ask for the record rather than guess
	}
	res := Missing
	c.m.Update(key, func(cur session.Record, found bool) (session.Record, bool, error) {
		switch {
		case !found:
			res = Missing
		case cur.Version >= version:
			res = Duplicate
		case cur.Version+1 < version:
			res = Gap
		default:
			next := session.ApplyDelta(cur, d)
			next.Version = version
			res = Applied
			return next, true, nil
		}
		return cur, found, recordmap.ErrSkip
	})
	return res
}

// Put stores a whole record (state transfer, re-replication, a reply to
// NeedFull) unless the copy already has its version or a newer one. It
// reports whether it stored the record.
func (c *Copies) Put(rec session.Record) bool {
	stored := false
	c.m.Update(rec.Key, func(cur session.Record, found bool) (session.Record, bool, error) {
		// Checked under the key's lock, which Delete holds while it
		// buries: a Put racing a Delete cannot slip in between.
		if (found && cur.Version >= rec.Version) || c.buried(rec.Key) {
			return cur, found, recordmap.ErrSkip
		}
		stored = true
		return rec, true, nil
	})
	return stored
}

// Delete removes the copy under key if its version is at most version (a
// delete ordered after a newer write is stale and ignored); version 0
// deletes whatever the copy's version. It reports whether it removed one.
func (c *Copies) Delete(key string, version uint64) bool {
	_, removed := c.Remove(key, version)
	return removed
}

// Remove is Delete that returns the copy it removed.
func (c *Copies) Remove(key string, version uint64) (session.Record, bool) {
	var removed session.Record
	ok := false
	c.m.Update(key, func(cur session.Record, found bool) (session.Record, bool, error) {
		if found && version != 0 && cur.Version > version {
			return cur, found, recordmap.ErrSkip // stale delete
		}
		c.bury(key)
		c.Verify(key)
		if !found {
			return cur, false, recordmap.ErrSkip
		}
		removed, ok = cur, true
		return cur, false, nil
	})
	return removed, ok
}

// Drop removes this node's copy under key, if still at version, because
// the node no longer owns the session (it moved to other owners). Unlike
// Delete it leaves no tombstone: the session lives on elsewhere and may
// come back here after another membership change.
func (c *Copies) Drop(key string, version uint64) {
	c.m.Update(key, func(cur session.Record, found bool) (session.Record, bool, error) {
		if !found || cur.Version != version {
			return cur, found, recordmap.ErrSkip
		}
		c.Verify(key)
		return cur, false, nil
	})
}

// pullSlices cuts each shard of the table into this many parts for Pull,
// so that one part stays far below wire.MaxBatch records (up to millions
// of sessions per node).
const pullSlices = 16

// Parts returns how many parts RangePart cuts the copies into.
func (c *Copies) Parts() int { return c.m.Shards() * pullSlices }

// RangePart calls fn for each copy in part p (0 <= p < Parts()) until fn
// returns false. Every copy is in exactly one part.
func (c *Copies) RangePart(p int, fn func(rec session.Record) bool) {
	slice := uint32(p % pullSlices)
	c.m.RangeShard(p/pullSlices, func(rec session.Record) bool {
		if keySlice(rec.Key) != slice {
			return true
		}
		return fn(rec)
	})
}

// keySlice is FNV-1a of the key, modulo pullSlices.
func keySlice(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h % pullSlices
}

// Range calls fn for each copy until fn returns false.
func (c *Copies) Range(fn func(rec session.Record) bool) { c.m.Range(fn) }

// Touch raises the access time of the copy under key to at least t.
func (c *Copies) Touch(key string, t time.Time) (uint64, bool) { return c.m.Touch(key, t) }

// Expire removes and returns up to limit copies whose deadline is at or
// before now and for which keep reports true (the engine expires only the
// sessions it is primary of).
func (c *Copies) Expire(now time.Time, limit int, keep func(key string) bool) []session.Record {
	return c.m.Expire(now, limit, func(key string) bool {
		if keep != nil && !keep(key) {
			return false
		}
		c.bury(key) // under the key's lock, as in Delete
		c.Verify(key)
		return true
	})
}
