package balancer

import "testing"

// TestLBSets: Apache's lbset tiers. Requests go to the lowest tier that
// has a usable member (its hot standbys before any higher tier); a higher
// tier takes them only when the lower ones cannot; a reload moves a
// member between tiers.
func TestLBSets(t *testing.T) {
	a1, a2, s0 := newBackend(t, "a1"), newBackend(t, "a2"), newBackend(t, "s0")
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	cfg := testConfig(t, a1.member(), a2.member(), s0.member("standby"), b1.member("lbset=1"), b2.member("lbset=1"))
	tb := startBalancer(t, cfg)
	served := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			r := tb.get(t, "/")
			if r.code != 200 {
				t.Fatalf("got %d %q", r.code, r.body)
			}
			got[r.body]++
		}
		return got
	}
	if got := served(20); got["a1"] != 10 || got["a2"] != 10 {
		t.Errorf("tier 0 up: served %v, want a1 and a2 only, 10 each", got)
	}
	tb.member("a1").SetDisabled(true)
	tb.member("a2").SetDisabled(true)
	if got := served(6); got["s0"] != 6 {
		t.Errorf("tier 0's regular members off: served %v, want tier 0's hot standby s0 before tier 1", got)
	}
	tb.member("s0").SetDisabled(true)
	if got := served(20); got["b1"] != 10 || got["b2"] != 10 {
		t.Errorf("tier 0 all off: served %v, want tier 1 (b1, b2), 10 each", got)
	}
	// Sticky requests still reach their member whatever its tier.
	tb.member("a1").SetDisabled(false)
	if r := tb.get(t, "/", "Cookie: JSESSIONID=x.b2"); r.body != "b2" {
		t.Errorf("sticky to b2 (tier 1) with tier 0 up: served by %q", r.body)
	}
	if got := served(6); got["a1"] != 6 {
		t.Errorf("a1 back: served %v, want a1 only", got)
	}
	// A reload moves b1 to tier 0.
	cfg2 := testConfig(t, a1.member(), a2.member("disabled"), s0.member("standby", "disabled"), b1.member(), b2.member("lbset=1"))
	if err := tb.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if got := served(20); got["a1"] != 10 || got["b1"] != 10 {
		t.Errorf("after the reload: served %v, want a1 and b1 (tier 0), 10 each", got)
	}
	if m := tb.member("b1"); m.LBSet() != 0 {
		t.Errorf("b1's lbset after the reload: %d, want 0", m.LBSet())
	}
}

func TestStickyReported(t *testing.T) {
	n1 := newBackend(t, "n1")
	cfg := testConfig(t, n1.member())
	tb := startBalancer(t, cfg)
	if got := tb.Sticky(); got != "JSESSIONID|jsessionid" {
		t.Errorf("Sticky() = %q, want the default JSESSIONID|jsessionid", got)
	}
	cfg.Sticky = "SID|sid"
	if err := tb.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := tb.Sticky(); got != "SID|sid" {
		t.Errorf("after a reload, Sticky() = %q, want SID|sid", got)
	}
}
