package httpdconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/shoal-go/shoal/internal/balancerconf"
)

// FuzzParse: Parse never panics, and refuses a file with an *Error that
// names it and one of its lines; Translate never panics on what Parse
// accepts, its problems name lines of the file, its config is TOML that
// balancerconf accepts whenever everything was translated, and the same
// input gets the same answer. The corpus is testdata/fuzz/FuzzParse and
// the .conf files of testdata.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.conf")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata/: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		file, err := Parse("f.conf", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "f.conf" || e.Line < 0 || e.Line > lines || e.Msg == "" ||
				e.Line == 0 && len(data) <= MaxFileSize {
				t.Fatalf("error %v: want an *Error naming f.conf, a line from 1 to %d and a reason", err, lines)
			}
			return
		}
		r := Translate(file)
		for _, p := range r.Problems {
			if p.internal {
				t.Fatalf("balancerconf refuses the translation: %s\n%s\ninput:\n%q", p, r.Config, data)
			}
			if p.File != "f.conf" || p.Line < 0 || p.Line > lines || p.Why == "" {
				t.Fatalf("problem %q: want f.conf, a line from 0 to %d and a reason", p, lines)
			}
		}
		if r.Config != nil {
			var doc map[string]any
			if err := toml.Unmarshal(r.Config, &doc); err != nil {
				t.Fatalf("the translation is not TOML: %v\n%s", err, r.Config)
			}
			if r.Complete() {
				if _, err := balancerconf.Parse("out.toml", r.Config); err != nil {
					t.Fatalf("complete, but balancerconf refuses it: %v\n%s", err, r.Config)
				}
			}
		}
		again := Translate(file)
		if !bytes.Equal(again.Config, r.Config) || len(again.Problems) != len(r.Problems) {
			t.Fatalf("a second translation differs:\n%s\n%s", r.Config, again.Config)
		}
	})
}
