package httpdconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shoal-go/shoal/internal/balancerconf"
)

// output is the shoal config being written: top-level settings with the
// line of the Apache file each comes from, and the members.
type output struct {
	top      map[string]topSetting
	members  []*memberOut
	manager  bool // the file had a balancer-manager
	noHealth bool // Apache checked no member's health

	// src maps the lines of the rendered file to the Apache file's
	// lines, to point validate's errors at the directive they come from.
	src map[int]int
}

// topSetting is one top-level key's value, TOML-encoded, and the line of
// the Apache file it comes from (0: Apache's default, written out).
type topSetting struct {
	val  string
	line int
}

// topOrder is the order the top-level keys are written in: the order of
// docs/balancer.example.toml.
var topOrder = []string{
	"listen", "tls-cert", "tls-key", "sticky", "method", "retry", "max-attempts", "failonstatus",
	"no-force-recovery", "max-body", "connect-timeout", "response-header-timeout",
	"health-path", "health-interval", "health-rise", "health-fall",
}

func (o *output) set(key, val string, line int) {
	if o.top == nil {
		o.top = map[string]topSetting{}
	}
	o.top[key] = topSetting{val: val, line: line}
}

// render writes the config file.
func (o *output) render(file string, b *balancerDef, passes []*pass) []byte {
	o.src = map[int]int{}
	var lines []string
	add := func(src int, format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
		o.src[len(lines)] = src
	}
	from := fmt.Sprintf("balancer://%s (line %d)", b.name, b.line)
	if len(passes) > 0 {
		from += fmt.Sprintf(" and ProxyPass %s (line %d)", passes[0].path, passes[0].d.Line)
	}
	add(0, "# shoal balancer config, translated by `shoal balancer --from-httpd` from")
	add(0, "# %s: %s.", comment(file), comment(from))
	add(0, "# Run it with: shoal balancer --config THIS-FILE")
	add(0, "# Each setting names the line it comes from; \"Apache's default\" marks")
	add(0, "# a default of Apache's written out where shoal's differs.")
	add(0, "")
	for _, key := range topOrder {
		s, ok := o.top[key]
		if !ok {
			continue
		}
		note := "Apache's default"
		if s.line > 0 {
			note = "line " + strconv.Itoa(s.line)
		}
		switch {
		case key == "health-path" && o.noHealth:
			note += ": no member's health was checked (no hcmethod); shoal nodes answer /healthz/ready"
		case key == "sticky" && s.line == 0:
			note += ": no stickysession"
		}
		add(s.line, "%s = %s  # %s", key, s.val, note)
		if key == "tls-key" && o.manager || key == "listen" && o.manager && o.top["tls-key"].val == "" {
			add(0, "# admin-listen = \"127.0.0.1:8001\"  # the balancer-manager: shoal's listens apart, with a token (docs/balancer.md)")
		}
	}
	if o.manager && o.top["listen"].val == "" && o.top["tls-key"].val == "" {
		add(0, "# admin-listen = \"127.0.0.1:8001\"  # the balancer-manager: shoal's listens apart, with a token (docs/balancer.md)")
	}
	for _, m := range o.members {
		add(0, "")
		add(m.d.Line, "[[member]]  # line %d", m.d.Line)
		add(m.d.Line, "route = %s", tomlString(m.route))
		add(m.d.Line, "url = %s", tomlString(m.url))
		if m.weight != 0 {
			add(m.d.Line, "weight = %s", strconv.FormatFloat(m.weight, 'f', -1, 64))
		}
		if m.lbset != 0 {
			add(m.d.Line, "lbset = %d", m.lbset)
		}
		for _, f := range []struct {
			key string
			on  bool
		}{{"standby", m.standby}, {"disabled", m.disabled}, {"drain", m.drain}} {
			if f.on {
				add(m.d.Line, "%s = true", f.key)
			}
		}
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// validate parses the rendered config as `shoal balancer --config`
// does. What it refuses must have been reported as not translated (a
// member the balancer cannot proxy to, say); anything else is a bug of
// the translation, reported as such.
func (t *translator) validate(config []byte, out *output) {
	_, err := balancerconf.Parse("translated", config)
	if err == nil {
		return
	}
	var es balancerconf.Errors
	if !errors.As(err, &es) {
		es = balancerconf.Errors{{File: "translated", Msg: err.Error()}}
	}
	for _, e := range es {
		src := out.src[e.Line]
		reported := false
		for _, p := range t.problems {
			if p.Severity == NotTranslated && p.Line == src && src > 0 {
				reported = true
				break
			}
		}
		if !reported && src == 0 && e.Line == 0 && !t.complete() {
			// An error about the whole config (a check across keys)
			// after something was refused already: a consequence.
			reported = true
		}
		if !reported {
			t.problems = append(t.problems, Problem{File: t.file, Line: src, Severity: NotTranslated,
				What: "the translated config", Why: "refused by shoal balancer --config (a bug of the translation): " + e.Msg,
				internal: true})
		}
	}
}

func (t *translator) complete() bool {
	for _, p := range t.problems {
		if p.Severity == NotTranslated {
			return false
		}
	}
	return true
}

// tomlString writes s as a TOML basic string. s is valid UTF-8 (expand
// refuses other directives); invalid bytes would become U+FFFD.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// comment makes s safe in a TOML comment: printable, one line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
