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
