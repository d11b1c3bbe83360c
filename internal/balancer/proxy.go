package balancer

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/internal/placement"
)

// Balancer is an http.Handler that sends each request to one member:
// the member its session's route names if that member is usable, else
// the one its Selector picks, failing over to others as Config says. It
// is safe for concurrent use. Close stops its health checks.
type Balancer struct {
	log *slog.Logger
	// cur is the settings the request path reads: one immutable value,
	// replaced whole by Reload, so that a request sees one config.
	cur atomic.Pointer[settings]
	// set is the members now: the configured ones, and those a cluster
	// reports (SetClusterMembers). static is the configured ones alone.
	set    atomic.Pointer[memberSet]
	setMu  sync.Mutex // serialises changes of set, static and cur (Reload, cluster)
	static []*Member
	// counts holds the byrequests counters' lock, shared by every
	// selector the balancer makes (byrequests, bybusyness, hash's
	// fallback), so that a reload that changes the method never lets two
	// selectors touch the members' counters at once.
	counts ByRequests

	proxy *httputil.ReverseProxy
	lists sync.Pool // *[]*Member scratch lists of candidates

	// ownerRoutes counts requests sent to a session's owner because its
	// route's member was not usable (cluster mode).
	ownerRoutes atomic.Int64
	retries     atomic.Uint64
	cluster     *clusterFollower // nil unless JoinCluster was called

	health    *healthRun    // the running health checks, or nil; under setMu
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// settings is what requests read of a Balancer's config, derived once per
// New or Reload and never changed after.
type settings struct {
	cfg         Config
	sticky      sticky
	selector    Selector
	counter     stickyCounter // the selector's, or nil
	hash        *Hash         // the selector if it is a Hash: the fast path feeds it keys
	opts        headOpts      // what the fast path's parser extracts
	failOn      [600]bool     // by status code: FailOnStatus
	maxAttempts int
	transport   *http.Transport // the net/http path's transport to members
	// viaHandler sends every request through the net/http path: some
	// member speaks AJP, which the fast path does not.
	viaHandler bool
}

// newSettings derives the settings of cfg, which Check accepted. It
// reuses prev's selector and transport when cfg does not change them, so
// that byrequests' sequence and pooled connections survive a reload.
func (b *Balancer) newSettings(cfg Config, prev *settings) *settings {
	s := &settings{cfg: cfg, maxAttempts: cfg.MaxAttempts}
	for _, mc := range cfg.Members {
		if strings.HasPrefix(mc.URL, "ajp://") {
			s.viaHandler = true
		}
	}
	s.cfg.Members = nil // the members live in set; nothing reads them here
	s.sticky, _ = parseSticky(cfg.Sticky)
	if prev != nil && methodName(prev.cfg.Method) == methodName(cfg.Method) && prev.cfg.HashKey == cfg.HashKey {
		s.selector = prev.selector
	} else {
		s.selector, _ = newSharedSelector(cfg.Method, cfg.HashKey, &b.counts)
	}
	s.counter, _ = s.selector.(stickyCounter)
	s.hash, _ = s.selector.(*Hash)
	s.opts.cookie = s.sticky.cookie
	if s.hash != nil {
		s.opts.hashHeader = strings.ToLower(s.hash.header)
		s.opts.hashCookie = s.hash.cookie
	}
	for _, code := range cfg.FailOnStatus {
		s.failOn[code] = true
	}
	if prev != nil && prev.cfg.ConnectTimeout == cfg.ConnectTimeout && prev.cfg.ResponseHeaderTimeout == cfg.ResponseHeaderTimeout &&
		prev.cfg.AJPSecret == cfg.AJPSecret {
		s.transport = prev.transport
	} else {
		s.transport = newTransport(&cfg)
	}
	return s
}

// New returns a Balancer for cfg and starts its health checks. Its errors
// wrap ErrInvalidConfig.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	b := &Balancer{log: cfg.Logger, done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, mc := range cfg.Members {
		m, err := NewMember(mc)
		if err != nil { // checked above
			return nil, fmt.Errorf("%w: member %s: %v", ErrInvalidConfig, mc.Route, err)
		}
		b.static = append(b.static, m)
	}
	b.set.Store(newMemberSet(b.static))
	b.cur.Store(b.newSettings(cfg, nil))
	b.lists.New = func() any { l := make([]*Member, 0, 16); return &l }

	errorLog := log.New(io.Discard, "", 0)
	if cfg.Logger != nil {
		errorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite:        b.rewrite,
		Transport:      &attemptTransport{},
		ModifyResponse: b.modifyResponse,
		ErrorHandler:   recordError,
		BufferPool:     copyBuffers{},
		ErrorLog:       errorLog,
	}
	b.setMu.Lock()
	b.startHealth(b.cur.Load())
	b.setMu.Unlock()
	return b, nil
}

// Members returns the balancer's members: the configured ones in
// configuration order, then those the cluster reports, by route.
func (b *Balancer) Members() []*Member { return append([]*Member(nil), b.set.Load().list...) }

// attempts returns how many members one request may try: MaxAttempts, or
// one per member.
func (b *Balancer) attempts(s *settings) int {
	if s.maxAttempts > 0 {
		return s.maxAttempts
	}
	return len(b.set.Load().list)
}

// splitID splits a session id into its base and its route (after the
// first '.', Apache's rule).
func splitID(id string) (base, route string) {
	base, route, _ = strings.Cut(id, ".")
	return base, route
}

// memberSet is an immutable list of members, indexed by route.
type memberSet struct {
	list    []*Member
	byRoute map[string]*Member
	// owners places a session's key on cluster members (nil without a
	// cluster), and ownersN is the cluster's number of owners.
	owners  *placement.Ring
	ownersN int
}

func newMemberSet(list []*Member) *memberSet {
	s := &memberSet{list: list, byRoute: make(map[string]*Member, len(list))}
	for _, m := range list {
		s.byRoute[m.route] = m
	}
	return s
}

// Close stops the health checks, waits for them and closes idle
// connections to members. It is idempotent; the Balancer still proxies
// afterwards, without health checks.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		if b.cluster != nil {
			b.cluster.close()
		}
		b.setMu.Lock()
		b.stopHealthLocked()
		close(b.done)
		b.setMu.Unlock()
		b.wg.Wait()
		b.cur.Load().transport.CloseIdleConnections()
		for _, m := range b.set.Load().list {
			m.target().pool.closeIdle()
		}
	})
	return nil
}

// ServeHTTP proxies r to a member, failing over as the package doc says.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := b.cur.Load()
	if s.cfg.MaxBodyBytes > 0 && r.ContentLength > s.cfg.MaxBodyBytes {
		writePlain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	var body *replayBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = newReplayBody(r.Body, r.ContentLength, s.cfg.RetryBodyBytes, s.cfg.MaxBodyBytes)
	}
	b.forceRecovery(s, time.Now().UnixNano())
	base, route := splitID(s.sticky.sessionID(r))
	idempotent := isIdempotent(r)
	var key string
	if s.hash != nil {
		key = s.hash.key(r)
	}

	var triedBuf [4]*Member
	a := &attempt{s: s, tried: triedBuf[:0]}
	out := r.WithContext(context.WithValue(r.Context(), attemptKey{}, a))
	for {
		now := time.Now().UnixNano()
		m := b.pick(s, r, key, base, route, a.tried, now)
		if m == nil {
			b.noMember(w, r, route, len(a.tried))
			return
		}
		a.begin(m)
		a.canRetry = idempotent && len(a.tried)+1 < b.attempts(s) && (body == nil || body.replayable())
		if body != nil {
			br := body.reader()
			if br == nil { // a failed attempt read more than could be kept
				writePlain(w, http.StatusBadGateway, "bad gateway")
				return
			}
			out.Body = br
			out.GetBody = func() (io.ReadCloser, error) {
				if br := body.reader(); br != nil {
					return br, nil
				}
				return nil, errBodyReplaced
			}
		}
		b.try(w, out, m)
		if a.err == nil {
			if m.clearError(time.Now().UnixNano()) {
				b.log.Info("member usable again", slog.String("member", m.route))
			}
			return
		}
		if !b.failedOver(w, r, a, body, idempotent) {
			return
		}
		a.tried = append(a.tried, m)
		if len(a.tried) >= b.attempts(s) {
			b.noMember(w, r, route, len(a.tried))
			return
		}
		b.retries.Add(1)
	}
}

// Retries returns how many times a request was sent to another member
// after one failed (shoal_balancer_retries_total).
func (b *Balancer) Retries() uint64 { return b.retries.Load() }

// try proxies one attempt of the request to m.
func (b *Balancer) try(w http.ResponseWriter, r *http.Request, m *Member) {
	m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	b.proxy.ServeHTTP(w, r)
	if a := attemptFrom(r.Context()); a != nil && a.status != 0 && a.failStatus == 0 {
		m.observeResponse(a.status, time.Since(a.start)) // for the manager's metrics
	}
}

// rewrite is the ReverseProxy's Rewrite: the attempt's member, the
// client's Host, and X-Forwarded-For, -Host and -Proto set afresh (the
// client's own are dropped by ReverseProxy).
func (b *Balancer) rewrite(pr *httputil.ProxyRequest) {
	a := attemptFrom(pr.In.Context())
	pr.SetURL(a.member.target().url)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// pick returns the member for the next attempt of r, or nil if there is
// none: the member of the request's route if it is usable and was not
// tried; else, when the balancer follows a cluster, the first usable owner
// of the session (a node that holds a copy: the session's node died, and
// this skips the hop a random member would make); else the selector's
// choice among the members that take new requests.
//
// r is the request on the net/http path, nil on the fast path; key is the
// hash method's key of the request.
func (b *Balancer) pick(s *settings, r *http.Request, key, base, route string, tried []*Member, now int64) *Member {
	set := b.set.Load()
	if route != "" {
		if m := set.byRoute[route]; m != nil && m.usable(now) && !contains(tried, m) {
			if s.counter != nil {
				b.countSticky(s, set, m, now)
			}
			return m
		}
	}
	if base != "" && set.owners != nil {
		var buf [8]string
		for _, o := range set.owners.Owners(buf[:0], base, set.ownersN) {
			if m := set.byRoute[o]; m != nil && m.usable(now) && !contains(tried, m) {
				b.ownerRoutes.Add(1)
				return m
			}
		}
	}
	lp := b.lists.Get().(*[]*Member)
	defer b.lists.Put(lp)
	cands := b.candidates(set, (*lp)[:0], tried, now)
	*lp = cands[:0]
	if len(cands) == 0 {
		return nil
	}
	var m *Member
	if s.hash != nil {
		m = s.hash.selectKey(cands, key)
	} else {
		m = s.selector.Select(cands, r)
	}
	clear(cands)
	return m
}

// candidates appends to dst the members that take new requests and were
// not tried, in Apache's order: the lowest lbset that has any such member,
// and in it the regular members, or if there is none, its hot standbys.
// With one lbset (the usual case) it is one pass per kind.
func (b *Balancer) candidates(set *memberSet, dst, tried []*Member, now int64) []*Member {
	for tier := int32(-1); ; {
		// The next tier: the lowest lbset above the one just tried.
		next, found := int32(0), false
		for _, m := range set.list {
			if s := m.lbset.Load(); s > tier && (!found || s < next) {
				next, found = s, true
			}
		}
		if !found {
			return dst
		}
		tier = next
		for _, standby := range []bool{false, true} {
			for _, m := range set.list {
				if m.lbset.Load() == tier && m.standby.Load() == standby && m.acceptsNew(now) && !contains(tried, m) {
					dst = append(dst, m)
				}
			}
			if len(dst) > 0 {
				return dst
			}
		}
	}
}

// countSticky lets the selector count a request that its route sent to m.
func (b *Balancer) countSticky(s *settings, set *memberSet, m *Member, now int64) {
	lp := b.lists.Get().(*[]*Member)
	defer b.lists.Put(lp)
	usable := (*lp)[:0]
	for _, u := range set.list {
		if u.usable(now) {
			usable = append(usable, u)
		}
	}
	s.counter.CountSticky(usable, m)
	clear(usable)
	*lp = usable[:0]
}

// forceRecovery is Apache's forcerecovery: when every member is in error,
// they are all made usable at once rather than failing every request
// until Retry has passed.
func (b *Balancer) forceRecovery(s *settings, now int64) {
	if s.cfg.NoForceRecovery {
		return
	}
	set := b.set.Load()
	for _, m := range set.list {
		if !m.inError(now) {
			return
		}
	}
	cleared := 0
	for _, m := range set.list {
		if eu := m.errorUntil.Load(); eu != 0 && m.errorUntil.CompareAndSwap(eu, 0) {
			cleared++
		}
	}
	if cleared > 0 {
		b.log.Warn("all members in error: trying them again now (force recovery)", slog.Int("members", cleared))
	}
}

// noMember answers 503 when no member can take the request.
func (b *Balancer) noMember(w http.ResponseWriter, r *http.Request, route string, tried int) {
	b.log.Error("no member available", slog.String("method", r.Method), slog.String("host", r.Host),
		slog.String("route", route), slog.Int("tried", tried))
	writePlain(w, http.StatusServiceUnavailable, "no member available")
}

func contains(ms []*Member, m *Member) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// isIdempotent reports whether r may be sent twice: its method is
// idempotent (RFC 9110 9.2.2), or it carries an Idempotency-Key.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

func writePlain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

// copyBuffers is the ReverseProxy's pool of 32 KiB copy buffers. It
// pools array pointers, so that neither Get nor Put allocates.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte { return copyBufferPool.Get().(*[32 << 10]byte)[:] }

func (copyBuffers) Put(b []byte) {
	if len(b) == 32<<10 {
		copyBufferPool.Put((*[32 << 10]byte)(b))
	}
}
