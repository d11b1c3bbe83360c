package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  tok-en+/=123\n", 0o600)
	if tok, err := ReadTokenFile(good); err != nil || tok != "tok-en+/=123" {
		t.Errorf("ReadTokenFile(mode 600) = %q, %v; want the trimmed token", tok, err)
	}
	if tok, err := ReadTokenFile(write("ro", "abc", 0o400)); err != nil || tok != "abc" {
		t.Errorf("ReadTokenFile(mode 400) = %q, %v", tok, err)
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"mode 644", write("644", "abc", 0o644), "chmod 600"},
		{"mode 640", write("640", "abc", 0o640), "open to group or others (mode 0640)"},
		{"mode 604", write("604", "abc", 0o604), "chmod 600 " + filepath.Join(dir, "604")},
		{"mode 620", write("620", "abc", 0o620), "chmod 600"},
		{"empty", write("empty", "", 0o600), "is empty"},
		{"white space only", write("blank", " \n\t\n", 0o600), "is empty"},
		{"two lines", write("lines", "abc\ndef\n", 0o600), "control"},
		{"inner space", write("space", "abc def", 0o600), "has a space"},
		{"too long", write("long", strings.Repeat("a", maxTokenBytes+1), 0o600), "over 4096 bytes"},
		{"missing", filepath.Join(dir, "missing"), "no such file"},
		{"directory", dir, "not a regular file"},
	} {
		if tok, err := ReadTokenFile(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ReadTokenFile = %q, %v; want an error containing %q", tt.name, tok, err, tt.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	for _, cfg := range []Config{
		{Balancer: e.b},
		{Balancer: e.b, Token: "a b"},
		{Token: testToken},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	if a, b := NewToken(), NewToken(); a == b || len(a) < 20 || checkToken(a) != nil {
		t.Errorf("NewToken gave %q and %q", a, b)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8001": true, "127.1.2.3:80": true, "[::1]:8001": true, "localhost:8001": true, "LOCALHOST:1": true,
		":8001": false, "0.0.0.0:8001": false, "[::]:8001": false, "10.0.0.5:8001": false,
		"example.com:8001": false, "127.0.0.1": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
