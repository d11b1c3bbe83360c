// Package memstore is the in-memory session.Store for a single node: the
// sessions live in this process and die with it. For several nodes use
// session/cluster, which replicates them; for Redis, session/redisstore.
//
// The store is a map sharded by a hash of the session key, so that
// concurrent requests of different sessions rarely wait on each other. It
// starts no goroutine: the session.Manager drives expiry through Expire.
package memstore

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/session"
)

const shardCount = 32

// Store keeps sessions in memory. The zero value is not usable; call New.
type Store struct {
	seed   maphash.Seed
	shards [shardCount]shard
	live   atomic.Int64
}

type shard struct {
	mu sync.RWMutex // protects m
	m  map[string]entry
}

// entry is a session as held in memory: times as Unix nanoseconds rather
// than time.Time (24 bytes each) to keep idle sessions small.
type entry struct {
	attrs       []session.Attr
	created     int64
	lastAccess  int64
	absDeadline int64 // 0: none
	idle        time.Duration
	version     uint64
}

var _ session.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	return s
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%shardCount]
}

func toEntry(r *session.Record) entry {
	e := entry{attrs: r.Attrs, created: r.Created.UnixNano(), lastAccess: r.LastAccess.UnixNano(), idle: r.IdleTimeout, version: r.Version}
	if !r.AbsoluteDeadline.IsZero() {
		e.absDeadline = r.AbsoluteDeadline.UnixNano()
	}
	return e
}

func (e *entry) record(key string) session.Record {
	r := session.Record{Key: key, Attrs: e.attrs, Created: time.Unix(0, e.created), LastAccess: time.Unix(0, e.lastAccess), IdleTimeout: e.idle, Version: e.version}
	if e.absDeadline != 0 {
		r.AbsoluteDeadline = time.Unix(0, e.absDeadline)
	}
	return r
}

// Load implements session.Store.
func (s *Store) Load(_ context.Context, key string) (session.Record, error) {
	sh := s.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	return e.record(key), nil
}

// Create implements session.Store.
func (s *Store) Create(_ context.Context, rec session.Record) error {
	rec.Version = 1
	sh := s.shard(rec.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[rec.Key]; ok {
		return session.ErrExists
	}
	sh.m[rec.Key] = toEntry(&rec)
	s.live.Add(1)
	return nil
}

// Commit implements session.Store.
func (s *Store) Commit(_ context.Context, key string, d session.Delta) (uint64, error) {
	sh := s.shard(key)
	if d.NewKey == "" {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		e, ok := sh.m[key]
		if !ok {
			return 0, session.ErrNotFound
		}
		if d.TouchOnly() {
			// The common read-only request: no copy of the attributes.
			e.lastAccess = max(e.lastAccess, d.Access.UnixNano())
			sh.m[key] = e
			return e.version, nil
		}
		rec := session.ApplyDelta(e.record(key), d)
		rec.Version = e.version + 1
		sh.m[key] = toEntry(&rec)
		return rec.Version, nil
	}
	// A rename touches two shards: lock them in address order.
	to := s.shard(d.NewKey)
	first, second := sh, to
	if s.index(d.NewKey) < s.index(key) {
		first, second = to, sh
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	e, ok := sh.m[key]
	if !ok {
		return 0, session.ErrNotFound
	}
	if _, taken := to.m[d.NewKey]; taken {
		return 0, session.ErrExists
	}
	rec := session.ApplyDelta(e.record(key), d)
	rec.Version = e.version + 1
	delete(sh.m, key)
	to.m[d.NewKey] = toEntry(&rec)
	return rec.Version, nil
}

func (s *Store) index(key string) uint64 { return maphash.String(s.seed, key) % shardCount }

// Delete implements session.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; ok {
		delete(sh.m, key)
		s.live.Add(-1)
	}
	return nil
}

// Expire implements session.Store: it removes and returns up to limit
// sessions whose deadline is at or before now.
func (s *Store) Expire(_ context.Context, now time.Time, limit int) ([]session.Record, error) {
	var out []session.Record
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for key, e := range sh.m {
			if len(out) >= limit {
				break
			}
			rec := e.record(key)
			if rec.Expired(now) {
				delete(sh.m, key)
				s.live.Add(-1)
				out = append(out, rec)
			}
		}
		sh.mu.Unlock()
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Len implements session.Store.
func (s *Store) Len(context.Context) (int, error) {
	return int(s.live.Load()), nil
}
