package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/balancerconf"
)

func TestBalancerHelpListsFlags(t *testing.T) {
	out, _, err := run(t, "balancer", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--listen ADDR", "(default 127.0.0.1:8000)", "--member ROUTE=URL[,OPTION...]",
		"--sticky NAMES", "(default JSESSIONID|jsessionid)", "--method METHOD", "(default byrequests)",
		"--hash-key KEY", "--retry DURATION", "(default 1m0s)", "--max-attempts N", "--failonstatus CODES",
		"--health-path PATH", "(default /healthz/ready)", "--health-interval DURATION", "(default 2s)",
		"--health-rise N", "(default 2)", "--health-fall N", "(default 3)", "--max-body SIZE", "(default 32MiB)",
		"--connect-timeout DURATION", "--response-header-timeout DURATION", "--tls-cert FILE", "--tls-key FILE",
		"--log-format FORMAT", "--log-level LEVEL", "--admin-listen ADDR", "--admin-token-file FILE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("balancer --help lacks %q:\n%s", want, out)
		}
	}
}

func TestBalancerUsageErrors(t *testing.T) {
	m := "--member"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no member", nil, "--member is required"},
		{"ftp member", []string{m, "n1=ftp://x"}, "--member n1=ftp://x: want http:// URL"},
		{"https member", []string{m, "n1=https://x:1"}, "--member n1=https://x:1: want http:// URL"},
		{"no URL", []string{m, "n1"}, "--member n1: want ROUTE=URL"},
		{"bad route", []string{m, "n.1=http://h:1"}, `--member n.1=http://h:1: route "n.1": want 1-64 characters of [A-Za-z0-9_-]`},
		{"bad option", []string{m, "n1=http://h:1,hot"}, `--member n1=http://h:1,hot: unknown option "hot"`},
		{"bad weight", []string{m, "n1=http://h:1,weight=0"}, `--member n1=http://h:1,weight=0: weight "0": want a number from 1 to 100`},
		{"duplicate route", []string{m, "n1=http://h:1", m, "n1=http://h:2"}, `--member n1=http://h:2: route "n1" used twice`},
		{"bad method", []string{m, "n1=http://h:1", "--method", "random"}, `--method "random": want one of byrequests, bybusyness, p2c, hash`},
		{"hash without key", []string{m, "n1=http://h:1", "--method", "hash"}, `--hash-key "": want header:NAME or cookie:NAME`},
		{"key without hash", []string{m, "n1=http://h:1", "--hash-key", "header:X"}, `--hash-key "header:X" is only for method hash`},
		{"bad sticky", []string{m, "n1=http://h:1", "--sticky", "a b"}, `--sticky "a b"`},
		{"bad status", []string{m, "n1=http://h:1", "--failonstatus", "503,5xx"}, `--failonstatus "5xx": want HTTP status codes`},
		{"negative retry", []string{m, "n1=http://h:1", "--retry", "-1s"}, "--retry -1s is negative"},
		{"negative attempts", []string{m, "n1=http://h:1", "--max-attempts", "-1"}, "--max-attempts -1 is negative"},
		{"bad health path", []string{m, "n1=http://h:1", "--health-path", "ready"}, `--health-path "ready": want a path starting with /`},
		{"zero interval", []string{m, "n1=http://h:1", "--health-interval", "0s"}, "--health-interval 0s: want more than 0"},
		{"zero fall", []string{m, "n1=http://h:1", "--health-fall", "0"}, "--health-fall 0: want 1 or more"},
		{"bad max body", []string{m, "n1=http://h:1", "--max-body", "32MB"}, `--max-body "32MB": want a size`},
		{"cert without key", []string{m, "n1=http://h:1", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{"bad log format", []string{m, "n1=http://h:1", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{"argument", []string{m, "n1=http://h:1", "extra"}, `unexpected argument "extra"`},
		{"admin token without admin", []string{m, "n1=http://h:1", "--admin-token-file", "t"}, "--admin-token-file goes with --admin-listen"},
		{"admin on every interface", []string{m, "n1=http://h:1", "--admin-listen", ":8001"}, "--admin-listen :8001 is not a loopback address"},
		{"admin on a LAN address", []string{m, "n1=http://h:1", "--admin-listen", "10.0.0.5:8001"}, "give it --admin-token-file"},
		{"admin without port", []string{m, "n1=http://h:1", "--admin-listen", "127.0.0.1"}, `--admin-listen "127.0.0.1": want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A cancelled context: should the arguments be accepted, the
			// balancer stops at once instead of serving on.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var out bytes.Buffer
			err := Run(ctx, append([]string{"balancer", "--listen", "127.0.0.1:0"}, tt.args...), &out, io.Discard)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Run = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "'shoal help balancer'") {
				t.Errorf("error %q lacks %q and the help pointer", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1000", 1000}, {"10B", 10}, {"64KiB", 64 << 10}, {"32MiB", 32 << 20}, {"2GiB", 2 << 30},
	}
	for _, tt := range tests {
		if got, err := balancerconf.ParseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("balancerconf.ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if got, _ := balancerconf.ParseSize(balancerconf.FormatSize(tt.want)); got != tt.want {
			t.Errorf("balancerconf.FormatSize(%d) = %q does not parse back", tt.want, balancerconf.FormatSize(tt.want))
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "32MB", "MiB", "99999999999GiB"} {
		if _, err := balancerconf.ParseSize(bad); err == nil {
			t.Errorf("balancerconf.ParseSize(%q) = nil error", bad)
		}
	}
}

// startBalancer runs `shoal balancer` in a goroutine of the test with
// args and waits until it listens; it returns the bound address.
func startBalancer(t *testing.T, args ...string) (addr string, stop func() error, stderr *syncBuffer) {
	t.Helper()
	return startBalancerOut(t, io.Discard, args...)
}

// startBalancerOut is startBalancer with the command's stdout.
func startBalancerOut(t *testing.T, stdout io.Writer, args ...string) (addr string, stop func() error, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	stderr = &syncBuffer{}
	args = append([]string{"balancer", "--listen", "127.0.0.1:0"}, args...)
	go func() { done <- Run(ctx, args, stdout, stderr) }()
	stopped := false
	var result error
	stop = func() error {
		if stopped {
			return result
		}
		cancel()
		select {
		case result = <-done:
		case <-time.After(15 * time.Second):
			t.Fatalf("balancer still running 15s after cancel; stderr:\n%s", stderr)
		}
		stopped = true
		return result
	}
	t.Cleanup(func() { stop() })
	line := waitForLine(t, stderr, "balancer listening", done, 10*time.Second)
	m := regexp.MustCompile(`msg="balancer listening" addr=(\S+) url=https?://(\S+)/ method=byrequests sticky=JSESSIONID\|jsessionid procs=\d+$`).FindStringSubmatch(line)
	if m == nil || m[1] != m[2] {
		t.Fatalf("listening line %q: want addr=ADDR url=http(s)://ADDR/ method=byrequests sticky=JSESSIONID|jsessionid procs=N", line)
	}
	return m[1], stop, stderr
}

func TestBalancerServesAndStops(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz/ready" {
			io.WriteString(w, "ready")
			return
		}
		io.WriteString(w, "n1 "+r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	addr, stop, stderr := startBalancer(t, "--member", "n1="+backend.URL, "--member", "n2=http://127.0.0.1:1,standby")
	if !strings.Contains(stderr.String(), `msg="balancer member" member=n2 url=http://127.0.0.1:1 weight=1 standby=true state=ok`) {
		t.Errorf("no member line for n2; stderr:\n%s", stderr)
	}
	res, err := client.Get("http://" + addr + "/counter")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "n1 127.0.0.1" {
		t.Errorf("GET /counter = %d %q, want 200 \"n1 127.0.0.1\"", res.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), `msg="balancer stopped"`) {
		t.Errorf("no \"balancer stopped\" line; stderr:\n%s", stderr)
	}
}

func TestBalancerListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = Run(ctx, []string{"balancer", "--listen", ln.Addr().String(), "--member", "n1=http://127.0.0.1:1"}, io.Discard, io.Discard)
	if !errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, ErrUsage) {
		t.Errorf("Run on a taken address = %v, want EADDRINUSE, not a usage error", err)
	}
}

func TestBalancerBadCertFile(t *testing.T) {
	err := Run(t.Context(), []string{"balancer", "--member", "n1=http://127.0.0.1:1",
		"--tls-cert", t.TempDir() + "/missing.pem", "--tls-key", t.TempDir() + "/missing.key"}, io.Discard, io.Discard)
	if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("Run with a missing cert = %v, want an error naming --tls-cert, not a usage error", err)
	}
}

func TestBalancerTLS(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	certFile, keyFile, pool := selfSignedCert(t)
	addr, stop, stderr := startBalancer(t, "--member", "n1="+backend.URL, "--health-path", "",
		"--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.Contains(stderr.String(), "url=https://"+addr+"/") {
		t.Errorf("listening line without the https URL; stderr:\n%s", stderr)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	res, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || string(body) != "https" {
		t.Errorf("got %s %q, want HTTP/2 and X-Forwarded-Proto https", res.Proto, body)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v", err)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to PEM
// files and returns them with a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "shoal test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// adminGet GETs path from the manager at addr with the Authorization
// header authz ("" for none).
func adminGet(t *testing.T, addr, path, authz string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// adminAddr waits for the manager's listening line and returns its addr.
func adminAddr(t *testing.T, stderr *syncBuffer) string {
	t.Helper()
	line := waitForLine(t, stderr, "balancer manager listening", nil, 10*time.Second)
	m := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+) url=http://(\S+)/ `).FindStringSubmatch(line)
	if m == nil || m[1] != m[2] {
		t.Fatalf("manager's listening line %q: want addr=127.0.0.1:PORT url=http://127.0.0.1:PORT/", line)
	}
	return m[1]
}

func TestBalancerAdmin(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "n1")
	}))
	defer backend.Close()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout syncBuffer
	_, stop, stderr := startBalancerOut(t, &stdout, "--member", "n1="+backend.URL, "--health-path", "",
		"--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenFile)
	addr := adminAddr(t, stderr)
	if !strings.Contains(stderr.String(), "auth=token-file") || strings.Contains(stderr.String(), "file-token") {
		t.Errorf("listening line should say auth=token-file and never show the token; stderr:\n%s", stderr)
	}
	if code, body := adminGet(t, addr, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if code, _ := adminGet(t, addr, "/api/members", ""); code != 401 {
		t.Errorf("GET /api/members without a token = %d, want 401", code)
	}
	code, body := adminGet(t, addr, "/api/members", "Bearer file-token-0123456789")
	if code != 200 || !strings.Contains(body, `"route": "n1"`) {
		t.Errorf("GET /api/members = %d %s", code, body)
	}
	if code, body := adminGet(t, addr, "/metrics", "Bearer file-token-0123456789"); code != 200 ||
		!strings.Contains(body, `shoal_balancer_member_state{member="n1",state="ok"} 1`) {
		t.Errorf("GET /metrics = %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v", err)
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing with a token file", stdout.String())
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the manager still listens after the balancer stopped")
	}
}

func TestBalancerAdminMadeToken(t *testing.T) {
	var stdout syncBuffer
	_, stop, stderr := startBalancerOut(t, &stdout, "--member", "n1=http://127.0.0.1:1", "--health-path", "",
		"--admin-listen", "127.0.0.1:0")
	addr := adminAddr(t, stderr)
	m := regexp.MustCompile(`^balancer manager: http://(\S+)/\n  log in as user admin with password (\S+) `).FindStringSubmatch(stdout.String())
	if m == nil || m[1] != addr {
		t.Fatalf("stdout %q: want the manager's URL and the token", stdout.String())
	}
	token := m[2]
	if strings.Contains(stderr.String(), token) {
		t.Errorf("the made token is in the log; stderr:\n%s", stderr)
	}
	if code, _ := adminGet(t, addr, "/api/members/n1", "Bearer "+token); code != 200 {
		t.Errorf("GET /api/members/n1 with the printed token = %d", code)
	}
	if code, _ := adminGet(t, addr, "/api/members/n1", "Bearer "+token+"x"); code != 401 {
		t.Errorf("GET /api/members/n1 with a wrong token = %d", code)
	}
	stop()
}

func TestBalancerAdminTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by others", "tok", 0o644, "chmod 600"},
		{"empty", "\n", 0o600, "is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := Run(ctx, []string{"balancer", "--listen", "127.0.0.1:0", "--member", "n1=http://127.0.0.1:1",
				"--admin-listen", "127.0.0.1:0", "--admin-token-file", p}, io.Discard, io.Discard)
			if err == nil || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--admin-token-file") ||
				!strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error naming --admin-token-file and saying %q, not a usage error", err, tt.want)
			}
		})
	}
}

func TestBalancerAdminListenFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = Run(ctx, []string{"balancer", "--listen", "127.0.0.1:0", "--member", "n1=http://127.0.0.1:1",
		"--admin-listen", ln.Addr().String()}, io.Discard, io.Discard)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "manager") {
		t.Errorf("Run with the manager's address taken = %v, want EADDRINUSE naming the manager", err)
	}
}

// TestBalancerProcs: `shoal balancer` runs with twice Go's default
// processors, whatever it ran with before (the command may run more than
// once in a process), unless GOMAXPROCS was set by the user.
func TestBalancerProcs(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.SetDefaultGOMAXPROCS() })
	for range 2 {
		if got := balancerProcs(""); got != 2*def || runtime.GOMAXPROCS(0) != 2*def {
			t.Fatalf("balancerProcs: %d, GOMAXPROCS %d; want %d (twice the default)", got, runtime.GOMAXPROCS(0), 2*def)
		}
	}
	runtime.GOMAXPROCS(3)
	if got := balancerProcs("3"); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("with GOMAXPROCS=3 set: %d, GOMAXPROCS %d; want 3 left alone", got, runtime.GOMAXPROCS(0))
	}
}
