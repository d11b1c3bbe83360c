package balancer

import (
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-go/shoal/session"
)

// Config is what a Balancer runs. Start from DefaultConfig, which returns
// a fresh value with Apache httpd's defaults where Apache has one; New
// checks it. Each field maps to one flag of `shoal balancer`.
type Config struct {
	// Members are the backends, in order: the order breaks byrequests ties
	// as Apache's configuration order does. Routes must be unique.
	Members []MemberConfig
	// FromCluster says the members come (also) from a cluster the
	// balancer follows (JoinCluster), so Members may be empty.
	FromCluster bool

	// Sticky names where a request carries its session id: "COOKIE|param"
	// (Apache's stickysession), or one name for both. "" disables
	// stickiness. DefaultConfig sets "JSESSIONID|jsessionid".
	Sticky string

	// Method balances the requests without a usable route: "byrequests"
	// (the default when empty), "bybusyness", "p2c" or "hash".
	Method string

	// HashKey is what the hash method hashes: "header:NAME" or
	// "cookie:NAME". Required with Method "hash", refused otherwise.
	HashKey string

	// Retry is how long a member in error is left alone before a request
	// may try it again (Apache's retry; 0 means the next request may).
	// DefaultConfig sets 60 s.
	Retry time.Duration

	// MaxAttempts bounds the members one request tries, the first
	// included. 0 means the number of members.
	MaxAttempts int

	// FailOnStatus lists response status codes that put the member that
	// answered them in error (Apache's failonstatus). The request is then
	// retried on another member if it may be; otherwise the response is
	// passed on.
	FailOnStatus []int

	// NoForceRecovery turns off Apache's forcerecovery: by default, when
	// every member is in error, they are all made usable again at once
	// instead of waiting for Retry.
	NoForceRecovery bool

	// MaxBodyBytes is the largest request body accepted; larger ones get
	// 413. 0 means no limit. DefaultConfig sets 32 MiB.
	MaxBodyBytes int64

	// RetryBodyBytes is how much of a request body is kept so that the
	// request can be sent again to another member. A request whose body
	// grew past it is not retried once a member has read it. 0 keeps
	// nothing. DefaultConfig sets 64 KiB.
	RetryBodyBytes int

	// ConnectTimeout bounds connecting to a member, ResponseHeaderTimeout
	// waiting for its response's headers once the request is sent. 0 means
	// no bound. DefaultConfig sets 5 s and 60 s (Apache's timeout).
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration

	// AJPSecret is sent to ajp:// members with every request (the
	// secret of their AJP connector, Tomcat's secretRequired). "" sends
	// none.
	AJPSecret string

	// Health configures the active health checks.
	Health HealthConfig

	// Logger receives the balancer's log lines. nil means none.
	Logger *slog.Logger
}

// HealthConfig configures the active health checks: every Interval, a GET
// of Path on each member. 200 passes; 503 means "alive but not ready": the
// member gets no new sessions but keeps its sticky requests (draining);
// anything else, or no answer within Timeout, fails. Fall consecutive
// failures put a member in error until Rise consecutive answers (200 or
// 503) bring it back.
type HealthConfig struct {
	// Path is requested on each member; "" disables the checks.
	// DefaultConfig sets "/healthz/ready", which `shoal node` serves.
	Path string
	// Interval between checks of one member. DefaultConfig sets 2 s.
	// A member in error, or whose last check failed, is checked ten
	// times as often (at least every 50 ms apart), so that it comes back
	// soon after it recovers.
	Interval time.Duration
	// Timeout of one check. DefaultConfig sets 1 s.
	Timeout time.Duration
	// Rise and Fall are the passes and failures in a row that change a
	// member's state. DefaultConfig sets 2 and 3 (HAProxy's).
	Rise, Fall int
}

// MemberConfig is one member: its route and URL, as `--member
// ROUTE=URL[,weight=N][,standby][,disabled][,drain][,lbset=N]` gives them.
type MemberConfig struct {
	// Route is the member's name in session ids ("<base>.<route>"),
	// 1-64 characters of [A-Za-z0-9_-].
	Route string
	// URL is the member's base URL: http://host:port, optionally with a
	// path prefix.
	URL string
	// Weight is Apache's loadfactor, 1 to 100 (two decimals kept). 0
	// means 1.
	Weight float64
	// Standby makes the member a hot standby: used only when no other
	// member is usable.
	Standby bool
	// Disabled members get no requests at all; Draining members only the
	// sticky requests of their own sessions.
	Disabled, Draining bool
	// LBSet is the member's tier, Apache's lbset, 0 to 99: the members
	// of a tier get requests only when no member of a lower one is
	// usable. 0 is the first tier.
	LBSet int
}

// MaxLBSet is the highest lbset, as in Apache.
const MaxLBSet = 99

// DefaultConfig returns a new Config with the defaults: Apache's for
// stickiness, retry and method, HAProxy's for the health checks' rise and
// fall, and shoal node's readiness endpoint.
func DefaultConfig() Config {
	return Config{
		Sticky:                "JSESSIONID|jsessionid",
		Method:                "byrequests",
		Retry:                 60 * time.Second,
		MaxBodyBytes:          32 << 20,
		RetryBodyBytes:        64 << 10,
		ConnectTimeout:        5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		Health: HealthConfig{
			Path:     "/healthz/ready",
			Interval: 2 * time.Second,
			Timeout:  time.Second,
			Rise:     2,
			Fall:     3,
		},
	}
}

// ParseMember parses a member spec: ROUTE=URL followed by comma-separated
// options: weight=N, standby, disabled, drain, lbset=N. Its errors say
// what is wrong without repeating spec.
func ParseMember(spec string) (MemberConfig, error) {
	route, rest, ok := strings.Cut(spec, "=")
	if !ok {
		return MemberConfig{}, fmt.Errorf("want ROUTE=URL")
	}
	fields := strings.Split(rest, ",")
	mc := MemberConfig{Route: route, URL: fields[0]}
	for _, opt := range fields[1:] {
		switch k, v, hasValue := strings.Cut(opt, "="); {
		case k == "weight" && hasValue:
			w, err := strconv.ParseFloat(v, 64)
			if err != nil || !(w >= 1 && w <= 100) {
				return MemberConfig{}, fmt.Errorf("weight %q: want a number from 1 to 100", v)
			}
			mc.Weight = w
		case opt == "standby":
			mc.Standby = true
		case opt == "disabled":
			mc.Disabled = true
		case opt == "drain":
			mc.Draining = true
		case k == "lbset" && hasValue:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > MaxLBSet {
				return MemberConfig{}, fmt.Errorf("lbset %q: want a tier from 0 to %d", v, MaxLBSet)
			}
			mc.LBSet = n
		default:
			return MemberConfig{}, fmt.Errorf("unknown option %q: want weight=N, standby, disabled, drain or lbset=N", opt)
		}
	}
	if _, err := mc.check(); err != nil {
		return MemberConfig{}, err
	}
	return mc, nil
}

// check validates the member and returns its parsed URL.
func (mc MemberConfig) check() (*url.URL, error) {
	if err := session.ValidateRoute(mc.Route); err != nil {
		return nil, fmt.Errorf("route %q: want 1-64 characters of [A-Za-z0-9_-]", mc.Route)
	}
	u, err := url.Parse(mc.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "ajp") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("want http:// URL (http://host:port, optionally with a path) or ajp://host:port")
	}
	if mc.Weight != 0 && (mc.Weight < 1 || mc.Weight > 100 || math.IsNaN(mc.Weight)) {
		return nil, fmt.Errorf("weight %v: want 1 to 100", mc.Weight)
	}
	if mc.LBSet < 0 || mc.LBSet > MaxLBSet {
		return nil, fmt.Errorf("lbset %d: want a tier from 0 to %d", mc.LBSet, MaxLBSet)
	}
	return u, nil
}

// lbfactor returns the weight as Apache stores a loadfactor: ×100.
func (mc MemberConfig) lbfactor() int64 {
	if mc.Weight == 0 {
		return 100
	}
	return int64(math.Round(mc.Weight * 100))
}

// Check reports whether New would accept the config. Its errors name
// the setting as `shoal balancer` names its flag ("retry -1s is
// negative"), so that the command can prefix "--".
func (c *Config) Check() error {
	if len(c.Members) == 0 && !c.FromCluster {
		return fmt.Errorf("member: none given (or follow a cluster)")
	}
	seen := make(map[string]bool, len(c.Members))
	for _, mc := range c.Members {
		if _, err := mc.check(); err != nil {
			return fmt.Errorf("member %s=%s: %w", mc.Route, mc.URL, err)
		}
		if seen[mc.Route] {
			return fmt.Errorf("member %s=%s: route %q used twice: routes must be unique", mc.Route, mc.URL, mc.Route)
		}
		seen[mc.Route] = true
	}
	if _, err := parseSticky(c.Sticky); err != nil {
		return err
	}
	if _, err := newSelector(c.Method, c.HashKey); err != nil {
		return err
	}
	switch {
	case c.Retry < 0:
		return fmt.Errorf("retry %v is negative", c.Retry)
	case c.MaxAttempts < 0:
		return fmt.Errorf("max-attempts %d is negative (0 means one per member)", c.MaxAttempts)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max-body %d is negative (0 means no limit)", c.MaxBodyBytes)
	case c.RetryBodyBytes < 0:
		return fmt.Errorf("retry body bytes %d is negative", c.RetryBodyBytes)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("connect-timeout %v is negative", c.ConnectTimeout)
	case c.ResponseHeaderTimeout < 0:
		return fmt.Errorf("response-header-timeout %v is negative", c.ResponseHeaderTimeout)
	}
	for _, code := range c.FailOnStatus {
		if code < 100 || code > 599 {
			return fmt.Errorf("failonstatus %d: want an HTTP status code (100-599)", code)
		}
	}
	return c.Health.check()
}

func (h *HealthConfig) check() error {
	if h.Path == "" {
		return nil
	}
	switch {
	case !strings.HasPrefix(h.Path, "/"):
		return fmt.Errorf("health-path %q: want a path starting with /", h.Path)
	case h.Interval <= 0:
		return fmt.Errorf("health-interval %v: want more than 0", h.Interval)
	case h.Timeout <= 0:
		return fmt.Errorf("health-timeout %v: want more than 0", h.Timeout)
	case h.Rise < 1:
		return fmt.Errorf("health-rise %d: want 1 or more", h.Rise)
	case h.Fall < 1:
		return fmt.Errorf("health-fall %d: want 1 or more", h.Fall)
	}
	return nil
}

// ParseStatusList parses a comma-separated list of HTTP status codes, as
// --failonstatus takes them.
func ParseStatusList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var codes []int
	for f := range strings.SplitSeq(s, ",") {
		code, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("%q: want HTTP status codes (100-599), comma-separated", f)
		}
		codes = append(codes, code)
	}
	return codes, nil
}
