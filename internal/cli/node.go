package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-go/shoal/demoapp"
	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/rawnet"
	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/cluster"
	"github.com/shoal-go/shoal/session/memstore"
)

// Server timeouts of a node.
const (
	// nodeReadHeaderTimeout bounds how long a client may take to send a
	// request's headers (slowloris).
	nodeReadHeaderTimeout = 10 * time.Second
	// nodeIdleTimeout is how long an idle keep-alive connection stays open.
	nodeIdleTimeout = 2 * time.Minute
	// nodeShutdownTimeout bounds the graceful shutdown: requests still
	// running after it are cut.
	nodeShutdownTimeout = 10 * time.Second
)

// nodeConfig is what `shoal node` runs, built from its flags by
// defineNodeFlags and checked by validate. The cluster settings (--join,
// --cluster-key-file, --owners, --replication, ...) belong here too, and
// newNodeStore turns them into the replicated store.
type nodeConfig struct {
	name        string        // --name: the node's route in session ids
	listen      string        // --listen: the HTTP address
	idleTimeout time.Duration // --idle-timeout; 0: sessions never go idle
	maxSessions int           // --max-sessions; 0: no limit
	logFormat   string        // --log-format: "text" or "json"
	logLevel    slog.Level    // --log-level

	// The cluster: set --cluster-listen to run as a cluster node.
	clusterListen string        // --cluster-listen: gossip address
	replListen    string        // --repl-listen: replication address
	join          string        // --join: comma-separated gossip addresses
	discover      string        // --discover: dns://NAME[:PORT] or multicast://GROUP[:PORT]
	keyFile       string        // --cluster-key-file
	insecure      bool          // --insecure-cluster
	owners        string        // --owners: N or "all"
	replication   string        // --replication: sync or async
	genKey        bool          // --gen-key: print a new key and exit
	rawSyscalls   bool          // --raw-syscalls: HTTP and AJP connections through rawnet
	deadAfter     time.Duration // --dead-after

	ajp ajpFlags // --ajp, --ajp-secret-file, --ajp-insecure-no-secret (node_ajp.go)
}

// defineNodeFlags defines the node's flags on fs and returns the config
// they fill in.
func defineNodeFlags(fs *flag.FlagSet) *nodeConfig {
	cfg := &nodeConfig{}
	fs.StringVar(&cfg.name, "name", "",
		"the node's `NAME` (required): its route in session ids \"<base>.NAME\",\n"+
			"1-64 characters of [A-Za-z0-9_-], unique in the cluster")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080",
		"serve HTTP on `ADDR` (host:port); port 0 picks a free port,\n"+
			"which the \"node listening\" log line tells")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", 30*time.Minute,
		"a session expires after `DURATION` without a request; 0 means never")
	fs.IntVar(&cfg.maxSessions, "max-sessions", 0,
		"allow at most `N` live sessions, then answer 503 to new ones; 0 means no limit")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "write log lines to stderr as `FORMAT`: text or json")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "log at `LEVEL` and above: debug, info, warn or error")
	fs.StringVar(&cfg.clusterListen, "cluster-listen", "",
		"run as a cluster node, gossiping on `ADDR` (host:port; port 0 picks one);\n"+
			"without it the node keeps its sessions in memory, alone")
	fs.StringVar(&cfg.replListen, "repl-listen", "", "replicate sessions on `ADDR` (default: the --cluster-listen host, a free port)")
	fs.StringVar(&cfg.join, "join", "", "join the cluster through the members at `ADDRS` (comma-separated gossip host:port)")
	fs.StringVar(&cfg.discover, "discover", "",
		"find members by DNS: `URL` dns://NAME[:PORT], each A/AAAA record of NAME a member\n"+
			"(a Kubernetes headless service), re-resolved every 10 s; or by multicast beacons on a LAN:\n"+
			"multicast://GROUP[:PORT][?iface=NAME], e.g. multicast://228.0.0.4:45564 (Tomcat's default)")
	fs.StringVar(&cfg.keyFile, "cluster-key-file", "", "read the cluster key from `FILE` (make one with --gen-key)")
	fs.BoolVar(&cfg.insecure, "insecure-cluster", false, "no cluster key: unencrypted cluster traffic, refused unless on loopback")
	fs.StringVar(&cfg.owners, "owners", "2", "keep each session on `N` nodes, or on all of them (\"all\")")
	fs.StringVar(&cfg.replication, "replication", "sync",
		"`MODE`: sync (a response waits until every live owner has the change)\n"+
			"or async (it does not; a killed node may lose its last changes)")
	fs.DurationVar(&cfg.deadAfter, "dead-after", 0,
		"declare a silent node dead after about `DURATION` (default about 0.6s;\n"+
			"raise it on overloaded machines, where a live node can stall longer)")
	fs.BoolVar(&cfg.genKey, "gen-key", false, "print a new random cluster key (base64) and exit")
	fs.BoolVar(&cfg.rawSyscalls, "raw-syscalls", true,
		"read and write HTTP and AJP connections with raw system calls (package rawnet);\n"+
			"false uses Go's standard ones")
	cfg.ajp.define(fs)
	return cfg
}

// validate checks the settings that flag parsing alone does not.
func (c *nodeConfig) validate() error {
	if c.name == "" {
		return errors.New("--name is required")
	}
	if err := session.ValidateRoute(c.name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if c.listen == "" {
		return errors.New("--listen is empty")
	}
	if c.idleTimeout < 0 {
		return fmt.Errorf("--idle-timeout %v is negative (0 means sessions never go idle)", c.idleTimeout)
	}
	if c.maxSessions < 0 {
		return fmt.Errorf("--max-sessions %d is negative (0 means no limit)", c.maxSessions)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	if err := c.ajp.validate(); err != nil {
		return err
	}
	if c.clusterListen == "" {
		for flag, set := range map[string]bool{"--join": c.join != "", "--discover": c.discover != "", "--cluster-key-file": c.keyFile != "",
			"--insecure-cluster": c.insecure, "--repl-listen": c.replListen != ""} {
			if set {
				return fmt.Errorf("%s needs --cluster-listen", flag)
			}
		}
		return nil
	}
	if c.keyFile == "" && !c.insecure {
		return errors.New("a cluster needs --cluster-key-file (make one with: shoal node --gen-key > cluster.key), or --insecure-cluster on loopback")
	}
	if c.keyFile != "" && c.insecure {
		return errors.New("--cluster-key-file and --insecure-cluster both set: choose one")
	}
	if _, err := c.clusterOwners(); err != nil {
		return err
	}
	if c.replication != "sync" && c.replication != "async" {
		return fmt.Errorf("--replication %q: want sync or async", c.replication)
	}
	if c.deadAfter < 0 {
		return fmt.Errorf("--dead-after %v is negative", c.deadAfter)
	}
	if c.discover != "" {
		if _, err := discovery.Parse(c.discover, membership.DefaultGossipPort); err != nil {
			return fmt.Errorf("--discover: %w", err)
		}
	}
	return nil
}

// clusterOwners parses --owners.
func (c *nodeConfig) clusterOwners() (int, error) {
	if c.owners == "all" {
		return cluster.AllOwners, nil
	}
	n, err := strconv.Atoi(c.owners)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--owners %q: want a number of nodes (1 or more) or \"all\"", c.owners)
	}
	return n, nil
}

// sessionConfig returns the session.Manager's config for the node.
func (c *nodeConfig) sessionConfig(store session.Store, log *slog.Logger) session.Config {
	idle := c.idleTimeout
	if idle == 0 {
		idle = -1 // session.Config: negative means no idle expiry, 0 the default
	}
	return session.Config{
		Store:       store,
		Route:       c.name,
		IdleTimeout: idle,
		MaxSessions: c.maxSessions,
		Logger:      log,
	}
}

// newNodeStore returns the session store the config asks for and a
// function that releases it (for a cluster: hand the sessions over and
// leave). httpAddr is the node's bound HTTP address, which the cluster
// advertises.
func newNodeStore(c *nodeConfig, log *slog.Logger, httpAddr string) (session.Store, func() error, error) {
	if c.clusterListen == "" {
		return memstore.New(), func() error { return nil }, nil
	}
	cfg := cluster.DefaultLANConfig()
	cfg.Name, cfg.HTTPAddr, cfg.GossipAddr, cfg.ReplAddr = c.name, httpAddr, c.clusterListen, c.replListen
	cfg.Insecure, cfg.Async, cfg.Logger = c.insecure, c.replication == "async", log
	cfg.Owners, _ = c.clusterOwners()
	if c.join != "" {
		cfg.Join = strings.Split(c.join, ",")
	}
	cfg.Discover = c.discover
	cfg.DeadAfter = c.deadAfter
	if c.keyFile != "" {
		key, err := membership.LoadKeyFile(c.keyFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.Key = key
	}
	st, err := cluster.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return st, st.Close, nil
}

// newLogger returns the logger for the given --log-format and --log-level.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runNode is `shoal node`.
func runNode(ctx context.Context, inv *invocation) error {
	fs := inv.flagSet()
	cfg := defineNodeFlags(fs)
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	if err := inv.noArgs(fs); err != nil {
		return err
	}
	if cfg.genKey {
		return printKey(inv.stdout)
	}
	if err := cfg.validate(); err != nil {
		return inv.usageErr("%w", err)
	}
	log := newLogger(inv.stderr, cfg.logFormat, cfg.logLevel).With(slog.String("node", cfg.name))
	return serveNode(ctx, cfg, log)
}

// printKey prints a new cluster key, for --gen-key.
func printKey(w io.Writer) error {
	k, err := membership.GenerateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, membership.EncodeKey(k))
	return err
}

// serveNode serves the demo app with sessions on cfg.listen until ctx is
// cancelled, then shuts down gracefully and returns nil.
func serveNode(ctx context.Context, cfg *nodeConfig, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if cfg.rawSyscalls {
		ln = rawnet.Listener(ln)
	}
	var (
		mgr        *session.Manager
		closeStore func() error
	)
	start := func() (http.Handler, error) {
		store, cs, err := newNodeStore(cfg, log, ln.Addr().String())
		if err != nil {
			return nil, fmt.Errorf("node: session store: %w", err)
		}
		closeStore = cs
		if mgr, err = session.New(cfg.sessionConfig(store, log)); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		// /metrics, /healthz/cluster and /healthz/probe (node_status.go)
		// beside the application.
		return withNodeEndpoints(cfg, mgr, store, log, mgr.Handler(demoapp.New(cfg.name, log)))
	}
	cfg.ajp.raw = cfg.rawSyscalls
	start, stopAJP := cfg.ajp.around(ctx, log, start)
	err = serveHTTP(ctx, ln, log, start)
	stopAJP()
	if mgr != nil {
		mgr.Close()
	}
	if closeStore != nil {
		if err := closeStore(); err != nil {
			log.Warn("closing the session store failed", slog.Any("err", err))
		}
	}
	if err != nil {
		return err
	}
	log.Info("node stopped")
	return nil
}

// serveHTTP serves the health checks on ln at once, and the application
// once start has made it (a cluster node first joins and receives the
// sessions it will hold): until then /healthz/ready and every other path
// answer 503. It serves until ctx is cancelled, then shuts the server down
// gracefully, cutting the requests still running after
// nodeShutdownTimeout.
func serveHTTP(ctx context.Context, ln net.Listener, log *slog.Logger, start func() (http.Handler, error)) error {
	var hc healthChecks
	srv := &http.Server{
		Handler:           nodeHandler(&hc),
		ReadHeaderTimeout: nodeReadHeaderTimeout,
		IdleTimeout:       nodeIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	bound := ln.Addr().String()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), nodeShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("graceful shutdown did not finish in time; closing the remaining connections",
				slog.Duration("timeout", nodeShutdownTimeout), slog.Any("err", err))
			srv.Close()
		}
		<-served // http.ErrServerClosed
	}
	app, err := start()
	if err != nil {
		stop()
		return err
	}
	hc.app.Store(&app)
	hc.ready.Store(true)
	log.Info("node listening", slog.String("addr", bound), slog.String("url", browseURL(ln.Addr())))

	select {
	case err := <-served:
		// Serve fails only if accepting connections does: there is nothing
		// left to shut down gracefully.
		return fmt.Errorf("node: serve on %s: %w", bound, err)
	case <-ctx.Done():
	}
	hc.ready.Store(false)
	log.Info("node stopping", slog.Duration("timeout", nodeShutdownTimeout))
	stop()
	return nil
}

// healthChecks answers the health endpoints.
type healthChecks struct {
	// ready is set while the node serves: once the application is made
	// (a cluster node holds the sessions it owns), cleared when it starts
	// to stop.
	ready atomic.Bool
	// app is the application, nil until it is made.
	app atomic.Pointer[http.Handler]
}

// nodeHandler routes the health checks to hc and everything else to the
// application (503 until it is made), so that health checks never load or
// create a session.
func nodeHandler(hc *healthChecks) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, http.StatusOK, "live")
	})
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !hc.ready.Load() {
			writePlain(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		writePlain(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		app := hc.app.Load()
		if app == nil {
			w.Header().Set("Retry-After", "1")
			writePlain(w, http.StatusServiceUnavailable, "starting")
			return
		}
		(*app).ServeHTTP(w, r)
	})
	return mux
}

func writePlain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

// browseURL returns a URL for a listener's address that a browser on this
// machine can open: an unspecified host (":8080") becomes localhost.
func browseURL(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String() + "/"
	}
	host := "localhost"
	if !ta.IP.IsUnspecified() {
		host = ta.IP.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(ta.Port)) + "/"
}
