package httpdconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/balancerconf"
)

// translate parses and translates src, failing the test on a parse
// error or a translation the translator itself got wrong.
func translate(t *testing.T, name, src string) *Result {
	t.Helper()
	f, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := Translate(f)
	for _, p := range r.Problems {
		if p.internal {
			t.Errorf("the translation is refused by balancerconf: %s\n%s", p, r.Config)
		}
	}
	return r
}

// load parses a translation's config as `shoal balancer --config` does.
func load(t *testing.T, r *Result) *balancerconf.Config {
	t.Helper()
	c, err := balancerconf.Parse("out.toml", r.Config)
	if err != nil {
		t.Fatalf("balancerconf refuses the translation: %v\n%s", err, r.Config)
	}
	return c
}

func problems(r *Result, sev Severity) []string {
	var out []string
	for _, p := range r.Problems {
		if p.Severity == sev {
			out = append(out, p.String())
		}
	}
	return out
}

// seed reads the seed deployment's Apache config from testdata.
func seed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTranslateSeed: the seed deployment's exact Apache config (two
// Tomcats over AJP, the classic stickysession line). The ajp:// members
// are written and reported while the balancer refuses them; with the
// same file pointing at the Tomcats' HTTP connectors, everything
// translates and balancerconf loads it with Apache's behaviour.
func TestTranslateSeed(t *testing.T) {
	src := seed(t, "seed-sticky-ajp.conf")
	t.Run("ajp", func(t *testing.T) {
		r := translate(t, "httpd.conf", src)
		if r.Balancer != "cluster" {
			t.Errorf("balancer %q, want cluster", r.Balancer)
		}
		for _, want := range []string{`route = "tomcat1"`, `url = "ajp://127.0.0.1:18091"`, `route = "tomcat2"`,
			`url = "ajp://127.0.0.1:18092"`, `sticky = "JSESSIONID|jsessionid"`} {
			if !strings.Contains(string(r.Config), want) {
				t.Errorf("config lacks %s:\n%s", want, r.Config)
			}
		}
		refused := balancerconf.CheckChange(func(c *balancer.Config) {
			c.Members = []balancer.MemberConfig{{Route: "a", URL: "ajp://127.0.0.1:18091"}}
		}) != nil
		nt := problems(r, NotTranslated)
		if refused {
			if len(nt) != 2 || !strings.HasPrefix(nt[0], "httpd.conf:37: not translated: BalancerMember") ||
				!strings.Contains(nt[0], "http:// members only, not ajp://") || !strings.HasPrefix(nt[1], "httpd.conf:38:") {
				t.Errorf("not translated: %q, want the two ajp:// members (lines 37, 38)", nt)
			}
		} else if len(nt) != 0 {
			t.Errorf("the balancer takes ajp:// members now, but: %q", nt)
		}
	})
	t.Run("http", func(t *testing.T) {
		httpSrc := strings.NewReplacer("ajp://127.0.0.1:18091", "http://127.0.0.1:18081",
			"ajp://127.0.0.1:18092", "http://127.0.0.1:18082").Replace(src)
		r := translate(t, "httpd.conf", httpSrc)
		if !r.Complete() {
			t.Fatalf("not complete: %q", problems(r, NotTranslated))
		}
		c := load(t, r)
		b := c.Balancer
		want := []balancer.MemberConfig{{Route: "tomcat1", URL: "http://127.0.0.1:18081"}, {Route: "tomcat2", URL: "http://127.0.0.1:18082"}}
		if !reflect.DeepEqual(b.Members, want) {
			t.Errorf("members %+v, want %+v", b.Members, want)
		}
		if c.Listen != "127.0.0.1:18080" || b.Sticky != "JSESSIONID|jsessionid" || b.Method != "byrequests" ||
			b.Retry != 60*time.Second || b.Health.Path != "" || b.ResponseHeaderTimeout != 60*time.Second {
			t.Errorf("listen %q sticky %q method %q retry %v health-path %q response-header-timeout %v: "+
				"want Apache's: 127.0.0.1:18080, JSESSIONID|jsessionid, byrequests, 60s, none, 60s",
				c.Listen, b.Sticky, b.Method, b.Retry, b.Health.Path, b.ResponseHeaderTimeout)
		}
		notes := strings.Join(problems(r, Note), "\n")
		for _, want := range []string{"httpd.conf:43: note: SetHandler balancer-manager", "LoadModule", "ProxyPreserveHost"} {
			if !strings.Contains(notes, want) {
				t.Errorf("notes lack %q:\n%s", want, notes)
			}
		}
	})
	t.Run("round robin", func(t *testing.T) {
		rr := strings.NewReplacer("ajp://", "http://").Replace(seed(t, "seed-roundrobin-ajp.conf"))
		r := translate(t, "httpd.conf", rr)
		if !r.Complete() {
			t.Fatalf("not complete: %q", problems(r, NotTranslated))
		}
		// No stickysession: Apache does not stick, and shoal must not
		// either (its own default is JSESSIONID|jsessionid).
		if c := load(t, r); c.Balancer.Sticky != "" || len(c.Balancer.Members) != 3 {
			t.Errorf("sticky %q, %d members: want none and 3", c.Balancer.Sticky, len(c.Balancer.Members))
		}
	})
}

// TestTranslateEverything: a config with every parameter shoal has a
// setting for translates completely into those settings.
func TestTranslateEverything(t *testing.T) {
	src := `Listen 8080
Define BACKEND 10.0.0.1
Timeout 90
<VirtualHost *:8080>
    ProxyRequests Off
    ProxyPreserveHost On
    LimitRequestBody 1048576
    <Proxy "balancer://app">
        BalancerMember "http://${BACKEND}:8080/" route=n1 loadfactor=2.5 retry=30 timeout=20 connectiontimeout=3 hcmethod=GET hcuri=/healthz/ready hcinterval=5 hcpasses=2 hcfails=3
        BalancerMember http://10.0.0.2:8080 route=n2 status=+H retry=30 timeout=20 connectiontimeout=3000ms hcmethod=GET hcuri=/healthz/ready hcinterval=5s hcpasses=2 hcfails=3
        BalancerMember http://10.0.0.3:8080 route=n3 status=+N retry=30 timeout=20 connectiontimeout=3 hcmethod=GET hcuri=/healthz/ready hcinterval=5 hcpasses=2 hcfails=3 max=100 ttl=60 ping=1
        BalancerMember http://10.0.0.4:8080 route=n4 status=+D retry=30 timeout=20 connectiontimeout=3 hcmethod=GET hcuri=/healthz/ready hcinterval=5 hcpasses=2 hcfails=3
        ProxySet lbmethod=bybusyness maxattempts=2 failonstatus=503,502 forcerecovery=Off
    </Proxy>
    ProxyPass / balancer://app/sub/ stickysession=SID|sid nofailover=Off scolonpathdelim=On
    ProxyPassReverse / balancer://app/sub/
</VirtualHost>
`
	r := translate(t, "all.conf", src)
	if !r.Complete() {
		t.Fatalf("not complete: %q\n%s", problems(r, NotTranslated), r.Config)
	}
	c := load(t, r)
	b := c.Balancer
	want := []balancer.MemberConfig{
		{Route: "n1", URL: "http://10.0.0.1:8080/sub", Weight: 2.5},
		{Route: "n2", URL: "http://10.0.0.2:8080/sub", Standby: true},
		{Route: "n3", URL: "http://10.0.0.3:8080/sub", Draining: true},
		{Route: "n4", URL: "http://10.0.0.4:8080/sub", Disabled: true},
	}
	if !reflect.DeepEqual(b.Members, want) {
		t.Errorf("members\n%+v\nwant\n%+v", b.Members, want)
	}
	got := []any{c.Listen, b.Sticky, b.Method, b.MaxAttempts, b.FailOnStatus, b.NoForceRecovery, b.MaxBodyBytes,
		b.Retry, b.ResponseHeaderTimeout, b.ConnectTimeout, b.Health.Path, b.Health.Interval, b.Health.Rise, b.Health.Fall}
	wantSettings := []any{":8080", "SID|sid", "bybusyness", 3, []int{503, 502}, true, int64(1048576),
		30 * time.Second, 20 * time.Second, 3 * time.Second, "/healthz/ready", 5 * time.Second, 2, 3}
	if !reflect.DeepEqual(got, wantSettings) {
		t.Errorf("settings\n%v\nwant\n%v", got, wantSettings)
	}
	notes := strings.Join(problems(r, Note), "\n")
	for _, want := range []string{"all.conf:9: note: timeout: translated as response-header-timeout", "all.conf:11: note: max=100",
		"all.conf:11: note: ping=1", "all.conf:16: note: ProxyPassReverse", "hcmethod=GET"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "ProxyPreserveHost") {
		t.Errorf("a note about ProxyPreserveHost, which is On:\n%s", notes)
	}
}

// TestTranslateReports: what shoal cannot do is reported, with the line
// and the reason, never dropped.
func TestTranslateReports(t *testing.T) {
	const base = "<Proxy balancer://c>\nBalancerMember http://a:1 route=a\nBalancerMember http://b:1 route=b\n</Proxy>\n"
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"nofailover", base + "ProxyPass / balancer://c/ nofailover=On\n", 5, "always fails over"},
		{"bytraffic", base + "ProxyPass / balancer://c/ lbmethod=bytraffic\n", 5, "no bytraffic"},
		{"balancer timeout", base + "ProxyPass / balancer://c/ timeout=5\n", 5, "does not wait"},
		{"unknown balancer param", base + "ProxyPass / balancer://c/ route=x\n", 5, "not a balancer parameter"},
		{"not key=value", base + "ProxyPass / balancer://c/ On\n", 5, "not a key=value"},
		{"redirect", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a redirect=b\n</Proxy>\nProxyPass / balancer://c/\n", 2, "no fixed redirect"},
		{"ignore errors", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a status=+I\n</Proxy>\nProxyPass / balancer://c/\n", 2, "always puts a member that fails in error"},
		{"hot spare", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a status=+R\n</Proxy>\nProxyPass / balancer://c/\n", 2, "no hot spare"},
		{"bad status", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a status=+X\n</Proxy>\nProxyPass / balancer://c/\n", 2, "unknown flag"},
		{"https member", "<Proxy balancer://c>\nBalancerMember https://a:1 route=a\n</Proxy>\nProxyPass / balancer://c/\n", 2, "plain HTTP to members"},
		{"bad route", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a.b\n</Proxy>\nProxyPass / balancer://c/\n", 2, `route "a.b"`},
		{"same route", base + "BalancerMember balancer://c http://d:1 route=a\nProxyPass / balancer://c/\n", 5, "used on line 2 too"},
		{"retry differs", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a retry=5\nBalancerMember http://b:1 route=b\n</Proxy>\nProxyPass / balancer://c/\n", 3, "retry 60s here, 5s on line 2"},
		{"tcp check", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a hcmethod=TCP\n</Proxy>\nProxyPass / balancer://c/\n", 2, "health checks are HTTP GETs"},
		{"check on one member", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a hcmethod=GET\nBalancerMember http://b:1 route=b\n</Proxy>\nProxyPass / balancer://c/\n", 3, "health checks differ"},
		{"include", "Include conf.d/*.conf\n" + base + "ProxyPass / balancer://c/\n", 1, "not followed"},
		{"rewrite", base + "RewriteRule ^/a /b [P]\nProxyPass / balancer://c/\n", 5, "does not rewrite URLs"},
		{"header", base + "Header set X-A b\nProxyPass / balancer://c/\n", 5, "does not edit response headers"},
		{"direct backend", base + "ProxyPass / balancer://c/\nProxyPass /x http://other:1/\n", 6, "go to one backend"},
		{"exclusion", base + "ProxyPass /static !\nProxyPass / balancer://c/\n", 5, "serves nothing itself"},
		{"strip prefix", base + "ProxyPass /app/ balancer://c/\n", 5, "maps /app/ to /"},
		{"second balancer", base + "<Proxy balancer://d>\nBalancerMember http://e:1 route=e\n</Proxy>\nProxyPass / balancer://c/\nProxyPass /d balancer://d/\n", 9, "run a second shoal balancer"},
		{"undefined variable", "<Proxy balancer://c>\nBalancerMember http://${HOST}:1 route=a\nBalancerMember http://b:1 route=b\n</Proxy>\nProxyPass / balancer://c/\n", 2, "${HOST} is not defined"},
		{"conditional", base + "<If \"%{HTTP_HOST} == 'a'\">\nProxyPass / balancer://c/\n</If>\n", 6, "inside <If"},
		{"two listens", "Listen 80\nListen 81\n" + base + "ProxyPass / balancer://c/\n", 2, "listens on one address"},
		{"access control", base + "Require ip 10.0.0.0/8\nProxyPass / balancer://c/\n", 5, "no access control"},
		{"location access", base + "<Location /admin>\nRequire ip 10.0.0.0/8\n</Location>\nProxyPass / balancer://c/\n", 6, "no access control"},
		{"forward proxy", base + "ProxyRequests On\nProxyPass / balancer://c/\n", 5, "not a forward proxy"},
		{"member outside", "BalancerMember http://a:1\n", 1, "outside <Proxy balancer://NAME>"},
		{"non-balancer proxy", "<Proxy http://a:1>\nProxySet timeout=5\n</Proxy>\n" + base + "ProxyPass / balancer://c/\n", 1, "not a balancer:// one"},
		{"no balancer", "ServerName x\n", 0, "no balancer to translate"},
		{"loadfactor", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a loadfactor=0.5\n</Proxy>\nProxyPass / balancer://c/\n", 2, "from 1 to 100"},
		{"failonstatus", base + "ProxyPass / balancer://c/ failonstatus=600\n", 5, "not an HTTP status code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := translate(t, "x.conf", tc.src)
			if r.Complete() {
				t.Fatalf("complete, want a problem at line %d with %q; config:\n%s", tc.line, tc.want, r.Config)
			}
			for _, p := range r.Problems {
				if p.Severity == NotTranslated && p.Line == tc.line && strings.Contains(p.String(), tc.want) {
					return
				}
			}
			t.Errorf("no \"not translated\" at line %d with %q in:\n%s", tc.line, tc.want, strings.Join(problems(r, NotTranslated), "\n"))
		})
	}
}

// TestTranslateLBSets: lbset tiers translate as they are.
func TestTranslateLBSets(t *testing.T) {
	r := translate(t, "x.conf", "<Proxy balancer://c>\nBalancerMember http://a:1 route=a\nBalancerMember http://b:1 route=b lbset=1\n</Proxy>\nProxyPass / balancer://c/\n")
	if !r.Complete() {
		t.Fatalf("not complete: %q", problems(r, NotTranslated))
	}
	c := load(t, r)
	if len(c.Balancer.Members) != 2 || c.Balancer.Members[0].LBSet != 0 || c.Balancer.Members[1].LBSet != 1 {
		t.Errorf("members %+v: want a in lbset 0, b in lbset 1", c.Balancer.Members)
	}
}

// TestTranslateNoRoute: a member without a route gets a free name, and
// a note says to set it.
func TestTranslateNoRoute(t *testing.T) {
	r := translate(t, "x.conf", "<Proxy balancer://c>\nBalancerMember http://a:1 route=member1\nBalancerMember http://b:1\n</Proxy>\nProxyPass / balancer://c/\n")
	if !r.Complete() {
		t.Fatalf("not complete: %q", problems(r, NotTranslated))
	}
	c := load(t, r)
	if len(c.Balancer.Members) != 2 || c.Balancer.Members[1].Route != "member2" {
		t.Errorf("members %+v: want the second named member2", c.Balancer.Members)
	}
	if notes := strings.Join(problems(r, Note), "\n"); !strings.Contains(notes, `x.conf:3: note: BalancerMember http://b:1: no route: named "member2"`) {
		t.Errorf("notes:\n%s", notes)
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{
		`a"b\c`:    `"a\"b\\c"`,
		"x\ty\x7f": `"x\u0009y\u007F"`,
		"é":        `"é"`,
		"\xff":     `"` + "\uFFFD" + `"`,
	} {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestTranslateDebianVhost: a vhost as Debian lays them out (Debian's
// ${APACHE_LOG_DIR} in the log lines, a <Directory> for files, no Listen)
// translates completely: the log lines and the files are Apache's own,
// and listen is the virtual host's address.
func TestTranslateDebianVhost(t *testing.T) {
	r := translate(t, "site.conf", seed(t, "debian-vhost.conf"))
	if !r.Complete() {
		t.Fatalf("not complete: %q", problems(r, NotTranslated))
	}
	c := load(t, r)
	if c.Listen != ":80" || c.Balancer.Sticky != "JSESSIONID|jsessionid" || len(c.Balancer.Members) != 2 ||
		c.Balancer.Members[1].Weight != 2 {
		t.Errorf("listen %q, sticky %q, members %+v", c.Listen, c.Balancer.Sticky, c.Balancer.Members)
	}
	notes := strings.Join(problems(r, Note), "\n")
	for _, want := range []string{"site.conf:8: note: <Directory /var/www/html>: not needed", "ErrorLog", "site.conf:2: note: <VirtualHost *:80>"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}
