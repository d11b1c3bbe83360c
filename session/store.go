package session

import (
	"context"
	"time"
)

// Attr is one session attribute: its key and its encoded value. Value
// slices are shared between a store and its callers and are never modified
// once created; a change replaces the slice.
type Attr struct {
	Key   string
	Value []byte
}

// Record is a whole session as a store holds it.
type Record struct {
	// Key is the session id's base: stores key sessions by it, never by the
	// route, so that moving a session to another node (rebinding its route)
	// is not a rename.
	Key string
	// Attrs are the session's attributes sorted by Key, without duplicates.
	Attrs []Attr
	// Created is when the session was created.
	Created time.Time
	// LastAccess is when a request last used the session. Stores may keep
	// it at a coarser precision than a request (see Delta.Access).
	LastAccess time.Time
	// IdleTimeout is how long the session lives without a request; zero
	// means no idle expiry.
	IdleTimeout time.Duration
	// AbsoluteDeadline is when the session expires whatever its use; zero
	// means never.
	AbsoluteDeadline time.Time
	// Version counts the commits applied to the session: 1 after Create,
	// one more after each Commit.
	Version uint64
}

// Deadline returns when the session expires: the earlier of LastAccess +
// IdleTimeout and AbsoluteDeadline; zero if neither applies.
func (r *Record) Deadline() time.Time {
	var d time.Time
	if r.IdleTimeout > 0 {
		d = r.LastAccess.Add(r.IdleTimeout)
	}
	if !r.AbsoluteDeadline.IsZero() && (d.IsZero() || r.AbsoluteDeadline.Before(d)) {
		d = r.AbsoluteDeadline
	}
	return d
}

// Expired reports whether the session's deadline has passed at now.
func (r *Record) Expired(now time.Time) bool {
	d := r.Deadline()
	return !d.IsZero() && !now.Before(d)
}

// Size returns the encoded size of the session's attributes (keys and
// values), the figure Config.MaxSessionBytes limits.
func (r *Record) Size() int {
	n := 0
	for _, a := range r.Attrs {
		n += len(a.Key) + len(a.Value)
	}
	return n
}

// Delta is what one request changed in a session: the attributes it put
// and removed, its access time, and, for RenewID, the session's new key.
// Stores apply a Delta atomically: all of it or none of it.
type Delta struct {
	// Set holds the attributes put, sorted by key; each replaces any
	// attribute of the same key.
	Set []Attr
	// Removed holds the keys deleted, sorted; a key is never in both Set
	// and Removed.
	Removed []string
	// Access is the request's time; the store raises LastAccess to it.
	Access time.Time
	// IdleTimeout, if positive, replaces the session's idle timeout; if
	// negative, the session gets none; zero leaves it unchanged.
	IdleTimeout time.Duration
	// NewKey, if non-empty, moves the session to this key in the same
	// atomic step (RenewID); the old key no longer finds it.
	NewKey string
	// BaseVersion is the version the request read. A store that sees a
	// newer version still applies the delta (attributes the request did not
	// change are kept) and may count the concurrent write as a conflict.
	BaseVersion uint64
}

// TouchOnly reports whether the delta carries nothing but an access time.
func (d *Delta) TouchOnly() bool {
	return len(d.Set) == 0 && len(d.Removed) == 0 && d.IdleTimeout == 0 && d.NewKey == ""
}

// Store keeps sessions. The same interface serves the in-memory store (one
// node), the replicated cluster and Redis; each applies deltas, so a
// request that changes one attribute sends one attribute, not the session.
//
// All methods must be safe for concurrent use. The err return values are
// for system errors (a store that cannot be reached, a closed store) and
// for the sentinel errors named below; a Store must not modify a Record's
// Attrs after returning it, and callers must not modify them either.
type Store interface {
	// Load returns the session stored under key, or ErrNotFound. It may
	// return a session whose deadline has passed; the Manager checks.
	Load(ctx context.Context, key string) (Record, error)
	// Create stores a new session, or returns ErrExists if the key is
	// taken. rec.Version is ignored; the stored version is 1.
	Create(ctx context.Context, rec Record) error
	// Commit applies d to the session under key and returns its new
	// version. It returns ErrNotFound if the session is gone (expired or
	// deleted meanwhile) and ErrExists if d.NewKey is taken.
	Commit(ctx context.Context, key string, d Delta) (version uint64, err error)
	// Delete removes the session under key. If there is none, Delete is a
	// no-op and returns nil.
	Delete(ctx context.Context, key string) error
	// Expire removes up to limit sessions whose deadline is at or before
	// now and returns them, so that the Manager can tell its listeners. A
	// store that expires sessions by itself (a Redis TTL) may return none.
	Expire(ctx context.Context, now time.Time, limit int) ([]Record, error)
	// Len returns the number of live sessions the store holds, for
	// Config.MaxSessions.
	Len(ctx context.Context) (int, error)
}

// RouteChecker is an optional Store capability: a store that knows the
// cluster says whether the node a route names is alive. The Manager rebinds
// a session whose cookie names another node only when that node is not
// alive; a store without this capability holds only local sessions, so a
// foreign route is always rebound.
type RouteChecker interface {
	RouteAlive(route string) bool
}

// KeyGenerator is an optional Store capability: a store that places
// sessions (the cluster) chooses new keys, so that the node creating a
// session can be its primary owner and serve it locally. NewKey must return
// a fresh key of at least 128 random bits in the alphabet of NewBase; the
// Manager uses NewBase for stores without this capability.
type KeyGenerator interface {
	NewKey() string
}

// CopyWatcher is an optional Store capability: a store that holds copies
// of sessions whose fate another node decides (the cluster's backups)
// calls fn for each copy it drops because that node expired the session
// (ReasonExpired) or deleted it (ReasonInvalidated, for Invalidate and
// Evict alike). A Manager with Config.DestroyedOnEveryCopy registers fn to
// fire SessionDestroyed for those copies too, as Tomcat's
// notifyListenersOnReplication does.
type CopyWatcher interface {
	WatchCopiesDestroyed(fn func(rec Record, why Reason))
}
