package httpdconf

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := `# a comment
ServerName 127.0.0.1

<Proxy "balancer://cluster">
    BalancerMember "ajp://127.0.0.1:8009" route=n1 \
        loadfactor=2
    BalancerMember 'http://h:1' "route=a b" route=it\'s
    ProxySet lbmethod=byrequests
</Proxy>
<Location />
</Location>
	ProxyPass   "/"   balancer://cluster/ stickysession=JSESSIONID|jsessionid  nofailover=Off   ` + "\r\n" + `
<IfModule mod_proxy.c >
  <proxy balancer://x>
  </PROXY>
</IfModule>
`
	f, err := Parse("t.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	type flat struct {
		Name    string
		Args    []string
		Line    int
		Section bool
		Depth   int
	}
	var got []flat
	var walk func(ds []*Directive, depth int)
	walk = func(ds []*Directive, depth int) {
		for _, d := range ds {
			got = append(got, flat{d.Name, d.Args, d.Line, d.Section, depth})
			walk(d.Block, depth+1)
		}
	}
	walk(f.Directives, 0)
	want := []flat{
		{"ServerName", []string{"127.0.0.1"}, 2, false, 0},
		{"Proxy", []string{"balancer://cluster"}, 4, true, 0},
		{"BalancerMember", []string{"ajp://127.0.0.1:8009", "route=n1", "loadfactor=2"}, 5, false, 1},
		{"BalancerMember", []string{"http://h:1", "route=a b", `route=it\'s`}, 7, false, 1},
		{"ProxySet", []string{"lbmethod=byrequests"}, 8, false, 1},
		{"Location", []string{"/"}, 10, true, 0},
		{"ProxyPass", []string{"/", "balancer://cluster/", "stickysession=JSESSIONID|jsessionid", "nofailover=Off"}, 12, false, 0},
		{"IfModule", []string{"mod_proxy.c"}, 14, true, 0},
		{"proxy", []string{"balancer://x"}, 15, true, 1},
	}
	for i := range want {
		if want[i].Args == nil {
			want[i].Args = []string{}
		}
	}
	for i := range got {
		if got[i].Args == nil {
			got[i].Args = []string{}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if s := f.Directives[1].Block[1].String(); s != `BalancerMember http://h:1 "route=a b" "route=it\'s"` {
		t.Errorf("String() = %s", s)
	}
}

// TestParseRefuses: each malformed file gets an *Error with its line and
// a reason.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"unterminated quote", "ServerName x\nProxyPass / \"balancer://c/\n", 2, "unterminated \" quote"},
		{"unclosed section", "<Proxy balancer://c>\nBalancerMember http://a:1\n", 1, "<Proxy> is not closed"},
		{"wrong close", "<Proxy balancer://c>\n</Location>\n", 2, "</Location> closes <Proxy> opened on line 1"},
		{"close without open", "\n</Proxy>\n", 2, "</Proxy> without a <Proxy> section"},
		{"tag without >", "<Proxy balancer://c\n</Proxy>\n", 1, "no closing '>'"},
		{"close with args", "<Proxy x>\n</Proxy x>\n", 2, "want </Name>"},
		{"bad name", "Proxy$Pass / x\n", 1, "not a directive name"},
		{"bad section name", "<Pro{xy x>\n</Pro{xy>\n", 1, "not a section name"},
		{"NUL", "ServerName a\nListen 80\x00\n", 2, "NUL byte"},
		{"long line", "ProxyPass " + strings.Repeat("a", MaxLineLength) + "\n", 1, "longer than"},
		{"deep", strings.Repeat("<IfModule x>\n", MaxDepth+1), MaxDepth + 1, "nested more than"},
		{"too large", strings.Repeat("#\n", MaxFileSize/2+1), 0, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.conf", []byte(tc.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, want *Error", err)
			}
			if e.File != "bad.conf" || e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("error %q (line %d), want line %d with %q", e, e.Line, tc.line, tc.msg)
			}
		})
	}
}

// TestParseContinuation: a trailing backslash joins lines; the line of
// a directive is the one it starts on; a backslash on the last line is
// kept.
func TestParseContinuation(t *testing.T) {
	f, err := Parse("c.conf", []byte("A 1 \\\n  2\\\n3\nB x\\"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Directives) != 2 {
		t.Fatalf("%d directives, want 2", len(f.Directives))
	}
	a, b := f.Directives[0], f.Directives[1]
	if !reflect.DeepEqual(a.Args, []string{"1", "23"}) || a.Line != 1 {
		t.Errorf("A: %q line %d, want [1 23] line 1", a.Args, a.Line)
	}
	if !reflect.DeepEqual(b.Args, []string{`x\`}) || b.Line != 4 {
		t.Errorf("B: %q line %d, want [x\\] line 4", b.Args, b.Line)
	}
}
