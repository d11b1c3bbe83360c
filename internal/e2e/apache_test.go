package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestApacheInFrontOfNodes puts a real Apache httpd (mod_proxy_balancer)
// in front of three shoal cluster nodes, as a Tomcat cluster sits behind
// it today, with the classic line
//
//	ProxyPass / balancer://cluster/ stickysession=JSESSIONID|jsessionid nofailover=Off
//
// and members with route=<node name>: over AJP (mod_proxy_ajp, with a
// secret) and over HTTP (mod_proxy_http). It shows a login through
// Apache, stickiness to the route's node, the counter going on without
// a gap with stickiness removed (a second balancer), and a kill -9 of
// the route's node: Apache fails over and the node that takes the
// session rebinds its route (new cookie suffix), the count unbroken.
func TestApacheInFrontOfNodes(t *testing.T) {
	apacheInstalled(t)
	for _, scheme := range []string{"ajp", "http"} {
		t.Run(scheme, func(t *testing.T) { apacheScenario(t, scheme) })
	}
}

func apacheScenario(t *testing.T, scheme string) {
	secretHex, secretFile := writeAJPSecret(t, "")
	nodes := startAJPCluster(t, secretFile)
	n1 := nodes[0]

	var members strings.Builder
	for _, n := range nodes {
		if scheme == "ajp" {
			fmt.Fprintf(&members, "    BalancerMember \"ajp://%s\" route=%s secret=%s\n", n.ajpAddr(t), n.name, secretHex)
		} else {
			fmt.Fprintf(&members, "    BalancerMember %q route=%s\n", n.url, n.name)
		}
	}
	proxy := fmt.Sprintf(`<Proxy "balancer://cluster">
%[1]s    ProxySet lbmethod=byrequests
</Proxy>
<Proxy "balancer://roundrobin">
%[1]s    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass /rr/ balancer://roundrobin/
`, members.String())
	if scheme == "ajp" {
		proxy += fmt.Sprintf("ProxyPass /wrongsecret/ \"ajp://%s/\" secret=not-the-secret\n", n1.ajpAddr(t))
	}
	proxy += "ProxyPass / balancer://cluster/ stickysession=JSESSIONID|jsessionid nofailover=Off\n"
	a := startApache(t, proxy)

	t.Run("status line", func(t *testing.T) {
		// Apache writes "<code> <reason>" from what the backend sent:
		// Tomcat's AJP connector made that "200 200".
		for path, want := range map[string]string{"/": "200 OK", "/whoami": "401 Unauthorized", "/nowhere": "404 Not Found"} {
			resp, err := client.Get(a.url + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.Status != want {
				t.Errorf("GET %s through Apache: status line %q, want %q", path, resp.Status, want)
			}
		}
	})

	if scheme == "ajp" {
		t.Run("wrong secret refused", func(t *testing.T) {
			resp, err := client.Get(a.url + "/wrongsecret/whoami")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("Apache with a wrong secret: %s, want 403 from the node", resp.Status)
			}
			re := regexp.MustCompile(`msg="ajp: request refused: wrong secret" node=n1 peer=127\.0\.0\.1:\d+`)
			if !poll(logTimeout, func() bool { return re.MatchString(n1.stderr.String()) }) {
				t.Errorf("n1 did not log the refusal with the peer; log tail:\n%s", n1.tail(10))
			}
		})
	}

	t.Run("chunked request body", func(t *testing.T) {
		// A body without a length (net/http sends a reader it cannot
		// measure chunked): Apache passes it on as the node asks for it
		// (AJP: GET_BODY_CHUNK until the empty packet).
		body := io.MultiReader(strings.NewReader("user="), strings.NewReader("bob"))
		req, _ := http.NewRequestWithContext(t.Context(), "POST", a.url+"/login", body)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"user":"bob"`) {
			t.Errorf("chunked POST /login through Apache: %s %q, want 200 for bob", resp.Status, b)
		}
	})

	v, loginNode := loginVia(t, a, "alice")
	t.Logf("logged in through Apache on %s: JSESSIONID=%s", loginNode, v.s.id)

	t.Run("sticky", func(t *testing.T) {
		for i := range 6 {
			served, rebound := v.next(t, "", fmt.Sprintf("sticky request %d", i+1))
			if served != loginNode || rebound {
				t.Fatalf("sticky request %d served by %s (rebound %v), want %s, the route of %s", i+1, served, rebound, loginNode, v.s.id)
			}
		}
	})

	t.Run("round robin", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 6 {
			served, rebound := v.next(t, "/rr", fmt.Sprintf("round robin request %d", i+1))
			if rebound {
				t.Fatalf("round robin request %d on %s rebound the session to %s with every node alive", i+1, served, v.s.id)
			}
			seen[served]++
		}
		if len(seen) != 3 {
			t.Errorf("6 requests without stickiness went to %v, want all 3 nodes (Apache's byrequests)", seen)
		}
	})

	t.Run("kill -9 the route's node", func(t *testing.T) {
		route := v.s.route()
		victim := byName(route, nodes...)
		if victim.name != route {
			t.Fatalf("no node named %s", route)
		}
		var survivors []*node
		for _, n := range nodes {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		off := offsets(survivors...)
		if err := victim.kill(); err != nil {
			t.Fatalf("kill -9 %s (pid %d): %v", route, victim.pid(), err)
		}
		// At once, before the cluster knows: Apache fails over, and the
		// count goes on.
		if served, _ := v.next(t, "", "first request after the kill"); served == route {
			t.Fatalf("served by the killed node %s", route)
		}
		for _, o := range survivors {
			re := deadRE(o.name, route)
			if !poll(logTimeout, func() bool { return re.MatchString(o.stderr.since(off[o])) }) {
				t.Fatalf("%s did not declare %s dead within %v of the kill; log tail:\n%s", o.name, route, logTimeout, o.tail(30))
			}
		}
		// Once it is dead for the cluster, the node that serves the
		// session rebinds it to itself: a new cookie suffix, after which
		// Apache's stickiness keeps it there.
		served, rebound := v.next(t, "", "first request after the death was declared")
		if v.s.route() == route {
			t.Fatalf("after %s was declared dead: served by %s, id %s still names %s (rebound %v)", route, served, v.s.id, route, rebound)
		}
		t.Logf("%s killed; Apache failed over, and %s rebound the session to %s", route, served, v.s.id)
		for i := range 4 {
			got, rebound := v.next(t, "", fmt.Sprintf("sticky request %d after the failover", i+1))
			if got != served || rebound {
				t.Fatalf("sticky request %d after the failover served by %s (rebound %v), want %s", i+1, got, rebound, served)
			}
		}
		if !regexp.MustCompile(`(?m)route=` + served + ` sticky=` + served).MatchString(a.accessLog()) {
			t.Errorf("Apache's access log does not show route %s chosen by stickiness:\n%s", served, tail(a.accessLog(), 10))
		}
	})

}
