package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// doctorTimeout bounds one run of shoal doctor (a failing probe waits 2 s
// per pair of nodes).
const doctorTimeout = time.Minute

// runDoctor runs `shoal doctor args...` and returns its stdout and exit
// code.
func runDoctor(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), doctorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBinary(t), append([]string{"doctor"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("shoal doctor %s: %v; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
		t.Fatalf("shoal doctor: data race; stderr:\n%s", stderr.String())
	}
	t.Logf("shoal doctor %s: exit %d\n%s", strings.Join(args, " "), code, stdout.String())
	return stdout.String(), code
}

// wantLine fails the test unless out has a line matching re.
func wantLine(t *testing.T, out, re string) {
	t.Helper()
	if !regexp.MustCompile("(?m)" + re).MatchString(out) {
		t.Errorf("the doctor's output has no line matching %s:\n%s", re, out)
	}
}

// TestDoctor breaks a healthy three-node cluster in one way after
// another (a balancer route naming the wrong node, a node with a wrong
// key, a value that cannot be encoded, a node that formed its own
// cluster) and checks that shoal doctor exits 0 while it is healthy, then
// 1 and names each cause.
func TestDoctor(t *testing.T) {
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	n1 := startClusterNode(t, "n1", key, g1, "")
	n2 := startClusterNode(t, "n2", key, freeGossipAddr(t), g1)
	n3 := startClusterNode(t, "n3", key, freeGossipAddr(t), g1)
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		waitReady(t, n)
	}
	waitSeeReady(t, nodes, nil, "n1", "n2", "n3")
	lb := startBalancer(t, "--member", "n1="+n1.url, "--member", "n2="+n2.url, "--member", "n3="+n3.url)
	tokenFile, _ := writeToken(t)
	s := login(t, n1, "zoe")
	s.next(t, n2, "count on n2")

	t.Run("healthy", func(t *testing.T) {
		out, code := runDoctor(t, "--balancer", lb.manager, "--admin-token-file", tokenFile, "--node", n1.url)
		if code != 0 {
			t.Errorf("exit %d on a healthy cluster, want 0", code)
		}
		wantLine(t, out, `^PASS  nodes reachable and ready +n1, n2, n3 ready$`)
		wantLine(t, out, `^PASS  same member list +3 nodes see \[n1 n2 n3\]$`)
		wantLine(t, out, `^PASS  replication +a probe session written on each node was read on every other .*n1→n2 .*n3→n2`)
		wantLine(t, out, `^PASS  balancer routes +every member's URL answers as the node its route names: n1, n2, n3$`)
		wantLine(t, out, `^PASS  balancer and cluster agree `)
		wantLine(t, out, `^PASS  sticky cookie +balancer and nodes use JSESSIONID$`)
		wantLine(t, out, `^PASS  cluster key `)
		wantLine(t, out, `^PASS  encode failures `)
		wantLine(t, out, `^PASS  clocks `)
		if strings.Contains(out, "FAIL") {
			t.Errorf("a FAIL on a healthy cluster")
		}
		jsonOut, code := runDoctor(t, "--node", n2.url, "--json")
		var rep struct {
			OK      bool
			Results []struct{ Check, Level, Evidence string }
		}
		if err := json.Unmarshal([]byte(jsonOut), &rep); err != nil || code != 0 || !rep.OK || len(rep.Results) < 5 {
			t.Errorf("--json: exit %d, %v, %+v", code, err, rep)
		}
	})

	t.Run("found through the cluster", func(t *testing.T) {
		// No URL at all: the doctor joins the gossip as an observer with
		// the key and finds the nodes itself.
		out, code := runDoctor(t, "--cluster-join", g1, "--cluster-key-file", key, "--cluster-listen", "127.0.0.1:0")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		wantLine(t, out, `^PASS  nodes reachable and ready +n1, n2, n3 ready$`)
		// (A doctor with another key is tried last: the nodes' refusal of
		// it would show in the key check of the subtests below.)
	})

	t.Run("wrong route", func(t *testing.T) {
		// n3's URL under the route n9: its sessions' cookies name n3, so
		// the balancer would send them to a member it does not have.
		bad := startBalancer(t, "--member", "n1="+n1.url, "--member", "n9="+n3.url)
		out, code := runDoctor(t, "--balancer", bad.manager, "--admin-token-file", tokenFile, "--node", n1.url)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantLine(t, out, `^FAIL  balancer routes +member n9 → `+regexp.QuoteMeta(n3.url)+` answers as node n3$`)
		wantLine(t, out, `^FAIL  balancer and cluster agree +up in the balancer, not a live node in the cluster: n9$`)
	})

	t.Run("wrong cookie", func(t *testing.T) {
		// The balancer looks for SID; the nodes set JSESSIONID: no
		// request is ever sticky.
		bad := startBalancer(t, "--sticky", "SID|sid", "--member", "n1="+n1.url, "--member", "n2="+n2.url, "--member", "n3="+n3.url)
		out, code := runDoctor(t, "--balancer", bad.manager, "--admin-token-file", tokenFile, "--node", n1.url)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantLine(t, out, `^FAIL  sticky cookie +the balancer looks for cookie SID \(--sticky SID\|sid\), the nodes set JSESSIONID$`)
	})

	t.Run("wrong key", func(t *testing.T) {
		n4 := spawn(t, "n4", "node", "--name", "n4", "--listen", "127.0.0.1:0", "--cluster-listen", freeGossipAddr(t),
			"--cluster-key-file", writeKey(t), "--join", n2.gossip)
		if code, exited := n4.reap(clusterStartTimeout); !exited || code == 0 {
			t.Fatalf("n4 with a wrong key: exited %v, code %d; log:\n%s", exited, code, n4.tail(20))
		}
		var out string
		var code int
		// The refusal is recorded when n2 reads n4's gossip: at once, but
		// poll a little in case the doctor asks first.
		poll(logTimeout, func() bool {
			out, code = runDoctor(t, "--node", n1.url)
			return strings.Contains(out, "FAIL  cluster key")
		})
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantLine(t, out, `^FAIL  cluster key +n2 refused 127\.0\.0\.1 over gossip \d+× \(last \d+s ago\): cluster key mismatch`)
		wantLine(t, out, `→ a process at that address uses another cluster key`)
		wantLine(t, out, `^PASS  same member list +3 nodes see \[n1 n2 n3\]$`)
	})

	t.Run("unencodable value", func(t *testing.T) {
		if r := n2.do(t, "POST", "/bad", "", nil); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("POST /bad on n2: %d %s", r.status, r.body)
		}
		out, code := runDoctor(t, "--node", n3.url)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantLine(t, out, `^FAIL  encode failures +values refused since start: 1 \(n2 1\); last on n2: session: cannot put key "callback": value of type demoapp\.Callback, field \.OnChange \(func\(\)\)`)
	})

	t.Run("no session id in the logs", func(t *testing.T) {
		// The nodes logged at debug level, probes and all: no line may
		// carry the session's base (the secret part of its id).
		for _, n := range nodes {
			if strings.Contains(n.stderr.String(), s.base) {
				t.Errorf("%s's log holds the full session id %s", n.name, s.id)
			}
		}
		if strings.Contains(lb.stderr.String(), s.base) {
			t.Errorf("the balancer's log holds the full session id %s", s.id)
		}
	})

	t.Run("partition", func(t *testing.T) {
		// n5 has the key but no --join: it forms a cluster of its own.
		n5 := startClusterNode(t, "n5", key, freeGossipAddr(t), "")
		waitReady(t, n5)
		out, code := runDoctor(t, "--node", n1.url, "--node", n5.url)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantLine(t, out, `^FAIL  same member list +split view: n1, n2, n3 see \[n1 n2 n3\]; n5 sees \[n5\]$`)
		wantLine(t, out, `^FAIL  replication +.*written on n1, not read on n5: not there after 2s`)
	})

	t.Run("doctor with the wrong key", func(t *testing.T) {
		// The gossip refuses it: it says so instead of checking nothing.
		_, code := runDoctor(t, "--cluster-join", g1, "--cluster-key-file", writeKey(t), "--cluster-listen", "127.0.0.1:0")
		if code == 0 {
			t.Errorf("a doctor with the wrong key exited 0")
		}
	})
}
