package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-go/shoal/internal/balancerconf"
)

// seedVhost is the seed deployment's Apache config (internal/httpdconf's
// testdata), with its members' URLs replaced by r.
func seedVhost(t *testing.T, r *strings.Replacer) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "httpdconf", "testdata", "seed-sticky-ajp.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return r.Replace(string(b))
}

func runFromHTTPDArgs(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Run(context.Background(), append([]string{"balancer"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestFromHTTPD: `shoal balancer --from-httpd FILE` prints a config that
// `shoal balancer --config` loads, the problems on stderr, and exits 0
// (nil), 1 (a plain error) or 2 (ErrUsage).
func TestFromHTTPD(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("complete", func(t *testing.T) {
		in := write("http.conf", seedVhost(t, strings.NewReplacer("ajp://127.0.0.1:1809", "http://127.0.0.1:1808")))
		stdout, stderr, err := runFromHTTPDArgs(t, "--from-httpd", in)
		if err != nil {
			t.Fatalf("err %v, want nil (exit 0); stderr:\n%s", err, stderr)
		}
		if strings.Contains(stderr, "not translated") || !strings.Contains(stderr, "note: SetHandler balancer-manager") {
			t.Errorf("stderr: want notes only, the manager's among them:\n%s", stderr)
		}
		out := write("out.toml", stdout)
		c, err := balancerconf.Load(out)
		if err != nil {
			t.Fatalf("balancerconf.Load: %v\n%s", err, stdout)
		}
		if len(c.Balancer.Members) != 2 || c.Balancer.Members[0].URL != "http://127.0.0.1:18081" || c.Balancer.Sticky != "JSESSIONID|jsessionid" {
			t.Errorf("loaded %+v", c.Balancer)
		}
		// And the balancer's own flags take it.
		if _, _, err := parseBalancer(t, "--config", out); err != nil {
			t.Errorf("shoal balancer --config: %v", err)
		}
	})

	t.Run("ajp members", func(t *testing.T) {
		in := write("ajp.conf", seedVhost(t, strings.NewReplacer()))
		stdout, stderr, err := runFromHTTPDArgs(t, "--from-httpd", in)
		if !strings.Contains(stdout, `url = "ajp://127.0.0.1:18091"`) {
			t.Errorf("stdout lacks the ajp:// member:\n%s", stdout)
		}
		if strings.Contains(stderr, "not translated") {
			if !errors.Is(err, errNotTranslated) || errors.Is(err, ErrUsage) {
				t.Errorf("err %v: want errNotTranslated (exit 1)", err)
			}
			if !strings.Contains(stderr, "ajp.conf:37: not translated: BalancerMember ajp://127.0.0.1:18091") {
				t.Errorf("stderr:\n%s", stderr)
			}
		} else if err != nil {
			t.Errorf("nothing reported, yet err %v", err)
		}
	})

	t.Run("unreadable", func(t *testing.T) {
		_, _, err := runFromHTTPDArgs(t, "--from-httpd", filepath.Join(dir, "missing.conf"))
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "missing.conf: open: no such file") {
			t.Errorf("err %v: want ErrUsage (exit 2) naming the file", err)
		}
		bad := write("bad.conf", "<Proxy balancer://c>\nBalancerMember http://a:1\n")
		_, _, err = runFromHTTPDArgs(t, "--from-httpd", bad)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "bad.conf:1: <Proxy> is not closed") {
			t.Errorf("err %v: want ErrUsage (exit 2) with file:line", err)
		}
	})

	t.Run("no balancer", func(t *testing.T) {
		in := write("none.conf", "ServerName x\n")
		stdout, stderr, err := runFromHTTPDArgs(t, "--from-httpd", in)
		if !errors.Is(err, errNotTranslated) || stdout != "" || !strings.Contains(stderr, "no balancer to translate") {
			t.Errorf("err %v, stdout %q, stderr %q: want exit 1, nothing printed, the reason", err, stdout, stderr)
		}
	})

	t.Run("alone", func(t *testing.T) {
		in := write("alone.conf", "ServerName x\n")
		_, _, err := runFromHTTPDArgs(t, "--from-httpd", in, "--listen", "127.0.0.1:1")
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("err %v: want a usage error naming --listen", err)
		}
	})
}
