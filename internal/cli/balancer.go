package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/admin"
	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/balancerconf"
)

// balancerShutdownTimeout bounds the balancer's graceful shutdown:
// requests still running after it are cut.
const balancerShutdownTimeout = 10 * time.Second

// Timeouts of the manager's server: its requests are small.
const (
	adminReadHeaderTimeout = 10 * time.Second
	adminReadTimeout       = 30 * time.Second
	adminWriteTimeout      = time.Minute
	adminIdleTimeout       = 2 * time.Minute
)

// balancerFlags is what `shoal balancer` is given, filled in by
// defineBalancerFlags; config turns it into a balancer.Config.
type balancerFlags struct {
	listen    string   // --listen
	members   []string // --member, repeated: ROUTE=URL[,options]
	tlsCert   string   // --tls-cert
	tlsKey    string   // --tls-key
	maxBody   string   // --max-body, a size such as 32MiB
	failOn    string   // --failonstatus, comma-separated codes
	adminAddr string   // --admin-listen; "" means no manager
	tokenFile string   // --admin-token-file
	ajpSecret string   // --ajp-secret-file
	logFormat string
	logLevel  slog.Level

	cfg     balancer.Config // the settings that flags fill in directly
	cluster *balancerCluster
	file    balancerFile // --config FILE, and what reloading it needs (balancer_config.go)
	// clusterCfg is the cluster to follow, when cluster.enabled().
	clusterCfg balancer.ClusterConfig
}

// defineBalancerFlags defines the balancer's flags on fs, with
// balancer.DefaultConfig's defaults.
func defineBalancerFlags(fs *flag.FlagSet) *balancerFlags {
	f := &balancerFlags{cfg: balancer.DefaultConfig()}
	c := &f.cfg
	fs.StringVar(&f.file.path, "config", "",
		"read the settings from TOML `FILE` (docs/balancer.example.toml lists its keys); flags given\n"+
			"on the command line override its values; SIGHUP re-reads it")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8000",
		"serve clients on `ADDR` (host:port): HTTP/1.1 and h2c, or HTTPS with HTTP/2 given --tls-cert;\n"+
			"port 0 picks a free port, which the \"balancer listening\" log line tells")
	fs.Func("member",
		"add a member: `ROUTE=URL[,OPTION...]`, repeated for each (at least one);\n"+
			"ROUTE is the node's name, the suffix of its session ids; URL is http://host:port[/path];\n"+
			"OPTIONs: weight=N (Apache's loadfactor, 1-100, default 1), standby (used only when no other\n"+
			"member is usable), disabled, drain (only the requests of its own sessions), lbset=N (tier, 0-99)",
		func(s string) error { f.members = append(f.members, s); return nil })
	fs.StringVar(&c.Sticky, "sticky", c.Sticky,
		"find the session id in cookie and URL parameter `NAMES` (\"COOKIE|param\", or one name for both);\n"+
			"its route is the text after its first '.'; \"\" turns stickiness off")
	fs.StringVar(&c.Method, "method", c.Method,
		"balance requests without a usable route by `METHOD`: byrequests (Apache's weighted counting),\n"+
			"bybusyness (fewest in flight), p2c (two random choices, in flight x latency) or hash (--hash-key)")
	fs.StringVar(&c.HashKey, "hash-key", "", "with --method hash, hash `KEY`: header:NAME or cookie:NAME")
	fs.DurationVar(&c.Retry, "retry", c.Retry,
		"leave a member in error alone for `DURATION`; then the next request may try it (0: at once)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 0, "try at most `N` members per request (default: as many as there are members)")
	fs.StringVar(&f.failOn, "failonstatus", "",
		"put a member that answers one of `CODES` (comma-separated, such as 503) in error,\n"+
			"and retry the request on another member if it is idempotent")
	fs.BoolVar(&c.NoForceRecovery, "no-force-recovery", false,
		"when every member is in error, wait for --retry instead of trying them all again at once")
	fs.StringVar(&c.Health.Path, "health-path", c.Health.Path,
		"check each member with GET `PATH`: 200 is ready, 503 alive but not ready\n"+
			"(no new sessions, its own still reach it), anything else a failure; \"\" turns checks off")
	fs.DurationVar(&c.Health.Interval, "health-interval", c.Health.Interval, "check each member every `DURATION`")
	fs.DurationVar(&c.Health.Timeout, "health-timeout", c.Health.Timeout, "fail a check that takes longer than `DURATION`")
	fs.IntVar(&c.Health.Fall, "health-fall", c.Health.Fall, "put a member in error after `N` failed checks in a row")
	fs.IntVar(&c.Health.Rise, "health-rise", c.Health.Rise, "bring a member back after `N` passed checks in a row")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "give up connecting to a member after `DURATION`")
	fs.DurationVar(&c.ResponseHeaderTimeout, "response-header-timeout", c.ResponseHeaderTimeout,
		"give up on a member whose response headers take longer than `DURATION`")
	fs.StringVar(&f.maxBody, "max-body", balancerconf.FormatSize(c.MaxBodyBytes),
		"answer 413 to request bodies over `SIZE` (bytes, or with KiB, MiB, GiB); 0 means no limit")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with the certificate (chain) in PEM `FILE`; needs --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert, in PEM `FILE`")
	fs.StringVar(&f.adminAddr, "admin-listen", "",
		"serve the manager (JSON API, HTML page, /metrics) on `ADDR` (host:port), apart from clients;\n"+
			"off by default; an address other than loopback needs --admin-token-file")
	fs.StringVar(&f.ajpSecret, "ajp-secret-file", "",
		"send the secret in `FILE` (one line, mode 600) to ajp:// members, as Apache's BalancerMember secret=\n"+
			"(the secret of their AJP connector; Tomcat requires one by default)")
	fs.StringVar(&f.tokenFile, "admin-token-file", "",
		"authenticate the manager with the token in `FILE` (mode 600): Authorization: Bearer TOKEN,\n"+
			"or user admin with the token as password; without it, on loopback, a token is made\n"+
			"for the run and printed on stdout")
	fs.StringVar(&f.logFormat, "log-format", "text", "write log lines to stderr as `FORMAT`: text or json")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log at `LEVEL` and above: debug, info, warn or error")
	f.cluster = defineBalancerClusterFlags(fs)
	return f
}

// config checks the flags and returns the balancer's config. Its errors
// name the flag.
func (f *balancerFlags) config() (balancer.Config, error) {
	cfg := f.cfg
	if f.listen == "" {
		return cfg, errors.New("--listen is empty")
	}
	var err error
	if f.clusterCfg, err = f.cluster.config(); err != nil {
		return cfg, err
	}
	cfg.FromCluster = f.cluster.enabled()
	if len(f.members) == 0 && len(f.file.members) == 0 && !cfg.FromCluster {
		return cfg, errors.New("--member is required (at least one, such as --member n1=http://127.0.0.1:8081), " +
			"or --cluster-join to follow a shoal cluster")
	}
	cfg.Members = slices.Clone(f.file.members) // none when --member is given
	for _, spec := range f.members {
		mc, err := balancer.ParseMember(spec)
		if err != nil {
			return cfg, fmt.Errorf("--member %s: %w", spec, err)
		}
		cfg.Members = append(cfg.Members, mc)
	}
	if f.ajpSecret != "" {
		if cfg.AJPSecret, err = readAJPSecret(f.ajpSecret); err != nil {
			return cfg, err
		}
	}
	if cfg.FailOnStatus, err = balancer.ParseStatusList(f.failOn); err != nil {
		return cfg, fmt.Errorf("--failonstatus %w", err)
	}
	if cfg.MaxBodyBytes, err = balancerconf.ParseSize(f.maxBody); err != nil {
		return cfg, fmt.Errorf("--max-body %q: %w", f.maxBody, err)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return cfg, errors.New("--tls-cert and --tls-key go together")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return cfg, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	if f.tokenFile != "" && f.adminAddr == "" {
		return cfg, errors.New("--admin-token-file goes with --admin-listen")
	}
	if f.adminAddr != "" {
		if _, _, err := net.SplitHostPort(f.adminAddr); err != nil {
			return cfg, fmt.Errorf("--admin-listen %q: want host:port", f.adminAddr)
		}
		if f.tokenFile == "" && !admin.IsLoopback(f.adminAddr) {
			return cfg, fmt.Errorf("--admin-listen %s is not a loopback address: the manager changes members, "+
				"so give it --admin-token-file (or listen on 127.0.0.1)", f.adminAddr)
		}
	}
	// The rest the balancer checks; its messages name the setting as
	// the flag does.
	if err := cfg.Check(); err != nil {
		return cfg, fmt.Errorf("--%w", err)
	}
	return cfg, nil
}

// runBalancer is `shoal balancer`.
func runBalancer(ctx context.Context, inv *invocation) error {
	fs := inv.flagSet()
	f := defineBalancerFlags(fs)
	fromHTTPD := fs.String("from-httpd", "", fromHTTPDUsage)
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	if err := inv.noArgs(fs); err != nil {
		return err
	}
	if *fromHTTPD != "" {
		return runFromHTTPD(inv, fs, *fromHTTPD)
	}
	cfg, err := f.configure(fs)
	if err != nil {
		return inv.usageErr("%w", err)
	}
	log := newLogger(inv.stderr, f.logFormat, f.logLevel)
	cfg.Logger = log
	balancerProcs(os.Getenv("GOMAXPROCS"))
	return serveBalancer(ctx, f, cfg, log, inv.stdout)
}

// balancerProcs gives the balancer twice the processors (GOMAXPROCS) Go
// would choose, the CPUs or a container's CPU limit, unless the
// GOMAXPROCS environment variable (env) chose them. It returns the
// number in use.
//
// Why: the balancer's goroutines spend most of their time in system
// calls (two thirds of its CPU profile), and a processor whose thread is
// in one runs no other goroutine until the call returns. With more
// processors than CPUs, the goroutines whose answers came run meanwhile,
// and the kernel shares the CPUs between the threads, as it does between
// nginx's or Apache's workers. Measured on a 2-CPU machine shared with
// wrk and two backends (bench/balancer/cpusplit.sh, alternating in one
// run): 4 processors served 6 % more requests per second than 2. The
// price: Go no longer follows a change of the container's CPU limit at
// run time (a restart does), and a balancer that shares its CPUs with
// busy application nodes and is not saturated itself spends more CPU per
// request on idle processors waking and sleeping (35-41 against 42-47 µs
// with two shoal nodes on the same 2 CPUs; docs/balancer.md says so).
func balancerProcs(env string) int {
	if env != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.SetDefaultGOMAXPROCS()
	n := 2 * runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n)
	return n
}

// serveBalancer runs the balancer on f.listen, and its manager on
// f.adminAddr if set, until ctx is cancelled, then shuts them down
// gracefully and returns nil. A token made for the manager is printed to
// stdout.
func serveBalancer(ctx context.Context, f *balancerFlags, cfg balancer.Config, log *slog.Logger, stdout io.Writer) error {
	var token string
	if f.tokenFile != "" {
		var err error
		if token, err = admin.ReadTokenFile(f.tokenFile); err != nil {
			return fmt.Errorf("balancer: --admin-token-file: %w", err)
		}
	}
	var tlsConfig *tls.Config
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("balancer: --tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	b, err := balancer.New(cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("balancer: %w", err)
	}
	defer b.Close()
	if f.cluster.enabled() {
		if err := b.JoinCluster(f.clusterCfg); err != nil {
			ln.Close()
			return err
		}
	}
	defer f.reloadOnSIGHUP(b, cfg, log)()
	srv := balancer.NewFrontend(b, log)
	srv.TLSConfig = tlsConfig
	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()

	for _, m := range b.Members() {
		log.Info("balancer member", slog.String("member", m.Route()), slog.String("url", m.URL().String()),
			slog.Float64("weight", m.Weight()), slog.Bool("standby", m.Standby()), slog.String("state", string(m.Status().State)))
	}
	url := browseURL(ln.Addr())
	if tlsConfig != nil {
		url = "https" + strings.TrimPrefix(url, "http")
	}
	log.Info("balancer listening", slog.String("addr", ln.Addr().String()), slog.String("url", url),
		slog.String("method", methodName(cfg.Method)), slog.String("sticky", cfg.Sticky),
		slog.Int("procs", runtime.GOMAXPROCS(0)))

	var adminSrv *http.Server
	adminServed := make(chan error, 1)
	if f.adminAddr != "" {
		adminSrv, err = startAdmin(f, b, token, log, stdout, adminServed)
		if err != nil {
			srv.Close()
			<-served
			return err
		}
	}

	select {
	case err := <-served:
		if adminSrv != nil {
			adminSrv.Close()
		}
		return fmt.Errorf("balancer: serve on %s: %w", ln.Addr(), err)
	case err := <-adminServed:
		srv.Close()
		return fmt.Errorf("balancer: manager: serve on %s: %w", f.adminAddr, err)
	case <-ctx.Done():
	}
	log.Info("balancer stopping", slog.Duration("timeout", balancerShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), balancerShutdownTimeout)
	defer cancel()
	if adminSrv != nil {
		// The manager's requests are short: no need to wait for them
		// while clients' requests finish.
		adminSrv.Close()
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown did not finish in time; closing the remaining connections",
			slog.Duration("timeout", balancerShutdownTimeout), slog.Any("err", err))
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		log.Warn("serving ended with an error", slog.Any("err", err))
	}
	if adminSrv != nil {
		if err := <-adminServed; !errors.Is(err, http.ErrServerClosed) {
			log.Warn("the manager's serving ended with an error", slog.Any("err", err))
		}
	}
	log.Info("balancer stopped")
	return nil
}

// startAdmin serves the manager of b on f.adminAddr, with token, or a
// token made now and printed to stdout if token is "". Serve's error goes
// to served.
func startAdmin(f *balancerFlags, b *balancer.Balancer, token string, log *slog.Logger, stdout io.Writer, served chan<- error) (*http.Server, error) {
	made := token == ""
	if made {
		token = admin.NewToken()
	}
	h, err := admin.New(admin.Config{Balancer: b, Token: token, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("balancer: manager: %w", err)
	}
	ln, err := net.Listen("tcp", f.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("balancer: manager: %w", err)
	}
	loopback := false
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		loopback = ta.IP.IsLoopback()
	}
	if made && !loopback { // a host name that resolved to something else
		ln.Close()
		return nil, fmt.Errorf("balancer: manager: --admin-listen %s bound %s, not a loopback address: give --admin-token-file",
			f.adminAddr, ln.Addr())
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { served <- srv.Serve(ln) }()

	url := browseURL(ln.Addr())
	auth := "token-file"
	if made {
		auth = "token made for this run (printed on stdout)"
	}
	log.Info("balancer manager listening", slog.String("addr", ln.Addr().String()), slog.String("url", url),
		slog.String("auth", auth))
	if !loopback {
		log.Warn("the manager listens beyond loopback over plain HTTP: its token crosses the network in clear; "+
			"prefer 127.0.0.1 with an SSH tunnel or a TLS proxy in front", slog.String("addr", ln.Addr().String()))
	}
	if made {
		fmt.Fprintf(stdout, "balancer manager: %s\n"+
			"  log in as user admin with password %s (or send Authorization: Bearer %s);\n"+
			"  the token lasts for this run: --admin-token-file sets one\n", url, token, token)
	}
	return srv, nil
}

func methodName(m string) string {
	if m == "" {
		return "byrequests"
	}
	return m
}
