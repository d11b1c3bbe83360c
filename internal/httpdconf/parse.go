package httpdconf

import (
	"bytes"
	"fmt"
	"strings"
)

// Limits on what Parse reads. A config file is a few KiB; these bound
// the work a hostile or corrupt file can cause.
const (
	// MaxFileSize is the largest file Parse reads.
	MaxFileSize = 1 << 20
	// MaxLineLength bounds one logical line (continuations joined).
	MaxLineLength = 64 << 10
	// MaxDepth bounds the nesting of sections (<Proxy>, <IfModule>...).
	MaxDepth = 32
)

// File is a parsed config file: its directives in order, sections with
// the directives they hold.
type File struct {
	Name       string // as given to Parse: what messages call the file
	Directives []*Directive
}

// Directive is one directive, or one section (<Name args> ... </Name>).
type Directive struct {
	// Name is the directive's name as written ("BalancerMember",
	// "Proxy" for a <Proxy> section). Apache's names are
	// case-insensitive: compare with strings.EqualFold or Is.
	Name string
	// Args are the arguments, unquoted: "a b" and 'a b' are one
	// argument, as Apache reads them.
	Args []string
	// Line is the line it starts on, from 1.
	Line int
	// Section is set for a <Name ...> section; Block holds its
	// directives.
	Section bool
	Block   []*Directive
}

// Is reports whether the directive is called name, ignoring case.
func (d *Directive) Is(name string) bool { return strings.EqualFold(d.Name, name) }

// String writes the directive back as one line (sections as their
// opening tag), quoting the arguments that need it, for messages.
func (d *Directive) String() string {
	var b strings.Builder
	if d.Section {
		b.WriteByte('<')
	}
	b.WriteString(d.Name)
	for _, a := range d.Args {
		b.WriteByte(' ')
		b.WriteString(quoteArg(a))
	}
	if d.Section {
		b.WriteByte('>')
	}
	return b.String()
}

// quoteArg quotes an argument that has spaces or quotes, or is empty.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"'") {
		return a
	}
	return `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
}

// Error is a file Parse refuses: its name, the line and the reason.
type Error struct {
	File string
	Line int // from 1; 0 for errors about the whole file
	Msg  string
}

// Error returns "FILE:LINE: MSG", the form editors jump to.
func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads an Apache httpd config file's content as httpd does:
// one directive a line, a trailing backslash continuing a line, '#'
// starting a comment line, arguments split at spaces unless quoted, and
// <Section args> ... </Section> blocks, which must nest. name is what
// errors call the file. It follows no Include and resolves no ${VAR}:
// that is the caller's choice.
//
// A file it cannot read as Apache would is refused with an *Error naming
// the line: a NUL byte, a line longer than MaxLineLength, an unterminated
// quote, a section tag without its '>', a section closed by another
// name's tag or never closed, nesting deeper than MaxDepth, a file
// larger than MaxFileSize.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d KiB: not an httpd config file", MaxFileSize>>10)}
	}
	p := &parser{file: name}
	f := &File{Name: name}
	// open is the stack of sections being read; its top's Block gets the
	// next directive.
	var open []*Directive
	add := func(d *Directive) {
		if len(open) == 0 {
			f.Directives = append(f.Directives, d)
		} else {
			top := open[len(open)-1]
			top.Block = append(top.Block, d)
		}
	}
	lines, err := p.lines(data)
	if err != nil {
		return nil, err
	}
	for _, ll := range lines {
		line, text := ll.n, ll.text
		words, err := p.words(line, text)
		if err != nil {
			return nil, err
		}
		if len(words) == 0 {
			continue
		}
		first := words[0]
		switch {
		case strings.HasPrefix(first, "</"):
			tag := strings.TrimPrefix(first, "</")
			if len(words) != 1 || !strings.HasSuffix(tag, ">") {
				return nil, p.errorf(line, "section end %q: want </Name>", text)
			}
			tag = strings.TrimSuffix(tag, ">")
			if len(open) == 0 {
				return nil, p.errorf(line, "</%s> without a <%s> section to close", tag, tag)
			}
			top := open[len(open)-1]
			if !top.Is(tag) {
				return nil, p.errorf(line, "</%s> closes <%s> opened on line %d", tag, top.Name, top.Line)
			}
			open = open[:len(open)-1]
		case strings.HasPrefix(first, "<"):
			// <Name args...>: the '>' ends the last word (or is a word of
			// its own, as in <Proxy "balancer://x" >).
			last := words[len(words)-1]
			if !strings.HasSuffix(last, ">") {
				return nil, p.errorf(line, "section %q: its opening tag has no closing '>'", text)
			}
			words[len(words)-1] = strings.TrimSuffix(last, ">")
			if words[len(words)-1] == "" && len(words) > 1 {
				words = words[:len(words)-1]
			}
			nameTag := strings.TrimPrefix(words[0], "<")
			if !validName(nameTag) {
				return nil, p.errorf(line, "section %q: %q is not a section name", text, nameTag)
			}
			if len(open) == MaxDepth {
				return nil, p.errorf(line, "sections nested more than %d deep", MaxDepth)
			}
			d := &Directive{Name: nameTag, Args: words[1:], Line: line, Section: true}
			add(d)
			open = append(open, d)
		default:
			if !validName(first) {
				return nil, p.errorf(line, "%q is not a directive name", first)
			}
			add(&Directive{Name: first, Args: words[1:], Line: line})
		}
	}
	if len(open) > 0 {
		top := open[len(open)-1]
		return nil, p.errorf(top.Line, "<%s> is not closed (no </%s> before the end of the file)", top.Name, top.Name)
	}
	return f, nil
}

// validName reports whether s can name a directive or section: Apache's
// names are letters, digits and '_' (module directives), and a few
// third-party ones use '-' or '.'.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

type parser struct {
	file string
}

func (p *parser) errorf(line int, format string, args ...any) *Error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// logicalLine is a line of directive: continuations joined, trimmed.
type logicalLine struct {
	n    int // the line it starts on, from 1
	text string
}

// lines returns the logical lines of data: with continuations joined (a
// line ending in a backslash goes on with the next one), trimmed of
// surrounding blanks, without the comment lines and the blank ones.
func (p *parser) lines(data []byte) ([]logicalLine, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, p.errorf(1+bytes.Count(data[:i], []byte("\n")), "a NUL byte: not a text file")
	}
	var (
		out   []logicalLine
		buf   strings.Builder
		start int // the logical line's first line, 0 when buf is empty
	)
	for n := 1; len(data) > 0; n++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if start == 0 {
			start = n
		}
		if buf.Len()+len(raw) > MaxLineLength {
			return nil, p.errorf(start, "a line longer than %d KiB", MaxLineLength>>10)
		}
		if bytes.HasSuffix(raw, []byte(`\`)) && len(data) > 0 {
			buf.Write(raw[:len(raw)-1])
			continue
		}
		buf.Write(raw)
		text := strings.TrimSpace(buf.String())
		first := start
		buf.Reset()
		start = 0
		if text == "" || text[0] == '#' {
			continue
		}
		out = append(out, logicalLine{n: first, text: text})
	}
	return out, nil
}

// words splits a logical line into its words as Apache's
// ap_getword_conf does: at blanks, except inside a word that starts with
// a quote (" or '), which goes to the same quote and may hold the quote
// escaped with a backslash. A quote inside a word is a plain character.
func (p *parser) words(line int, text string) ([]string, error) {
	var words []string
	for i := 0; i < len(text); {
		c := text[i]
		if isBlank(c) {
			i++
			continue
		}
		if c == '"' || c == '\'' {
			var w strings.Builder
			j := i + 1
			for ; j < len(text) && text[j] != c; j++ {
				if text[j] == '\\' && j+1 < len(text) && text[j+1] == c {
					j++
				}
				w.WriteByte(text[j])
			}
			if j == len(text) {
				return nil, p.errorf(line, "unterminated %c quote in %q", c, text)
			}
			// A section tag's '>' right after the quote (<Proxy "x">)
			// is read as a word of its own, which Parse drops.
			words = append(words, w.String())
			i = j + 1
			continue
		}
		j := i
		for j < len(text) && !isBlank(text[j]) {
			j++
		}
		words = append(words, text[i:j])
		i = j
	}
	return words, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }
