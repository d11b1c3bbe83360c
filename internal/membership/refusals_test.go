package membership

import (
	"log"
	"log/slog"
	"testing"
	"time"
)

// TestLogBridgeRecordsRefusals: warned once, but every refusal counted,
// by host and reason.
func TestLogBridgeRecordsRefusals(t *testing.T) {
	b := newLogBridge(slog.New(slog.DiscardHandler))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b.now = func() time.Time { now = now.Add(time.Second); return now }
	l := log.New(b, "", 0)
	for port := range 5 {
		l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.7:%d", 40000+port)
	}
	l.Printf(`[ERR] memberlist: discarding packet with unacceptable label "x": from=10.0.0.8:7946`)
	l.Printf("[DEBUG] memberlist: failed to join 10.0.0.9:7947: no installed keys could decrypt the message") // our own join: no peer

	got := b.list()
	if len(got) != 2 {
		t.Fatalf("refusals %+v, want 2", got)
	}
	if r := got[0]; r.Remote != "10.0.0.7" || r.Reason != "cluster key mismatch" || r.Count != 5 || !r.Last.After(r.First) {
		t.Errorf("first refusal %+v, want 5 key mismatches from 10.0.0.7", r)
	}
	if r := got[1]; r.Remote != "10.0.0.8" || r.Reason != problemNotShoal.reason() || r.Count != 1 {
		t.Errorf("second refusal %+v, want one label mismatch from 10.0.0.8", r)
	}
}

// TestStateChangeLoggedOnce: a member's state change is one info line on
// each other member ("member updated"), not a debug line.
func TestStateChangeLoggedOnce(t *testing.T) {
	ms := startCluster(t, 2, mustKey(t))
	if err := ms[0].SetState(StateReady); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "n2 logs n1 ready", func() bool {
		return ms[1].logs.countLines("level=INFO", `msg="member updated"`, "name=n1", "state=ready") == 1
	})
	if n := ms[1].logs.countLines(`msg="member updated"`, "name=n1", "state=ready"); n != 1 {
		t.Errorf("n2 logged n1 turning ready %d times, want once:\n%s", n, ms[1].logs)
	}
}
