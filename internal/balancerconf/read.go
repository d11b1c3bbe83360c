package balancerconf

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decoder holds what the reading of one document needs: its name, the
// line of each key, and the errors found so far.
type decoder struct {
	file  string
	index *lineIndex
	errs  Errors
}

func (d *decoder) errorf(line int, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// table reads the keys of one TOML table into typed values, and reports
// the keys nobody asked for. Its getters return false, having recorded
// an error, when the key is there with the wrong type, and false without
// an error when it is absent.
type table struct {
	d    *decoder
	path string // in the line index
	// what names the table in messages ("member \"n1\""); "" for the
	// document's top level.
	what  string
	m     map[string]any
	asked []string // the keys the reader knows, for unknown's hints
}

func (t *table) line(key string) int { return t.d.index.line(keyPath(t.path, key)) }

// errorf records an error at key's line, prefixed with what the table is.
func (t *table) errorf(key string, format string, args ...any) {
	t.errorAt(t.line(key), format, args...)
}

func (t *table) errorAt(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if t.what != "" {
		msg = t.what + ": " + msg
	}
	t.d.errorf(line, "%s", msg)
}

func (t *table) get(key string) (any, bool) {
	t.asked = append(t.asked, key)
	v, ok := t.m[key]
	return v, ok
}

// has reports whether the table sets key.
func (t *table) has(key string) bool { _, ok := t.m[key]; return ok }

func (t *table) wrongType(key string, v any, want string) bool {
	t.errorf(key, "%s: want %s, not %s", key, want, typeName(v))
	return false
}

func (t *table) str(key string, dst *string) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		return t.wrongType(key, v, "a string")
	}
	*dst = s
	return true
}

func (t *table) boolean(key string, dst *bool) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		return t.wrongType(key, v, "true or false")
	}
	*dst = b
	return true
}

// integer reads an int; want says what kind (for the type error).
func (t *table) integer(key string, dst *int, want string) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	n, ok := v.(int64)
	if !ok {
		return t.wrongType(key, v, want)
	}
	if int64(int(n)) != n {
		t.errorf(key, "%s %d: out of range", key, n)
		return false
	}
	*dst = int(n)
	return true
}

// number reads an integer or a float.
func (t *table) number(key string, dst *float64, want string) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	switch n := v.(type) {
	case int64:
		*dst = float64(n)
	case float64:
		*dst = n
	default:
		return t.wrongType(key, v, want)
	}
	return true
}

// duration reads a string such as "60s" (Go's time.ParseDuration).
func (t *table) duration(key string, dst *time.Duration) bool {
	const want = `a duration such as "60s", "1m30s" or "500ms"`
	v, ok := t.get(key)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		return t.wrongType(key, v, want)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.errorf(key, "%s %q: want %s", key, s, want)
		return false
	}
	*dst = d
	return true
}

// size reads a byte count: an integer, or a string such as "32MiB".
func (t *table) size(key string, dst *int64) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	switch s := v.(type) {
	case int64:
		if s < 0 {
			t.errorf(key, "%s %d is negative", key, s)
			return false
		}
		*dst = s
	case string:
		n, err := ParseSize(s)
		if err != nil {
			t.errorf(key, "%s %q: %v", key, s, err)
			return false
		}
		*dst = n
	default:
		return t.wrongType(key, v, `a size: bytes, or a string such as "32MiB"`)
	}
	return true
}

// array reads an array, calling elem for each element with its line;
// elem reports its own errors and returns false for a bad element.
func (t *table) array(key string, want string, elem func(i int, v any, line int) bool) bool {
	v, ok := t.get(key)
	if !ok {
		return false
	}
	a, ok := v.([]any)
	if !ok {
		return t.wrongType(key, v, want)
	}
	good := true
	for i, e := range a {
		if !elem(i, e, t.d.index.line(elemPath(keyPath(t.path, key), i))) {
			good = false
		}
	}
	return good
}

// tables reads an array of tables ([[key]] blocks, or an array of
// inline tables); what names the element i in messages until a better
// name (its route) is known.
func (t *table) tables(key string) ([]*table, bool) {
	v, ok := t.get(key)
	if !ok {
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		return nil, t.wrongType(key, v, "[["+key+"]] tables")
	}
	var out []*table
	good := true
	for i, e := range a {
		p := elemPath(keyPath(t.path, key), i)
		m, ok := e.(map[string]any)
		if !ok {
			t.errorAt(t.d.index.line(p), "%s #%d: want a table, not %s", key, i+1, typeName(e))
			good = false
			continue
		}
		out = append(out, &table{d: t.d, path: p, what: fmt.Sprintf("%s #%d", key, i+1), m: m})
	}
	return out, good
}

// unknown reports every key of the table that no getter asked for, with
// the closest known key as a hint; a misspelt key is an error, never
// silently ignored. hint, if not "", is added to each.
func (t *table) unknown(hint string) {
	var keys []string
	for k := range t.m {
		if !slices.Contains(t.asked, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		msg := fmt.Sprintf("unknown key %q", k)
		if near := closest(k, t.asked); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		} else if hint != "" {
			msg += " (" + hint + ")"
		}
		t.errorf(k, "%s", msg)
	}
}

// closest returns the known key nearest to k if it is near enough to be
// a typo of it (an edit distance of at most a third of its length).
func closest(k string, known []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range known {
		if d := editDistance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(1, len(best)/3) {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and
// b, in bytes: insertions, deletions, substitutions and transpositions of
// two neighbours ("retyr" for "retry") count one each. Keys are short;
// inputs past 64 bytes are not a typo of any.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			sub := d[i-1][j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			d[i][j] = min(sub, d[i-1][j]+1, d[i][j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// typeName says what a decoded TOML value is, for messages.
func typeName(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer (" + strconv.FormatInt(v, 10) + ")"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// sizeUnits are the suffixes ParseSize accepts, largest first.
var sizeUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// ParseSize parses a byte count as --max-body takes it: a number,
// optionally followed by B, KiB, MiB or GiB.
func ParseSize(s string) (int64, error) {
	unit := int64(1)
	num := s
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, unit = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("want a size in bytes, or with KiB, MiB or GiB (such as 32MiB)")
	}
	return n * unit, nil
}

// FormatSize writes n as ParseSize reads it, in the largest unit that
// divides it.
func FormatSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%u.n == 0 {
			if u.n == 1 {
				return strconv.FormatInt(n, 10)
			}
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return "0"
}
