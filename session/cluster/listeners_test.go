package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/session"
)

// destroyedLog records the SessionDestroyed events of one node.
type destroyedLog struct {
	mu     sync.Mutex
	events []session.Event
}

func (d *destroyedLog) listener() session.Listener {
	return session.Listener{SessionDestroyed: func(_ context.Context, e session.Event) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.events = append(d.events, e)
	}}
}

func (d *destroyedLog) get() []session.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]session.Event(nil), d.events...)
}

// TestDestroyedListeners: an expired session fires SessionDestroyed once
// in the cluster, on the node that expired it; with DestroyedOnEveryCopy
// every other node holding a copy fires it too, marked Copy, with the
// session's last state.
func TestDestroyedListeners(t *testing.T) {
	for _, every := range []bool{false, true} {
		t.Run(map[bool]string{false: "once", true: "every copy"}[every], func(t *testing.T) {
			key := newKey(t)
			logs := map[string]*destroyedLog{}
			var nodes []*node
			var join []string
			for _, name := range []string{"n1", "n2", "n3"} {
				logs[name] = &destroyedLog{}
				n, err := startNode(t, name, key, join, func(c *session.Config) {
					c.IdleTimeout = 300 * time.Millisecond
					c.SweepInterval = -1 // swept by hand below
					c.DestroyedOnEveryCopy = every
					c.Listeners = []session.Listener{logs[name].listener()}
				})
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, n)
				join = []string{nodes[0].gossip()}
			}
			waitFor(t, "three members", func() bool {
				for _, n := range nodes {
					if len(n.store.Members()) != 3 {
						return false
					}
				}
				return true
			})
			// Owners 2: the session lives on n1 (its creator, primary)
			// and one backup.
			login(t, nodes[0], "alice")
			time.Sleep(400 * time.Millisecond) // past the idle timeout
			// Only the primary expires it: the others' sweeps find
			// nothing of theirs to decide.
			for _, n := range nodes[1:] {
				if k, err := n.mgr.Sweep(context.Background()); err != nil || k != 0 {
					t.Fatalf("sweep on backup %s expired %d (%v), want 0: only the primary decides", n.name, k, err)
				}
			}
			if k, err := nodes[0].mgr.Sweep(context.Background()); err != nil || k != 1 {
				t.Fatalf("sweep on the primary expired %d (%v), want 1", k, err)
			}
			want := 1
			if every {
				want = 2 // the primary and its one backup
			}
			var all []session.Event
			waitFor(t, "the destroyed events", func() bool {
				all = all[:0]
				for _, n := range nodes {
					all = append(all, logs[n.name].get()...)
				}
				return len(all) >= want
			})
			time.Sleep(200 * time.Millisecond) // no more may come
			all = all[:0]
			copies := 0
			for _, n := range nodes {
				for _, e := range logs[n.name].get() {
					all = append(all, e)
					if e.Reason != session.ReasonExpired {
						t.Errorf("%s: reason %v, want expired", n.name, e.Reason)
					}
					var user string
					if ok, err := e.Decode("user", &user); !ok || err != nil || user != "alice" {
						t.Errorf("%s: the event's last state has user=%q (%v, %v), want alice", n.name, user, ok, err)
					}
					if e.Copy {
						copies++
						if n == nodes[0] {
							t.Errorf("the primary's event is marked Copy")
						}
					}
				}
			}
			if len(all) != want || copies != want-1 {
				t.Errorf("%d destroyed events (%d on copies), want %d (%d)", len(all), copies, want, want-1)
			}
			if got := logs["n1"].get(); len(got) != 1 || got[0].Copy {
				t.Errorf("primary n1 fired %d events, want 1 not marked Copy", len(got))
			}
		})
	}
}
