// Package recordmap is the in-memory table of sessions that both the
// single-node store (session/memstore) and a cluster node's copies use: a
// map sharded by a hash of the key, holding each session compactly (times
// as Unix nanoseconds, not 24-byte time.Time values), so that an idle
// session costs a few hundred bytes and concurrent requests of different
// sessions rarely wait on each other.
//
// Every change is made under its shard's lock through a function the
// caller passes, so callers put their own rules (version checks, renames)
// in one atomic step without the map knowing them.
package recordmap

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/session"
)

const shardCount = 32

// Map holds session records by key. The zero value is not usable; call New.
type Map struct {
	seed   maphash.Seed
	shards [shardCount]shard
	live   atomic.Int64
}

type shard struct {
	mu sync.RWMutex // protects m
	m  map[string]entry
}

type entry struct {
	attrs       []session.Attr
	created     int64
	lastAccess  int64
	absDeadline int64 // 0: none
	idle        time.Duration
	version     uint64
}

// New returns an empty Map.
func New() *Map {
	m := &Map{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[string]entry)
	}
	return m
}

func (m *Map) index(key string) uint64 { return maphash.String(m.seed, key) % shardCount }

func (m *Map) shard(key string) *shard { return &m.shards[m.index(key)] }

func toEntry(r *session.Record) entry {
	e := entry{attrs: r.Attrs, created: unixNano(r.Created), lastAccess: unixNano(r.LastAccess), idle: r.IdleTimeout, version: r.Version}
	e.absDeadline = unixNano(r.AbsoluteDeadline)
	return e
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (e *entry) record(key string) session.Record {
	return session.Record{
		Key: key, Attrs: e.attrs, IdleTimeout: e.idle, Version: e.version,
		Created: fromUnixNano(e.created), LastAccess: fromUnixNano(e.lastAccess), AbsoluteDeadline: fromUnixNano(e.absDeadline),
	}
}

// Get returns the record under key.
func (m *Map) Get(key string) (session.Record, bool) {
	sh := m.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok {
		return session.Record{}, false
	}
	return e.record(key), true
}

// Version returns the version of the record under key, without copying it.
func (m *Map) Version(key string) (uint64, bool) {
	sh := m.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	return e.version, ok
}

// Insert stores rec if its key is free and reports whether it did.
func (m *Map) Insert(rec session.Record) bool {
	sh := m.shard(rec.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[rec.Key]; ok {
		return false
	}
	sh.m[rec.Key] = toEntry(&rec)
	m.live.Add(1)
	return true
}

// ErrSkip, returned by an Update function, leaves the record unchanged
// and makes Update return nil.
var ErrSkip = errors.New("recordmap: skip")

// Update calls fn with the record under key (found reports whether there
// is one) under the key's lock. If fn returns a record with keep true, it
// replaces (or creates) the record; keep false deletes it; an error leaves
// the map unchanged and is returned (ErrSkip: nil). fn must not call the
// Map and must not change the key.
func (m *Map) Update(key string, fn func(cur session.Record, found bool) (next session.Record, keep bool, err error)) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, found := sh.m[key]
	var cur session.Record
	if found {
		cur = e.record(key)
	}
	next, keep, err := fn(cur, found)
	if errors.Is(err, ErrSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case keep:
		next.Key = key
		sh.m[key] = toEntry(&next)
		if !found {
			m.live.Add(1)
		}
	case found:
		delete(sh.m, key)
		m.live.Add(-1)
	}
	return nil
}

// Touch raises the access time of the record under key to at least t,
// without copying its attributes (the common read-only request), and
// returns its version.
func (m *Map) Touch(key string, t time.Time) (uint64, bool) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok {
		return 0, false
	}
	e.lastAccess = max(e.lastAccess, t.UnixNano())
	sh.m[key] = e
	return e.version, true
}

// Move calls fn with the record under from, under the locks of both keys;
// if fn succeeds, its result is stored under to and from is deleted. It
// returns session.ErrNotFound if from is absent and session.ErrExists if to
// is taken.
func (m *Map) Move(from, to string, fn func(cur session.Record) (session.Record, error)) error {
	a, b := m.shard(from), m.shard(to)
	first, second := a, b
	if m.index(to) < m.index(from) {
		first, second = b, a
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	e, ok := a.m[from]
	if !ok {
		return session.ErrNotFound
	}
	if _, taken := b.m[to]; taken {
		return session.ErrExists
	}
	next, err := fn(e.record(from))
	if err != nil {
		return err
	}
	next.Key = to
	delete(a.m, from)
	b.m[to] = toEntry(&next)
	return nil
}

// Delete removes the record under key and returns it.
func (m *Map) Delete(key string) (session.Record, bool) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok {
		return session.Record{}, false
	}
	delete(sh.m, key)
	m.live.Add(-1)
	return e.record(key), true
}

// Expire removes and returns up to limit records whose deadline is at or
// before now and for which keep (if not nil) reports true.
func (m *Map) Expire(now time.Time, limit int, keep func(key string) bool) []session.Record {
	var out []session.Record
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for key, e := range sh.m {
			if len(out) >= limit {
				break
			}
			rec := e.record(key)
			if rec.Expired(now) && (keep == nil || keep(key)) {
				delete(sh.m, key)
				m.live.Add(-1)
				out = append(out, rec)
			}
		}
		sh.mu.Unlock()
		if len(out) >= limit {
			break
		}
	}
	return out
}

// Range calls fn for each record, one shard at a time, until fn returns
// false. Records changed during Range may or may not be seen.
func (m *Map) Range(fn func(rec session.Record) bool) {
	for i := range m.shards {
		if !m.RangeShard(i, fn) {
			return
		}
	}
}

// Shards returns the number of shards, for RangeShard.
func (m *Map) Shards() int { return shardCount }

// RangeShard calls fn for each record of shard i (0 <= i < Shards()),
// without the shard's lock held (so fn may call the Map), until fn returns
// false; it reports whether fn never did.
func (m *Map) RangeShard(i int, fn func(rec session.Record) bool) bool {
	sh := &m.shards[i]
	sh.mu.RLock()
	batch := make([]session.Record, 0, len(sh.m))
	for key, e := range sh.m {
		batch = append(batch, e.record(key))
	}
	sh.mu.RUnlock()
	for _, r := range batch {
		if !fn(r) {
			return false
		}
	}
	return true
}

// Len returns the number of records.
func (m *Map) Len() int { return int(m.live.Load()) }
