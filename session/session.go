package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Session is one request's view of its session. Get it with FromContext
// inside a handler wrapped by Manager.Handler. The session is loaded from
// the store on first use, and the request's changes are committed to the
// store before the response's status line is written.
//
// Values are copies: Get decodes a fresh value each time, and a change to
// it is not stored until it is Put again (the trap Tomcat and Spring
// Session users know as "mutation without setAttribute is not replicated").
//
// A Session is safe for use by several goroutines of its request.
type Session struct {
	m      *Manager
	reqCtx context.Context // the request's context, for store calls

	mu sync.Mutex // protects everything below
	// candidates are the well-formed ids the request carried, URL first.
	candidates []ID
	fromURL    bool // the request carried an id in its URL
	loaded     bool
	loadErr    error
	// rec is the stored session as loaded (exists) or the new one being
	// built (isNew); its Attrs are never modified in place.
	rec    Record
	exists bool
	isNew  bool
	id     ID
	// pending holds this request's changes, at most one per key.
	pending    []change
	newKey     string
	idleChange time.Duration
	// toDelete is the key of a session invalidated by this request.
	toDelete    string
	deletedRec  Record
	committed   bool
	commitErr   error
	refused     error // a new session refused (too many): the response is 503
	cookie      cookieAction
	invalidated bool
}

type change struct {
	key     string
	value   []byte
	removed bool
}

type cookieAction int

const (
	cookieKeep cookieAction = iota
	cookieSet
	cookieClear
)

type ctxKey struct{}

// FromContext returns the request's session. Outside Manager.Handler it
// returns a Session whose methods fail with ErrNoSession.
func FromContext(ctx context.Context) *Session {
	if s, ok := ctx.Value(ctxKey{}).(*Session); ok {
		return s
	}
	return &Session{loaded: true, loadErr: ErrNoSession, committed: true, commitErr: ErrNoSession}
}

// load runs the lazy load once. Callers hold s.mu.
func (s *Session) load(ctx context.Context) error {
	if s.loaded {
		return s.loadErr
	}
	s.loaded = true
	for _, cand := range s.candidates {
		rec, err := s.m.store.Load(ctx, cand.Base)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			s.loadErr = fmt.Errorf("session: load: %w", err)
			return s.loadErr
		}
		if !sameBase(rec.Key, cand.Base) {
			continue
		}
		if rec.Expired(time.Now()) {
			if err := s.m.store.Delete(ctx, rec.Key); err != nil {
				s.loadErr = fmt.Errorf("session: delete expired: %w", err)
				return s.loadErr
			}
			s.m.fireDestroyed(ctx, &rec, ReasonExpired)
			continue
		}
		s.rec = rec
		s.exists = true
		s.id = cand
		if route := s.m.cfg.Route; cand.Route != route && (s.m.routes == nil || cand.Route == "" || !s.m.routes.RouteAlive(cand.Route)) {
			// The id names a node that is gone (or no node): the session is
			// served here now, so its route says so from this response on.
			s.id.Route = route
			s.cookie = cookieSet
			s.m.stats.Rebinds.Add(1)
			s.m.log.Info("session rebound", slog.String("session", Fingerprint(rec.Key)),
				slog.String("from", cand.Route), slog.String("to", route))
		}
		return nil
	}
	return nil
}

// Load makes sure the session is loaded and returns the store's error,
// if any. Other methods load it when needed; Load lets a handler fail
// early.
func (s *Session) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(ctx)
}

// ctx is the context for store calls made by accessors that take none:
// the request's context, kept by the middleware.
func (s *Session) ctx() context.Context {
	if s.reqCtx != nil {
		return s.reqCtx
	}
	return context.Background()
}

// ID returns the session id as the client will hold it after this
// response ("<base>.<route>"), or "" if there is no session.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.load(s.ctx()) != nil || (!s.exists && !s.isNew) {
		return ""
	}
	return s.id.String()
}

// IsNew reports whether the session was created by this request.
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isNew
}

// lookup returns the current encoded value of key. Callers hold s.mu.
func (s *Session) lookup(key string) ([]byte, bool) {
	for i := range s.pending {
		if s.pending[i].key == key {
			return s.pending[i].value, !s.pending[i].removed
		}
	}
	return findAttr(s.rec.Attrs, key)
}

func findAttr(attrs []Attr, key string) ([]byte, bool) {
	i := sort.Search(len(attrs), func(i int) bool { return attrs[i].Key >= key })
	if i < len(attrs) && attrs[i].Key == key {
		return attrs[i].Value, true
	}
	return nil, false
}

// Get returns the value stored under key, decoded as a T. It reports
// false if the session or the key does not exist. The error is the
// store's (the session could not be loaded) or the codec's (the stored
// value is not a T).
func Get[T any](s *Session, key string) (T, bool, error) {
	var v T
	s.mu.Lock()
	if err := s.load(s.ctx()); err != nil {
		s.mu.Unlock()
		return v, false, err
	}
	b, ok := s.lookup(key)
	s.mu.Unlock()
	if !ok {
		return v, false, nil
	}
	if err := s.m.codec.Unmarshal(b, &v); err != nil { // s.m is set: lookup found a value
		return v, false, fmt.Errorf("session: get %q as %s: %w", key, reflect.TypeFor[T](), err)
	}
	return v, true, nil
}

// Put stores v under key, creating the session if there is none. A value
// that cannot be encoded is refused here, with an *EncodeError naming the
// key, the type and the field; a session that would grow past
// Config.MaxSessionBytes is refused with ErrTooLarge.
func (s *Session) Put(key string, v any) error {
	if s.m == nil {
		return ErrNoSession
	}
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes: want 1 to %d", ErrBadKey, len(key), MaxKeyLen)
	}
	if err := checkEncodable(v); err != nil {
		err.Key = key
		s.m.stats.encodeFailed(err)
		return err
	}
	b, err := s.m.codec.Marshal(v)
	if err != nil {
		ee := &EncodeError{Key: key, Type: typeName(v), Reason: err.Error(), Err: err}
		s.m.stats.encodeFailed(ee)
		return ee
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if !s.exists && !s.isNew {
		if err := s.startNew(); err != nil {
			return err
		}
	}
	if limit := s.m.cfg.MaxSessionBytes; limit > 0 {
		size := s.sizeWith(key, len(b))
		if size > limit {
			return fmt.Errorf("%w: putting key %q (%d bytes encoded) would make the session %d bytes, over the limit of %d (Config.MaxSessionBytes)",
				ErrTooLarge, key, len(b), size, limit)
		}
	}
	if _, exists := s.lookup(key); !exists && s.countLocked() >= MaxAttrs {
		return fmt.Errorf("%w: the session already holds %d attributes", ErrTooLarge, MaxAttrs)
	}
	s.setPending(change{key: key, value: b})
	return nil
}

// countLocked returns the number of attributes. Callers hold s.mu.
func (s *Session) countLocked() int {
	n := 0
	for _, a := range s.rec.Attrs {
		if _, ok := s.lookup(a.Key); ok {
			n++
		}
	}
	for _, c := range s.pending {
		if _, stored := findAttr(s.rec.Attrs, c.key); !stored && !c.removed {
			n++
		}
	}
	return n
}

// sizeWith returns the session's encoded size if key held n bytes.
func (s *Session) sizeWith(key string, n int) int {
	size := 0
	for _, a := range s.rec.Attrs {
		if a.Key != key {
			if v, ok := s.lookup(a.Key); ok {
				size += len(a.Key) + len(v)
			}
		}
	}
	for _, c := range s.pending {
		if c.key != key && !c.removed {
			if _, stored := findAttr(s.rec.Attrs, c.key); !stored {
				size += len(c.key) + len(c.value)
			}
		}
	}
	return size + len(key) + n
}

func (s *Session) setPending(c change) {
	for i := range s.pending {
		if s.pending[i].key == c.key {
			s.pending[i] = c
			return
		}
	}
	s.pending = append(s.pending, c)
}

// writable loads the session and reports whether it may still change.
// Callers hold s.mu.
func (s *Session) writable() error {
	if s.committed {
		if s.commitErr != nil {
			return s.commitErr
		}
		return ErrCommitted
	}
	return s.load(s.ctx())
}

// startNew begins a new session. Callers hold s.mu.
func (s *Session) startNew() error {
	if max := s.m.cfg.MaxSessions; max > 0 {
		if n, err := s.m.store.Len(s.ctx()); err != nil {
			return fmt.Errorf("session: count sessions: %w", err)
		} else if n >= max {
			return s.tooMany(n)
		}
	}
	s.isNew = true
	s.id = ID{Base: s.m.newKey(), Route: s.m.cfg.Route}
	now := time.Now()
	s.rec = Record{Key: s.id.Base, Created: now, LastAccess: now, IdleTimeout: s.m.cfg.IdleTimeout}
	if t := s.m.cfg.AbsoluteTimeout; t > 0 {
		s.rec.AbsoluteDeadline = now.Add(t)
	}
	s.cookie = cookieSet
	return nil
}

// tooMany refuses a new session. The refusal also decides the response
// (503), even if the handler ignores the error.
func (s *Session) tooMany(n int) error {
	s.m.log.Warn("session refused: too many live sessions",
		slog.Int("live", n), slog.Int("max", s.m.cfg.MaxSessions))
	s.refused = fmt.Errorf("%w (%d live, Config.MaxSessions is %d)", ErrTooManySessions, n, s.m.cfg.MaxSessions)
	return s.refused
}

// Delete removes key from the session. Deleting a key that does not
// exist is a no-op.
func (s *Session) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, ok := s.lookup(key); !ok {
		return nil
	}
	s.setPending(change{key: key, removed: true})
	return nil
}

// Keys returns the session's attribute keys, sorted.
func (s *Session) Keys() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(s.ctx()); err != nil {
		return nil, err
	}
	var keys []string
	for _, a := range s.rec.Attrs {
		if _, ok := s.lookup(a.Key); ok {
			keys = append(keys, a.Key)
		}
	}
	for _, c := range s.pending {
		if _, stored := findAttr(s.rec.Attrs, c.key); !stored && !c.removed {
			keys = append(keys, c.key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// RenewID gives the session a new id and keeps its data: call it when a
// user logs in, so that an id an attacker planted before the login
// (session fixation) is worthless after it. Without a session, it does
// nothing.
func (s *Session) RenewID() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	switch {
	case s.isNew:
		s.id.Base = s.m.newKey()
		s.rec.Key = s.id.Base
	case s.exists:
		s.newKey = s.m.newKey()
		s.id = ID{Base: s.newKey, Route: s.m.cfg.Route}
		s.cookie = cookieSet
	}
	return nil
}

// Invalidate destroys the session (SessionDestroyed fires with
// ReasonInvalidated) and clears the client's cookie. A later Put in the
// same request starts a new session with a new id.
func (s *Session) Invalidate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if s.exists && s.toDelete == "" {
		s.toDelete = s.rec.Key
		s.deletedRec = s.rec
	}
	s.exists, s.isNew = false, false
	s.rec, s.pending, s.newKey, s.idleChange = Record{}, nil, "", 0
	s.id = ID{}
	s.cookie = cookieClear
	s.invalidated = true
	return nil
}

// SetIdleTimeout changes how long this session lives without a request,
// for this session only. Zero or negative means no idle expiry.
func (s *Session) SetIdleTimeout(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if d <= 0 {
		d = -1 // Delta uses 0 for "unchanged"; Record uses 0 for "none"
	}
	if s.isNew {
		s.rec.IdleTimeout = max(d, 0)
		return nil
	}
	if !s.exists {
		if err := s.startNew(); err != nil {
			return err
		}
		s.rec.IdleTimeout = max(d, 0)
		return nil
	}
	s.idleChange = d
	return nil
}

// EncodeURL returns u with ";<URLParam>=<id>" added to its path when the
// request carried its session id in the URL (a client that does not take
// cookies), so that the next request finds the session; otherwise u
// unchanged. Ids in URLs leak through logs, history and Referer headers, so
// shoal puts them there only for clients that already use them. Use it for
// links and redirects.
func (s *Session) EncodeURL(u string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || !s.fromURL || s.load(s.ctx()) != nil || (!s.exists && !s.isNew) {
		return u
	}
	cut := len(u)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		cut = i
	}
	return u[:cut] + ";" + s.m.cfg.URLParam + "=" + s.id.String() + u[cut:]
}

// commit sends the request's changes to the store, once. Callers must not
// hold s.mu.
func (s *Session) commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return s.commitErr
	}
	s.committed = true
	if !s.loaded {
		return nil // the handler never used the session
	}
	s.commitErr = s.commitLocked(ctx)
	return s.commitErr
}

func (s *Session) commitLocked(ctx context.Context) error {
	m := s.m
	if s.loadErr != nil {
		return s.loadErr
	}
	if s.refused != nil {
		return s.refused
	}
	if s.toDelete != "" {
		if err := m.store.Delete(ctx, s.toDelete); err != nil {
			return fmt.Errorf("session: invalidate: %w", err)
		}
		m.fireDestroyed(ctx, &s.deletedRec, ReasonInvalidated)
	}
	now := time.Now()
	switch {
	case s.isNew:
		return s.create(ctx, now)
	case s.exists:
		return s.update(ctx, now)
	}
	return nil
}

func (s *Session) create(ctx context.Context, now time.Time) error {
	m := s.m
	rec := s.rec
	rec.Attrs = nil
	for _, c := range s.pending {
		if !c.removed {
			rec.Attrs = append(rec.Attrs, Attr{Key: c.key, Value: c.value})
		}
	}
	if len(rec.Attrs) == 0 && rec.IdleTimeout == m.cfg.IdleTimeout {
		// Nothing to keep: no session after all.
		s.isNew = false
		s.cookie = cookieKeep
		if s.invalidated {
			s.cookie = cookieClear
		}
		return nil
	}
	slices.SortFunc(rec.Attrs, func(a, b Attr) int { return strings.Compare(a.Key, b.Key) })
	rec.LastAccess = now
	if max := m.cfg.MaxSessions; max > 0 {
		n, err := m.store.Len(ctx)
		if err != nil {
			return fmt.Errorf("session: count sessions: %w", err)
		}
		if n >= max {
			return s.tooMany(n)
		}
	}
	for try := 0; ; try++ {
		start := time.Now()
		err := m.store.Create(ctx, rec)
		m.stats.commit.Observe(time.Since(start))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExists) || try == 2 {
			return fmt.Errorf("session: create: %w", err)
		}
		// A 144-bit collision means a broken random source or a store
		// that mixes up keys; draw again rather than share a session.
		rec.Key = s.m.newKey()
		s.id.Base = rec.Key
	}
	rec.Version = 1
	s.rec = rec
	m.stats.Created.Add(1)
	m.fire(ctx, evCreated, Event{Key: rec.Key, Created: rec.Created, LastAccess: rec.LastAccess, attrs: rec.Attrs})
	for _, a := range rec.Attrs {
		m.fire(ctx, evAdded, Event{Key: rec.Key, Attr: a.Key, Created: rec.Created, LastAccess: rec.LastAccess, attrs: rec.Attrs})
	}
	return nil
}

func (s *Session) update(ctx context.Context, now time.Time) error {
	m := s.m
	d := Delta{Access: now, IdleTimeout: s.idleChange, NewKey: s.newKey, BaseVersion: s.rec.Version}
	type attrEvent struct {
		kind eventKind
		key  string
	}
	var events []attrEvent
	for _, c := range s.pending {
		_, stored := findAttr(s.rec.Attrs, c.key)
		switch {
		case c.removed && stored:
			d.Removed = append(d.Removed, c.key)
			events = append(events, attrEvent{evRemoved, c.key})
		case !c.removed:
			d.Set = append(d.Set, Attr{Key: c.key, Value: c.value})
			kind := evAdded
			if stored {
				kind = evReplaced
			}
			events = append(events, attrEvent{kind, c.key})
		}
	}
	if d.TouchOnly() && now.Sub(s.rec.LastAccess) < touchGranularity {
		return nil
	}
	slices.SortFunc(d.Set, func(a, b Attr) int { return strings.Compare(a.Key, b.Key) })
	slices.Sort(d.Removed)
	slices.SortFunc(events, func(a, b attrEvent) int { return strings.Compare(a.key, b.key) })
	start := time.Now()
	version, err := m.store.Commit(ctx, s.rec.Key, d)
	m.stats.commit.Observe(time.Since(start))
	if err != nil {
		if errors.Is(err, ErrNotFound) && d.TouchOnly() {
			// Removed meanwhile (another request invalidated it): nothing
			// of this request is lost, and the client's cookie is stale.
			s.exists = false
			s.cookie = cookieClear
			return nil
		}
		return fmt.Errorf("session: commit: %w", err)
	}
	oldKey := s.rec.Key
	s.rec = applyDelta(s.rec, d)
	s.rec.Version = version
	if d.NewKey != "" {
		m.fire(ctx, evIDChanged, Event{Key: d.NewKey, OldKey: oldKey, Created: s.rec.Created, LastAccess: now, attrs: s.rec.Attrs})
	}
	for _, e := range events {
		m.fire(ctx, e.kind, Event{Key: s.rec.Key, Attr: e.key, Created: s.rec.Created, LastAccess: now, attrs: s.rec.Attrs})
	}
	return nil
}

// ApplyDelta returns rec with d applied: the one definition of what a
// delta does, shared by the Manager and every store.
func ApplyDelta(rec Record, d Delta) Record {
	return applyDelta(rec, d)
}

func applyDelta(rec Record, d Delta) Record {
	attrs := make([]Attr, 0, len(rec.Attrs)+len(d.Set))
	i, j := 0, 0
	removed := func(k string) bool {
		_, found := slices.BinarySearch(d.Removed, k)
		return found
	}
	for i < len(rec.Attrs) || j < len(d.Set) {
		switch {
		case j == len(d.Set) || (i < len(rec.Attrs) && rec.Attrs[i].Key < d.Set[j].Key):
			if !removed(rec.Attrs[i].Key) {
				attrs = append(attrs, rec.Attrs[i])
			}
			i++
		case i == len(rec.Attrs) || d.Set[j].Key < rec.Attrs[i].Key:
			attrs = append(attrs, d.Set[j])
			j++
		default: // same key: the delta's value replaces
			attrs = append(attrs, d.Set[j])
			i++
			j++
		}
	}
	rec.Attrs = attrs
	if d.Access.After(rec.LastAccess) {
		rec.LastAccess = d.Access
	}
	switch {
	case d.IdleTimeout > 0:
		rec.IdleTimeout = d.IdleTimeout
	case d.IdleTimeout < 0:
		rec.IdleTimeout = 0
	}
	if d.NewKey != "" {
		rec.Key = d.NewKey
	}
	return rec
}

func typeName(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}
