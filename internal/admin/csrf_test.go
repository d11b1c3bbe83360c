package admin

import (
	"strings"
	"testing"
	"time"
)

func TestNonce(t *testing.T) {
	k := newKeys()
	now := time.Now()
	n := k.issueNonce("n1", now)
	if n == k.issueNonce("n1", now) {
		t.Error("two nonces for one form are equal: want a random part")
	}
	if !k.validNonce(n, "n1", now) || !k.validNonce(n, "n1", now.Add(nonceTTL-time.Second)) {
		t.Fatal("a fresh nonce is not valid")
	}
	for name, ok := range map[string]bool{
		"expired":         k.validNonce(n, "n1", now.Add(nonceTTL+time.Second)),
		"other route":     k.validNonce(n, "n2", now),
		"route prefix":    k.validNonce(n, "n", now),
		"other keys":      newKeys().validNonce(n, "n1", now),
		"truncated":       k.validNonce(n[:len(n)-1], "n1", now),
		"extended":        k.validNonce(n+"A", "n1", now),
		"padded":          k.validNonce(n+"=", "n1", now),
		"empty":           k.validNonce("", "n1", now),
		"changed expiry":  k.validNonce(flipChar(n, 5), "n1", now),
		"changed random":  k.validNonce(flipChar(n, 15), "n1", now),
		"changed MAC":     k.validNonce(flipChar(n, 60), "n1", now),
		"standard base64": k.validNonce(strings.NewReplacer("-", "+", "_", "/").Replace(n)+"x", "n1", now),
		"not base64":      k.validNonce(strings.Repeat("!", len(n)), "n1", now),
	} {
		if ok {
			t.Errorf("%s nonce accepted", name)
		}
	}
}

func TestFlash(t *testing.T) {
	k := newKeys()
	for _, tt := range []struct {
		msg   string
		isErr bool
	}{{"n1: disabled", false}, {"n1: weight \"x\": want a number", true}, {"", false}} {
		msg, isErr := k.openFlash(k.signFlash(tt.msg, tt.isErr))
		if msg != tt.msg || isErr != tt.isErr {
			t.Errorf("flash %q/%v came back as %q/%v", tt.msg, tt.isErr, msg, isErr)
		}
	}
	signed := k.signFlash("n1: enabled", false)
	for _, p := range []string{"", ".", "bjE.", signed + "A", strings.Replace(signed, ".", "", 1), newKeys().signFlash("n1: enabled", false)} {
		if msg, _ := k.openFlash(p); msg != "" {
			t.Errorf("openFlash(%q) = %q, want nothing", p, msg)
		}
	}
}
