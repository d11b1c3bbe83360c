// Package sessiontest is the conformance suite for session.Store: every
// store shoal ships runs it, and so can a user's own store.
//
//	func TestStore(t *testing.T) {
//		sessiontest.RunStoreTests(t, func(t *testing.T) session.Store { return mystore.New() })
//	}
package sessiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

// RunStoreTests runs the conformance suite against stores made by
// newStore, one fresh store per subtest. The store must be empty.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) session.Store) {
	t.Run("CreateLoad", func(t *testing.T) { testCreateLoad(t, newStore(t)) })
	t.Run("CreateExists", func(t *testing.T) { testCreateExists(t, newStore(t)) })
	t.Run("LoadMissing", func(t *testing.T) { testLoadMissing(t, newStore(t)) })
	t.Run("CommitDelta", func(t *testing.T) { testCommitDelta(t, newStore(t)) })
	t.Run("CommitMissing", func(t *testing.T) { testCommitMissing(t, newStore(t)) })
	t.Run("CommitTouch", func(t *testing.T) { testCommitTouch(t, newStore(t)) })
	t.Run("CommitIdleTimeout", func(t *testing.T) { testCommitIdleTimeout(t, newStore(t)) })
	t.Run("Rename", func(t *testing.T) { testRename(t, newStore(t)) })
	t.Run("RenameTaken", func(t *testing.T) { testRenameTaken(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Expire", func(t *testing.T) { testExpire(t, newStore(t)) })
	t.Run("Len", func(t *testing.T) { testLen(t, newStore(t)) })
	t.Run("ConcurrentDeltas", func(t *testing.T) { testConcurrentDeltas(t, newStore(t)) })
	t.Run("ReturnedAttrsUnchanged", func(t *testing.T) { testReturnedAttrsUnchanged(t, newStore(t)) })
}

var ctx = context.Background()

// base is a fixed instant with whole milliseconds, so that stores which
// keep coarser times than nanoseconds still compare equal.
var base = time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)

func rec(key string, attrs ...string) session.Record {
	r := session.Record{Key: key, Created: base, LastAccess: base, IdleTimeout: 30 * time.Minute}
	for i := 0; i+1 < len(attrs); i += 2 {
		r.Attrs = append(r.Attrs, session.Attr{Key: attrs[i], Value: []byte(attrs[i+1])})
	}
	return r
}

// key returns the n-th test key, shaped like a session id's base.
func key(_ *testing.T, n int) string { return fmt.Sprintf("conformance-key-%08d", n) }

func mustCreate(t *testing.T, st session.Store, r session.Record) {
	t.Helper()
	if err := st.Create(ctx, r); err != nil {
		t.Fatalf("Create(%q): %v", r.Key, err)
	}
}

func mustLoad(t *testing.T, st session.Store, k string) session.Record {
	t.Helper()
	r, err := st.Load(ctx, k)
	if err != nil {
		t.Fatalf("Load(%q): %v", k, err)
	}
	return r
}

func wantAttrs(t *testing.T, r session.Record, kv ...string) {
	t.Helper()
	if len(r.Attrs) != len(kv)/2 {
		t.Fatalf("attrs = %v, want %v", fmtAttrs(r.Attrs), kv)
	}
	for i := 0; i < len(kv); i += 2 {
		a := r.Attrs[i/2]
		if a.Key != kv[i] || string(a.Value) != kv[i+1] {
			t.Fatalf("attrs = %v, want %v (sorted by key)", fmtAttrs(r.Attrs), kv)
		}
	}
}

func fmtAttrs(as []session.Attr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Key+"="+string(a.Value))
	}
	return out
}

func testCreateLoad(t *testing.T, st session.Store) {
	k := key(t, 1)
	r := rec(k, "a", "1", "b", "2")
	r.AbsoluteDeadline = base.Add(time.Hour)
	r.Version = 42 // ignored
	mustCreate(t, st, r)
	got := mustLoad(t, st, k)
	if got.Key != k {
		t.Errorf("Key = %q, want %q", got.Key, k)
	}
	wantAttrs(t, got, "a", "1", "b", "2")
	if !got.Created.Equal(base) || !got.LastAccess.Equal(base) {
		t.Errorf("times = %v/%v, want %v", got.Created, got.LastAccess, base)
	}
	if got.IdleTimeout != 30*time.Minute || !got.AbsoluteDeadline.Equal(base.Add(time.Hour)) {
		t.Errorf("timeouts = %v/%v", got.IdleTimeout, got.AbsoluteDeadline)
	}
	if got.Version != 1 {
		t.Errorf("Version after Create = %d, want 1", got.Version)
	}
}

func testCreateExists(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k, "a", "1"))
	if err := st.Create(ctx, rec(k, "a", "2")); !errors.Is(err, session.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	wantAttrs(t, mustLoad(t, st, k), "a", "1")
}

func testLoadMissing(t *testing.T, st session.Store) {
	if _, err := st.Load(ctx, key(t, 9)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load of missing = %v, want ErrNotFound", err)
	}
}

func testCommitDelta(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k, "a", "1", "b", "2", "c", "3"))
	v, err := st.Commit(ctx, k, session.Delta{
		Set:         []session.Attr{{Key: "a", Value: []byte("10")}, {Key: "d", Value: []byte("4")}},
		Removed:     []string{"b"},
		Access:      base.Add(time.Minute),
		BaseVersion: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Errorf("version = %d, want 2", v)
	}
	got := mustLoad(t, st, k)
	wantAttrs(t, got, "a", "10", "c", "3", "d", "4")
	if !got.LastAccess.Equal(base.Add(time.Minute)) {
		t.Errorf("LastAccess = %v, want %v", got.LastAccess, base.Add(time.Minute))
	}
	if got.Version != 2 {
		t.Errorf("loaded version = %d, want 2", got.Version)
	}
}

func testCommitMissing(t *testing.T, st session.Store) {
	_, err := st.Commit(ctx, key(t, 1), session.Delta{Set: []session.Attr{{Key: "a", Value: []byte("1")}}, Access: base})
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Commit to missing = %v, want ErrNotFound", err)
	}
	if _, err := st.Load(ctx, key(t, 1)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Commit to a missing session created it: %v", err)
	}
}

func testCommitTouch(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k, "a", "1"))
	if _, err := st.Commit(ctx, k, session.Delta{Access: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// An older access time never moves LastAccess back.
	if _, err := st.Commit(ctx, k, session.Delta{Access: base.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, st, k)
	wantAttrs(t, got, "a", "1")
	if !got.LastAccess.Equal(base.Add(time.Hour)) {
		t.Errorf("LastAccess = %v, want %v", got.LastAccess, base.Add(time.Hour))
	}
}

func testCommitIdleTimeout(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k))
	if _, err := st.Commit(ctx, k, session.Delta{Access: base, IdleTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, st, k).IdleTimeout; got != time.Hour {
		t.Fatalf("IdleTimeout = %v, want 1h", got)
	}
	if _, err := st.Commit(ctx, k, session.Delta{Access: base, IdleTimeout: -1}); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, st, k).IdleTimeout; got != 0 {
		t.Fatalf("IdleTimeout = %v after a negative delta, want 0 (none)", got)
	}
}

func testRename(t *testing.T, st session.Store) {
	oldK, newK := key(t, 1), key(t, 2)
	mustCreate(t, st, rec(oldK, "a", "1"))
	if _, err := st.Commit(ctx, oldK, session.Delta{NewKey: newK, Set: []session.Attr{{Key: "b", Value: []byte("2")}}, Access: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, oldK); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("old key after rename: %v, want ErrNotFound", err)
	}
	got := mustLoad(t, st, newK)
	if got.Key != newK {
		t.Errorf("Key = %q, want %q", got.Key, newK)
	}
	wantAttrs(t, got, "a", "1", "b", "2")
	if n, _ := st.Len(ctx); n != 1 {
		t.Errorf("Len after rename = %d, want 1", n)
	}
}

func testRenameTaken(t *testing.T, st session.Store) {
	k1, k2 := key(t, 1), key(t, 2)
	mustCreate(t, st, rec(k1, "a", "1"))
	mustCreate(t, st, rec(k2, "a", "2"))
	_, err := st.Commit(ctx, k1, session.Delta{NewKey: k2, Set: []session.Attr{{Key: "x", Value: []byte("x")}}, Access: base})
	if !errors.Is(err, session.ErrExists) {
		t.Fatalf("rename onto a taken key = %v, want ErrExists", err)
	}
	wantAttrs(t, mustLoad(t, st, k1), "a", "1") // atomic: nothing applied
	wantAttrs(t, mustLoad(t, st, k2), "a", "2")
}

func testDelete(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k, "a", "1"))
	if err := st.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, k); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete = %v", err)
	}
	if err := st.Delete(ctx, k); err != nil {
		t.Fatalf("Delete of missing = %v, want nil", err)
	}
}

func testExpire(t *testing.T, st session.Store) {
	idle := rec(key(t, 1), "a", "1")
	idle.IdleTimeout = time.Minute // deadline base+1m
	absolute := rec(key(t, 2))
	absolute.AbsoluteDeadline = base.Add(2 * time.Minute)
	absolute.IdleTimeout = time.Hour
	live := rec(key(t, 3)) // deadline base+30m
	forever := rec(key(t, 4))
	forever.IdleTimeout = 0
	for _, r := range []session.Record{idle, absolute, live, forever} {
		mustCreate(t, st, r)
	}
	got, err := st.Expire(ctx, base.Add(time.Minute), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != idle.Key {
		t.Fatalf("Expire at +1m = %v, want only %q", keys(got), idle.Key)
	}
	wantAttrs(t, got[0], "a", "1")
	got, err = st.Expire(ctx, base.Add(10*time.Minute), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != absolute.Key {
		t.Fatalf("Expire at +10m = %v, want only %q", keys(got), absolute.Key)
	}
	// Limit bounds one call.
	for i := 10; i < 15; i++ {
		r := rec(key(t, i))
		r.IdleTimeout = time.Second
		mustCreate(t, st, r)
	}
	got, err = st.Expire(ctx, base.Add(time.Minute), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Expire with limit 3 returned %d", len(got))
	}
	if n, _ := st.Len(ctx); n != 4 { // live, forever, 2 left of the 5
		t.Fatalf("Len = %d, want 4", n)
	}
	if _, err := st.Load(ctx, live.Key); err != nil {
		t.Fatalf("a live session was expired: %v", err)
	}
	if _, err := st.Load(ctx, forever.Key); err != nil {
		t.Fatalf("a session without timeout was expired: %v", err)
	}
}

func keys(rs []session.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key)
	}
	return out
}

func testLen(t *testing.T, st session.Store) {
	for i := range 5 {
		mustCreate(t, st, rec(key(t, i)))
	}
	if err := st.Delete(ctx, key(t, 0)); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Len(ctx); err != nil || n != 4 {
		t.Fatalf("Len = %d, %v; want 4", n, err)
	}
}

// testConcurrentDeltas: deltas to different attributes of one session,
// committed concurrently from the same base version, all land.
func testConcurrentDeltas(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := st.Commit(ctx, k, session.Delta{
				Set:         []session.Attr{{Key: fmt.Sprintf("k%02d", i), Value: []byte{byte(i)}}},
				Access:      base,
				BaseVersion: 1,
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := mustLoad(t, st, k)
	if len(got.Attrs) != n {
		t.Fatalf("%d of %d concurrent deltas landed: %v", len(got.Attrs), n, fmtAttrs(got.Attrs))
	}
	if got.Version != n+1 {
		t.Fatalf("version = %d, want %d", got.Version, n+1)
	}
}

// testReturnedAttrsUnchanged: a later commit does not change a record
// returned earlier (callers may keep it while the store moves on).
func testReturnedAttrsUnchanged(t *testing.T, st session.Store) {
	k := key(t, 1)
	mustCreate(t, st, rec(k, "a", "1", "b", "2"))
	before := mustLoad(t, st, k)
	if _, err := st.Commit(ctx, k, session.Delta{Set: []session.Attr{{Key: "a", Value: []byte("changed")}}, Removed: []string{"b"}, Access: base}); err != nil {
		t.Fatal(err)
	}
	if len(before.Attrs) != 2 || !bytes.Equal(before.Attrs[0].Value, []byte("1")) || before.Attrs[1].Key != "b" {
		t.Fatalf("an earlier Load's attrs changed under the caller: %v", fmtAttrs(before.Attrs))
	}
}
