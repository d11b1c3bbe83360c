package session

import (
	"errors"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	long := strings.Repeat("a", maxBaseLen)
	tests := []struct {
		in        string
		base, rte string
		ok        bool
	}{
		{"abcdefghijklmnopqrstuvwx.n1", "abcdefghijklmnopqrstuvwx", "n1", true},
		{"abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx", "", true},
		{"0123456789ABCDEF0123456789ABCDEF.tomcat1", "0123456789ABCDEF0123456789ABCDEF", "tomcat1", true}, // Tomcat's hex ids
		{"abc-_defghijklmnop.route_with-dash", "abc-_defghijklmnop", "route_with-dash", true},
		{long + ".r", long, "r", true},
		{long + "a.r", "", "", false},                     // base too long
		{"short.n1", "", "", false},                       // base too short
		{"abcdefghijklmnopqrstuvwx.", "", "", false},      // empty route
		{"abcdefghijklmnopqrstuvwx.n1.n2", "", "", false}, // '.' in route: route is after the first '.'
		{"abcdefghijklmnopqrstuvwx.n 1", "", "", false},   // space in route
		{"abcdefghijklmnopqrstuvw=.n1", "", "", false},    // '=' in base
		{"abcdefghijklmnopqrstuvwx." + strings.Repeat("r", 65), "", "", false},
		{"", "", "", false},
		{".n1", "", "", false},
		{"абвгдежзийклмнопрстуф.n1", "", "", false}, // non-ASCII
	}
	for _, tc := range tests {
		id, err := ParseID(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseID(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrMalformedID) {
				t.Errorf("ParseID(%q) err = %v, want ErrMalformedID", tc.in, err)
			}
			continue
		}
		if id.Base != tc.base || id.Route != tc.rte {
			t.Errorf("ParseID(%q) = %+v, want base %q route %q", tc.in, id, tc.base, tc.rte)
		}
		if id.String() != tc.in {
			t.Errorf("ParseID(%q).String() = %q", tc.in, id.String())
		}
	}
}

func TestNewBase(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		b := NewBase()
		if len(b) != BaseLen {
			t.Fatalf("len(%q) = %d, want %d", b, len(b), BaseLen)
		}
		if strings.Contains(b, ".") || !validChars(b) {
			t.Fatalf("base %q has a character outside [A-Za-z0-9_-]", b)
		}
		if seen[b] {
			t.Fatalf("NewBase repeated %q", b)
		}
		seen[b] = true
		if _, err := ParseID(b + ".n1"); err != nil {
			t.Fatalf("a generated id does not parse: %v", err)
		}
	}
}

func TestValidateRoute(t *testing.T) {
	for _, ok := range []string{"n1", "tomcat1", "A_b-9", strings.Repeat("x", 64)} {
		if err := ValidateRoute(ok); err != nil {
			t.Errorf("ValidateRoute(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "ä", strings.Repeat("x", 65), "a/b"} {
		if err := ValidateRoute(bad); err == nil {
			t.Errorf("ValidateRoute(%q) = nil, want an error", bad)
		}
	}
}

func TestSameBase(t *testing.T) {
	if !sameBase("abc", "abc") || sameBase("abc", "abd") || sameBase("abc", "ab") {
		t.Fatal("sameBase is wrong")
	}
}
