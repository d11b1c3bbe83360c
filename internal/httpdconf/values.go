package httpdconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// param is one key=value parameter of a ProxyPass, ProxySet or
// BalancerMember line.
type param struct {
	key  string // lower case: Apache's keys are case-insensitive
	val  string
	raw  string // as written, for messages
	line int
}

// parseParams splits key=value arguments. An argument without '=' is
// returned in bad: Apache refuses it ("Parameter must be in the form
// 'key=value'").
func parseParams(args []string, line int) (ps []param, bad []string) {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			bad = append(bad, a)
			continue
		}
		ps = append(ps, param{key: strings.ToLower(k), val: v, raw: a, line: line})
	}
	return ps, bad
}

// onOff parses Apache's On and Off, in any case.
func onOff(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, errors.New("want On or Off")
}

// maxSeconds bounds the durations read: more than a year is a typo.
const maxSeconds = 366 * 24 * 3600

// seconds parses a time as Apache's proxy parameters take it: a number of
// seconds, or a number with a unit of ap_timeout_parameter_parse (ms, s,
// mi, h).
func seconds(v string) (time.Duration, error) {
	num, unit := v, time.Second
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"mi", time.Minute}, {"s", time.Second}, {"h", time.Hour}} {
		if strings.HasSuffix(strings.ToLower(v), u.suffix) {
			num, unit = v[:len(v)-len(u.suffix)], u.d
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > maxSeconds*1000 || time.Duration(n)*unit > maxSeconds*time.Second {
		return 0, errors.New("want a number of seconds (or with ms, s, mi or h)")
	}
	return time.Duration(n) * unit, nil
}

// formatDuration writes d as time.ParseDuration reads it, in whole
// seconds ("60s") or milliseconds ("500ms") rather than "1m0s".
func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// integer parses a non-negative integer up to max.
func integer(v string, max int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("want a number from 0 to %d", max)
	}
	return n, nil
}

// statusList parses failonstatus: HTTP status codes separated by commas
// (Apache also takes spaces).
func statusList(v string) ([]int, error) {
	var codes []int
	for f := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 599 {
			return nil, fmt.Errorf("%q is not an HTTP status code (100-599)", f)
		}
		codes = append(codes, n)
	}
	if len(codes) == 0 {
		return nil, errors.New("want HTTP status codes, comma-separated")
	}
	return codes, nil
}

// workerStatus is what a BalancerMember's status=... sets.
type workerStatus struct {
	disabled, stopped, ignoreErrors, standby, spare, inError, drain bool
}

// parseStatus parses status flags as Apache's ap_proxy_set_wstatus
// does: letters, each set, or cleared after a '-' (a '+' sets again).
func parseStatus(v string) (workerStatus, error) {
	var s workerStatus
	if v == "" {
		return s, errors.New("want flags such as +H")
	}
	set := true
	for _, c := range strings.ToUpper(v) {
		switch c {
		case '+':
			set = true
		case '-':
			set = false
		case 'D':
			s.disabled = set
		case 'S':
			s.stopped = set
		case 'I':
			s.ignoreErrors = set
		case 'H':
			s.standby = set
		case 'R':
			s.spare = set
		case 'E':
			s.inError = set
		case 'N':
			s.drain = set
		default:
			return s, fmt.Errorf("unknown flag %q: want D, S, I, H, R, E or N, each after + or -", c)
		}
	}
	return s, nil
}
