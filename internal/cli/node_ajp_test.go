package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-go/shoal/ajp"
)

// writeSecret writes a secret file of the given mode.
func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ajp.secret")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNodeAJPFlagsRefused(t *testing.T) {
	good := writeSecret(t, "the-secret\n", 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--ajp", "127.0.0.1:0"}, "--ajp needs --ajp-secret-file"},
		{"insecure on all interfaces", []string{"--ajp", ":8009", "--ajp-insecure-no-secret"}, "--ajp-insecure-no-secret is refused"},
		{"insecure on a public address", []string{"--ajp", "192.0.2.1:8009", "--ajp-insecure-no-secret"}, "--ajp-insecure-no-secret is refused"},
		{"both", []string{"--ajp", "127.0.0.1:0", "--ajp-insecure-no-secret", "--ajp-secret-file", good}, "choose one"},
		{"secret without --ajp", []string{"--ajp-secret-file", good}, "need --ajp"},
		{"bad address", []string{"--ajp", "8009", "--ajp-secret-file", good}, "want host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, append([]string{"node", "--name", "n1"}, tc.args...)...)
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by others", "s\n", 0o644, "chmod 600"},
		{"empty", "\n", 0o600, "is empty"},
		{"two lines", "a\nb\n", 0o600, "want one line"},
	} {
		t.Run("secret file "+tc.name, func(t *testing.T) {
			_, err := readAJPSecret(writeSecret(t, tc.content, tc.mode))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if s, err := readAJPSecret(good); err != nil || s != "the-secret" {
		t.Errorf("good file: %q %v", s, err)
	}
}

// TestNodeServesAJP runs a node with --ajp and uses the demo app over
// AJP: login, counter, the secret required.
func TestNodeServesAJP(t *testing.T) {
	secret := writeSecret(t, "node-ajp-secret\n", 0o600)
	n := startInProcess(t, "text", "--ajp", "127.0.0.1:0", "--ajp-secret-file", secret)
	line := waitForLine(t, n.stderr, `msg="node serving AJP"`, n.done, 10*time.Second)
	m := regexp.MustCompile(`addr=(\S+) secret=true`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("AJP line %q: want addr=ADDR secret=true", line)
	}
	base := "ajp://" + m[1]
	tr := &ajp.Transport{Secret: "node-ajp-secret"}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	resp, err := c.PostForm(base+"/login", url.Values{"user": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "JSESSIONID" {
			cookie = ck
		}
	}
	if resp.StatusCode != 200 || cookie == nil || !strings.HasSuffix(cookie.Value, ".n1") {
		t.Fatalf("login over AJP: %s, cookies %q", resp.Status, resp.Header.Values("Set-Cookie"))
	}
	for want := 1; want <= 2; want++ {
		req, _ := http.NewRequest("GET", base+"/counter", nil)
		req.AddCookie(cookie)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Node, User string
			Count      int
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || got.Node != "n1" || got.User != "alice" || got.Count != want {
			t.Fatalf("counter over AJP: %+v %v, want n1 alice %d", got, err, want)
		}
	}

	wrong := &ajp.Transport{Secret: "guess"}
	defer wrong.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/counter", nil)
	resp, err = wrong.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong secret: %s, want 403", resp.Status)
	}
	waitForLine(t, n.stderr, `msg="ajp: request refused: wrong secret"`, n.done, 5*time.Second)
	if err := n.stop(t); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}
