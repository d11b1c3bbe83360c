package balancerconf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/shoal-go/shoal/internal/admin"
	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/discovery"
	"github.com/shoal-go/shoal/internal/membership"
	"github.com/shoal-go/shoal/session"
)

// Defaults of the settings that are the command's rather than the
// balancer's (balancer.DefaultConfig has the others). They are those of
// `shoal balancer`'s flags.
const (
	DefaultListen        = "127.0.0.1:8000"
	DefaultClusterListen = "127.0.0.1:0"
	DefaultOwners        = 2
	DefaultLogFormat     = "text"
)

// MaxFileSize bounds the file Load reads: a config file is a few KiB.
const MaxFileSize = 1 << 20

// Config is a config file's settings: the file's values, and the
// defaults for the keys it leaves out.
type Config struct {
	// File is the file's name as given to Parse or Load.
	File string

	// Balancer is balancer.DefaultConfig with the file's values. Logger
	// is nil; FromCluster is set when the file follows a cluster.
	// Members may be empty (they may come from flags).
	Balancer balancer.Config

	Listen         string // listen
	TLSCert        string // tls-cert; "" means plain HTTP
	TLSKey         string // tls-key
	AdminListen    string // admin-listen; "" means no manager
	AdminTokenFile string // admin-token-file
	AJPSecretFile  string // ajp-secret-file
	LogFormat      string // log-format: "text" or "json"
	LogLevel       slog.Level

	Cluster Cluster

	top *table // the document's top level, for Line
}

// Cluster is the cluster the balancer follows (the cluster-* keys).
type Cluster struct {
	Join      []string // cluster-join: gossip host:port addresses
	Discover  string   // cluster-discover: dns://NAME[:PORT] or multicast://GROUP[:PORT]
	Listen    string   // cluster-listen
	KeyFile   string   // cluster-key-file
	Insecure  bool     // insecure-cluster
	Name      string   // cluster-name; "" means balancer-<pid>
	Owners    int      // owners; 0 means all
	DeadAfter time.Duration
}

// Enabled reports whether a cluster is followed.
func (c *Cluster) Enabled() bool { return len(c.Join) > 0 || c.Discover != "" }

// Line returns the line of a top-level key (such as "listen"), or 0 if
// the file does not set it.
func (c *Config) Line(key string) int {
	if c.top == nil || !c.top.has(key) {
		return 0
	}
	return c.top.line(key)
}

// Has reports whether the file sets a top-level key.
func (c *Config) Has(key string) bool { return c.top != nil && c.top.has(key) }

// Load reads and parses the file at path, as Parse does, and then checks
// the files it names: that the TLS certificate and key load, and that the
// manager's token file and the cluster's key file are readable and valid.
// Relative names in it are made relative to path's directory.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: errMsg(err)}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: errMsg(err)}}
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("larger than %d KiB: not a config file", MaxFileSize>>10)}}
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	c.resolvePaths()
	if err := c.checkFiles(); err != nil {
		return nil, err
	}
	return c, nil
}

// errMsg drops the path from a file error: Error's prefix has it.
func errMsg(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// Parse parses a config file's content; name is what its errors call it.
// It reads nothing else: Load also checks the files the config names.
func Parse(name string, data []byte) (*Config, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			return nil, Errors{{File: name, Line: line, Msg: strings.TrimPrefix(de.Error(), "toml: ")}}
		}
		return nil, Errors{{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}}
	}
	d := &decoder{file: name, index: newLineIndex(data)}
	c := &Config{
		File:      name,
		Balancer:  balancer.DefaultConfig(),
		Listen:    DefaultListen,
		LogFormat: DefaultLogFormat,
		LogLevel:  slog.LevelInfo,
		Cluster:   Cluster{Listen: DefaultClusterListen, Owners: DefaultOwners},
		top:       &table{d: d, m: doc},
	}
	c.read(c.top)
	if len(d.errs) == 0 {
		// The checks above are the balancer's, key by key; this one, on
		// the whole, is there in case a rule of the balancer's spans
		// keys that they did not pair.
		if b := c.Balancer; len(b.Members) > 0 || b.FromCluster {
			if err := b.Check(); err != nil {
				d.errorf(0, "%v", err)
			}
		}
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	return c, nil
}

// read reads the top level of the document into c, checking each value.
func (c *Config) read(t *table) {
	b := &c.Balancer
	if t.str("listen", &c.Listen) {
		checkHostPort(t, "listen", c.Listen)
	}
	okCert, okKey := t.str("tls-cert", &c.TLSCert), t.str("tls-key", &c.TLSKey)
	// A key of the wrong type has its error already: pair them by
	// presence.
	hasCert, hasKey := t.has("tls-cert"), t.has("tls-key")
	switch {
	case okCert && c.TLSCert == "":
		t.errorf("tls-cert", "tls-cert is empty")
	case okKey && c.TLSKey == "":
		t.errorf("tls-key", "tls-key is empty")
	case hasCert && !hasKey:
		t.errorf("tls-cert", "tls-cert needs tls-key")
	case hasKey && !hasCert:
		t.errorf("tls-key", "tls-key needs tls-cert")
	}
	c.readAdmin(t)
	if t.str("ajp-secret-file", &c.AJPSecretFile) && c.AJPSecretFile == "" {
		t.errorf("ajp-secret-file", "ajp-secret-file is empty")
	}
	if t.str("log-format", &c.LogFormat) && c.LogFormat != "text" && c.LogFormat != "json" {
		t.errorf("log-format", "log-format %q: want text or json", c.LogFormat)
	}
	var level string
	if t.str("log-level", &level) {
		if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
			t.errorf("log-level", "log-level %q: want debug, info, warn or error", level)
		}
	}

	// Each value goes through the balancer's own check, alone, so that
	// the error points at its line and says what the flag's would.
	probe := func(key string, set func(*balancer.Config)) {
		if err := CheckChange(set); err != nil {
			t.errorf(key, "%v", err)
		}
	}
	if t.str("sticky", &b.Sticky) {
		probe("sticky", func(p *balancer.Config) { p.Sticky = b.Sticky })
	}
	c.readMethod(t)
	if t.duration("retry", &b.Retry) {
		probe("retry", func(p *balancer.Config) { p.Retry = b.Retry })
	}
	if t.integer("max-attempts", &b.MaxAttempts, "a number of members") {
		probe("max-attempts", func(p *balancer.Config) { p.MaxAttempts = b.MaxAttempts })
	}
	t.array("failonstatus", "an array of HTTP status codes, such as [503]", func(_ int, v any, line int) bool {
		code, ok := v.(int64)
		if !ok || code < 100 || code > 599 {
			t.errorAt(line, "failonstatus: %s is not an HTTP status code (100-599)", valueString(v))
			return false
		}
		b.FailOnStatus = append(b.FailOnStatus, int(code))
		return true
	})
	t.boolean("no-force-recovery", &b.NoForceRecovery)
	if t.size("max-body", &b.MaxBodyBytes) {
		probe("max-body", func(p *balancer.Config) { p.MaxBodyBytes = b.MaxBodyBytes })
	}
	var retryBody int64
	if t.size("retry-body", &retryBody) {
		if int64(int(retryBody)) != retryBody {
			t.errorf("retry-body", "retry-body %d: too large", retryBody)
		} else {
			b.RetryBodyBytes = int(retryBody)
			probe("retry-body", func(p *balancer.Config) { p.RetryBodyBytes = b.RetryBodyBytes })
		}
	}
	if t.duration("connect-timeout", &b.ConnectTimeout) {
		probe("connect-timeout", func(p *balancer.Config) { p.ConnectTimeout = b.ConnectTimeout })
	}
	if t.duration("response-header-timeout", &b.ResponseHeaderTimeout) {
		probe("response-header-timeout", func(p *balancer.Config) { p.ResponseHeaderTimeout = b.ResponseHeaderTimeout })
	}
	c.readHealth(t)
	c.readCluster(t)
	b.FromCluster = c.Cluster.Enabled()
	c.readMembers(t)
	t.unknown("settings are top-level keys named as the flags of shoal balancer, members [[member]] tables")
}

func (c *Config) readAdmin(t *table) {
	hasListen := t.str("admin-listen", &c.AdminListen)
	hasToken := t.str("admin-token-file", &c.AdminTokenFile)
	if hasToken && c.AdminTokenFile == "" {
		t.errorf("admin-token-file", "admin-token-file is empty")
	}
	if hasToken && c.AdminListen == "" {
		t.errorf("admin-token-file", "admin-token-file goes with admin-listen")
	}
	if !hasListen || c.AdminListen == "" {
		return
	}
	if checkHostPort(t, "admin-listen", c.AdminListen) && c.AdminTokenFile == "" && !admin.IsLoopback(c.AdminListen) {
		t.errorf("admin-listen", "admin-listen %s is not a loopback address: the manager changes members, "+
			"so give it admin-token-file (or listen on 127.0.0.1)", c.AdminListen)
	}
}

// probeHashKey is a valid hash key, to check a method alone.
const probeHashKey = "header:X-Probe"

func (c *Config) readMethod(t *table) {
	b := &c.Balancer
	hasMethod := t.str("method", &b.Method)
	hasKey := t.str("hash-key", &b.HashKey)
	if hasMethod {
		if err := CheckChange(func(p *balancer.Config) {
			p.Method = b.Method
			if b.Method == "hash" {
				p.HashKey = probeHashKey
			}
		}); err != nil {
			t.errorf("method", "%v", err)
			return
		}
	}
	switch {
	case b.Method == "hash" && b.HashKey == "":
		t.errorf("method", "method hash needs hash-key (header:NAME or cookie:NAME)")
	case hasKey || hasMethod:
		if err := CheckChange(func(p *balancer.Config) { p.Method, p.HashKey = b.Method, b.HashKey }); err != nil {
			if hasKey {
				t.errorf("hash-key", "%v", err)
			} else {
				t.errorf("method", "%v", err)
			}
		}
	}
}

func (c *Config) readHealth(t *table) {
	h := &c.Balancer.Health
	if t.str("health-path", &h.Path) {
		if err := CheckChange(func(p *balancer.Config) { p.Health.Path = h.Path }); err != nil {
			t.errorf("health-path", "%v", err)
		}
	}
	// Each of the others is checked with a path set (without one, the
	// balancer ignores them) and the defaults for the rest.
	probe := func(key string, set func(*balancer.HealthConfig)) {
		if err := CheckChange(func(p *balancer.Config) { p.Health.Path = "/"; set(&p.Health) }); err != nil {
			t.errorf(key, "%v", err)
		}
	}
	if t.duration("health-interval", &h.Interval) {
		probe("health-interval", func(p *balancer.HealthConfig) { p.Interval = h.Interval })
	}
	if t.duration("health-timeout", &h.Timeout) {
		probe("health-timeout", func(p *balancer.HealthConfig) { p.Timeout = h.Timeout })
	}
	if t.integer("health-rise", &h.Rise, "a number of checks") {
		probe("health-rise", func(p *balancer.HealthConfig) { p.Rise = h.Rise })
	}
	if t.integer("health-fall", &h.Fall, "a number of checks") {
		probe("health-fall", func(p *balancer.HealthConfig) { p.Fall = h.Fall })
	}
}

func (c *Config) readCluster(t *table) {
	cc := &c.Cluster
	hasJoin := t.array("cluster-join", `an array of gossip addresses, such as ["10.0.0.1:7946"]`, func(_ int, v any, line int) bool {
		s, ok := v.(string)
		if !ok {
			t.errorAt(line, "cluster-join: want host:port strings, not %s", typeName(v))
			return false
		}
		if _, _, err := net.SplitHostPort(s); err != nil || s == "" {
			t.errorAt(line, "cluster-join %q: want host:port", s)
			return false
		}
		cc.Join = append(cc.Join, s)
		return true
	})
	if hasJoin && len(cc.Join) == 0 {
		t.errorf("cluster-join", "cluster-join is empty: give at least one address, or leave it out")
	}
	if t.str("cluster-discover", &cc.Discover) {
		if _, err := discovery.Parse(cc.Discover, membership.DefaultGossipPort); err != nil {
			t.errorf("cluster-discover", "cluster-discover: %v", err)
		}
	}
	if t.str("cluster-listen", &cc.Listen) {
		checkHostPort(t, "cluster-listen", cc.Listen)
	}
	hasKey := t.str("cluster-key-file", &cc.KeyFile)
	if hasKey && cc.KeyFile == "" {
		t.errorf("cluster-key-file", "cluster-key-file is empty")
	}
	t.boolean("insecure-cluster", &cc.Insecure)
	if t.str("cluster-name", &cc.Name) {
		if err := session.ValidateRoute(cc.Name); err != nil {
			t.errorf("cluster-name", "cluster-name %q: want 1-64 characters of [A-Za-z0-9_-]", cc.Name)
		}
	}
	c.readOwners(t)
	if t.duration("dead-after", &cc.DeadAfter) && cc.DeadAfter < 0 {
		t.errorf("dead-after", "dead-after %v is negative", cc.DeadAfter)
	}
	follow := "cluster-join"
	if !t.has(follow) {
		follow = "cluster-discover"
	}
	// By presence, as above: a bad cluster-join has its error already.
	switch {
	case !t.has("cluster-join") && !t.has("cluster-discover"):
		for _, k := range []string{"cluster-key-file", "insecure-cluster"} {
			if t.has(k) && (k != "insecure-cluster" || cc.Insecure) {
				t.errorf(k, "%s needs cluster-join or cluster-discover", k)
			}
		}
	case cc.KeyFile == "" && !cc.Insecure:
		t.errorf(follow, "following a cluster needs cluster-key-file (or insecure-cluster = true on loopback)")
	case cc.KeyFile != "" && cc.Insecure:
		t.errorf("insecure-cluster", "cluster-key-file and insecure-cluster both set: choose one")
	}
}

func (c *Config) readOwners(t *table) {
	v, ok := t.get("owners")
	if !ok {
		return
	}
	switch n := v.(type) {
	case int64:
		if n < 1 || n > math.MaxInt32 {
			t.errorf("owners", "owners %d: want a number of nodes (1 or more) or \"all\"", n)
			return
		}
		c.Cluster.Owners = int(n)
	case string:
		if n != "all" {
			t.errorf("owners", "owners %q: want a number of nodes (1 or more) or \"all\"", n)
			return
		}
		c.Cluster.Owners = 0
	default:
		t.wrongType("owners", v, `a number of nodes or "all"`)
	}
}

// readMembers reads the [[member]] tables.
func (c *Config) readMembers(t *table) {
	tables, _ := t.tables("member")
	first := map[string]int{} // route → line of its first member
	for _, mt := range tables {
		mc, ok := readMember(mt)
		if !ok {
			continue
		}
		if l, dup := first[mc.Route]; dup {
			mt.errorf("route", "route used twice (first on line %d): routes must be unique", l)
			continue
		}
		first[mc.Route] = mt.line("route")
		c.Balancer.Members = append(c.Balancer.Members, mc)
	}
}

// readMember reads one [[member]] table; ok is false if it has errors.
func readMember(t *table) (mc balancer.MemberConfig, ok bool) {
	nerr := len(t.d.errs)
	header := t.d.index.line(t.path)
	if t.str("route", &mc.Route) {
		if err := session.ValidateRoute(mc.Route); err != nil {
			t.errorf("route", "route %q: want 1-64 characters of [A-Za-z0-9_-]", mc.Route)
		} else {
			t.what = fmt.Sprintf("member %q", mc.Route)
		}
	} else if !t.has("route") {
		t.errorAt(header, "route is required (the node's name, the suffix of its session ids)")
	}
	if t.str("url", &mc.URL) {
		route := mc.Route
		if session.ValidateRoute(route) != nil {
			route = "probe"
		}
		if err := CheckChange(func(p *balancer.Config) {
			p.Members = []balancer.MemberConfig{{Route: route, URL: mc.URL}}
		}); err != nil {
			t.errorf("url", "url %q: %v", mc.URL, Innermost(err))
		}
	} else if !t.has("url") {
		t.errorAt(header, "url is required (http://host:port[/path])")
	}
	if t.number("weight", &mc.Weight, "a number from 1 to 100") && !(mc.Weight >= 1 && mc.Weight <= 100) {
		t.errorf("weight", "weight %v: want 1 to 100 (Apache's loadfactor)", mc.Weight)
	}
	t.boolean("standby", &mc.Standby)
	t.boolean("disabled", &mc.Disabled)
	t.boolean("drain", &mc.Draining)
	if t.integer("lbset", &mc.LBSet, "a tier number") {
		if err := CheckChange(func(p *balancer.Config) {
			p.Members = []balancer.MemberConfig{{Route: "probe", URL: "http://127.0.0.1:1", LBSet: mc.LBSet}}
		}); err != nil {
			t.errorf("lbset", "%v", Innermost(err))
		}
	}
	t.unknown("")
	return mc, len(t.d.errs) == nerr
}

// CheckChange runs balancer.Config.Check on the defaults (following a
// cluster, so that no member is needed) changed by set: a value read from
// a file (this one, or an httpd config being translated) gets the
// balancer's own rules and messages.
func CheckChange(set func(*balancer.Config)) error {
	p := balancer.DefaultConfig()
	p.FromCluster = true
	set(&p)
	return p.Check()
}

// Innermost returns the error err wraps deepest: the reason, without
// the "member ROUTE=URL: " that Check puts before a member's error.
func Innermost(err error) error {
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err
		}
		err = inner
	}
}

// checkHostPort reports whether s is host:port, recording an error at
// key if not.
func checkHostPort(t *table, key, s string) bool {
	if _, _, err := net.SplitHostPort(s); err != nil {
		t.errorf(key, "%s %q: want host:port", key, s)
		return false
	}
	return true
}

// valueString writes a decoded value back for a message.
func valueString(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case int64, float64, bool:
		return fmt.Sprint(v)
	default:
		return typeName(v)
	}
}

// resolvePaths makes the file names in c relative to the config file's
// directory.
func (c *Config) resolvePaths() {
	for _, p := range []*string{&c.TLSCert, &c.TLSKey, &c.AdminTokenFile, &c.AJPSecretFile, &c.Cluster.KeyFile} {
		*p = relativeTo(c.File, *p)
	}
}

// checkFiles checks the files c names, with the line of their key.
func (c *Config) checkFiles() error {
	d := c.top.d
	if c.TLSCert != "" {
		if _, err := tlsLoad(c.TLSCert, c.TLSKey); err != nil {
			d.errorf(c.Line("tls-cert"), "tls-cert/tls-key: %v", err)
		}
	}
	if c.AdminTokenFile != "" {
		if _, err := admin.ReadTokenFile(c.AdminTokenFile); err != nil {
			d.errorf(c.Line("admin-token-file"), "admin-token-file: %v", err)
		}
	}
	if c.AJPSecretFile != "" {
		if fi, err := os.Stat(c.AJPSecretFile); err != nil {
			d.errorf(c.Line("ajp-secret-file"), "ajp-secret-file: %v", err)
		} else if fi.Mode().Perm()&0o027 != 0 {
			d.errorf(c.Line("ajp-secret-file"), "ajp-secret-file %s has mode %#o (group-writable or readable by others); run: chmod 600 %s",
				c.AJPSecretFile, fi.Mode().Perm(), c.AJPSecretFile)
		}
	}
	if c.Cluster.KeyFile != "" {
		if _, err := membership.LoadKeyFile(c.Cluster.KeyFile); err != nil {
			d.errorf(c.Line("cluster-key-file"), "cluster-key-file: %v", err)
		}
	}
	if len(d.errs) > 0 {
		return d.errs.sorted()
	}
	return nil
}
