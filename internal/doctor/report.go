package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for people: per check, its verdict and
// evidence on one line, and for a WARN or a FAIL what to do on the next.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Check))
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", res.Level, width, res.Check, oneLine(res.Evidence))
		if res.Action != "" && res.Level != Pass {
			fmt.Fprintf(&b, "      %-*s  → %s\n", width, "", oneLine(res.Action))
		}
	}
	pass, warn, fail := r.counts()
	fmt.Fprintf(&b, "\n%d passed, %d warnings, %d failed\n", pass, warn, fail)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report for scripts.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r Report) counts() (pass, warn, fail int) {
	for _, res := range r.Results {
		switch res.Level {
		case Pass:
			pass++
		case Warn:
			warn++
		case Fail:
			fail++
		}
	}
	return
}

// oneLine keeps a text from outside (a node's error) on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
