package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Config configures a Manager. The zero value of each field means the
// default documented on it; only Store is required.
type Config struct {
	// Store keeps the sessions: memstore.New() for one node,
	// cluster.New(...) for several, redisstore.New(...) for Redis.
	Store Store

	// Route is this node's name, appended to session ids as
	// "<base>.<route>" so that a balancer can keep a session on its node.
	// It must match [A-Za-z0-9_-]{1,64}. Empty means ids carry no route.
	Route string

	// CookieName is the session cookie's name. Default "JSESSIONID".
	CookieName string
	// URLParam is the name of the path parameter (";jsessionid=") and
	// query parameter that may carry the id for clients without cookies.
	// Default "jsessionid". Ids in the URL win over the cookie, as in
	// Apache's mod_proxy_balancer.
	URLParam string
	// CookiePath is the cookie's Path. Default "/".
	CookiePath string
	// CookieDomain is the cookie's Domain. Default none (host only).
	CookieDomain string
	// CookieSecure forces the Secure attribute. Without it, Secure is set
	// when the request came over TLS.
	CookieSecure bool
	// CookieSameSite is the cookie's SameSite. Default http.SameSiteLaxMode.
	CookieSameSite http.SameSite

	// IdleTimeout is how long a session lives without a request that uses
	// it. Default 30 minutes; negative means no idle expiry.
	IdleTimeout time.Duration
	// AbsoluteTimeout is how long a session lives after its creation,
	// however busy. Default 0: off.
	AbsoluteTimeout time.Duration

	// MaxSessions limits the live sessions in the store; creating one
	// more answers 503. Default 0: no limit.
	MaxSessions int
	// MaxSessionBytes limits a session's encoded size (keys and values);
	// a Put that would exceed it fails with ErrTooLarge. Default 1 MiB;
	// negative means no limit.
	MaxSessionBytes int

	// Codec encodes attribute values. Default CBOR().
	Codec Codec

	// Listeners receive session events, in this order.
	Listeners []Listener
	// DestroyedOnEveryCopy fires SessionDestroyed also on the nodes that
	// held a copy of a session another node expired or deleted (with
	// Event.Copy set), as Tomcat's notifyListenersOnReplication does. By
	// default it fires once in the cluster, on the node that decided. It
	// needs a Store with the CopyWatcher capability (the cluster); other
	// stores hold no copies, so it changes nothing there. The events of
	// copies run on the goroutine that received the other node's message:
	// a listener that blocks delays that node's next messages.
	DestroyedOnEveryCopy bool

	// SweepInterval is how often expired sessions are removed from the
	// store (and SessionDestroyed fires for them). Default 1 minute;
	// negative means never (call Manager.Sweep yourself).
	SweepInterval time.Duration

	// Logger receives the Manager's log lines. Default: discard.
	Logger *slog.Logger

	// ErrorFunc writes the response when the session cannot be loaded or
	// committed. Default: 503 for ErrTooManySessions, 500 otherwise, with
	// a plain-text body that names no session data.
	ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)
}

// Manager loads sessions for requests, commits their changes to the Store
// and tells Listeners. Create one with New; its methods are safe for
// concurrent use. Close stops its sweep goroutine.
type Manager struct {
	cfg   Config
	store Store
	codec Codec
	log   *slog.Logger
	// routes is the store's RouteChecker, or nil if it has none.
	routes RouteChecker
	// newKey draws a new session key: the store's KeyGenerator, or NewBase.
	newKey func() string
	stats  Stats

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// touchGranularity is how stale a session's access time may get before a
// request that changed nothing commits a new one: requests closer together
// than this cost the store no write.
const touchGranularity = time.Second

// New returns a Manager for cfg, or an error naming the setting that is
// wrong.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("session: Config.Store is nil (use memstore.New() for one node)")
	}
	if cfg.Route != "" {
		if err := ValidateRoute(cfg.Route); err != nil {
			return nil, fmt.Errorf("session: Config.Route: %w", err)
		}
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "JSESSIONID"
	}
	if !validCookieName(cfg.CookieName) {
		return nil, fmt.Errorf("session: Config.CookieName %q is not a valid cookie name", cfg.CookieName)
	}
	if cfg.URLParam == "" {
		cfg.URLParam = "jsessionid"
	}
	if !validCookieName(cfg.URLParam) {
		return nil, fmt.Errorf("session: Config.URLParam %q is not a valid parameter name", cfg.URLParam)
	}
	if cfg.CookiePath == "" {
		cfg.CookiePath = "/"
	}
	if cfg.CookieSameSite == 0 {
		cfg.CookieSameSite = http.SameSiteLaxMode
	}
	switch {
	case cfg.IdleTimeout == 0:
		cfg.IdleTimeout = 30 * time.Minute
	case cfg.IdleTimeout < 0:
		cfg.IdleTimeout = 0
	}
	if cfg.AbsoluteTimeout < 0 {
		return nil, errors.New("session: Config.AbsoluteTimeout is negative")
	}
	if cfg.MaxSessions < 0 {
		return nil, errors.New("session: Config.MaxSessions is negative")
	}
	switch {
	case cfg.MaxSessionBytes == 0:
		cfg.MaxSessionBytes = 1 << 20
	case cfg.MaxSessionBytes < 0:
		cfg.MaxSessionBytes = 0
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.Codec == nil {
		cfg.Codec = CBOR()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		cfg:   cfg,
		store: cfg.Store,
		codec: cfg.Codec,
		log:   cfg.Logger,
		done:  make(chan struct{}),
	}
	m.routes, _ = cfg.Store.(RouteChecker)
	m.newKey = NewBase
	if kg, ok := cfg.Store.(KeyGenerator); ok {
		m.newKey = kg.NewKey
	}
	if w, ok := cfg.Store.(CopyWatcher); ok && cfg.DestroyedOnEveryCopy {
		w.WatchCopiesDestroyed(func(rec Record, why Reason) {
			m.fire(context.Background(), evDestroyed, Event{Key: rec.Key, Reason: why, Created: rec.Created,
				LastAccess: rec.LastAccess, Copy: true, attrs: rec.Attrs})
		})
	}
	if cfg.SweepInterval > 0 {
		m.wg.Add(1)
		go m.sweepLoop(cfg.SweepInterval)
	}
	return m, nil
}

// Route returns the node's route, as configured.
func (m *Manager) Route() string { return m.cfg.Route }

// CookieName returns the session cookie's name.
func (m *Manager) CookieName() string { return m.cfg.CookieName }

// Close stops the Manager's sweep goroutine and waits for it. It does not
// close the Store, which the caller created and owns. Close is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		if w, ok := m.store.(CopyWatcher); ok && m.cfg.DestroyedOnEveryCopy {
			w.WatchCopiesDestroyed(nil)
		}
	})
	m.wg.Wait()
	return nil
}

func (m *Manager) sweepLoop(every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if _, err := m.Sweep(ctx); err != nil {
				m.log.Warn("session sweep failed", slog.Any("err", err))
			}
			cancel()
		}
	}
}

// sweepBatch bounds one Store.Expire call so that a sweep never holds a
// store's locks for long.
const sweepBatch = 1000

// Sweep removes the sessions whose deadline has passed and fires
// SessionDestroyed (ReasonExpired) for each. It returns how many it removed.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		recs, err := m.store.Expire(ctx, time.Now(), sweepBatch)
		for i := range recs {
			m.fireDestroyed(ctx, &recs[i], ReasonExpired)
		}
		total += len(recs)
		if err != nil {
			return total, fmt.Errorf("session: sweep: %w", err)
		}
		if len(recs) < sweepBatch {
			return total, nil
		}
	}
}

// Evict removes the session named by id (with or without its route) and
// fires SessionDestroyed with ReasonEvicted. Evicting an unknown session is
// a no-op.
func (m *Manager) Evict(ctx context.Context, id string) error {
	parsed, err := ParseID(id)
	if err != nil {
		return err
	}
	rec, err := m.store.Load(ctx, parsed.Base)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.store.Delete(ctx, parsed.Base); err != nil {
		return err
	}
	m.fireDestroyed(ctx, &rec, ReasonEvicted)
	m.log.Info("session evicted", slog.String("session", Fingerprint(parsed.Base)))
	return nil
}

func (m *Manager) fireDestroyed(ctx context.Context, rec *Record, why Reason) {
	m.stats.destroyed(why)
	m.fire(ctx, evDestroyed, Event{Key: rec.Key, Reason: why, Created: rec.Created, LastAccess: rec.LastAccess, attrs: rec.Attrs})
}

// Fingerprint returns a short, stable, non-reversible name for a session
// key, for logs and pages: shoal never logs a full session id.
func Fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

func (m *Manager) errorFunc() func(http.ResponseWriter, *http.Request, error) {
	if m.cfg.ErrorFunc != nil {
		return m.cfg.ErrorFunc
	}
	return defaultErrorFunc
}

func defaultErrorFunc(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrTooManySessions) {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "503 service unavailable: too many sessions on this server", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "500 internal server error: session store failed", http.StatusInternalServerError)
}

// validCookieName reports whether s is an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
			return false
		}
	}
	return true
}
