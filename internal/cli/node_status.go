package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-go/shoal/internal/doctor"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/cluster"
)

// nodeRuntime is what a running node's operational endpoints read: its
// config, session manager and store.
type nodeRuntime struct {
	cfg     *nodeConfig
	mgr     *session.Manager
	store   session.Store
	cluster *cluster.Store // nil for a lone node (memory store)
	started time.Time
	log     *slog.Logger

	writes, reads *rateLimit // of the probe
	// interfaces lists the host's network interfaces, dialUDP routes to
	// a multicast group (tests replace them).
	interfaces func() ([]net.Interface, error)
	dialUDP    func(addr string) error
}

// withNodeEndpoints routes the node's operational endpoints (GET
// /metrics, GET /healthz/cluster, POST/GET/DELETE /healthz/probe) to
// rt's handlers and every other path to app. A request that came through
// a proxy (it carries X-Forwarded-For or Forwarded) gets 403 on them:
// they are for Prometheus and shoal doctor reaching the node directly,
// not for clients through the balancer, which forwards every path.
func withNodeEndpoints(cfg *nodeConfig, mgr *session.Manager, store session.Store, log *slog.Logger, app http.Handler) (http.Handler, error) {
	rt := &nodeRuntime{cfg: cfg, mgr: mgr, store: store, started: time.Now(), log: log,
		writes: newRateLimit(probeWritesPerSecond), reads: newRateLimit(probeReadsPerSecond),
		interfaces: net.Interfaces, dialUDP: dialUDPRoute}
	rt.cluster, _ = store.(*cluster.Store)
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		newNodeCollector(rt),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", direct(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})))
	mux.Handle("GET "+doctor.StatusPath, direct(http.HandlerFunc(rt.serveStatus)))
	mux.Handle("POST "+doctor.ProbePath, direct(http.HandlerFunc(rt.writeProbe)))
	mux.Handle("GET "+doctor.ProbePath, direct(http.HandlerFunc(rt.readProbe)))
	mux.Handle("DELETE "+doctor.ProbePath, direct(http.HandlerFunc(rt.deleteProbe)))
	mux.Handle("/", app)
	return mux, nil
}

// direct refuses requests that came through a proxy.
func direct(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
			writePlain(w, http.StatusForbidden, "forbidden through a proxy: ask the node directly")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// status returns the node's NodeStatus now.
func (rt *nodeRuntime) status() doctor.NodeStatus {
	stats := rt.mgr.Stats()
	st := doctor.NodeStatus{
		Node: rt.cfg.name, State: "ready", Time: time.Now(), Started: rt.started, Version: version(),
		Cookie: rt.mgr.CookieName(), Store: "memory",
		Counters: doctor.Counters{
			Created: stats.Created.Load(), Expired: stats.Expired.Load(), Invalidated: stats.Invalidated.Load(),
			Rebinds: stats.Rebinds.Load(), EncodeFailures: stats.EncodeFailures.Load(),
			CommitFailures: stats.CommitFailures.Load(), Refused: stats.Refused.Load(),
		},
	}
	if msg, at := stats.LastEncodeError(); msg != "" {
		st.LastEncodeError, st.LastEncodeErrorAt = msg, &at
	}
	if rt.cluster == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st.Sessions.Primary, _ = rt.store.Len(ctx) // the memory store does not fail
		return st
	}
	cs := rt.cluster.Status()
	st.Store, st.State = "cluster", cs.State
	owners := fmt.Sprint(cs.Owners)
	if cs.Owners == cluster.AllOwners {
		owners = "all"
	}
	mode := "sync"
	if cs.Async {
		mode = "async"
	}
	c := &doctor.ClusterStatus{Owners: owners, Replication: mode, Discover: cs.Discover, Gossip: cs.Gossip, Repl: cs.Repl,
		Members: []doctor.Member{}, Refusals: []doctor.Refusal{}}
	for _, m := range cs.Members {
		c.Members = append(c.Members, doctor.Member{Name: m.Name, Role: m.Role, State: m.State, HTTP: m.HTTPAddr, Repl: m.ReplAddr, Gossip: m.Gossip})
	}
	for _, r := range cs.Refusals {
		c.Refusals = append(c.Refusals, doctor.Refusal{Via: r.Via, Remote: r.Remote, Reason: r.Reason, Count: r.Count, First: r.First, Last: r.Last})
	}
	if strings.HasPrefix(cs.Discover, "multicast://") {
		c.Multicast = rt.multicast(cs.Discover)
	}
	st.Cluster = c
	st.Sessions = doctor.SessionCounts{Primary: cs.Primary, Backup: cs.Backup, MissingCopies: cs.MissingCopies}
	rs := rt.cluster.Stats()
	st.Counters.Conflicts = rs.Conflicts.Load()
	st.Counters.Fetched = rs.Fetched.Load()
	st.Counters.Unreachable = rs.Unreachable.Load()
	st.Counters.Unreplicated = rs.Unreplicated.Load()
	st.Counters.ReplEncodeFailures = rt.cluster.EncodeFailures()
	return st
}

func (rt *nodeRuntime) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeNodeJSON(w, http.StatusOK, rt.status())
}

// multicast reports whether discovery by multicast can work on this
// host: an interface that is up and has the MULTICAST flag (loopback
// aside: multicast gossip is for a LAN), and a route to the group.
func (rt *nodeRuntime) multicast(discover string) *doctor.Multicast {
	m := &doctor.Multicast{Interfaces: []string{}}
	u, err := url.Parse(discover)
	if err != nil || u.Host == "" {
		m.Problem = fmt.Sprintf("cannot read the group of %q", discover)
		return m
	}
	m.Group = u.Host
	ifs, err := rt.interfaces()
	if err != nil {
		m.Problem = "cannot list the network interfaces: " + err.Error()
		return m
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0 {
			m.Interfaces = append(m.Interfaces, ifc.Name)
		}
	}
	routeErr := rt.dialUDP(m.Group)
	m.Route = routeErr == nil
	switch {
	case len(m.Interfaces) == 0:
		m.Problem = "no interface is up with the MULTICAST flag"
	case routeErr != nil:
		m.Problem = "no route to the multicast group: " + routeErr.Error()
	}
	return m
}

// dialUDPRoute asks the kernel for a route to addr: connecting a UDP
// socket sends nothing, but fails when no route covers the address
// ("network is unreachable").
func dialUDPRoute(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// The probe: a session written and read through the node's real session
// manager and store, for shoal doctor's end-to-end replication check. It
// holds one attribute (probeKey: who wrote it and when), lives a minute
// without use, and the doctor deletes it when done. Anyone who can reach
// the node can already create sessions (POST /login), so the probe needs
// no secret; it is rate-limited so that it costs no more than that, and
// it reads and deletes only sessions that hold probeKey.
const (
	probeKey             = "shoal.probe"
	probeIdle            = time.Minute
	probeWritesPerSecond = 5
	probeReadsPerSecond  = 100
)

// probeValue is what a probe session holds.
type probeValue struct {
	Node    string
	Written int64 // Unix nanoseconds, the writer's clock
}

// probeRequest returns a copy of r for the session middleware: without
// its cookies, URL parameters or body, and carrying the session id (if
// not empty) as the manager's cookie, so that the probe touches only the
// session the doctor names.
func (rt *nodeRuntime) probeRequest(r *http.Request, id string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: doctor.ProbePath}
	r2.RequestURI = doctor.ProbePath
	r2.Body = http.NoBody
	r2.Header = http.Header{}
	if id != "" {
		r2.Header.Set("Cookie", rt.mgr.CookieName()+"="+id)
	}
	return r2
}

func (rt *nodeRuntime) writeProbe(w http.ResponseWriter, r *http.Request) {
	if !rt.writes.allow() {
		w.Header().Set("Retry-After", "1")
		writePlain(w, http.StatusTooManyRequests, "too many probes")
		return
	}
	rt.mgr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		now := time.Now()
		if err := s.SetIdleTimeout(probeIdle); err != nil {
			rt.probeFailed(w, err)
			return
		}
		if err := s.Put(probeKey, probeValue{Node: rt.cfg.name, Written: now.UnixNano()}); err != nil {
			rt.probeFailed(w, err)
			return
		}
		writeNodeJSON(w, http.StatusOK, doctor.Probe{Node: rt.cfg.name, Session: s.ID(), WrittenAt: now, WrittenBy: rt.cfg.name})
	})).ServeHTTP(w, rt.probeRequest(r, ""))
}

// probeID returns the ?session= id of a probe request, or "" after
// answering 400.
func probeID(w http.ResponseWriter, r *http.Request) string {
	id := r.URL.Query().Get("session")
	if _, err := session.ParseID(id); err != nil {
		writePlain(w, http.StatusBadRequest, "?session=ID: a probe session id, as POST "+doctor.ProbePath+" answered")
		return ""
	}
	return id
}

func (rt *nodeRuntime) readProbe(w http.ResponseWriter, r *http.Request) {
	if !rt.reads.allow() {
		w.Header().Set("Retry-After", "1")
		writePlain(w, http.StatusTooManyRequests, "too many probes")
		return
	}
	id := probeID(w, r)
	if id == "" {
		return
	}
	rt.mgr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		v, ok, err := session.Get[probeValue](s, probeKey)
		if err != nil {
			rt.probeFailed(w, err)
			return
		}
		if !ok {
			writePlain(w, http.StatusNotFound, "no probe session with this id")
			return
		}
		writeNodeJSON(w, http.StatusOK, doctor.Probe{Node: rt.cfg.name, Session: s.ID(), WrittenAt: time.Unix(0, v.Written), WrittenBy: v.Node})
	})).ServeHTTP(w, rt.probeRequest(r, id))
}

func (rt *nodeRuntime) deleteProbe(w http.ResponseWriter, r *http.Request) {
	if !rt.reads.allow() {
		w.Header().Set("Retry-After", "1")
		writePlain(w, http.StatusTooManyRequests, "too many probes")
		return
	}
	id := probeID(w, r)
	if id == "" {
		return
	}
	rt.mgr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		_, ok, err := session.Get[probeValue](s, probeKey)
		if err != nil || !ok {
			writePlain(w, http.StatusNotFound, "no probe session with this id")
			return
		}
		if err := s.Invalidate(); err != nil {
			rt.probeFailed(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(w, rt.probeRequest(r, id))
}

// probeFailed answers a session error of the probe: the doctor shows it,
// so it says what failed (the node's own error; the probe holds no user
// data).
func (rt *nodeRuntime) probeFailed(w http.ResponseWriter, err error) {
	rt.log.Warn("probe failed", slog.Any("err", err))
	writePlain(w, http.StatusInternalServerError, "probe failed: "+err.Error())
}

func writeNodeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // fails only if the client went away
}

// rateLimit is a token bucket: perSecond tokens a second, as many at
// most.
type rateLimit struct {
	perSecond float64
	mu        sync.Mutex // protects tokens, last
	tokens    float64
	last      time.Time
}

func newRateLimit(perSecond float64) *rateLimit {
	return &rateLimit{perSecond: perSecond, tokens: perSecond, last: time.Now()}
}

// allow takes a token if there is one.
func (l *rateLimit) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.perSecond, l.tokens+now.Sub(l.last).Seconds()*l.perSecond)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
