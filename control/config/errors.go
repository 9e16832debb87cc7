package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sentinel errors, for callers and tests that check what kind of problem a
// configuration has (errors.Is works on the joined error Parse returns).
var (
	ErrSyntax           = errors.New("not valid YAML")
	ErrUnknownField     = errors.New("unknown field")
	ErrInvalid          = errors.New("invalid value")
	ErrMissing          = errors.New("missing field")
	ErrDuplicate        = errors.New("duplicate")
	ErrUnknownAlgorithm = errors.New("unknown algorithm")
	ErrKeyLength        = errors.New("wrong key length")
	ErrUnknownSA        = errors.New("unknown sa")
	ErrFamilyMismatch   = errors.New("address family mismatch")
	ErrConflict         = errors.New("conflicting fields")
)

// Error is one problem in a configuration file, located as precisely as the
// file allows: the file, the line, the SA or policy, and the field.
type Error struct {
	File    string
	Line    int    // 0 when unknown
	Section string // "sa", "policy" or "" for the top level
	Name    string // the SA's or policy's name, or "#3" for an unnamed entry
	Field   string // e.g. "aead.key"
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Section != "" {
		fmt.Fprintf(&b, "%s %s: ", e.Section, e.Name)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// positions remembers where things are in the file, so that errors found
// after decoding (duplicates, key lengths, references) can name a line.
type positions struct {
	top       map[string]int            // top-level path ("interfaces.wire") → line
	topValues map[spot]valueAt          // where a top-level value is written → its path and text
	items     []item                    // every entry of sas and policies, in file order
	byKey     map[itemKey]int           // (section, index) → position in items
	broken    map[itemKey]*brokenFields // per entry (section "" for the top level): values that did not decode
}

// brokenFields are the fields of one entry whose values did not decode (typeError), by path, or by
// line where the field is not known.
type brokenFields struct {
	fields map[string]bool
	lines  map[int]bool
}

// spot is a place in the file: line and column, from 1.
type spot struct{ line, col int }

// itemKey names an entry: its section and its position in that list. Errors
// are located through it and through line numbers, both without a scan, so a
// file with thousands of bad entries is reported in linear time.
type itemKey struct {
	section string
	index   int
}

type item struct {
	section string         // "sa" or "policy"
	index   int            // position in its list
	name    string         // the entry's name field, if any
	line    int            // first line of the entry
	fields  map[string]int // path inside the entry ("aead.key") → line
	values  map[spot]valueAt
}

// valueAt is the value written at a spot: the path of its field, and its text when it is a scalar.
type valueAt struct{ path, text string }

func (p *positions) index(root *yaml.Node) {
	p.top, p.topValues = map[string]int{}, map[spot]valueAt{}
	if root == nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		p.top[k.Value] = k.Line
		section := map[string]string{"sas": "sa", "policies": "policy"}[k.Value]
		if section == "" {
			record(v, k.Value, p.topValues)
			walk(v, k.Value, p.top, p.topValues)
			continue
		}
		if v.Kind != yaml.SequenceNode {
			continue
		}
		for j, e := range v.Content {
			it := item{section: section, index: j, line: e.Line, fields: map[string]int{}, values: map[spot]valueAt{}}
			walk(e, "", it.fields, it.values)
			if e.Kind == yaml.MappingNode {
				for x := 0; x+1 < len(e.Content); x += 2 {
					if e.Content[x].Value == "name" && e.Content[x+1].Kind == yaml.ScalarNode {
						it.name = e.Content[x+1].Value
					}
				}
			}
			p.items = append(p.items, it)
		}
	}
	sort.SliceStable(p.items, func(a, b int) bool { return p.items[a].line < p.items[b].line })
	p.byKey = make(map[itemKey]int, len(p.items))
	for i, it := range p.items {
		p.byKey[itemKey{it.section, it.index}] = i
	}
}

// walk records the line of every mapping key under n, by dotted path, and where each value is
// written.
func walk(n *yaml.Node, prefix string, lines map[string]int, values map[spot]valueAt) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		path := n.Content[i].Value
		if prefix != "" {
			path = prefix + "." + path
		}
		lines[path] = n.Content[i].Line
		record(n.Content[i+1], path, values)
		walk(n.Content[i+1], path, lines, values)
	}
}

// record notes where the value of path is written, so that an error about a value (which yaml.v3
// locates by line, ours also by column) names its field even when a line holds several.
func record(v *yaml.Node, path string, values map[spot]valueAt) {
	at := valueAt{path: path}
	if v.Kind == yaml.ScalarNode {
		at.text = v.Value
	}
	values[spot{v.Line, v.Column}] = at
}

// valueField finds the field of the value at (line, col), or, without a column (yaml.v3's own
// messages), of the one scalar on the line whose text is text.
func valueField(values map[spot]valueAt, line, col int, text string, hasText bool) string {
	if col > 0 {
		return values[spot{line, col}].path
	}
	if !hasText {
		return ""
	}
	found := ""
	for sp, v := range values {
		if sp.line == line && v.text == text {
			if found != "" {
				return ""
			}
			found = v.path
		}
	}
	return found
}

func (p *positions) find(section string, index int) *item {
	if i, ok := p.byKey[itemKey{section, index}]; ok {
		return &p.items[i]
	}
	return nil
}

// at returns the entry whose lines contain line, or nil.
func (p *positions) at(line int) *item {
	// The last entry starting at or before line (items are in line order).
	i := sort.Search(len(p.items), func(i int) bool { return p.items[i].line > line }) - 1
	if i < 0 {
		return nil
	}
	found := &p.items[i]
	// An entry ends where its section's next top-level key begins.
	for _, l := range p.top {
		if l > found.line && l <= line {
			return nil
		}
	}
	return found
}

func entryName(name string, index int) string {
	if name == "" {
		return "#" + strconv.Itoa(index+1)
	}
	return strconv.Quote(name)
}

// fieldErr builds an Error for field of entry index of section ("sa" or
// "policy"), or of the top level when section is "".
func (p *positions) fieldErr(file, section string, index int, name, field string, err error) *Error {
	e := &Error{File: file, Section: section, Field: field, Err: err}
	if section == "" {
		e.Line = p.lineOf(p.top, field)
		return e
	}
	e.Name = entryName(name, index)
	if it := p.find(section, index); it != nil {
		e.Line = it.line
		if l := p.lineOf(it.fields, field); l > 0 {
			e.Line = l
		}
	}
	return e
}

// lineOf finds the line of path, or of its nearest parent that is written out.
func (p *positions) lineOf(m map[string]int, path string) int {
	for path != "" {
		if l, ok := m[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

var (
	lineRE    = regexp.MustCompile(`^line (\d+): (.*)$`)
	columnRE  = regexp.MustCompile(`^column (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	castRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// typeError turns one of yaml.v3's "line N: …" messages (ours: "line N: column C: …", see
// typeErr) into an Error that also names the SA or policy and the field there, and remembers
// that field as broken: its value did not decode, so the checks after decoding say nothing more
// about it.
func (p *positions) typeError(file, msg string) *Error {
	e := &Error{File: file}
	var col int
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if m := columnRE.FindStringSubmatch(msg); m != nil {
		col, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	fields, values, key := p.top, p.topValues, itemKey{}
	if it := p.at(e.Line); it != nil && e.Line > 0 {
		e.Section, e.Name, fields, values = it.section, entryName(it.name, it.index), it.fields, it.values
		key = itemKey{it.section, it.index}
	}
	if m := unknownRE.FindStringSubmatch(msg); m != nil {
		e.Err = fmt.Errorf("%w %q", ErrUnknownField, m[1])
		// Name the enclosing mapping when there is exactly one on that line.
		e.Field = fieldOnLine(fields, e.Line, m[1])
		return e
	}
	cast := castRE.FindStringSubmatch(msg)
	e.Field = valueField(values, e.Line, col, castText(cast), cast != nil && cast[2] != "")
	if e.Field == "" {
		e.Field = fieldOnLine(fields, e.Line, "")
	}
	p.markBroken(key, e.Field, e.Line)
	if m := cast; m != nil {
		want := strings.TrimPrefix(m[3], "config.")
		if strings.HasPrefix(want, "*") {
			want = want[1:]
		}
		got := kindWord(m[1])
		if m[2] != "" {
			got += " " + strconv.Quote(m[2])
		}
		e.Err = fmt.Errorf("%w: want %s, got %s", ErrInvalid, describeType(want), got)
		return e
	}
	e.Err = fmt.Errorf("%w: %s", ErrInvalid, msg)
	return e
}

func (p *positions) markBroken(key itemKey, field string, line int) {
	if p.broken == nil {
		p.broken = map[itemKey]*brokenFields{}
	}
	b := p.broken[key]
	if b == nil {
		b = &brokenFields{fields: map[string]bool{}, lines: map[int]bool{}}
		p.broken[key] = b
	}
	if field != "" {
		b.fields[field] = true
	} else {
		b.lines[line] = true
	}
}

// isBroken reports whether field of an entry (section "" for the top level), written at line, or a
// field above or below it, had a value that did not decode.
func (p *positions) isBroken(section string, index int, field string, line int) bool {
	if section == "" {
		index = 0
	}
	b := p.broken[itemKey{section, index}]
	if b == nil {
		return false
	}
	if line > 0 && b.lines[line] {
		return true
	}
	for f := field; f != ""; {
		if b.fields[f] {
			return true
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	// A field below: "aead" is broken when "aead.key" did not decode.
	for f := range b.fields {
		if field != "" && strings.HasPrefix(f, field+".") {
			return true
		}
	}
	return false
}

// castText is the value text in a match of castRE ("" without one).
func castText(m []string) string {
	if m == nil {
		return ""
	}
	return m[2]
}

// fieldOnLine returns the one field path written on line (leaving out the
// unknown field itself), or "" when there is none or several.
func fieldOnLine(fields map[string]int, line int, unknown string) string {
	var found []string
	for path, l := range fields {
		if l != line {
			continue
		}
		if unknown != "" && (path == unknown || strings.HasSuffix(path, "."+unknown)) {
			// The parent of the unknown field is what the user should look at.
			if i := strings.LastIndexByte(path, '.'); i >= 0 {
				return path[:i]
			}
			return ""
		}
		found = append(found, path)
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// kindWord names a YAML tag the way a user thinks of it.
func kindWord(tag string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "str":
		return "the string"
	case "int", "float":
		return "the number"
	}
	return tag
}

func describeType(t string) string {
	switch t {
	case "uint8":
		return "a number 0-255"
	case "uint16":
		return "a number 0-65535"
	case "uint32":
		return "a number 0-4294967295"
	case "uint64":
		return "a number 0-18446744073709551615"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	if strings.HasPrefix(t, "[]") {
		return "a list"
	}
	return "a mapping (" + t + ")"
}
