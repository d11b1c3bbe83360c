package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/balancerconf"
)

// balancerFile is `shoal balancer --config FILE`: the file, the flags the
// command line gave (they override the file's values, at start and at
// each reload), and the command line's values, over which a reloaded
// file is applied again.
type balancerFile struct {
	path string
	// members are the file's members, unless --member is given: the
	// command line's members replace the file's, they do not add to them.
	members []balancer.MemberConfig
	given   map[string]bool // flags set on the command line
	cmdline *balancerFlags  // the flags as the command line set them, before the file
	conf    *balancerconf.Config
}

// fileSettings sets, for each flag of `shoal balancer` but --config, the
// flag's value from a config file's key of the same name. It is applied
// to the flags the command line did not give. A test checks that every
// flag has its entry.
var fileSettings = map[string]func(f *balancerFlags, c *balancerconf.Config){
	"listen":   func(f *balancerFlags, c *balancerconf.Config) { f.listen = c.Listen },
	"tls-cert": func(f *balancerFlags, c *balancerconf.Config) { f.tlsCert = c.TLSCert },
	"tls-key":  func(f *balancerFlags, c *balancerconf.Config) { f.tlsKey = c.TLSKey },
	"member": func(f *balancerFlags, c *balancerconf.Config) {
		f.members, f.file.members = nil, slices.Clone(c.Balancer.Members)
	},
	"sticky":   func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Sticky = c.Balancer.Sticky },
	"method":   func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Method = c.Balancer.Method },
	"hash-key": func(f *balancerFlags, c *balancerconf.Config) { f.cfg.HashKey = c.Balancer.HashKey },
	"retry":    func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Retry = c.Balancer.Retry },
	"max-attempts": func(f *balancerFlags, c *balancerconf.Config) {
		f.cfg.MaxAttempts = c.Balancer.MaxAttempts
	},
	"failonstatus": func(f *balancerFlags, c *balancerconf.Config) {
		codes := make([]string, len(c.Balancer.FailOnStatus))
		for i, code := range c.Balancer.FailOnStatus {
			codes[i] = strconv.Itoa(code)
		}
		f.failOn = strings.Join(codes, ",")
	},
	"no-force-recovery": func(f *balancerFlags, c *balancerconf.Config) {
		f.cfg.NoForceRecovery = c.Balancer.NoForceRecovery
	},
	"health-path":     func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Health.Path = c.Balancer.Health.Path },
	"health-interval": func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Health.Interval = c.Balancer.Health.Interval },
	"health-timeout":  func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Health.Timeout = c.Balancer.Health.Timeout },
	"health-rise":     func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Health.Rise = c.Balancer.Health.Rise },
	"health-fall":     func(f *balancerFlags, c *balancerconf.Config) { f.cfg.Health.Fall = c.Balancer.Health.Fall },
	"connect-timeout": func(f *balancerFlags, c *balancerconf.Config) { f.cfg.ConnectTimeout = c.Balancer.ConnectTimeout },
	"response-header-timeout": func(f *balancerFlags, c *balancerconf.Config) {
		f.cfg.ResponseHeaderTimeout = c.Balancer.ResponseHeaderTimeout
	},
	"max-body": func(f *balancerFlags, c *balancerconf.Config) {
		f.maxBody = balancerconf.FormatSize(c.Balancer.MaxBodyBytes)
	},
	"admin-listen":     func(f *balancerFlags, c *balancerconf.Config) { f.adminAddr = c.AdminListen },
	"admin-token-file": func(f *balancerFlags, c *balancerconf.Config) { f.tokenFile = c.AdminTokenFile },
	"ajp-secret-file":  func(f *balancerFlags, c *balancerconf.Config) { f.ajpSecret = c.AJPSecretFile },
	"log-format":       func(f *balancerFlags, c *balancerconf.Config) { f.logFormat = c.LogFormat },
	"log-level":        func(f *balancerFlags, c *balancerconf.Config) { f.logLevel = c.LogLevel },
	"cluster-join": func(f *balancerFlags, c *balancerconf.Config) {
		f.cluster.join = strings.Join(c.Cluster.Join, ",")
	},
	"cluster-discover": func(f *balancerFlags, c *balancerconf.Config) { f.cluster.discover = c.Cluster.Discover },
	"cluster-listen":   func(f *balancerFlags, c *balancerconf.Config) { f.cluster.listen = c.Cluster.Listen },
	"cluster-key-file": func(f *balancerFlags, c *balancerconf.Config) { f.cluster.keyFile = c.Cluster.KeyFile },
	"insecure-cluster": func(f *balancerFlags, c *balancerconf.Config) { f.cluster.insecure = c.Cluster.Insecure },
	"cluster-name":     func(f *balancerFlags, c *balancerconf.Config) { f.cluster.name = c.Cluster.Name },
	"owners": func(f *balancerFlags, c *balancerconf.Config) {
		f.cluster.owners = "all"
		if c.Cluster.Owners > 0 {
			f.cluster.owners = strconv.Itoa(c.Cluster.Owners)
		}
	},
	"dead-after": func(f *balancerFlags, c *balancerconf.Config) { f.cluster.deadAfter = c.Cluster.DeadAfter },
}

// configure returns the balancer's config from the flags and, with
// --config, the file: the file's values for the flags the command line
// did not give. Errors in the file name its line.
func (f *balancerFlags) configure(fs *flag.FlagSet) (balancer.Config, error) {
	if f.file.path == "" {
		return f.config()
	}
	f.file.given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.file.given[fl.Name] = true })
	f.file.cmdline = f.clone()
	conf, err := balancerconf.Load(f.file.path)
	if err != nil {
		return balancer.Config{}, err
	}
	return f.applyFile(conf)
}

// applyFile sets the flags the command line did not give from conf, and
// returns the config they make.
func (f *balancerFlags) applyFile(conf *balancerconf.Config) (balancer.Config, error) {
	for name, set := range fileSettings {
		if !f.file.given[name] {
			set(f, conf)
		}
	}
	f.cfg.RetryBodyBytes = conf.Balancer.RetryBodyBytes // no flag sets it
	f.file.conf = conf
	if len(f.members) == 0 && len(f.file.members) == 0 && !f.cluster.enabled() {
		return balancer.Config{}, fmt.Errorf("%s: no member: add [[member]] tables (or give --member), "+
			"or follow a shoal cluster with cluster-join", f.file.path)
	}
	return f.config()
}

// clone returns a copy of f that shares nothing f changes.
func (f *balancerFlags) clone() *balancerFlags {
	c := *f
	cluster := *f.cluster
	c.cluster = &cluster
	c.members = slices.Clone(f.members)
	c.file.members = slices.Clone(f.file.members)
	c.cfg.Members = slices.Clone(f.cfg.Members)
	c.cfg.FailOnStatus = slices.Clone(f.cfg.FailOnStatus)
	return &c
}

// reloader is what a reload applies a config to: *balancer.Balancer.
type reloader interface {
	Reload(balancer.Config) error
}

// reloadOnSIGHUP re-reads the config file at each SIGHUP and applies it
// to b (running cfg now), until the returned stop is called. Without
// --config it does nothing, and SIGHUP keeps its default effect (the
// process ends), as there is nothing to reload.
func (f *balancerFlags) reloadOnSIGHUP(b reloader, cfg balancer.Config, log *slog.Logger) (stop func()) {
	if f.file.path == "" {
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	r := &balancerReload{path: f.file.path, cmdline: f.file.cmdline, running: f, cfg: cfg, b: b, log: log}
	wg.Go(func() { r.loop(hup, done) })
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
			wg.Wait()
		})
	}
}

// balancerReload applies a config file again: the flags and config
// running now, and the balancer they run on.
type balancerReload struct {
	path    string
	cmdline *balancerFlags // what the command line set: each reload starts from it
	running *balancerFlags
	cfg     balancer.Config
	b       reloader
	log     *slog.Logger
}

// loop reloads at each signal on hup until done is closed. One reload
// runs at a time: signals that come during one are merged into one more.
func (r *balancerReload) loop(hup <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-hup:
			r.reload()
		}
	}
}

// reload re-reads the file and applies it, or keeps the running config
// and says why in one log line.
func (r *balancerReload) reload() {
	path := r.path
	refuse := func(err error) {
		var es balancerconf.Errors
		msg := err.Error()
		if errors.As(err, &es) {
			msg = es.OneLine()
		}
		r.log.Error("config reload refused; the running config stays", slog.String("file", path), slog.String("err", msg))
	}
	conf, err := balancerconf.Load(path)
	if err != nil {
		refuse(err)
		return
	}
	next := r.cmdline.clone()
	cfg, err := next.applyFile(conf)
	if err != nil {
		refuse(err)
		return
	}
	if fixed := restartOnly(r.running, next, conf); len(fixed) > 0 {
		refuse(errors.New(strings.Join(fixed, "; ")))
		return
	}
	cfg.Logger = r.cfg.Logger
	if err := r.b.Reload(cfg); err != nil {
		refuse(err)
		return
	}
	added, removed, changed := memberChanges(r.cfg.Members, cfg.Members)
	r.log.Info("config file reloaded", slog.String("file", path),
		slog.String("added", strings.Join(added, ",")), slog.String("removed", strings.Join(removed, ",")),
		slog.String("changed", strings.Join(changed, "; ")), slog.String("settings", strings.Join(settingChanges(r.cfg, cfg), ",")))
	r.running, r.cfg = next, cfg
}

// restartOnly returns, for each setting that only a restart can change
// and that differs between the running flags and next, a line saying
// so, with the file's line of it.
func restartOnly(running, next *balancerFlags, conf *balancerconf.Config) []string {
	type setting struct {
		key      string
		was, now any
	}
	rc, nc := running.cluster, next.cluster
	var out []string
	for _, s := range []setting{
		{"listen", running.listen, next.listen},
		{"tls-cert", running.tlsCert, next.tlsCert},
		{"tls-key", running.tlsKey, next.tlsKey},
		{"admin-listen", running.adminAddr, next.adminAddr},
		{"admin-token-file", running.tokenFile, next.tokenFile},
		{"log-format", running.logFormat, next.logFormat},
		{"log-level", running.logLevel, next.logLevel},
		{"cluster-join", rc.join, nc.join},
		{"cluster-discover", rc.discover, nc.discover},
		{"cluster-listen", rc.listen, nc.listen},
		{"cluster-key-file", rc.keyFile, nc.keyFile},
		{"insecure-cluster", rc.insecure, nc.insecure},
		{"cluster-name", rc.name, nc.name},
		{"owners", rc.owners, nc.owners},
		{"dead-after", rc.deadAfter, nc.deadAfter},
	} {
		if s.was == s.now {
			continue
		}
		where := conf.File
		if l := conf.Line(s.key); l > 0 {
			where += ":" + strconv.Itoa(l)
		}
		out = append(out, fmt.Sprintf("%s: %s cannot change at reload (running %q, file %q); restart to change it",
			where, s.key, fmt.Sprint(s.was), fmt.Sprint(s.now)))
	}
	// A key file's content may change under the same name: the cluster
	// key is read at start only.
	if rc.keyFile != "" && rc.keyFile == nc.keyFile && !slices.Equal(running.clusterCfg.Key, next.clusterCfg.Key) {
		out = append(out, fmt.Sprintf("%s: the key in cluster-key-file %s cannot change at reload; restart to change it",
			conf.File, nc.keyFile))
	}
	return out
}

// memberChanges compares two member lists by route: the routes added,
// removed, and the changed ones with what changed ("n1 weight 1→2").
func memberChanges(was, now []balancer.MemberConfig) (added, removed, changed []string) {
	old := make(map[string]balancer.MemberConfig, len(was))
	for _, m := range was {
		old[m.Route] = m
	}
	for _, m := range now {
		o, ok := old[m.Route]
		delete(old, m.Route)
		switch {
		case !ok:
			added = append(added, m.Route)
		case o != m:
			changed = append(changed, m.Route+" "+strings.Join(fieldChanges(o, m), " "))
		}
	}
	for _, m := range was {
		if _, gone := old[m.Route]; gone {
			removed = append(removed, m.Route)
		}
	}
	return added, removed, changed
}

// fieldChanges lists the fields of a that b changes, as "name was→now",
// named as the file names them.
func fieldChanges(a, b balancer.MemberConfig) []string {
	weight := func(w float64) float64 {
		if w == 0 {
			return 1
		}
		return w
	}
	var out []string
	add := func(name string, was, now any) {
		if was != now {
			out = append(out, fmt.Sprintf("%s %v→%v", name, was, now))
		}
	}
	add("url", a.URL, b.URL)
	add("weight", weight(a.Weight), weight(b.Weight))
	add("standby", a.Standby, b.Standby)
	add("disabled", a.Disabled, b.Disabled)
	add("drain", a.Draining, b.Draining)
	add("lbset", a.LBSet, b.LBSet)
	return out
}

// settingChanges names the settings other than the members that differ
// between two configs, as the file names them.
func settingChanges(a, b balancer.Config) []string {
	var out []string
	add := func(name string, was, now any) {
		if !reflect.DeepEqual(was, now) {
			out = append(out, name)
		}
	}
	add("sticky", a.Sticky, b.Sticky)
	add("method", methodName(a.Method), methodName(b.Method))
	add("hash-key", a.HashKey, b.HashKey)
	add("retry", a.Retry, b.Retry)
	add("max-attempts", a.MaxAttempts, b.MaxAttempts)
	if !slices.Equal(a.FailOnStatus, b.FailOnStatus) {
		out = append(out, "failonstatus")
	}
	add("no-force-recovery", a.NoForceRecovery, b.NoForceRecovery)
	add("max-body", a.MaxBodyBytes, b.MaxBodyBytes)
	add("retry-body", a.RetryBodyBytes, b.RetryBodyBytes)
	add("connect-timeout", a.ConnectTimeout, b.ConnectTimeout)
	add("response-header-timeout", a.ResponseHeaderTimeout, b.ResponseHeaderTimeout)
	add("health-path", a.Health.Path, b.Health.Path)
	add("health-interval", a.Health.Interval, b.Health.Interval)
	add("health-timeout", a.Health.Timeout, b.Health.Timeout)
	add("health-rise", a.Health.Rise, b.Health.Rise)
	add("health-fall", a.Health.Fall, b.Health.Fall)
	return out
}
