package replication

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func set(k, v string) session.Delta {
	return session.Delta{Set: []session.Attr{{Key: k, Value: []byte(v)}}, Access: t0}
}

func value(t *testing.T, c *Copies, key, attr string) string {
	t.Helper()
	r, ok := c.Get(key)
	if !ok {
		t.Fatalf("no copy of %q", key)
	}
	for _, a := range r.Attrs {
		if a.Key == attr {
			return string(a.Value)
		}
	}
	return ""
}

func TestPrimaryCommitVersions(t *testing.T) {
	c := NewCopies()
	if err := c.Create(session.Record{Key: "k", Version: 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(session.Record{Key: "k"}); !errors.Is(err, session.ErrExists) {
		t.Fatalf("second create = %v", err)
	}
	var sent []uint64
	for i := range 3 {
		v, err := c.Commit("k", set("n", string(rune('1'+i))), func(v uint64, rec *session.Record) { sent = append(sent, v) })
		if err != nil || v != uint64(i+2) {
			t.Fatalf("commit %d: version %d, %v", i, v, err)
		}
	}
	if len(sent) != 3 || sent[0] != 2 || sent[2] != 4 {
		t.Fatalf("sent versions %v", sent)
	}
	if _, err := c.Commit("nope", set("a", "b"), nil); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("commit to missing = %v", err)
	}
	if _, err := c.Commit("k", session.Delta{NewKey: "k2"}, nil); !errors.Is(err, ErrRename) {
		t.Fatalf("rename commit = %v", err)
	}
}

func TestBackupApplyRules(t *testing.T) {
	c := NewCopies()
	if got := c.Apply("k", set("a", "1"), 2); got != Missing {
		t.Fatalf("apply without a copy = %v", got)
	}
	c.Put(session.Record{Key: "k", Version: 1})
	steps := []struct {
		version uint64
		val     string
		want    ApplyResult
	}{
		{2, "2", Applied},
		{2, "2-again", Duplicate}, // duplicated delivery
		{1, "old", Duplicate},     // stale
		{4, "4", Gap},             // version 3 was lost
		{3, "3", Applied},
		{4, "4", Applied},
	}
	for _, s := range steps {
		if got := c.Apply("k", set("a", s.val), s.version); got != s.want {
			t.Fatalf("apply v%d = %v, want %v", s.version, got, s.want)
		}
	}
	if got := value(t, c, "k", "a"); got != "4" {
		t.Fatalf("value = %q, want 4", got)
	}
}

func TestPutAndDeleteVersions(t *testing.T) {
	c := NewCopies()
	if !c.Put(session.Record{Key: "k", Version: 5, Attrs: []session.Attr{{Key: "a", Value: []byte("5")}}}) {
		t.Fatal("put into empty")
	}
	if c.Put(session.Record{Key: "k", Version: 4, Attrs: []session.Attr{{Key: "a", Value: []byte("4")}}}) {
		t.Fatal("an older record replaced a newer one")
	}
	if c.Put(session.Record{Key: "k", Version: 5}) {
		t.Fatal("the same version was stored twice")
	}
	if got := value(t, c, "k", "a"); got != "5" {
		t.Fatalf("value = %q", got)
	}
	if c.Delete("k", 4) {
		t.Fatal("a delete ordered before version 5 removed it")
	}
	if !c.Delete("k", 5) || c.Len() != 0 {
		t.Fatal("delete at the copy's version failed")
	}
	if c.Delete("k", 0) {
		t.Fatal("deleted a missing copy")
	}
}

// TestConvergesUnderReordering: whatever order a backup receives a
// primary's deltas in, duplicated or not, answering Gap with the whole
// record brings it to the primary's newest state.
func TestConvergesUnderReordering(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		primary, backup := NewCopies(), NewCopies()
		primary.Create(session.Record{Key: "k"})
		backup.Put(session.Record{Key: "k", Version: 1})
		type msg struct {
			d session.Delta
			v uint64
		}
		var msgs []msg
		for i := range 10 {
			d := set("a", string(rune('a'+i)))
			if i%3 == 0 {
				d = set("b", string(rune('a'+i)))
			}
			primary.Commit("k", d, func(v uint64, _ *session.Record) { msgs = append(msgs, msg{d, v}) })
		}
		// Deliver shuffled, some twice, some dropped.
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		for _, m := range msgs {
			if rng.IntN(5) == 0 {
				continue
			}
			for range 1 + rng.IntN(2) {
				if backup.Apply("k", m.d, m.v) == Gap {
					rec, _ := primary.Get("k")
					backup.Put(rec)
				}
			}
		}
		// The primary's last message, if lost, is resent by its
		// re-replication pass: model it as a final Put.
		rec, _ := primary.Get("k")
		backup.Put(rec)
		got, _ := backup.Get("k")
		if got.Version != rec.Version || value(t, backup, "k", "a") != value(t, primary, "k", "a") || value(t, backup, "k", "b") != value(t, primary, "k", "b") {
			t.Fatalf("trial %d: backup at v%d %q/%q, primary at v%d %q/%q", trial, got.Version,
				value(t, backup, "k", "a"), value(t, backup, "k", "b"), rec.Version, value(t, primary, "k", "a"), value(t, primary, "k", "b"))
		}
	}
}

// TestDeletedStaysDeleted: a copy that arrives after its session was
// deleted (a rebalance pass that read it before) does not bring it back.
func TestDeletedStaysDeleted(t *testing.T) {
	c := NewCopies()
	rec := session.Record{Key: "k", Version: 3}
	c.Put(rec)
	c.Delete("k", 0)
	if c.Put(rec) || c.Create(session.Record{Key: "k"}) == nil {
		t.Fatal("a deleted session came back")
	}
	c.Put(session.Record{Key: "x", Version: 1})
	if got := c.Expire(time.Now(), 10, nil); len(got) != 0 {
		t.Fatal("expired a session without a deadline")
	}
	c.PruneTombstones(time.Now().Add(2 * TombstoneTTL))
	if !c.Put(rec) {
		t.Fatal("tombstone kept past its TTL")
	}
}
