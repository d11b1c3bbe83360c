package membership

import (
	"testing"
	"time"
)

// A member whose replication port refuses connections is reported dead at
// once; memberlist's own declaration later adds no second event; evidence
// about another address, ourselves or an unknown name changes nothing.
func TestReportRefused(t *testing.T) {
	ms := startCluster(t, 3, mustKey(t))
	n1, n3 := ms[0], ms[2]
	repl3 := n3.Self().ReplAddr

	for _, c := range []struct{ name, addr string }{
		{"n3", "elsewhere.test:7070"}, // a restarted n3 has another address
		{"n1", n1.Self().ReplAddr},    // ourselves
		{"n9", "n9.test:7070"},        // not a member
	} {
		if n1.ReportRefused(c.name, c.addr) {
			t.Errorf("ReportRefused(%s, %s) removed a member", c.name, c.addr)
		}
	}
	if got := len(n1.Members()); got != 3 {
		t.Fatalf("%d members after ignored reports, want 3", got)
	}

	// n3's process "dies": it stops gossiping (Close without Leave) and its
	// port would refuse; n1 is told before memberlist could notice.
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	reported := time.Now()
	if !n1.ReportRefused("n3", repl3) {
		t.Fatal("ReportRefused(n3) did not remove the live member n3")
	}
	if n1.ReportRefused("n3", repl3) {
		t.Error("a second ReportRefused(n3) removed it again")
	}
	for _, m := range n1.Members() {
		if m.Name == "n3" {
			t.Fatal("n3 still in Members() after ReportRefused")
		}
	}
	eventually(t, 2*time.Second, "n1 gets EventDead for n3", func() bool {
		_, ok := n1.events.find(EventDead, "n3")
		return ok
	})
	if at, _ := n1.events.find(EventDead, "n3"); at.Sub(reported) > time.Second {
		t.Errorf("EventDead %v after the report: it waited for memberlist", at.Sub(reported))
	}
	// n2, which had no evidence, learns it from memberlist; by then
	// memberlist has told n1 too, which must not report n3 twice.
	eventually(t, 15*time.Second, "n2 gets EventDead for n3 from memberlist", func() bool {
		_, ok := ms[1].events.find(EventDead, "n3")
		return ok
	})
	eventually(t, 5*time.Second, "n1's memberlist confirms", func() bool {
		return n1.logs.countLines("memberlist confirms a member reported dead", "name=n3") == 1
	})
	if n := n1.events.count(EventDead, "n3"); n != 1 {
		t.Errorf("n1 got %d EventDead for n3, want 1", n)
	}
	if n := n1.logs.countLines("member declared dead", "name=n3", "evidence="); n != 1 {
		t.Errorf("n1 logged %d declarations of n3 with the evidence, want 1:\n%s", n, n1.logs.summary())
	}
}

// A member reported dead that memberlist still sees alive long after it
// would have declared it dead is taken back: wrong evidence must not keep
// a live member out for good.
func TestReportRefusedTakenBack(t *testing.T) {
	ms := startClusterWith(t, 2, mustKey(t), func(c *Config) { c.recheckDelay = 300 * time.Millisecond })
	n1 := ms[0]
	if !n1.ReportRefused("n2", ms[1].Self().ReplAddr) {
		t.Fatal("ReportRefused(n2) did not remove it")
	}
	eventually(t, 10*time.Second, "n1 takes n2 back (EventJoin after EventDead)", func() bool {
		return n1.events.count(EventJoin, "n2") >= 2 && len(n1.Members()) == 2
	})
	if n := n1.logs.countLines("member taken back", "name=n2"); n != 1 {
		t.Errorf("logged %d take-backs of n2, want 1", n)
	}
}
