package balancerconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics; a refused file gets errors that name it
// and a line of it; an accepted one gives a config the balancer accepts;
// and the same input gets the same answer.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata/: %v", err)
	}
	files = append(files, "../../docs/balancer.example.toml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("member = [{route = \"a\", url = \"http://a:1\", lbset = 2}]\nmethod = \"hash\"\nhash-key = \"cookie:u\"\n"))
	f.Add([]byte("[[member]]\nroute = \"a\"\n[member.x]\n[[member]]\nurl = 1\n"))
	f.Add([]byte("\"member\" = [[1, {route = \"a\"}]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil {
			if b := c.Balancer; len(b.Members) > 0 || b.FromCluster {
				if err := b.Check(); err != nil {
					t.Fatalf("accepted a config the balancer refuses: %v\n%s", err, data)
				}
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T %v: want Errors", err, err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range es {
			if e.File != "f.toml" || e.Line < 1 || e.Line > lines || e.Msg == "" {
				t.Fatalf("error %q (line %d): want f.toml, a line from 1 to %d and a reason\n%q", e, e.Line, lines, data)
			}
		}
		if _, err2 := Parse("f.toml", data); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("second parse: %v, first %v", err2, err)
		}
	})
}
