package balancerconf

import (
	"sort"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Paths name a place in the document, for lineIndex: a key is
// ."NAME" (quoted, so that keys holding dots, brackets or quotes cannot
// collide), an element of an array or array of tables is [N]:
// ."member"[1]."url".
func keyPath(parent, key string) string    { return parent + "." + strconv.Quote(key) }
func elemPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// lineIndex maps the path of each key, table and array element of a
// document to its line. It walks go-toml's parser, which keeps the byte
// range of every key, over a document that go-toml's decoder has already
// accepted, so it need not check anything TOML forbids.
type lineIndex struct {
	lines      map[string]int
	lineStarts []int // byte offset of each line's start
	// tables counts the elements of each array of tables so far, by the
	// path of the array.
	tables map[string]int
}

func newLineIndex(data []byte) *lineIndex {
	x := &lineIndex{lines: map[string]int{}, lineStarts: []int{0}, tables: map[string]int{}}
	for i, c := range data {
		if c == '\n' {
			x.lineStarts = append(x.lineStarts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	cur := "" // the path of the table the key/values go to
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys := keyNodes(e)
			if len(keys) == 0 {
				continue
			}
			path := ""
			for i, k := range keys {
				path = keyPath(path, string(k.Data))
				if i == len(keys)-1 {
					break
				}
				// [a.b] defines a as well, when nothing did before.
				x.set(path, x.lineOf(k))
				// [a.b] or [[a.b]] under an array of tables [[a]]
				// means a's last element.
				if n := x.tables[path]; n > 0 {
					path = elemPath(path, n-1)
				}
			}
			line := x.lineOf(keys[len(keys)-1])
			if e.Kind == unstable.ArrayTable {
				n := x.tables[path]
				x.tables[path] = n + 1
				x.set(path, line)
				path = elemPath(path, n)
			}
			x.set(path, line)
			cur = path
		case unstable.KeyValue:
			x.keyValue(cur, e)
		}
	}
	return x
}

// keyValue indexes a key/value under the table at path, and what its
// value holds.
func (x *lineIndex) keyValue(table string, kv *unstable.Node) {
	path := table
	line := 0
	for it := kv.Key(); it.Next(); {
		path = keyPath(path, string(it.Node().Data))
		line = x.lineOf(it.Node())
		x.set(path, line)
	}
	x.value(path, line, kv.Value())
}

// value indexes the elements of an array and the keys of an inline
// table at path; line is where the value's key is, for the elements
// whose own position the parser does not keep.
func (x *lineIndex) value(path string, line int, v *unstable.Node) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			p := elemPath(path, i)
			l := line
			if c.Raw.Length > 0 {
				l = x.lineOf(c)
			}
			x.set(p, l)
			x.value(p, l, c)
			i++
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				x.keyValue(path, c)
			}
		}
	}
}

// set records the first line a path appears on: an array of tables
// points at its first element.
func (x *lineIndex) set(path string, line int) {
	if _, ok := x.lines[path]; !ok {
		x.lines[path] = line
	}
}

// line returns the line of path, or 0 if the document does not have it.
func (x *lineIndex) line(path string) int { return x.lines[path] }

func (x *lineIndex) lineOf(n *unstable.Node) int {
	off := int(n.Raw.Offset)
	return sort.Search(len(x.lineStarts), func(i int) bool { return x.lineStarts[i] > off })
}

func keyNodes(n *unstable.Node) []*unstable.Node {
	var keys []*unstable.Node
	for it := n.Key(); it.Next(); {
		keys = append(keys, it.Node())
	}
	return keys
}
