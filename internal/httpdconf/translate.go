package httpdconf

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Severity says how far a Problem's directive or parameter was
// translated.
type Severity int

const (
	// NotTranslated: the translation does not do what the directive or
	// parameter did in Apache. The user has to act.
	NotTranslated Severity = iota
	// Note: translated, or not needed; a difference worth knowing.
	Note
)

// Problem is one directive or parameter the translation reports.
type Problem struct {
	File     string
	Line     int // from 1; 0 for the file as a whole
	Severity Severity
	What     string // the directive or parameter, as written
	Why      string // what shoal does instead, or why it cannot
	// internal is set when the generated file itself was refused: a bug
	// of Translate's, which tests check never happens.
	internal bool
}

// String returns "FILE:LINE: not translated: WHAT: WHY" (or "note:").
func (p Problem) String() string {
	kind := "not translated"
	if p.Severity == Note {
		kind = "note"
	}
	where := p.File
	if p.Line > 0 {
		where = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.What == "" {
		return fmt.Sprintf("%s: %s: %s", where, kind, p.Why)
	}
	return fmt.Sprintf("%s: %s: %s: %s", where, kind, p.What, p.Why)
}

// Result is a translation.
type Result struct {
	// Config is the shoal balancer config file (TOML), or nil when the
	// file sets up no balancer.
	Config []byte
	// Balancer is the name of the balancer translated ("cluster" for
	// balancer://cluster).
	Balancer string
	// Problems are what was not translated and the notes, by line.
	Problems []Problem
}

// Complete reports whether everything was translated: no problem is
// NotTranslated. Notes may remain.
func (r *Result) Complete() bool {
	return !slices.ContainsFunc(r.Problems, func(p Problem) bool { return p.Severity == NotTranslated })
}

// NotTranslated returns how many problems are NotTranslated.
func (r *Result) NotTranslated() int {
	n := 0
	for _, p := range r.Problems {
		if p.Severity == NotTranslated {
			n++
		}
	}
	return n
}

// Translate translates the balancer f sets up into a shoal balancer
// config file, reporting everything it cannot translate.
func Translate(f *File) *Result {
	t := &translator{file: f.Name, defines: map[string]string{}, balancers: map[string]*balancerDef{},
		ignored: map[string]bool{}}
	t.walk(f.Directives, scope{})
	return t.finish()
}

// translator is the state of one translation: what the walk over the
// directives found, and the problems so far.
type translator struct {
	file     string
	defines  map[string]string // Define NAME VALUE, as the walk meets them
	problems []Problem

	balancers map[string]*balancerDef // by lower-case name
	order     []*balancerDef          // in the order the file defines them
	passes    []*pass

	listens  []*Directive
	vhosts   []*Directive            // <VirtualHost> sections: their address when no Listen
	timeout  *setting[time.Duration] // Timeout: the server's, the proxy's default
	pTimeout *setting[time.Duration] // ProxyTimeout
	maxBody  *setting[int64]         // LimitRequestBody
	ssl      *Directive              // SSLEngine on
	cert     *Directive              // SSLCertificateFile
	key      *Directive              // SSLCertificateKeyFile
	preserve *setting[bool]          // ProxyPreserveHost
	reverse  []*Directive            // ProxyPassReverse
	manager  *Directive              // SetHandler balancer-manager
	mgrPath  string                  // its <Location>
	locAuth  []located               // access control in a <Location>: the manager's, or reported

	ignored map[string]bool // the Apache-only directives met, by name as written
}

// located is a directive and the <Location> it is in.
type located struct {
	d        *Directive
	location string
}

// setting is a value from the file and the line it came from.
type setting[T any] struct {
	v    T
	line int
	what string
}

// balancerDef is one balancer://NAME.
type balancerDef struct {
	name    string
	line    int
	members []*memberDef
	params  []param // ProxySet lines, then the ProxyPass lines' parameters
}

// memberDef is one BalancerMember.
type memberDef struct {
	d      *Directive
	url    string
	params []param
}

// pass is one ProxyPass (or the URL of a ProxyPass inside <Location>).
type pass struct {
	d      *Directive
	path   string
	target string // a URL, or "!"
	params []param
	scope  scope
}

// scope is where the walk is: the sections around a directive.
type scope struct {
	proxy    *balancerDef // inside <Proxy balancer://NAME>
	location string       // inside <Location PATH>
	// within names a section around the directive that makes it apply
	// to part of the requests only (<If>, <Directory>, <LocationMatch>
	// ...), or "" if none.
	within string
}

func (t *translator) report(line int, sev Severity, what, format string, args ...any) {
	t.problems = append(t.problems, Problem{File: t.file, Line: line, Severity: sev, What: what, Why: fmt.Sprintf(format, args...)})
}

// varRE matches ${NAME} in arguments, which Apache replaces at start.
var varRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// expand replaces ${NAME} in d's arguments with the file's Defines. ok
// is false (and it is reported) if one is not defined in the file.
func (t *translator) expand(d *Directive) (args []string, ok bool) {
	args = slices.Clone(d.Args)
	if !utf8.ValidString(d.Name + strings.Join(args, "")) {
		t.report(d.Line, NotTranslated, comment(d.String()), "not UTF-8 text: shoal's config file is UTF-8")
		return nil, false
	}
	for i, a := range args {
		if !strings.Contains(a, "${") {
			continue
		}
		var missing []string
		args[i] = varRE.ReplaceAllStringFunc(a, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := t.defines[name]; ok {
				return v
			}
			missing = append(missing, name)
			return m
		})
		if len(missing) > 0 {
			t.report(d.Line, NotTranslated, d.String(), "${%s} is not defined in this file (it may come from the environment "+
				"of Apache's start, or another file): put a Define %s VALUE line before it", missing[0], missing[0])
			return nil, false
		}
	}
	return args, true
}

// walk reads the directives ds in scope s.
func (t *translator) walk(ds []*Directive, s scope) {
	for _, d := range ds {
		if !d.Section && apacheOnly[strings.ToLower(d.Name)] {
			// Left out whatever its arguments: their ${VARS} (Debian's
			// ${APACHE_LOG_DIR}) need not resolve.
			t.ignored[d.Name] = true
			continue
		}
		args, ok := t.expand(d)
		if !ok {
			continue
		}
		if d.Section {
			t.section(d, args, s)
			continue
		}
		t.directive(d, args, s)
	}
}

// section reads one <Section>.
func (t *translator) section(d *Directive, args []string, s scope) {
	name := strings.ToLower(d.Name)
	switch name {
	case "proxy":
		if len(args) == 1 && isBalancerURL(args[0]) {
			inner := s
			inner.proxy = t.balancer(args[0], d.Line)
			t.walk(d.Block, inner)
			return
		}
		t.report(d.Line, NotTranslated, d.String(), "settings for a URL that is not a balancer:// one: shoal's balancer has "+
			"no per-backend or per-URL settings (%d directives inside)", len(d.Block))
	case "ifmodule":
		if len(args) == 1 && strings.HasPrefix(args[0], "!") {
			t.report(d.Line, Note, d.String(), "skipped: read as if every module were loaded")
			return
		}
		t.walk(d.Block, s)
	case "ifdefine":
		if len(args) != 1 {
			t.report(d.Line, NotTranslated, d.String(), "want one name")
			return
		}
		n, neg := strings.CutPrefix(args[0], "!")
		_, defined := t.defines[n]
		if !defined {
			t.report(d.Line, Note, d.String(), "%s is not defined in this file: read as not defined (as without apache2 -D %s)", n, n)
		}
		if defined != neg {
			t.walk(d.Block, s)
		}
	case "virtualhost":
		t.vhosts = append(t.vhosts, d)
		t.walk(d.Block, s)
	case "directory", "directorymatch", "files", "filesmatch":
		// About files Apache serves from disk: with every path proxied
		// (other ProxyPass lines are reported), there are none.
		t.report(d.Line, Note, d.String(), "not needed: shoal's balancer serves no files from disk "+
			"(%d directives inside)", len(d.Block))
	case "location":
		if len(args) != 1 {
			t.report(d.Line, NotTranslated, d.String(), "want one path")
			return
		}
		inner := s
		inner.location = args[0]
		t.walk(d.Block, inner)
	default:
		inner := s
		if inner.within == "" {
			inner.within = d.String()
		}
		t.walk(d.Block, inner)
	}
}

// directive reads one directive that is not a section.
func (t *translator) directive(d *Directive, args []string, s scope) {
	name := strings.ToLower(d.Name)
	if s.within != "" && (strings.HasPrefix(name, "proxy") || strings.HasPrefix(name, "balancer")) {
		t.report(d.Line, NotTranslated, d.String(), "inside %s: shoal's balancer applies its settings to all requests, "+
			"not to some of them", s.within)
		return
	}
	switch name {
	case "include", "includeoptional":
		t.report(d.Line, NotTranslated, d.String(), "not followed: translate that file too (or put its lines in this one)")
	case "define":
		switch len(args) {
		case 1:
			t.defines[args[0]] = ""
		case 2:
			t.defines[args[0]] = args[1]
		default:
			t.report(d.Line, NotTranslated, d.String(), "want Define NAME [VALUE]")
		}
	case "listen":
		t.listens = append(t.listens, d)
	case "timeout":
		t.duration(d, args, &t.timeout)
	case "proxytimeout":
		t.duration(d, args, &t.pTimeout)
	case "limitrequestbody":
		t.limitBody(d, args)
	case "sslengine":
		if on, err := oneOnOff(args); err != nil {
			t.report(d.Line, NotTranslated, d.String(), "%v", err)
		} else if on {
			t.ssl = d
		}
	case "sslcertificatefile":
		t.cert = d
	case "sslcertificatekeyfile":
		t.key = d
	case "proxypass":
		t.proxyPass(d, args, s)
	case "proxypassreverse":
		t.reverse = append(t.reverse, d)
	case "proxyset":
		t.proxySet(d, args, s)
	case "balancermember":
		t.balancerMember(d, args, s)
	case "proxypreservehost":
		if on, err := oneOnOff(args); err != nil {
			t.report(d.Line, NotTranslated, d.String(), "%v", err)
		} else {
			t.preserve = &setting[bool]{v: on, line: d.Line, what: d.String()}
		}
	case "proxyrequests":
		if on, err := oneOnOff(args); err != nil || on {
			t.report(d.Line, NotTranslated, d.String(), "shoal's balancer is a reverse proxy only, not a forward proxy")
		}
	case "proxyaddheaders":
		if on, err := oneOnOff(args); err != nil || !on {
			t.report(d.Line, NotTranslated, d.String(), "shoal's balancer always sets X-Forwarded-For, -Host and -Proto")
		}
	case "sethandler":
		if len(args) == 1 && strings.EqualFold(args[0], "balancer-manager") && s.location != "" {
			t.manager, t.mgrPath = d, s.location
			return
		}
		t.report(d.Line, NotTranslated, d.String(), "shoal's balancer runs no handler: it sends every request to a member")
	case "require", "order", "allow", "deny", "satisfy":
		if s.location != "" {
			// The <Location> may be the manager's, with its SetHandler
			// further down: finish decides.
			t.locAuth = append(t.locAuth, located{d, s.location})
			return
		}
		t.other(d)
	default:
		t.other(d)
	}
}

// other reports a directive shoal has no setting for.
func (t *translator) other(d *Directive) {
	if why, ok := lookupWhy(noteWhy, d.Name); ok {
		t.report(d.Line, Note, d.String(), "%s", why)
		return
	}
	if why, ok := lookupWhy(notTranslatedWhy, d.Name); ok {
		t.report(d.Line, NotTranslated, d.String(), "%s", why)
		return
	}
	name := strings.ToLower(d.Name)
	switch {
	case strings.HasPrefix(name, "ssl"):
		t.report(d.Line, NotTranslated, d.String(), "shoal's TLS is Go's, set by tls-cert and tls-key only")
	case strings.HasPrefix(name, "proxy") || strings.HasPrefix(name, "balancer"):
		t.report(d.Line, NotTranslated, d.String(), "shoal's balancer has no equivalent")
	default:
		t.report(d.Line, NotTranslated, d.String(), "not a balancer setting: shoal's balancer has no equivalent")
	}
}

func oneOnOff(args []string) (bool, error) {
	if len(args) != 1 {
		return false, fmt.Errorf("want On or Off")
	}
	return onOff(args[0])
}

func (t *translator) duration(d *Directive, args []string, dst **setting[time.Duration]) {
	if len(args) != 1 {
		t.report(d.Line, NotTranslated, d.String(), "want a number of seconds")
		return
	}
	v, err := seconds(args[0])
	if err != nil || v == 0 {
		t.report(d.Line, NotTranslated, d.String(), "want a number of seconds, more than 0")
		return
	}
	*dst = &setting[time.Duration]{v: v, line: d.Line, what: d.String()}
}

// maxBodyLimit is Apache's largest LimitRequestBody (2 GiB).
const maxBodyLimit = 2 << 30

func (t *translator) limitBody(d *Directive, args []string) {
	if len(args) != 1 {
		t.report(d.Line, NotTranslated, d.String(), "want a number of bytes")
		return
	}
	var n int64
	if _, err := fmt.Sscan(args[0], &n); err != nil || n < 0 || n > maxBodyLimit || fmt.Sprint(n) != args[0] {
		t.report(d.Line, NotTranslated, d.String(), "want a number of bytes from 0 (no limit) to 2147483648")
		return
	}
	t.maxBody = &setting[int64]{v: n, line: d.Line, what: d.String()}
}

func isBalancerURL(s string) bool {
	return len(s) >= len("balancer://") && strings.EqualFold(s[:len("balancer://")], "balancer://")
}

// balancerName returns the NAME of balancer://NAME[/path], lower case
// (Apache's balancer names are not case-sensitive), and the path.
func balancerName(u string) (name, path string) {
	rest := u[len("balancer://"):]
	name, path, _ = strings.Cut(rest, "/")
	return strings.ToLower(name), "/" + path
}

// balancer returns the balancer called by u, defining it at line if new.
func (t *translator) balancer(u string, line int) *balancerDef {
	name, _ := balancerName(u)
	if b := t.balancers[name]; b != nil {
		return b
	}
	b := &balancerDef{name: name, line: line}
	t.balancers[name] = b
	t.order = append(t.order, b)
	return b
}

// proxyPass reads ProxyPass PATH URL [key=value...], or ProxyPass URL
// [key=value...] inside <Location PATH>.
func (t *translator) proxyPass(d *Directive, args []string, s scope) {
	p := &pass{d: d, scope: s}
	switch {
	case s.location != "":
		// Inside <Location PATH>: ProxyPass URL [key=value...].
		if len(args) == 0 || len(args) > 1 && !strings.Contains(args[1], "=") {
			t.report(d.Line, NotTranslated, d.String(), "inside <Location>, want ProxyPass URL [key=value ...] (Apache refuses a path)")
			return
		}
		p.path, p.target, args = s.location, args[0], args[1:]
	case len(args) >= 2:
		p.path, p.target, args = args[0], args[1], args[2:]
	default:
		t.report(d.Line, NotTranslated, d.String(), "want ProxyPass PATH URL [key=value ...]")
		return
	}
	var bad []string
	p.params, bad = parseParams(args, d.Line)
	for _, a := range bad {
		t.report(d.Line, NotTranslated, a, "not a key=value parameter (Apache refuses it)")
	}
	t.passes = append(t.passes, p)
}

// proxySet reads ProxySet [balancer://NAME] key=value...: inside
// <Proxy balancer://NAME>, or naming the balancer.
func (t *translator) proxySet(d *Directive, args []string, s scope) {
	b := s.proxy
	if len(args) > 0 && !strings.Contains(args[0], "=") {
		if !isBalancerURL(args[0]) {
			t.report(d.Line, NotTranslated, d.String(), "settings for a backend that is not a balancer:// one: "+
				"shoal's balancer has no per-backend settings outside its members")
			return
		}
		b = t.balancer(args[0], d.Line)
		args = args[1:]
	}
	if b == nil {
		t.report(d.Line, NotTranslated, d.String(), "outside <Proxy balancer://NAME> and naming no balancer")
		return
	}
	ps, bad := parseParams(args, d.Line)
	for _, a := range bad {
		t.report(d.Line, NotTranslated, a, "not a key=value parameter (Apache refuses it)")
	}
	b.params = append(b.params, ps...)
}

// balancerMember reads BalancerMember [balancer://NAME] URL key=value...
func (t *translator) balancerMember(d *Directive, args []string, s scope) {
	b := s.proxy
	if len(args) > 0 && isBalancerURL(args[0]) {
		b = t.balancer(args[0], d.Line)
		args = args[1:]
	}
	if b == nil {
		t.report(d.Line, NotTranslated, d.String(), "outside <Proxy balancer://NAME> and naming no balancer (Apache refuses it)")
		return
	}
	if len(args) == 0 {
		t.report(d.Line, NotTranslated, d.String(), "no URL (Apache refuses it)")
		return
	}
	m := &memberDef{d: d, url: args[0]}
	var bad []string
	m.params, bad = parseParams(args[1:], d.Line)
	for _, a := range bad {
		t.report(d.Line, NotTranslated, a, "not a key=value parameter (Apache refuses it)")
	}
	b.members = append(b.members, m)
}

// finish picks the balancer, translates it and writes the result.
func (t *translator) finish() *Result {
	r := &Result{}
	b, passes := t.pick()
	if b != nil {
		r.Balancer = b.name
		out := &output{}
		t.translate(b, passes, out)
		r.Config = out.render(t.file, b, passes)
		t.validate(r.Config, out)
	}
	for _, a := range t.locAuth {
		if t.manager == nil || !samePath(a.location, t.mgrPath) {
			t.other(a.d)
		}
	}
	if len(t.ignored) > 0 {
		names := make([]string, 0, len(t.ignored))
		for n := range t.ignored {
			names = append(names, n)
		}
		slices.Sort(names)
		t.report(0, Note, "", "%d directives about Apache itself (its processes, modules and logs) have no balancer "+
			"setting and were left out: %s", len(names), strings.Join(names, ", "))
	}
	slices.SortStableFunc(t.problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	r.Problems = t.problems
	return r
}

// pick returns the balancer to translate, the ProxyPass lines that send
// requests to it, and reports the other ProxyPass lines and balancers.
func (t *translator) pick() (*balancerDef, []*pass) {
	var chosen *balancerDef
	for _, p := range t.passes {
		if isBalancerURL(p.target) {
			name, _ := balancerName(p.target)
			if b := t.balancers[name]; b != nil && len(b.members) > 0 {
				chosen = b
				break
			}
		}
	}
	if chosen == nil {
		for _, b := range t.order {
			if len(b.members) > 0 {
				chosen = b
				t.report(b.line, Note, "balancer://"+b.name, "no ProxyPass sends requests to it; translated anyway")
				break
			}
		}
	}
	if chosen == nil {
		t.report(0, NotTranslated, "", "no balancer to translate: want a <Proxy \"balancer://NAME\"> section with BalancerMember lines")
		return nil, nil
	}
	var mine []*pass
	for _, p := range t.passes {
		switch {
		case isBalancerURL(p.target):
			name, _ := balancerName(p.target)
			if name == chosen.name {
				mine = append(mine, p)
				chosen.params = append(chosen.params, p.params...)
				continue
			}
			what := "balancer://" + name
			if b := t.balancers[name]; b == nil || len(b.members) == 0 {
				t.report(p.d.Line, NotTranslated, p.d.String(), "%s has no BalancerMember", what)
				continue
			}
			t.report(p.d.Line, NotTranslated, p.d.String(), "one shoal balancer serves one set of members: "+
				"run a second shoal balancer (its own listen address) for %s, translated from a copy of this file without %s",
				what, "balancer://"+chosen.name)
		case p.target == "!" && t.manager != nil && samePath(p.path, t.mgrPath):
			// The manager's exclusion: shoal's manager has its own listener.
		case p.target == "!":
			t.report(p.d.Line, NotTranslated, p.d.String(), "shoal's balancer serves nothing itself: requests for %s go to the members too", p.path)
		default:
			t.report(p.d.Line, NotTranslated, p.d.String(), "requests for %s go to one backend, not to the balancer: "+
				"shoal's balancer sends every request to its members", p.path)
		}
	}
	for _, b := range t.order {
		if b != chosen && !t.passesTo(b) {
			t.report(b.line, NotTranslated, "balancer://"+b.name, "one shoal balancer serves one set of members: "+
				"run a second shoal balancer for it, translated from a copy of this file without balancer://%s", chosen.name)
		}
	}
	return chosen, mine
}

// passesTo reports whether a ProxyPass sends requests to b (those are
// reported already).
func (t *translator) passesTo(b *balancerDef) bool {
	for _, p := range t.passes {
		if isBalancerURL(p.target) {
			if name, _ := balancerName(p.target); name == b.name {
				return true
			}
		}
	}
	return false
}

// samePath compares URL paths without their trailing '/'.
func samePath(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// memberPath returns the path to add to every member's URL for the
// ProxyPass lines to the balancer, and ok false (reported) if they map
// paths in a way shoal cannot: shoal sends each request's path, after the
// member URL's path, unchanged.
func (t *translator) memberPath(passes []*pass) (prefix string, ok bool) {
	ok = true
	var fromRoot *pass
	for _, p := range passes {
		_, bpath := balancerName(p.target)
		switch {
		case samePath(p.path, "/"):
			if fromRoot != nil {
				_, prev := balancerName(fromRoot.target)
				if !samePath(prev, bpath) {
					t.report(p.d.Line, NotTranslated, p.d.String(), "a second ProxyPass of / to another path of the balancer")
					ok = false
				}
				continue
			}
			fromRoot, prefix = p, strings.TrimSuffix(bpath, "/")
		case samePath(p.path, bpath):
			if p.path != "/" && len(passes) == 1 {
				t.report(p.d.Line, Note, p.d.String(), "shoal's balancer sends every path to the members, not only %s", p.path)
			}
		default:
			t.report(p.d.Line, NotTranslated, p.d.String(), "maps %s to %s on the members: shoal's balancer sends a "+
				"request's path unchanged (after the member URL's path), so it can map / to a path but not one path to another",
				p.path, bpath)
			ok = false
		}
	}
	if fromRoot != nil && prefix != "" {
		for _, p := range passes {
			if p != fromRoot && !samePath(p.path, "/") {
				t.report(p.d.Line, NotTranslated, p.d.String(), "with / mapped to %s, shoal cannot map %s apart", prefix, p.path)
				ok = false
			}
		}
	}
	return prefix, ok
}

// checkURL parses a member URL as Apache takes it.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("want scheme://host:port[/path]")
	}
	return u, nil
}
