package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

// TestBalancerFileSettingsCoverEveryFlag: every flag of `shoal balancer`
// can be set in the config file, and every file setting is a flag.
func TestBalancerFileSettingsCoverEveryFlag(t *testing.T) {
	fs := flag.NewFlagSet("balancer", flag.ContinueOnError)
	defineBalancerFlags(fs)
	fs.VisitAll(func(fl *flag.Flag) {
		if _, ok := fileSettings[fl.Name]; !ok && fl.Name != "config" {
			t.Errorf("flag --%s has no config file setting in fileSettings", fl.Name)
		}
	})
	for name := range fileSettings {
		if fs.Lookup(name) == nil {
			t.Errorf("fileSettings[%q] is not a flag", name)
		}
	}
}

// writeConfig writes a config file in a new directory and returns its
// path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "balancer.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// parseBalancer parses args as `shoal balancer` does and returns the
// config and the flags in effect.
func parseBalancer(t *testing.T, args ...string) (*balancerFlags, balancer.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("balancer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := defineBalancerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.configure(fs)
	return f, cfg, err
}

// TestBalancerConfigFileDefaults: a file that sets only the members gives
// the config the flags give with the same members: the file's defaults
// are the flags'.
func TestBalancerConfigFileDefaults(t *testing.T) {
	path := writeConfig(t, "[[member]]\nroute = \"n1\"\nurl = \"http://127.0.0.1:8081\"\n")
	ff, fileCfg, err := parseBalancer(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	fl, flagCfg, err := parseBalancer(t, "--member", "n1=http://127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fileCfg, flagCfg) {
		t.Errorf("config from the file:\n%+v\nfrom the flags:\n%+v", fileCfg, flagCfg)
	}
	ff.file, fl.file = balancerFile{}, balancerFile{}
	ff.members, fl.members = nil, nil
	ff.cluster.name, fl.cluster.name = "", ""
	if !reflect.DeepEqual(ff, fl) || !reflect.DeepEqual(ff.cluster, fl.cluster) {
		t.Errorf("flags from the file:\n%+v %+v\nfrom the command line:\n%+v %+v", ff, ff.cluster, fl, fl.cluster)
	}
}

// TestBalancerConfigFileFlagsOverride: flags on the command line win over
// the file; --member replaces the file's members.
func TestBalancerConfigFileFlagsOverride(t *testing.T) {
	path := writeConfig(t, `method = "bybusyness"
retry = "30s"
failonstatus = [502, 503]
max-body = "1MiB"
retry-body = 100
owners = "all"

[[member]]
route = "n1"
url = "http://127.0.0.1:8081"
weight = 2
lbset = 1

[[member]]
route = "n2"
url = "http://127.0.0.1:8082"
`)
	_, cfg, err := parseBalancer(t, "--config", path, "--retry", "5s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Method != "bybusyness" || cfg.Retry != 5*time.Second || !reflect.DeepEqual(cfg.FailOnStatus, []int{502, 503}) ||
		cfg.MaxBodyBytes != 1<<20 || cfg.RetryBodyBytes != 100 || len(cfg.Members) != 2 ||
		cfg.Members[0] != (balancer.MemberConfig{Route: "n1", URL: "http://127.0.0.1:8081", Weight: 2, LBSet: 1}) {
		t.Errorf("config: %+v", cfg)
	}
	f, cfg, err := parseBalancer(t, "--member", "n9=http://127.0.0.1:8089,lbset=3", "--config", path, "--method", "p2c")
	if err != nil {
		t.Fatal(err)
	}
	want := []balancer.MemberConfig{{Route: "n9", URL: "http://127.0.0.1:8089", LBSet: 3}}
	if !reflect.DeepEqual(cfg.Members, want) || cfg.Method != "p2c" || cfg.Retry != 30*time.Second || f.cluster.owners != "all" {
		t.Errorf("members %+v method %q retry %v owners %q; want n9 alone, p2c, 30s, all", cfg.Members, cfg.Method, cfg.Retry, f.cluster.owners)
	}
}

func TestBalancerConfigFileErrors(t *testing.T) {
	bad := writeConfig(t, "method = \"bybusyness\"\n\n[[member]]\nroute = \"n2\"\nurl = \"ftp://x\"\n")
	_, _, err := run(t, "balancer", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+`:5: member "n2": url "ftp://x": want http:// URL`) {
		t.Errorf("bad member: %v", err)
	}
	empty := writeConfig(t, "method = \"p2c\"\n")
	if _, _, err := run(t, "balancer", "--config", empty); err == nil || !strings.Contains(err.Error(), empty+": no member") {
		t.Errorf("no member: %v", err)
	}
	if _, _, err := run(t, "balancer", "--config", filepath.Join(t.TempDir(), "none.toml")); err == nil ||
		!strings.Contains(err.Error(), "none.toml: open: ") {
		t.Errorf("missing file: %v", err)
	}
	// The file need not name members that the command line gives.
	if _, _, err := parseBalancer(t, "--config", empty, "--member", "n1=http://127.0.0.1:1"); err != nil {
		t.Errorf("members from the command line: %v", err)
	}
}

// fakeReloader records the configs it is given.
type fakeReloader struct {
	got []balancer.Config
	err error
}

func (r *fakeReloader) Reload(cfg balancer.Config) error {
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, cfg)
	return nil
}

// TestBalancerReload: a reload applies a good file with one log line
// saying what changed, and keeps the running config when the file is
// bad or changes what only a restart can.
func TestBalancerReload(t *testing.T) {
	const two = "listen = \"127.0.0.1:0\"\nretry = \"30s\"\n" +
		"[[member]]\nroute = \"n1\"\nurl = \"http://127.0.0.1:8081\"\n" +
		"[[member]]\nroute = \"n2\"\nurl = \"http://127.0.0.1:8082\"\n"
	path := writeConfig(t, two)
	f, cfg, err := parseBalancer(t, "--config", path, "--health-path", "")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	fake := &fakeReloader{}
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	r := &balancerReload{path: path, cmdline: f.file.cmdline, running: f, cfg: cfg, b: fake,
		log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{ReplaceAttr: noTime}))}
	// reload writes content to the file, reloads, and returns the log
	// line, checking there is exactly one.
	reload := func(content string) map[string]string {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		r.reload()
		var line map[string]string
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil || strings.Count(logs.String(), "\n") != 1 {
			t.Fatalf("log %q: want one JSON line (%v)", logs.String(), err)
		}
		return line
	}

	line := reload(strings.Replace(two, "retry = \"30s\"", "retry = \"10s\"\nmethod = \"p2c\"", 1) +
		"weight = 3\n[[member]]\nroute = \"n3\"\nurl = \"http://127.0.0.1:8083\"\n")
	want := map[string]string{"level": "INFO", "msg": "config file reloaded", "file": path,
		"added": "n3", "removed": "", "changed": "n2 weight 1→3", "settings": "method,retry"}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("log:\n%v\nwant\n%v", line, want)
	}
	if len(fake.got) != 1 || len(fake.got[0].Members) != 3 || fake.got[0].Retry != 10*time.Second ||
		fake.got[0].Health.Path != "" || fake.got[0].Logger != cfg.Logger {
		t.Fatalf("reloaded with %+v; want 3 members, retry 10s, the command line's empty health-path", fake.got)
	}

	for _, tc := range []struct{ name, content, want string }{
		{"syntax", two + "weight = \n", path + ":9: unexpected character"},
		{"semantic", two + "weight = 300\n", path + `:9: member "n2": weight 300: want 1 to 100`},
		{"listen", strings.Replace(two, "127.0.0.1:0", "127.0.0.1:9", 1), path + `:1: listen cannot change at reload (running "127.0.0.1:0", file "127.0.0.1:9"); restart to change it`},
		{"log level", "log-level = \"debug\"\n" + two, path + `:1: log-level cannot change at reload`},
		{"no member", "listen = \"127.0.0.1:0\"\n", path + ": no member"},
	} {
		line := reload(tc.content)
		if line["level"] != "ERROR" || line["msg"] != "config reload refused; the running config stays" ||
			line["file"] != path || !strings.HasPrefix(line["err"], tc.want) {
			t.Errorf("%s: log:\n%v\nwant err %s...", tc.name, line, tc.want)
		}
	}
	fake.err = balancer.ErrInvalidConfig
	if line := reload(two); line["msg"] != "config reload refused; the running config stays" ||
		!strings.Contains(line["err"], balancer.ErrInvalidConfig.Error()) {
		t.Errorf("Reload's error: log %v", line)
	}
	if len(fake.got) != 1 {
		t.Errorf("%d reloads, want only the first", len(fake.got))
	}
	fake.err = nil
	line = reload(two)
	want = map[string]string{"level": "INFO", "msg": "config file reloaded", "file": path,
		"added": "", "removed": "n3", "changed": "n2 weight 3→1", "settings": "method,retry"}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("log:\n%v\nwant\n%v (compared with the config running)", line, want)
	}
}
