package membership

import (
	"fmt"
	"log"
	"log/slog"
	"testing"
	"time"
)

// The lines below are memberlist v0.7.0's own wording (net.go, state.go,
// security.go): if an upgrade changes them, this test says so.
func TestClassifyGossipText(t *testing.T) {
	for _, tc := range []struct {
		text       string
		want       gossipProblem
		wantRemote string
	}{
		{"failed to receive: no installed keys could decrypt the message from=10.0.0.7:51234", problemKeyMismatch, "10.0.0.7:51234"},
		{"Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.7:7947", problemKeyMismatch, "10.0.0.7:7947"},
		{"Decrypt packet failed: payload is too small to decrypt: 3 from=[fe80::1]:7947", problemKeyMismatch, "[fe80::1]:7947"},
		{"failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.7:1", problemKeyMismatch, "10.0.0.7:1"},
		{"failed to receive: remote state is encrypted and encryption is not configured from=10.0.0.7:2", problemKeyMismatch, "10.0.0.7:2"},
		{"failed to join 10.0.0.7:7947: no installed keys could decrypt the message", problemKeyMismatch, ""},
		{`discarding stream with unacceptable label "consul": from=10.0.0.8:5000`, problemNotShoal, "10.0.0.8:5000"},
		{`discarding packet with unacceptable label "": from=10.0.0.8:7946`, problemNotShoal, "10.0.0.8:7946"},
		{`discarding stream with unacceptable label "": from=10.0.0.8:5001`, problemNone, ""},
		{"Received invalid msgType (71) from=10.0.0.9:4000", problemNotShoal, "10.0.0.9:4000"},
		{"failed to join 10.0.0.9:80: received invalid msgType (72), expected pushPullMsg (6) from=10.0.0.9:80", problemNotShoal, "10.0.0.9:80"},
		{"failed to join 10.0.0.9:7946: EOF", problemNotShoal, ""},
		{"failed to join 10.0.0.9:7946: read tcp 10.0.0.1:5->10.0.0.9:7946: read: connection reset by peer", problemNotShoal, ""},
		{"Was able to connect to n2 over TCP but UDP probes failed, network may be misconfigured", problemUDPBlocked, "n2"},
		{"Stream connection from=10.0.0.7:51234", problemNone, ""},
		{"Failed fallback TCP ping: EOF", problemNone, ""},
		{"Failed to read remote state: EOF from=10.0.0.7:3", problemNone, ""},
		{"Suspect n3 has failed, no acks received", problemNone, ""},
		{"failed to receive: no installed keys could decrypt the message from=<unknown address>", problemKeyMismatch, ""},
	} {
		got := classifyGossipText(tc.text)
		if got != tc.want {
			t.Errorf("classifyGossipText(%q) = %d, want %d", tc.text, got, tc.want)
		}
		if got == problemNone {
			continue
		}
		if r := remoteOf(tc.text, got); r != tc.wantRemote {
			t.Errorf("remoteOf(%q) = %q, want %q", tc.text, r, tc.wantRemote)
		}
	}
}

func TestSplitLevel(t *testing.T) {
	for _, tc := range []struct{ line, level, msg string }{
		{"[ERR] memberlist: failed to receive: x", "ERR", "failed to receive: x"},
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5", "DEBUG", "Stream connection from=1.2.3.4:5"},
		{"Err: Could not set the deadline: x", "", "Err: Could not set the deadline: x"},
		{"[", "", "["},
	} {
		level, msg := splitLevel(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("splitLevel(%q) = %q, %q; want %q, %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}

func TestLogBridgeWarnsOncePerPeerHost(t *testing.T) {
	buf := &syncBuffer{}
	b := newLogBridge(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	l := log.New(b, "", 0) // as memberlist uses it

	for port := range 50 { // many connections and packets from one host
		l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.7:%d", 40000+port)
		l.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.7:7947")
	}
	l.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.8:7947")
	l.Printf(`[ERR] memberlist: discarding packet with unacceptable label "": from=10.0.0.7:7946`)
	l.Printf("[DEBUG] memberlist: failed to join 10.0.0.9:7947: no installed keys could decrypt the message")

	check := func(what string, subs []string, want int) {
		t.Helper()
		if n := buf.countLines(subs...); n != want {
			t.Errorf("%s: %d lines with %q, want %d:\n%s", what, n, subs, want, buf.String())
		}
	}
	check("key mismatch from 10.0.0.7", []string{"level=WARN", `reason="cluster key mismatch"`, "remote=10.0.0.7:"}, 1)
	check("key mismatch from 10.0.0.8", []string{"level=WARN", `reason="cluster key mismatch"`, "remote=10.0.0.8:7947"}, 1)
	check("other problem, same host", []string{"level=WARN", "not a shoal cluster", "remote=10.0.0.7:7946"}, 1)
	check("all warnings", []string{"level=WARN"}, 3)
	check("every line at debug", []string{"level=DEBUG", "component=memberlist"}, 103)

	now = now.Add(warnEvery)
	l.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.7:1")
	check("again after warnEvery", []string{"level=WARN", `reason="cluster key mismatch"`, "remote=10.0.0.7:"}, 2)
}

func TestLogBridgeBoundsMemory(t *testing.T) {
	buf := &syncBuffer{}
	b := newLogBridge(slog.New(slog.NewTextHandler(buf, nil)))
	for i := range maxWarned + 100 {
		fmt.Fprintf(b, "[ERR] memberlist: Decrypt packet failed: x from=10.%d.%d.1:7947\n", i/256, i%256)
	}
	if len(b.warned) > maxWarned {
		t.Errorf("%d peers remembered, bound is %d", len(b.warned), maxWarned)
	}
	if n := buf.countLines("level=WARN"); n != maxWarned {
		t.Errorf("%d warnings, want %d (then debug only)", n, maxWarned)
	}
}
