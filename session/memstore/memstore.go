// Package memstore is the in-memory session.Store for a single node: the
// sessions live in this process and die with it. For several nodes use
// session/cluster, which replicates them; for Redis, session/redisstore.
//
// Sessions are kept compactly in a sharded map (internal/recordmap), so
// that concurrent requests of different sessions rarely wait on each other.
// The store starts no goroutine: the session.Manager drives expiry through
// Expire.
package memstore

import (
	"context"
	"time"

	"github.com/shoal-go/shoal/internal/recordmap"
	"github.com/shoal-go/shoal/session"
)

// Store keeps sessions in memory. The zero value is not usable; call New.
type Store struct {
	m *recordmap.Map
}

var _ session.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{m: recordmap.New()} }

// Load implements session.Store.
func (s *Store) Load(_ context.Context, key string) (session.Record, error) {
	rec, ok := s.m.Get(key)
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	return rec, nil
}

// Create implements session.Store.
func (s *Store) Create(_ context.Context, rec session.Record) error {
	rec.Version = 1
	if !s.m.Insert(rec) {
		return session.ErrExists
	}
	return nil
}

// Commit implements session.Store.
func (s *Store) Commit(_ context.Context, key string, d session.Delta) (uint64, error) {
	apply := func(cur session.Record) session.Record {
		next := session.ApplyDelta(cur, d)
		next.Version = cur.Version + 1
		return next
	}
	if d.NewKey != "" {
		var version uint64
		err := s.m.Move(key, d.NewKey, func(cur session.Record) (session.Record, error) {
			next := apply(cur)
			version = next.Version
			return next, nil
		})
		return version, err
	}
	if d.TouchOnly() {
		// The common read-only request: no copy of the attributes.
		v, ok := s.m.Touch(key, d.Access)
		if !ok {
			return 0, session.ErrNotFound
		}
		return v, nil
	}
	var version uint64
	err := s.m.Update(key, func(cur session.Record, found bool) (session.Record, bool, error) {
		if !found {
			return cur, false, session.ErrNotFound
		}
		next := apply(cur)
		version = next.Version
		return next, true, nil
	})
	return version, err
}

// Delete implements session.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	s.m.Delete(key)
	return nil
}

// Expire implements session.Store: it removes and returns up to limit
// sessions whose deadline is at or before now.
func (s *Store) Expire(_ context.Context, now time.Time, limit int) ([]session.Record, error) {
	return s.m.Expire(now, limit, nil), nil
}

// Len implements session.Store.
func (s *Store) Len(context.Context) (int, error) { return s.m.Len(), nil }
