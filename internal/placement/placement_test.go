package placement

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "session-key-" + strconv.Itoa(i)
	}
	return out
}

func TestOwnersBasics(t *testing.T) {
	r := New([]string{"n3", "n1", "n2", "n1"})
	if got := r.Members(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("Members = %v", got)
	}
	for _, k := range keys(200) {
		o := r.Owners(nil, k, 2)
		if len(o) != 2 || o[0] == o[1] {
			t.Fatalf("Owners(%q, 2) = %v", k, o)
		}
		if o[0] != r.Primary(k) {
			t.Fatalf("Primary(%q) = %q, Owners %v", k, r.Primary(k), o)
		}
		all := r.Owners(nil, k, 0)
		if len(all) != 3 || !slices.Equal(all[:2], o) {
			t.Fatalf("Owners(all) = %v, want a prefix %v", all, o)
		}
		if !r.IsOwner(k, o[1], 2) || r.IsOwner(k, all[2], 2) {
			t.Fatalf("IsOwner disagrees with Owners for %q", k)
		}
	}
	if got := New(nil).Owners(nil, "k", 2); len(got) != 0 {
		t.Fatalf("empty ring owners = %v", got)
	}
	if New(nil).Primary("k") != "" {
		t.Fatal("empty ring has a primary")
	}
}

// TestSameEverywhere: the owners depend only on the member set, not on the
// order it was given in: every node computes the same placement.
func TestSameEverywhere(t *testing.T) {
	a := New([]string{"n1", "n2", "n3", "n4"})
	b := New([]string{"n4", "n2", "n1", "n3"})
	for _, k := range keys(500) {
		if !slices.Equal(a.Owners(nil, k, 3), b.Owners(nil, k, 3)) {
			t.Fatalf("placement of %q depends on member order", k)
		}
	}
	// Pinned values: placement must not change between versions, or a
	// rolling upgrade would move every session.
	r := New([]string{"n1", "n2", "n3"})
	got := fmt.Sprint(r.Owners(nil, "AAAAAAAAAAAAAAAAAAAAAAAA", 3), r.Owners(nil, "session-key-7", 3))
	if want := pinned; got != want {
		t.Fatalf("placement changed: %s, pinned %s", got, want)
	}
}

const pinned = "[n1 n3 n2] [n1 n3 n2]"

func TestBalanced(t *testing.T) {
	r := New([]string{"n1", "n2", "n3", "n4", "n5"})
	count := map[string]int{}
	const n = 50000
	for _, k := range keys(n) {
		for _, o := range r.Owners(nil, k, 2) {
			count[o]++
		}
	}
	want := float64(n*2) / 5
	for m, c := range count {
		if math.Abs(float64(c)-want)/want > 0.05 {
			t.Errorf("%s holds %d copies, want %.0f ±5%%", m, c, want)
		}
	}
}

// TestMinimalMovement: removing a member moves only the copies it held,
// and the survivors keep theirs (what makes failover cheap).
func TestMinimalMovement(t *testing.T) {
	before := New([]string{"n1", "n2", "n3", "n4"})
	after := New([]string{"n1", "n2", "n4"})
	for _, k := range keys(5000) {
		ob, oa := before.Owners(nil, k, 2), after.Owners(nil, k, 2)
		for _, o := range ob {
			if o != "n3" && !slices.Contains(oa, o) {
				t.Fatalf("%q: surviving owner %s lost its copy (%v -> %v)", k, o, ob, oa)
			}
		}
		if !slices.Contains(ob, "n3") && !slices.Equal(ob, oa) {
			t.Fatalf("%q moved without n3 involved: %v -> %v", k, ob, oa)
		}
		// The old backup becomes primary when the primary dies.
		if ob[0] == "n3" && oa[0] != ob[1] {
			t.Fatalf("%q: primary n3 died, new primary %s, want the backup %s", k, oa[0], ob[1])
		}
	}
}

func TestNewOwnedKey(t *testing.T) {
	r := New([]string{"n1", "n2", "n3"})
	i := 0
	gen := func() string { i++; return "k" + strconv.Itoa(i) }
	for range 100 {
		k := r.NewOwnedKey("n2", gen)
		if r.Primary(k) != "n2" {
			t.Fatalf("NewOwnedKey gave %q, primary %s", k, r.Primary(k))
		}
	}
	// Not a member: the first key, no loop.
	before := i
	r.NewOwnedKey("n9", gen)
	if i != before+1 {
		t.Fatalf("NewOwnedKey for a non-member drew %d keys", i-before)
	}
}

func BenchmarkOwners3(b *testing.B)   { benchmarkOwners(b, 3) }
func BenchmarkOwners30(b *testing.B)  { benchmarkOwners(b, 30) }
func BenchmarkOwners300(b *testing.B) { benchmarkOwners(b, 300) }

func benchmarkOwners(b *testing.B, members int) {
	names := make([]string, members)
	for i := range names {
		names[i] = "node-" + strconv.Itoa(i)
	}
	r := New(names)
	var dst [2]string
	b.ReportAllocs()
	for b.Loop() {
		r.Owners(dst[:0], "AAAAAAAAAAAAAAAAAAAAAAAA", 2)
	}
}
