package balancerconf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one thing wrong in a config file.
type Error struct {
	File string // the name given to Parse or Load
	// Line is where it is, from 1. It is 0 only for errors about the
	// file as a whole (it cannot be read, or is too large).
	Line int
	Msg  string // the reason, without the file and line
}

// Error returns "FILE:LINE: MSG" (or "FILE: MSG" without a line), the
// form editors and compilers use, so that the line can be jumped to.
func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// maxErrors bounds the errors one file gets: past a few, the rest are
// usually consequences of the first.
const maxErrors = 20

// Errors is the error Parse and Load return for a file they refuse: every
// error found, in the order of their lines, at least one. errors.As finds
// the first *Error in it.
type Errors []*Error

// Error returns the errors one per line.
func (es Errors) Error() string { return es.join("\n") }

// OneLine returns the errors on one line, separated by "; ", for a log
// line.
func (es Errors) OneLine() string { return es.join("; ") }

func (es Errors) join(sep string) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteString(sep)
		}
		if i == maxErrors {
			fmt.Fprintf(&b, "%s: %d more errors", e.File, len(es)-maxErrors)
			break
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors, so that errors.As finds the first *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sorted returns the errors by line, keeping the order of those on one
// line (the order of the checks).
func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return es
}
