package recordmap

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rec(key string, version uint64) session.Record {
	return session.Record{Key: key, Created: t0, LastAccess: t0, IdleTimeout: time.Minute, Version: version,
		Attrs: []session.Attr{{Key: "a", Value: []byte(key)}}}
}

func TestRoundTripKeepsZeroTimes(t *testing.T) {
	m := New()
	r := rec("k", 7)
	r.AbsoluteDeadline = time.Time{}
	m.Insert(r)
	got, ok := m.Get("k")
	if !ok || !got.AbsoluteDeadline.IsZero() || !got.Created.Equal(t0) || got.Version != 7 || string(got.Attrs[0].Value) != "k" {
		t.Fatalf("Get = %+v, %v", got, ok)
	}
	if m.Insert(rec("k", 1)) {
		t.Fatal("Insert over an existing key succeeded")
	}
}

func TestUpdate(t *testing.T) {
	m := New()
	// Create through Update.
	err := m.Update("k", func(cur session.Record, found bool) (session.Record, bool, error) {
		if found {
			t.Fatal("found a missing key")
		}
		return rec("k", 1), true, nil
	})
	if err != nil || m.Len() != 1 {
		t.Fatalf("create: %v, len %d", err, m.Len())
	}
	// An error leaves the record; ErrSkip is not an error.
	boom := errors.New("boom")
	if err := m.Update("k", func(cur session.Record, _ bool) (session.Record, bool, error) {
		cur.Version = 99
		return cur, true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	if err := m.Update("k", func(cur session.Record, _ bool) (session.Record, bool, error) {
		return cur, false, ErrSkip
	}); err != nil {
		t.Fatalf("ErrSkip returned %v", err)
	}
	if v, _ := m.Version("k"); v != 1 {
		t.Fatalf("version = %d after a failed and a skipped update", v)
	}
	// keep=false deletes.
	m.Update("k", func(cur session.Record, _ bool) (session.Record, bool, error) { return cur, false, nil })
	if _, ok := m.Get("k"); ok || m.Len() != 0 {
		t.Fatal("keep=false did not delete")
	}
}

func TestMoveAndTouch(t *testing.T) {
	m := New()
	m.Insert(rec("a", 1))
	m.Insert(rec("b", 1))
	if err := m.Move("a", "b", func(r session.Record) (session.Record, error) { return r, nil }); !errors.Is(err, session.ErrExists) {
		t.Fatalf("move onto b = %v", err)
	}
	if err := m.Move("x", "y", func(r session.Record) (session.Record, error) { return r, nil }); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("move of missing = %v", err)
	}
	if err := m.Move("a", "c", func(r session.Record) (session.Record, error) { r.Version++; return r, nil }); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.Get("c"); !ok || got.Key != "c" || got.Version != 2 || m.Len() != 2 {
		t.Fatalf("after move: %+v %v len %d", got, ok, m.Len())
	}
	if v, ok := m.Touch("c", t0.Add(time.Hour)); !ok || v != 2 {
		t.Fatalf("Touch = %d, %v", v, ok)
	}
	m.Touch("c", t0) // never backwards
	if got, _ := m.Get("c"); !got.LastAccess.Equal(t0.Add(time.Hour)) {
		t.Fatalf("LastAccess = %v", got.LastAccess)
	}
}

func TestExpireFilterAndRange(t *testing.T) {
	m := New()
	for i := range 10 {
		m.Insert(rec(fmt.Sprint(i), 1))
	}
	got := m.Expire(t0.Add(2*time.Minute), 100, func(k string) bool { return k < "5" })
	if len(got) != 5 || m.Len() != 5 {
		t.Fatalf("expired %d, left %d", len(got), m.Len())
	}
	seen := 0
	m.Range(func(r session.Record) bool {
		m.Touch(r.Key, t0) // fn may call the map
		seen++
		return seen < 3
	})
	if seen != 3 {
		t.Fatalf("Range visited %d after stopping at 3", seen)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	m := New()
	m.Insert(rec("k", 0))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			m.Update("k", func(cur session.Record, _ bool) (session.Record, bool, error) {
				cur.Version++
				return cur, true, nil
			})
		})
	}
	wg.Wait()
	if v, _ := m.Version("k"); v != 50 {
		t.Fatalf("version = %d after 50 increments", v)
	}
}
