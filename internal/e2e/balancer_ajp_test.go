package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/shoal-go/shoal/session"
)

// TestBalancerAJPMembers: shoal's balancer speaks AJP/1.3 to its members
// (--member ROUTE=ajp://…, --ajp-secret-file), here three shoal nodes
// serving AJP with that secret: a login through the balancer sticks to
// its node, and after kill -9 of that node the next requests go on
// another with the count unbroken. A balancer with a wrong secret gets
// every request refused (403), as the node logs.
func TestBalancerAJPMembers(t *testing.T) {
	_, secretFile := writeAJPSecret(t, "")
	_, wrongFile := writeAJPSecret(t, "not-the-secret")
	nodes := startAJPCluster(t, secretFile)
	members := func(secret string) []string {
		args := []string{"--ajp-secret-file", secret}
		for _, n := range nodes {
			args = append(args, "--member", n.name+"=ajp://"+n.ajpAddr(t))
		}
		return args
	}
	lb := startBalancerNode(t, 0, members(secretFile)...)
	via := &node{name: "balancer", url: lb.url, cmd: lb.cmd, stderr: lb.stderr, exited: lb.exited}

	r := via.do(t, "POST", "/login", "", url.Values{"user": {"amy"}})
	if r.status != 200 {
		t.Fatalf("login through the balancer over AJP: %d %q; balancer log:\n%s", r.status, r.body, lb.tail(20))
	}
	_, ck := sessionCookie(t, r)
	id := ck.Value
	parsed, err := session.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	home := byName(parsed.Route, nodes...)
	if home.name != parsed.Route {
		t.Fatalf("the login's cookie %s names no node", id)
	}
	s := struct{ id string }{id}
	for i := range 5 {
		r := via.do(t, "GET", "/counter", "JSESSIONID="+s.id, nil)
		c := counter(t, r)
		if r.status != 200 || c.Count != i+1 || c.Node != home.name {
			t.Fatalf("request %d through the balancer over AJP: %d %s, want count %d on %s", i+1, r.status, r.body, i+1, home.name)
		}
	}
	if err := home.kill(); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		r := via.do(t, "GET", "/counter", "JSESSIONID="+s.id, nil)
		c := counter(t, r)
		if r.status != 200 || c.Count != i+1 || c.Node == home.name {
			t.Fatalf("request %d after kill -9 of %s: %d %s, want count %d on another node", i+1, home.name, r.status, r.body, i+1)
		}
		if _, nc, err := findSessionCookie(r); err == nil && nc != nil {
			s.id = nc.Value
		}
	}

	wrong := startBalancerNode(t, 0, members(wrongFile)...)
	r = (&node{name: "wrong", url: wrong.url}).do(t, "GET", "/", "", nil)
	if r.status != 403 {
		t.Errorf("a balancer with the wrong secret got %d %q, want 403 from the node", r.status, r.body)
	}
}

// writeAJPSecret writes secret (a random one when "") to a file of mode
// 0600 and returns the secret and the file.
func writeAJPSecret(t *testing.T, secret string) (string, string) {
	t.Helper()
	if secret == "" {
		b := make([]byte, 16)
		rand.Read(b)
		secret = hex.EncodeToString(b)
	}
	f, err := os.CreateTemp(t.TempDir(), "ajp-*.secret")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	return secret, f.Name()
}

// startAJPCluster starts n1, n2 and n3, each also serving AJP with the
// secret in secretFile, and waits until each sees the others ready.
func startAJPCluster(t *testing.T, secretFile string) []*node {
	t.Helper()
	ajpFlags := []string{"--ajp", "127.0.0.1:0", "--ajp-secret-file", secretFile}
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	n1 := startClusterNode(t, "n1", key, g1, "", ajpFlags...)
	n2 := startClusterNode(t, "n2", key, freeGossipAddr(t), g1, ajpFlags...)
	n3 := startClusterNode(t, "n3", key, freeGossipAddr(t), g1, ajpFlags...)
	nodes := []*node{n1, n2, n3}
	waitSeeReady(t, nodes, nil, "n1", "n2", "n3")
	return nodes
}
