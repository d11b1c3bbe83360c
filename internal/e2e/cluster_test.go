package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

// counterReply is the JSON body of GET /counter.
type counterReply struct {
	Node, User, Session string
	Count               int
}

// counterSession is one client's logged-in session, followed request by
// request: the id it holds (following Set-Cookie) and the last count.
type counterSession struct {
	user    string
	id      string // the JSESSIONID value the client sends
	base    string // the id's base, which must never change
	count   int
	rebinds []string // the ids it was rebound to
	// nodes are the cluster's nodes, whose recent logs a failure shows.
	nodes []*node
	// history is what the client saw, one line per request, for failures.
	history []string
}

// login logs user in on n and returns the session.
func login(t *testing.T, n *node, user string) *counterSession {
	t.Helper()
	r := n.do(t, "POST", "/login", "", url.Values{"user": {user}})
	if r.status != http.StatusOK {
		t.Fatalf("POST /login on %s = %d %q, want 200; log tail:\n%s", n.name, r.status, r.body, n.tail(20))
	}
	_, c := sessionCookie(t, r)
	id, err := session.ParseID(c.Value)
	if err != nil || id.Route != n.name {
		t.Fatalf("POST /login on %s set JSESSIONID=%q (%v), want <base>.%s", n.name, c.Value, err, n.name)
	}
	return &counterSession{user: user, id: c.Value, base: id.Base}
}

// next sends the session's GET /counter to n and checks that it continues
// the count for the same user and the same session (a new route only
// names n, and only with a Set-Cookie). It reports whether the id was
// rebound.
func (s *counterSession) next(t *testing.T, n *node, step string) (rebound bool) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		var logs strings.Builder
		for _, o := range s.nodes {
			fmt.Fprintf(&logs, "log tail of %s (pid %d):\n%s\n", o.name, o.pid(), o.tail(25))
		}
		t.Fatalf("%s: GET /counter on %s (pid %d) at %s with JSESSIONID=%s (user %s, count %d so far): %s\nthe client's last requests:\n\t%s\n%s",
			step, n.name, n.pid(), time.Now().UTC().Format("15:04:05.000"), s.id, s.user, s.count, fmt.Sprintf(format, args...),
			strings.Join(s.history[max(0, len(s.history)-8):], "\n\t"), logs.String())
	}
	sent := time.Now().UTC().Format("15:04:05.000")
	r, err := request(t.Context(), client, "GET", n.url+"/counter", "JSESSIONID="+s.id, nil)
	if err != nil {
		fail("%v", err)
	}
	if r.status != http.StatusOK {
		fail("status %d %q, want 200", r.status, r.body)
	}
	var c counterReply
	if err := json.Unmarshal(r.body, &c); err != nil {
		fail("body %q: %v", r.body, err)
	}
	if c.User != s.user || c.Count != s.count+1 {
		fail("got user %q count %d, want user %q count %d (body %s)", c.User, c.Count, s.user, s.count+1, r.body)
	}
	_, ck, err := findSessionCookie(r)
	if err != nil {
		fail("%v", err)
	}
	if ck != nil {
		id, err := session.ParseID(ck.Value)
		if err != nil || id.Base != s.base || id.Route != n.name {
			fail("Set-Cookie JSESSIONID=%s (%v), want %s.%s: the same session rebound to the node that served it", ck.Value, err, s.base, n.name)
		}
		if ck.Value == s.id {
			fail("Set-Cookie JSESSIONID=%s repeats the id the client sent", ck.Value)
		}
		s.id = ck.Value
		s.rebinds = append(s.rebinds, s.id)
		rebound = true
	}
	if c.Session != s.id || c.Node != n.name {
		fail("body says node %q session %q, want node %q session %q", c.Node, c.Session, n.name, s.id)
	}
	s.count = c.Count
	s.history = append(s.history, fmt.Sprintf("%s %s on %s: count %d, session %s", sent, step, n.name, c.Count, s.id))
	return rebound
}

// route returns the route of the id the session holds.
func (s *counterSession) route() string {
	_, r, _ := strings.Cut(s.id, ".")
	return r
}

// TestClusterRoundRobinKillRestart follows one session over three nodes
// without stickiness, through a kill -9 of the node that created it and
// its restart, then checks that a node with another key is refused. The
// steps are subtests that run in order on one cluster, so that a failing
// step still lets the later ones report.
func TestClusterRoundRobinKillRestart(t *testing.T) {
	key := writeKey(t)
	g1 := freeGossipAddr(t)
	n1 := startClusterNode(t, "n1", key, g1, "")
	n2 := startClusterNode(t, "n2", key, freeGossipAddr(t), g1)
	n3 := startClusterNode(t, "n3", key, freeGossipAddr(t), g1)
	waitSeeReady(t, []*node{n1, n2, n3}, nil, "n1", "n2", "n3")

	s := login(t, n1, "alice")
	s.nodes = []*node{n1, n2, n3}
	first := s.id

	t.Run("round robin", func(t *testing.T) {
		order := []*node{n2, n3, n1}
		for i := range 30 {
			n := order[i%len(order)]
			if s.next(t, n, fmt.Sprintf("round robin request %d", i+1)) {
				t.Fatalf("round robin request %d on %s rebound the session from %s to %s with every node alive: id churn",
					i+1, n.name, first, s.id)
			}
		}
	})

	t.Run("kill -9 the session's node", func(t *testing.T) {
		off := offsets(n2, n3)
		killed := time.Now()
		if err := n1.kill(); err != nil {
			t.Fatalf("kill -9 n1 (pid %d): %v", n1.pid(), err)
		}
		rebindsBefore := len(s.rebinds)
		// Before the death is declared, and after.
		s.next(t, n2, "first request after the kill")
		s.next(t, n3, "second request after the kill")
		for _, o := range []*node{n2, n3} {
			re := deadRE(o.name, "n1")
			if !poll(logTimeout, func() bool { return re.MatchString(o.stderr.since(off[o])) }) {
				t.Fatalf("%s did not declare n1 dead within %v of the kill; log tail:\n%s", o.name, logTimeout, o.tail(30))
			}
		}
		t.Logf("n1 (pid %d) killed; n2 and n3 declared it dead within %v", n1.pid(), time.Since(killed).Round(time.Millisecond))
		// A killed process's port refuses the redial of the connections
		// to it: that, not memberlist's detection time, is how at least
		// one of the nodes that talked to n1 knew (membership.ReportRefused).
		evidence := 0
		for _, o := range []*node{n2, n3} {
			for line := range strings.Lines(o.stderr.since(off[o])) {
				if deadRE(o.name, "n1").MatchString(line) && strings.Contains(line, `evidence="replication connection refused"`) {
					evidence++
				}
			}
		}
		if evidence == 0 {
			t.Errorf("neither n2 nor n3 declared n1 dead on the evidence of a refused connection; logs:\n%s\n%s", n2.shoalLog(20), n3.shoalLog(20))
		}
		for i := range 4 {
			n := []*node{n2, n3}[i%2]
			s.next(t, n, fmt.Sprintf("request %d after n1 was declared dead", i+1))
			if s.route() == "n1" {
				t.Fatalf("request %d after n1 was declared dead, on %s: the session id %s still names n1, want it rebound to the node that served it (log tail of %s:\n%s)",
					i+1, n.name, s.id, n.name, n.tail(20))
			}
		}
		rebinder := s.route()
		rebindRE := regexp.MustCompile(`msg="session rebound" node=` + rebinder + ` session=\S+ from=n1 to=` + rebinder)
		if !poll(logTimeout, func() bool { return rebindRE.MatchString(byName(rebinder, n2, n3).stderr.String()) }) {
			t.Errorf("%s served the session rebound from n1 but did not log \"session rebound\" from=n1 to=%s", rebinder, rebinder)
		}
		if got := s.rebinds[rebindsBefore:]; len(got) != 1 {
			t.Errorf("the session was rebound %d times (%q), want once, from n1 to the first survivor that served it after n1's death", len(got), got)
		}
	})

	// Restart n1 under the same name, on a new HTTP port and a new gossip
	// port (as a rescheduled process would get), at once, as a supervisor
	// does.
	off := offsets(n2, n3)
	n1b := startClusterNode(t, "n1", key, freeGossipAddr(t), n2.gossip)

	t.Run("restart", func(t *testing.T) {
		waitReady(t, n1b)
		s.nodes = []*node{n1b, n2, n3}
		joinedRE := regexp.MustCompile(`msg="cluster: joined 3 members \[[^]]*\]`)
		if !joinedRE.MatchString(n1b.stderr.String()) {
			t.Errorf("restarted n1 did not log \"cluster: joined 3 members [...]\"; log:\n%s", n1b.tail(30))
		}
		order := []*node{n1b, n2, n3}
		for i := range 9 {
			n := order[i%len(order)]
			s.next(t, n, fmt.Sprintf("request %d after n1's restart", i+1))
		}
		// The restarted n1 said it joined 3 members and is ready: the
		// others must count it in too.
		waitSeeReady(t, []*node{n2, n3}, off, "n1")
		if s.base != strings.SplitN(first, ".", 2)[0] || s.count != 30+2+4+9 {
			t.Errorf("session ended as %s with count %d, want base of %s and count %d", s.id, s.count, first, 30+2+4+9)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		wrongKey := writeKey(t)
		off := offsets(n1b, n2, n3)
		n4 := spawn(t, "n4", "node", "--name", "n4", "--listen", "127.0.0.1:0", "--cluster-listen", freeGossipAddr(t),
			"--cluster-key-file", wrongKey, "--join", n2.gossip)
		code, exited := n4.reap(clusterStartTimeout)
		switch {
		case !exited:
			t.Errorf("n4 with a wrong key, joining through n2, still runs after %v; log:\n%s", clusterStartTimeout, n4.tail(30))
		case code == 0:
			t.Errorf("n4 with a wrong key exited 0, want non-zero; log:\n%s", n4.tail(30))
		}
		if exited && !strings.Contains(n4.stderr.String(), "key mismatch") {
			t.Errorf("n4 with a wrong key exited %d without saying \"key mismatch\"; stderr:\n%s", code, n4.stderr)
		}
		mismatch := `reason="cluster key mismatch"`
		if !poll(logTimeout, func() bool { return strings.Contains(n2.stderr.since(off[n2]), mismatch) }) {
			t.Errorf("n2, which n4 (wrong key) tried to join through, did not log %s within %v; log tail:\n%s", mismatch, logTimeout, n2.tail(30))
		}
		for _, o := range []*node{n1b, n3} {
			if strings.Contains(o.stderr.since(off[o]), "cluster key mismatch") {
				t.Logf("%s logged the key mismatch too", o.name)
			}
		}
		// The cluster serves on.
		s2 := login(t, n2, "bob")
		s2.nodes = []*node{n1b, n2, n3}
		for i, n := range []*node{n3, n1b, n2} {
			s2.next(t, n, fmt.Sprintf("request %d of a new session after the refused node", i+1))
		}
	})
}

// byName returns the node called name among nodes, or nodes[0].
func byName(name string, nodes ...*node) *node {
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	return nodes[0]
}

// Bounds of the load tests.
const (
	loadSessions    = 200
	loadWorkers     = 32
	loadMaxRequests = 1000 * loadSessions // all sessions together, whatever the phases
	phaseTimeout    = 20 * time.Second    // bound of one phase's progress
	restartDelay    = 3 * time.Second     // from the kill to the restart
)

// loadTarget is a node the load sends requests to.
type loadTarget struct {
	n *node
	// balancer says n is a balancer in front of the nodes: any node may
	// answer, and a request it retried elsewhere after the first node
	// counted it shows as a count one higher (counted in retriedCounted).
	balancer bool
	gone     atomic.Bool  // set just before the test signals it: errors talking to it are expected
	requests atomic.Int64 // requests sent to it
	goneErrs atomic.Int64 // requests that got no response after it was signalled
}

// loadSession is one client's session. A worker owns it while sending its
// request (the queue passes it on), so only ok is shared.
type loadSession struct {
	user    string
	id      string
	base    string
	count   int
	rr      int // round-robin position over the live targets
	unacked int // requests to a signalled node without a response since the last success: each may have counted
	ok      atomic.Int64
}

func (s *loadSession) route() string {
	_, r, _ := strings.Cut(s.id, ".")
	return r
}

// loadRun drives the sessions over the live targets from a pool of
// workers and checks every response.
type loadRun struct {
	t        *testing.T
	client   *http.Client
	sessions []*loadSession
	begin    time.Time

	mu      sync.Mutex    // protects live and targets
	live    []*loadTarget // replaced, never changed in place
	targets []*loadTarget // every target, for the totals

	requests atomic.Int64
	rebinds  atomic.Int64
	// retriedCounted counts responses one count ahead through a balancer:
	// a request that a killed node counted (and replicated) before it
	// died, sent again by the balancer to another node.
	retriedCounted atomic.Int64
	skipped        atomic.Int64 // counts that included an unanswered request's write
	failures       atomic.Int64
	exMu           sync.Mutex // protects examples
	examples       []string

	// tolerate reports failed requests without failing the test (the
	// static balancer's figure, which only cluster-aware mode must bring
	// to zero).
	tolerate bool

	stop     chan struct{}
	haltOnce sync.Once
	wg       sync.WaitGroup
}

func newLoadRun(t *testing.T, nodes ...*node) *loadRun {
	tr := &http.Transport{MaxIdleConns: 4 * loadWorkers, MaxIdleConnsPerHost: 2 * loadWorkers, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	r := &loadRun{t: t, client: &http.Client{Transport: tr, Timeout: httpTimeout}, stop: make(chan struct{})}
	for _, n := range nodes {
		r.add(n)
	}
	return r
}

// add puts n in the rotation.
func (r *loadRun) add(n *node) {
	tg := &loadTarget{n: n}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = append(slices.Clip(r.live), tg)
	r.targets = append(r.targets, tg)
}

// remove takes the target of n out of the rotation, as a balancer does
// with a member it found dead.
func (r *loadRun) remove(n *node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = slices.DeleteFunc(slices.Clone(r.live), func(tg *loadTarget) bool { return tg.n == n })
}

// target returns n's live target.
func (r *loadRun) target(n *node) *loadTarget {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tg := range r.live {
		if tg.n == n {
			return tg
		}
	}
	r.t.Fatalf("%s is not in the rotation", n.name)
	return nil
}

// login logs every session in on a random node, loadWorkers at a time.
func (r *loadRun) login(nodes []*node, rng *rand.Rand) {
	t := r.t
	r.sessions = make([]*loadSession, loadSessions)
	on := make([]*node, loadSessions)
	for i := range r.sessions {
		r.sessions[i] = &loadSession{user: fmt.Sprintf("user%03d", i), rr: rng.IntN(len(nodes))}
		on[i] = nodes[rng.IntN(len(nodes))]
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // protects errs
		errs []string
	)
	sem := make(chan struct{}, loadWorkers)
	for i, s := range r.sessions {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n := on[i]
			rep, err := request(t.Context(), r.client, "POST", n.url+"/login", "", url.Values{"user": {s.user}})
			if err == nil && rep.status != http.StatusOK {
				err = fmt.Errorf("status %d %q", rep.status, rep.body)
			}
			var ck *http.Cookie
			if err == nil {
				_, ck, err = findSessionCookie(rep)
			}
			if err == nil && ck == nil {
				err = errors.New("no JSESSIONID cookie")
			}
			if err == nil {
				var id session.ID
				if id, err = session.ParseID(ck.Value); err == nil {
					s.id, s.base = ck.Value, id.Base
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s on %s: %v", s.user, n.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d logins failed: %s", len(errs), loadSessions, strings.Join(errs[:min(len(errs), 5)], "; "))
	}
}

// start starts the workers. Each takes a session from the queue, sends
// its next request and puts it back, so that a session's requests are
// sequential and the sessions take turns.
func (r *loadRun) start() {
	queue := make(chan *loadSession, len(r.sessions))
	for _, s := range r.sessions {
		queue <- s
	}
	r.begin = time.Now()
	for range loadWorkers {
		r.wg.Go(func() { r.work(queue) })
	}
	r.t.Cleanup(r.halt) // before the nodes are stopped
}

func (r *loadRun) work(queue chan *loadSession) {
	for {
		select {
		case <-r.stop:
			return
		case s := <-queue:
			if r.requests.Load() >= loadMaxRequests {
				return
			}
			r.step(s)
			queue <- s // never blocks: the queue holds every session
		}
	}
}

// halt stops the workers and waits for them.
func (r *loadRun) halt() {
	r.haltOnce.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// fail records a failed request.
func (r *loadRun) fail(s *loadSession, tg *loadTarget, format string, args ...any) {
	n := r.failures.Add(1)
	if n > 10 {
		return
	}
	msg := fmt.Sprintf("session %s (%s, count %d) on %s (pid %d) at +%v: %s", s.id, s.user, s.count, tg.n.name, tg.n.pid(),
		time.Since(r.begin).Round(time.Millisecond), fmt.Sprintf(format, args...))
	if n <= 3 {
		msg += "\n  log tail of " + tg.n.name + ":\n" + tg.n.tail(15)
	}
	r.exMu.Lock()
	r.examples = append(r.examples, msg)
	r.exMu.Unlock()
}

// step sends the session's next GET /counter to the next live node and
// checks the response.
func (r *loadRun) step(s *loadSession) {
	r.mu.Lock()
	live := r.live
	r.mu.Unlock()
	tg := live[s.rr%len(live)]
	s.rr++
	r.requests.Add(1)
	tg.requests.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), httpTimeout)
	defer cancel()
	rep, err := request(ctx, r.client, "GET", tg.n.url+"/counter", "JSESSIONID="+s.id, nil)
	if err != nil {
		var ne net.Error
		timeout := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
		if tg.gone.Load() && !timeout {
			// Refused or cut by the node the test signalled: expected.
			// The request may have counted before the node died.
			tg.goneErrs.Add(1)
			s.unacked++
			return
		}
		r.fail(s, tg, "%v", err)
		return
	}
	if rep.status != http.StatusOK {
		r.fail(s, tg, "status %d %q, want 200", rep.status, rep.body)
		return
	}
	var c counterReply
	if err := json.Unmarshal(rep.body, &c); err != nil {
		r.fail(s, tg, "body %q: %v", rep.body, err)
		return
	}
	if c.User != s.user {
		r.fail(s, tg, "user %q (count %d, session %s), want %q: session lost", c.User, c.Count, c.Session, s.user)
		return
	}
	served := tg.n.name
	if tg.balancer {
		served = c.Node
	}
	switch want := s.count + 1; {
	case c.Count == want:
	case tg.balancer && c.Count == want+1:
		r.retriedCounted.Add(1)
	case c.Count > want && c.Count <= want+s.unacked:
		// A request to the signalled node counted but its response was lost.
		r.skipped.Add(1)
	default:
		extra := ""
		if s.unacked > 0 {
			extra = fmt.Sprintf(" (or up to %d: %d unanswered requests to a signalled node)", want+s.unacked, s.unacked)
		}
		r.fail(s, tg, "count %d, want %d%s", c.Count, want, extra)
	}
	_, ck, err := findSessionCookie(rep)
	switch {
	case err != nil:
		r.fail(s, tg, "%v", err)
	case ck != nil:
		id, err := session.ParseID(ck.Value)
		if err != nil || id.Base != s.base || id.Route != served || ck.Value == s.id {
			r.fail(s, tg, "Set-Cookie JSESSIONID=%s (%v), want %s.%s: the same session rebound to the node that served it",
				ck.Value, err, s.base, served)
			break
		}
		s.id = ck.Value
		r.rebinds.Add(1)
	}
	if c.Session != s.id || c.Node != served {
		r.fail(s, tg, "body says node %q session %q, want node %q session %q", c.Node, c.Session, served, s.id)
	}
	s.count = c.Count // go on from what the cluster says, to report each fault once
	s.unacked = 0
	s.ok.Add(1)
}

// progress waits until every session has made k more successful requests,
// failing the test if that takes longer than phaseTimeout.
func (r *loadRun) progress(k int64, phase string) {
	t := r.t
	t.Helper()
	base := make([]int64, len(r.sessions))
	for i, s := range r.sessions {
		base[i] = s.ok.Load()
	}
	start := time.Now()
	behind := func() (int, *loadSession) {
		n, worst, worstGain := 0, (*loadSession)(nil), int64(0)
		for i, s := range r.sessions {
			if gain := s.ok.Load() - base[i]; gain < k {
				if n++; worst == nil || gain < worstGain {
					worst, worstGain = s, gain
				}
			}
		}
		return n, worst
	}
	if !poll(phaseTimeout, func() bool { n, _ := behind(); return n == 0 }) {
		n, worst := behind()
		t.Fatalf("%s: after %v, %d sessions made fewer than %d successful requests (e.g. %s, %d in all; %d requests of at most %d sent); %d failures so far:\n%s",
			phase, phaseTimeout, n, k, worst.user, worst.ok.Load(), r.requests.Load(), loadMaxRequests, r.failures.Load(), r.report())
	}
	t.Logf("%s: every session made %d more successful requests in %v (%d requests so far)",
		phase, k, time.Since(start).Round(time.Millisecond), r.requests.Load())
}

// report returns the failures' examples.
func (r *loadRun) report() string {
	r.exMu.Lock()
	defer r.exMu.Unlock()
	return "  " + strings.Join(r.examples, "\n  ")
}

// finish stops the load, logs the totals and fails the test on any failed
// request.
func (r *loadRun) finish() {
	t := r.t
	t.Helper()
	r.halt()
	elapsed := time.Since(r.begin)
	var ok int64
	for _, s := range r.sessions {
		ok += s.ok.Load()
	}
	var per, gone []string
	var goneErrs int64
	r.mu.Lock()
	for _, tg := range r.targets {
		per = append(per, fmt.Sprintf("%s(pid %d) %d", tg.n.name, tg.n.pid(), tg.requests.Load()))
		if tg.gone.Load() {
			gone = append(gone, fmt.Sprintf("%s(pid %d) %d", tg.n.name, tg.n.pid(), tg.goneErrs.Load()))
			goneErrs += tg.goneErrs.Load()
		}
	}
	r.mu.Unlock()
	t.Logf("load: %d sessions, %d requests in %v (%.0f/s), %d successful; per node: %s; unanswered requests to signalled nodes: %d [%s]; "+
		"counts that included an unanswered request: %d; counts one ahead (retried by the balancer after they counted): %d; rebinds: %d; failures: %d",
		len(r.sessions), r.requests.Load(), elapsed.Round(time.Millisecond), float64(r.requests.Load())/elapsed.Seconds(), ok,
		strings.Join(per, ", "), goneErrs, strings.Join(gone, ", "), r.skipped.Load(), r.retriedCounted.Load(), r.rebinds.Load(), r.failures.Load())
	if n := r.failures.Load(); n > 0 && !r.tolerate {
		var logs strings.Builder
		r.mu.Lock()
		for _, tg := range r.targets {
			fmt.Fprintf(&logs, "log of %s (pid %d), memberlist's own lines left out:\n%s\n", tg.n.name, tg.n.pid(), tg.n.shoalLog(80))
		}
		r.mu.Unlock()
		t.Errorf("%d failed requests (other than unanswered ones to the signalled node); first ones:\n%s\n%s", n, r.report(), logs.String())
	}
}

// loadFlags are the cluster settings of the load tests.
var loadFlags = []string{"--owners", "2", "--replication", "sync"}

// startLoadCluster starts n1, n2 and n3 and waits until each sees the
// others ready.
func startLoadCluster(t *testing.T) (key string, nodes []*node) {
	t.Helper()
	key = writeKey(t)
	g1 := freeGossipAddr(t)
	n1 := startClusterNode(t, "n1", key, g1, "", loadFlags...)
	n2 := startClusterNode(t, "n2", key, freeGossipAddr(t), g1, loadFlags...)
	n3 := startClusterNode(t, "n3", key, freeGossipAddr(t), g1, loadFlags...)
	nodes = []*node{n1, n2, n3}
	waitSeeReady(t, nodes, nil, "n1", "n2", "n3")
	return key, nodes
}

// startLoad logs the sessions in on random nodes and starts the load.
func startLoad(t *testing.T, nodes []*node) *loadRun {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	r := newLoadRun(t, nodes...)
	r.login(nodes, rand.New(rand.NewPCG(seed, seed)))
	r.start()
	return r
}

// TestClusterUnderLoadKill runs loadSessions sessions over a 3-node cluster
// (owners=2, sync), each sending sequential GET /counter round-robin over
// the live nodes, while one node is killed and restarted, stopped, or a
// fourth joins. No session may be lost, and every count must be the
// previous one plus one; only requests to the node the test signalled may
// go unanswered.
func TestClusterUnderLoadKill(t *testing.T) {
	t.Run("kill -9 and restart", func(t *testing.T) {
		key, nodes := startLoadCluster(t)
		n1, n2, n3 := nodes[0], nodes[1], nodes[2]
		r := startLoad(t, nodes)
		r.progress(3, "warm-up")

		off := offsets(n2, n3)
		r.target(n1).gone.Store(true)
		killed := time.Now()
		if err := n1.kill(); err != nil {
			t.Fatalf("kill -9 n1 (pid %d): %v", n1.pid(), err)
		}
		for _, o := range []*node{n2, n3} {
			re := deadRE(o.name, "n1")
			if !poll(logTimeout, func() bool { return re.MatchString(o.stderr.since(off[o])) }) {
				t.Fatalf("%s did not declare n1 dead within %v of the kill; log tail:\n%s", o.name, logTimeout, o.tail(30))
			}
		}
		t.Logf("n1 (pid %d) killed at +%v; n2 and n3 declared it dead %v later", n1.pid(),
			killed.Sub(r.begin).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
		r.remove(n1)
		r.progress(2, "after the kill")
		// The load goes on over n2 and n3 until the restart, a few seconds
		// after the kill. (TestClusterRoundRobinKillRestart restarts at
		// once.)
		poll(restartDelay, func() bool { return time.Since(killed) >= restartDelay })

		off = offsets(n2, n3)
		n1b := startClusterNode(t, "n1", key, freeGossipAddr(t), n2.gossip, loadFlags...)
		waitReady(t, n1b)
		r.add(n1b)
		t.Logf("n1 restarted (pid %d), ready and in the rotation at +%v", n1b.pid(), time.Since(r.begin).Round(time.Millisecond))
		r.progress(3, "after the restart")
		r.finish()
		// The restarted n1 is ready in its own view: the others must count
		// it in too.
		waitSeeReady(t, []*node{n2, n3}, off, "n1")
	})

	t.Run("SIGTERM", func(t *testing.T) {
		_, nodes := startLoadCluster(t)
		n1 := nodes[0]
		r := startLoad(t, nodes)
		r.progress(3, "warm-up")

		r.target(n1).gone.Store(true)
		stopped := time.Now()
		if err := n1.stop(); err != nil { // waits for the exit
			t.Fatalf("SIGTERM n1 (pid %d) under load: %v", n1.pid(), err)
		}
		if !strings.Contains(n1.stderr.String(), `msg="node stopped"`) {
			t.Errorf("n1 exited 0 after SIGTERM without logging \"node stopped\"; log tail:\n%s", n1.tail(30))
		}
		t.Logf("n1 (pid %d) stopped by SIGTERM at +%v: exited 0 after %v", n1.pid(),
			stopped.Sub(r.begin).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
		r.remove(n1)
		r.progress(3, "after n1 left")
		r.finish()
		// Every session was served since n1 left: none may still name it.
		var stale []string
		for _, s := range r.sessions {
			if s.route() == "n1" {
				stale = append(stale, s.id)
			}
		}
		if len(stale) > 0 {
			t.Errorf("%d sessions still carry route n1 after n1 left and each was served %d times since (e.g. %s); want them rebound",
				len(stale), 3, stale[0])
		}
	})

	t.Run("join", func(t *testing.T) {
		key, nodes := startLoadCluster(t)
		r := startLoad(t, nodes)
		r.progress(3, "warm-up")

		started := time.Now()
		n4 := startClusterNode(t, "n4", key, freeGossipAddr(t), nodes[0].gossip, loadFlags...)
		waitReady(t, n4)
		t.Logf("n4 took %v from start to ready (%s)", time.Since(started).Round(time.Millisecond),
			regexp.MustCompile(`msg="cluster: received the sessions[^\n]*`).FindString(n4.stderr.String()))
		r.add(n4)
		t.Logf("n4 (pid %d) joined, ready and in the rotation at +%v", n4.pid(), time.Since(r.begin).Round(time.Millisecond))
		r.progress(4, "after n4 joined")
		r.finish()
	})
}
