package balancerconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
	"github.com/shoal-go/shoal/internal/membership"
)

func mustParseFile(t *testing.T, path string) *Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(path, data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestParseMinimalHasDefaults(t *testing.T) {
	c := mustParseFile(t, "testdata/minimal.toml")
	want := balancer.DefaultConfig()
	want.Members = []balancer.MemberConfig{
		{Route: "n1", URL: "http://127.0.0.1:8081"},
		{Route: "n2", URL: "http://127.0.0.1:8082"},
	}
	if !reflect.DeepEqual(c.Balancer, want) {
		t.Errorf("balancer config:\n got %+v\nwant %+v", c.Balancer, want)
	}
	if c.Listen != DefaultListen || c.LogFormat != "text" || c.LogLevel != slog.LevelInfo ||
		c.Cluster.Listen != DefaultClusterListen || c.Cluster.Owners != DefaultOwners || c.Cluster.Enabled() ||
		c.TLSCert != "" || c.AdminListen != "" {
		t.Errorf("command settings are not the defaults: %+v", c)
	}
	if c.Line("member") != 2 || c.Line("listen") != 0 || !c.Has("member") || c.Has("listen") {
		t.Errorf("Line(member)=%d Line(listen)=%d Has(member)=%v Has(listen)=%v; want 2, 0, true, false",
			c.Line("member"), c.Line("listen"), c.Has("member"), c.Has("listen"))
	}
}

func TestParseFull(t *testing.T) {
	c := mustParseFile(t, "testdata/full.toml")
	want := balancer.Config{
		Members: []balancer.MemberConfig{
			{Route: "n1", URL: "http://127.0.0.1:8081", Weight: 2.5},
			{Route: "n2", URL: "http://127.0.0.1:8082/app", Standby: true, Disabled: true},
			{Route: "n3", URL: "http://127.0.0.1:8083", Draining: true, LBSet: 1},
		},
		FromCluster:           true,
		Sticky:                "SESSION|sid",
		Method:                "hash",
		HashKey:               "cookie:user",
		Retry:                 30 * time.Second,
		MaxAttempts:           2,
		FailOnStatus:          []int{502, 503},
		NoForceRecovery:       true,
		MaxBodyBytes:          1 << 20,
		RetryBodyBytes:        4096,
		ConnectTimeout:        2 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		Health: balancer.HealthConfig{Path: "/ping", Interval: 5 * time.Second, Timeout: 500 * time.Millisecond,
			Rise: 3, Fall: 4},
	}
	if !reflect.DeepEqual(c.Balancer, want) {
		t.Errorf("balancer config:\n got %+v\nwant %+v", c.Balancer, want)
	}
	wantCluster := Cluster{Join: []string{"127.0.0.1:7946", "127.0.0.1:7947"}, Listen: "127.0.0.1:7950",
		KeyFile: "cluster.key", Name: "lb1", Owners: 0, DeadAfter: 3 * time.Second}
	if !reflect.DeepEqual(c.Cluster, wantCluster) {
		t.Errorf("cluster:\n got %+v\nwant %+v", c.Cluster, wantCluster)
	}
	if c.Listen != "0.0.0.0:8443" || c.TLSCert != "cert.pem" || c.TLSKey != "key.pem" ||
		c.AdminListen != "127.0.0.1:8001" || c.AdminTokenFile != "admin.token" ||
		c.LogFormat != "json" || c.LogLevel != slog.LevelDebug {
		t.Errorf("command settings: %+v", c)
	}
}

func TestParseInlineMembersAndCluster(t *testing.T) {
	c := mustParseFile(t, "testdata/lbsets.toml")
	var sets []int
	for _, m := range c.Balancer.Members {
		sets = append(sets, m.LBSet)
	}
	if !reflect.DeepEqual(sets, []int{0, 0, 1}) || c.Balancer.Method != "bybusyness" {
		t.Errorf("lbsets %v, method %q; want [0 0 1], bybusyness", sets, c.Balancer.Method)
	}
	c = mustParseFile(t, "testdata/cluster.toml")
	if !c.Balancer.FromCluster || len(c.Balancer.Members) != 0 || c.Cluster.Owners != 3 || !c.Cluster.Insecure {
		t.Errorf("cluster.toml: %+v", c)
	}
}

// TestParseErrors: each bad file is refused with the file, the line and
// the reason.
func TestParseErrors(t *testing.T) {
	const m = "[[member]]\nroute = \"n1\"\nurl = \"http://127.0.0.1:8081\"\n"
	tests := []struct {
		name, doc string
		want      []string // the errors' text, "b.toml:LINE: ..." prefixes
	}{
		// syntax and TOML's own rules
		{"syntax", "listen = \n", []string{"b.toml:1: unexpected character"}},
		{"unclosed string", "retry = \"60s\n", []string{"b.toml:1: "}},
		{"key twice", "retry = \"1s\"\nretry = \"2s\"\n", []string{"b.toml:2: key retry is already defined"}},
		{"table twice", "[a]\n[a]\n", []string{"b.toml:2: "}},
		// unknown keys
		{"typo", "retyr = \"1s\"\n", []string{`b.toml:1: unknown key "retyr" (did you mean "retry"?)`}},
		{"member typo", m + "weigth = 2\n", []string{`b.toml:4: member "n1": unknown key "weigth" (did you mean "weight"?)`}},
		{"unknown table", "[health]\npath = \"/x\"\n", []string{`b.toml:1: unknown key "health" (settings are top-level keys`}},
		{"unknown far", "colour = \"blue\"\n", []string{`b.toml:1: unknown key "colour"`}},
		{"dotted", "health.path = \"/x\"\n", []string{`b.toml:1: unknown key "health"`}},
		// wrong types
		{"string want", "listen = 8000\n", []string{"b.toml:1: listen: want a string, not an integer (8000)"}},
		{"duration int", "\nretry = 60\n", []string{`b.toml:2: retry: want a duration such as "60s"`}},
		{"bool", m + "standby = \"yes\"\n", []string{`b.toml:4: member "n1": standby: want true or false, not a string`}},
		{"int", "max-attempts = 1.5\n", []string{"b.toml:1: max-attempts: want a number of members, not a float"}},
		{"array", "failonstatus = 503\n", []string{"b.toml:1: failonstatus: want an array of HTTP status codes"}},
		{"member not table", "member = [1]\n", []string{"b.toml:1: member #1: want a table, not an integer (1)"}},
		{"members not array", "member = 1\n", []string{"b.toml:1: member: want [[member]] tables"}},
		{"date", "retry = 1979-05-27\n", []string{"b.toml:1: retry: want a duration such as \"60s\", \"1m30s\" or \"500ms\", not a date or time"}},
		// the balancer's rules
		{"bad url", m + "[[member]]\nroute = \"n2\"\nurl = \"ftp://x\"\n",
			[]string{`b.toml:6: member "n2": url "ftp://x": want http:// URL`}},
		{"duplicate route", m + "\n[[member]]\nroute = \"n1\"\nurl = \"http://127.0.0.1:8082\"\n",
			[]string{`b.toml:6: member "n1": route used twice (first on line 2)`}},
		{"bad route", "[[member]]\nroute = \"n 1\"\nurl = \"http://a:1\"\n",
			[]string{`b.toml:2: member #1: route "n 1": want 1-64 characters`}},
		{"no route", "[[member]]\nurl = \"http://a:1\"\n", []string{"b.toml:1: member #1: route is required"}},
		{"no url", "\n[[member]]\nroute = \"n1\"\n", []string{`b.toml:2: member "n1": url is required`}},
		{"weight high", m + "weight = 101\n", []string{`b.toml:4: member "n1": weight 101: want 1 to 100`}},
		{"weight zero", m + "weight = 0\n", []string{`b.toml:4: member "n1": weight 0: want 1 to 100`}},
		{"weight nan", m + "weight = nan\n", []string{`b.toml:4: member "n1": weight NaN: want 1 to 100`}},
		{"lbset", m + "lbset = -1\n", []string{`b.toml:4: member "n1": lbset -1: want a tier from 0 to 99`}},
		{"method", "method = \"roundrobin\"\n", []string{`b.toml:1: method "roundrobin": want one of byrequests, bybusyness, p2c, hash`}},
		{"hash without key", "\nmethod = \"hash\"\n", []string{"b.toml:2: method hash needs hash-key"}},
		{"hash key bad", "method = \"hash\"\nhash-key = \"query:x\"\n", []string{`b.toml:2: hash-key "query:x": want header:NAME or cookie:NAME`}},
		{"hash key without hash", "hash-key = \"header:X\"\n", []string{`b.toml:1: hash-key "header:X" is only for method hash`}},
		{"sticky", "sticky = \"A|B|C\"\n", []string{`b.toml:1: sticky "A|B|C": want COOKIE|param`}},
		{"bad duration", "retry = \"soon\"\n", []string{`b.toml:1: retry "soon": want a duration`}},
		{"negative duration", "retry = \"-1s\"\n", []string{"b.toml:1: retry -1s is negative"}},
		{"size", "max-body = \"lots\"\n", []string{`b.toml:1: max-body "lots": want a size in bytes`}},
		{"size negative", "max-body = -1\n", []string{"b.toml:1: max-body -1 is negative"}},
		{"retry-body unit", "retry-body = \"64 KB\"\n", []string{`b.toml:1: retry-body "64 KB": want a size`}},
		{"failonstatus", "failonstatus = [503,\n  42]\n", []string{"b.toml:2: failonstatus: 42 is not an HTTP status code"}},
		{"health path", "health-path = \"ready\"\n", []string{`b.toml:1: health-path "ready": want a path starting with /`}},
		{"health interval", "health-interval = \"0s\"\n", []string{"b.toml:1: health-interval 0s: want more than 0"}},
		{"health fall", "health-fall = 0\n", []string{"b.toml:1: health-fall 0: want 1 or more"}},
		{"listen", "listen = \"8000\"\n", []string{`b.toml:1: listen "8000": want host:port`}},
		{"tls half", "tls-cert = \"c.pem\"\n", []string{"b.toml:1: tls-cert needs tls-key"}},
		{"tls type", "tls-cert = 1\ntls-key = \"k.pem\"\n", []string{"b.toml:1: tls-cert: want a string"}},
		{"tls empty", "tls-cert = \"\"\ntls-key = \"k.pem\"\n", []string{"b.toml:1: tls-cert is empty"}},
		{"admin open", "admin-listen = \"0.0.0.0:8001\"\n", []string{"b.toml:1: admin-listen 0.0.0.0:8001 is not a loopback address"}},
		{"admin token alone", "admin-token-file = \"t\"\n", []string{"b.toml:1: admin-token-file goes with admin-listen"}},
		{"log level", "log-level = \"loud\"\n", []string{`b.toml:1: log-level "loud": want debug, info, warn or error`}},
		{"log format", "log-format = \"xml\"\n", []string{`b.toml:1: log-format "xml": want text or json`}},
		{"cluster no key", "cluster-join = [\"127.0.0.1:7946\"]\n", []string{"b.toml:1: following a cluster needs cluster-key-file"}},
		{"cluster join addr", "insecure-cluster = true\ncluster-join = [\n \"a:1\",\n \"nohost\"]\n",
			[]string{`b.toml:4: cluster-join "nohost": want host:port`}},
		{"cluster both", "cluster-join = [\"a:1\"]\ncluster-key-file = \"k\"\ninsecure-cluster = true\n",
			[]string{"b.toml:3: cluster-key-file and insecure-cluster both set"}},
		{"cluster key alone", "cluster-key-file = \"k\"\n", []string{"b.toml:1: cluster-key-file needs cluster-join or cluster-discover"}},
		{"discover", "insecure-cluster = true\ncluster-discover = \"http://x\"\n", []string{"b.toml:2: cluster-discover: "}},
		{"owners", "owners = 0\n", []string{`b.toml:1: owners 0: want a number of nodes (1 or more) or "all"`}},
		{"owners word", "owners = \"most\"\n", []string{`b.toml:1: owners "most": want`}},
		{"cluster name", "cluster-name = \"a.b\"\n", []string{`b.toml:1: cluster-name "a.b": want 1-64 characters`}},
		// several errors, in line order
		{"several", "method = \"x\"\nlisten = 1\n" + m + "weight = 200\nfoo = 1\n", []string{
			`b.toml:1: method "x"`,
			"b.toml:2: listen: want a string",
			`b.toml:6: member "n1": weight 200`,
			`b.toml:7: member "n1": unknown key "foo"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("b.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s\nconfig %+v", tc.doc, c)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T %v, want Errors", err, err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, e := range es {
				if !strings.HasPrefix(e.Error(), tc.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, e, tc.want[i])
				}
			}
			var first *Error
			if !errors.As(err, &first) || first != es[0] {
				t.Errorf("errors.As(*Error) = %v, want the first error", first)
			}
		})
	}
}

func TestErrorsText(t *testing.T) {
	es := Errors{{File: "a.toml", Line: 3, Msg: "x"}, {File: "a.toml", Msg: "y"}}
	if got := es.Error(); got != "a.toml:3: x\na.toml: y" {
		t.Errorf("Error() = %q", got)
	}
	if got := es.OneLine(); got != "a.toml:3: x; a.toml: y" {
		t.Errorf("OneLine() = %q", got)
	}
	var many Errors
	for i := range maxErrors + 5 {
		many = append(many, &Error{File: "a", Line: i + 1, Msg: "m"})
	}
	if got := many.OneLine(); !strings.HasSuffix(got, "; a: 5 more errors") || strings.Count(got, ";") != maxErrors {
		t.Errorf("OneLine of %d errors = %q", len(many), got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "8B": 8, "64KiB": 64 << 10, "32MiB": 32 << 20, "2 GiB": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1KB", "MiB", "1.5MiB", "99999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// TestLoadChecksFiles: Load makes names relative to the file's directory
// and checks what they name, with the key's line.
func TestLoadChecksFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := membership.GenerateKey()
	write("cluster.key", membership.EncodeKey(key)+"\n", 0o600)
	write("admin.token", "s3cret-token\n", 0o600)
	certPEM, keyPEM := selfSigned(t)
	write("cert.pem", certPEM, 0o600)
	write("key.pem", keyPEM, 0o600)
	good := "tls-cert = \"cert.pem\"\ntls-key = \"key.pem\"\nadmin-listen = \"127.0.0.1:0\"\n" +
		"admin-token-file = \"admin.token\"\ncluster-join = [\"127.0.0.1:7946\"]\ncluster-key-file = \"cluster.key\"\n"
	write("good.toml", good, 0o644)
	c, err := Load(filepath.Join(dir, "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSCert != filepath.Join(dir, "cert.pem") || c.AdminTokenFile != filepath.Join(dir, "admin.token") ||
		c.Cluster.KeyFile != filepath.Join(dir, "cluster.key") {
		t.Errorf("names not made relative to %s: %+v", dir, c)
	}

	write("open.token", "s3cret\n", 0o644)
	write("bad.key", "not a key\n", 0o600)
	bad := "tls-cert = \"cert.pem\"\ntls-key = \"missing.pem\"\nadmin-listen = \"127.0.0.1:0\"\n" +
		"admin-token-file = \"open.token\"\ncluster-join = [\"127.0.0.1:7946\"]\ncluster-key-file = \"bad.key\"\n"
	path := filepath.Join(dir, "bad.toml")
	write("bad.toml", bad, 0o644)
	_, err = Load(path)
	want := []string{path + ":1: tls-cert/tls-key: open ", path + ":4: admin-token-file: ", path + ":6: cluster-key-file: "}
	var es Errors
	if !errors.As(err, &es) || len(es) != len(want) {
		t.Fatalf("Load(bad) = %v; want %d errors", err, len(want))
	}
	for i, e := range es {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("error %d: %s, want %s...", i, e, want[i])
		}
	}

	if _, err := Load(filepath.Join(dir, "none.toml")); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "none.toml")+": open: ") {
		t.Errorf("Load(missing) = %v", err)
	}
	write("huge.toml", strings.Repeat("# padding\n", MaxFileSize/10+1), 0o644)
	if _, err := Load(filepath.Join(dir, "huge.toml")); err == nil || !strings.Contains(err.Error(), "not a config file") {
		t.Errorf("Load(huge) = %v", err)
	}
}

// TestExampleConfig: the example in docs/ loads, with its members.
func TestExampleConfig(t *testing.T) {
	c, err := Load("../../docs/balancer.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Balancer.Members) < 2 {
		t.Errorf("the example has %d members, want 2 or more", len(c.Balancer.Members))
	}
	if err := c.Balancer.Check(); err != nil {
		t.Error(err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}
