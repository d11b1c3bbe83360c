package admin

import (
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestParseAction(t *testing.T) {
	for _, tt := range []struct {
		ctype, body string
		want        action
	}{
		{formType, "action=enable", action{Verb: "enable"}},
		{formType, "action=disable&nonce=abc", action{Verb: "disable", Nonce: "abc"}},
		{formType, "nonce=n&action=weight&weight=+2.5", action{Verb: "weight", Weight: 2.5, Nonce: "n"}},
		{formType + "; charset=UTF-8", "action=drain", action{Verb: "drain"}},
		{jsonType, `{"action":"weight","weight":1e2}`, action{Verb: "weight", Weight: 100}},
		{jsonType, ` {"weight": 1, "action": "weight", "nonce": "x"} `, action{Verb: "weight", Weight: 1, Nonce: "x"}},
		{jsonType, `{"action":"enable","weight":null}`, action{Verb: "enable"}},
		{"Application/JSON", `{"action":"drain"}`, action{Verb: "drain"}},
	} {
		got, err := parseAction(tt.ctype, []byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("parseAction(%q, %q) = %+v, %v; want %+v", tt.ctype, tt.body, got, err, tt.want)
		}
	}
	// An invalid action still gives its nonce, so that the nonce is
	// checked first.
	if a, err := parseAction(formType, []byte("action=reboot&nonce=N")); err == nil || a.Nonce != "N" {
		t.Errorf("invalid action: %+v, %v; want an error and the nonce", a, err)
	}
}

func FuzzParseAction(f *testing.F) {
	for _, seed := range []struct{ ctype, body string }{
		{formType, "action=enable"},
		{formType, "action=weight&weight=2.5&nonce=abc"},
		{formType, "action=weight&weight=1e2"},
		{formType, "action=%zz"},
		{formType, "action=drain&action=drain"},
		{formType, "weight=NaN&action=weight"},
		{jsonType, `{"action":"disable"}`},
		{jsonType, `{"action":"weight","weight":-0}`},
		{jsonType, `{"action":"weight","weight":"7"}`},
		{jsonType, `{"action":"weight","weight":1e999}`},
		{jsonType, `{"action":"enable"} {}`},
		{jsonType, `[]`},
		{"multipart/form-data; boundary=x", "--x--"},
		{"", ""},
	} {
		f.Add(seed.ctype, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		a, err := parseAction(ctype, body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		switch a.Verb {
		case actionEnable, actionDisable, actionDrain:
			if a.Weight != 0 {
				t.Fatalf("%s with weight %v", a.Verb, a.Weight)
			}
		case actionWeight:
			if math.IsNaN(a.Weight) || a.Weight < 1 || a.Weight > 100 {
				t.Fatalf("weight %v accepted", a.Weight)
			}
		default:
			t.Fatalf("action %q accepted", a.Verb)
		}
		// What parses re-encodes to the same action, in both encodings.
		v := url.Values{"action": {a.Verb}}
		j := map[string]any{"action": a.Verb}
		if a.Nonce != "" {
			v.Set("nonce", a.Nonce)
			j["nonce"] = a.Nonce
		}
		if a.Verb == actionWeight {
			v.Set("weight", strconv.FormatFloat(a.Weight, 'g', -1, 64))
			j["weight"] = a.Weight
		}
		if b, err := parseAction(formType, []byte(v.Encode())); err != nil || b != a {
			t.Fatalf("form round trip of %+v: %+v, %v", a, b, err)
		}
		if !utf8.ValidString(a.Nonce) { // JSON strings are UTF-8: no round trip
			return
		}
		jb, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := parseAction(jsonType, jb); err != nil || b != a {
			t.Fatalf("JSON round trip of %+v: %+v, %v", a, b, err)
		}
	})
}
