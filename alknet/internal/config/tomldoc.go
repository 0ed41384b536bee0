package config

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// document is a TOML text split into its top-level expressions (table
// headers and key-values) with their byte ranges, so that an edit can
// replace exactly the bytes of one key and keep every other byte, comments
// included, and so that a problem found after decoding can be pointed back
// to the line of its key.
//
// Keys are named by their resolved path: "limits.max_conns", "peers[2]" (the
// third [[peers]] header), "peers[2].scopes", "peers[2].keys[0]" (an array
// element), "dns.zones[0].name".
type document struct {
	text  []byte
	exprs []expr
	// keys maps every key path, element and inline-table key included, to
	// the offset of its first byte.
	keys map[string]int
	// arrays counts the [[x]] headers seen per resolved path.
	arrays map[string]int
}

// expr is one top-level expression.
type expr struct {
	kind unstable.Kind // unstable.Table, unstable.ArrayTable or unstable.KeyValue
	// path is the resolved key path; for a KeyValue it includes its table's.
	path string
	// table is the resolved path of the table a KeyValue belongs to ("" at
	// the top level), or of the header itself.
	table string
	// start and end delimit the expression: the key or '[' up to the end of
	// the value or the closing bracket, without a trailing comment.
	start, end int
	// lineStart and lineEnd delimit the whole lines the expression is on,
	// lineEnd after the newline (or at the end of the text).
	lineStart, lineEnd int
	// str is the value of a KeyValue holding a string.
	str string
	// isStr is whether str is set.
	isStr bool
}

// parseDocument parses text; a syntax error is go-toml's, with its position.
func parseDocument(text []byte) (*document, error) {
	d := &document{text: text, keys: map[string]int{}, arrays: map[string]int{}}
	var p unstable.Parser
	p.Reset(text)
	table := ""
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			var parts []string
			first, last := -1, 0
			it := n.Key()
			for it.Next() {
				k := it.Node()
				parts = append(parts, string(k.Data))
				if first < 0 {
					first = int(k.Raw.Offset)
				}
				last = int(k.Raw.Offset + k.Raw.Length)
			}
			start := bytes.LastIndexByte(text[:first], '[')
			if n.Kind == unstable.ArrayTable && start > 0 {
				start-- // "[["
			}
			end := last + bytes.IndexByte(text[last:], ']') + 1
			if n.Kind == unstable.ArrayTable {
				end++
			}
			table = d.resolve(parts, n.Kind == unstable.ArrayTable)
			d.keys[table] = start
			d.add(expr{kind: n.Kind, path: table, table: table, start: start, end: end})
		case unstable.KeyValue:
			e := expr{kind: n.Kind, table: table, start: int(n.Raw.Offset), end: int(n.Raw.Offset + n.Raw.Length)}
			e.path = d.indexKeyValue(table, n)
			if v := n.Value(); v.Kind == unstable.String {
				e.str, e.isStr = string(v.Data), true
			}
			d.add(e)
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return d, nil
}

// add appends e, computing its line range.
func (d *document) add(e expr) {
	e.lineStart = bytes.LastIndexByte(d.text[:e.start], '\n') + 1
	if i := bytes.IndexByte(d.text[e.end:], '\n'); i >= 0 {
		e.lineEnd = e.end + i + 1
	} else {
		e.lineEnd = len(d.text)
	}
	d.exprs = append(d.exprs, e)
}

// resolve returns the path of a table header's key parts, numbering arrays
// of tables: each prefix naming an array of tables refers to its last
// element, and a [[header]] makes a new element.
func (d *document) resolve(parts []string, array bool) string {
	p := ""
	for i, s := range parts {
		p = joinKey(p, s)
		if array && i == len(parts)-1 {
			n := d.arrays[p]
			d.arrays[p] = n + 1
			p = fmt.Sprintf("%s[%d]", p, n)
		} else if n, ok := d.arrays[p]; ok {
			p = fmt.Sprintf("%s[%d]", p, n-1)
		}
	}
	return p
}

// indexKeyValue records the positions of a key-value node's key and of what
// its value holds, under table, and returns the key's path.
func (d *document) indexKeyValue(table string, n *unstable.Node) string {
	path := table
	it := n.Key()
	first := -1
	for it.Next() {
		k := it.Node()
		if first < 0 {
			first = int(k.Raw.Offset)
		}
		path = joinKey(path, string(k.Data))
	}
	d.keys[path] = first
	d.indexValue(path, n.Value())
	return path
}

// indexValue records the elements of arrays and the keys of inline tables.
func (d *document) indexValue(path string, v *unstable.Node) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			ep := fmt.Sprintf("%s[%d]", path, i)
			if c.Raw.Length > 0 {
				d.keys[ep] = int(c.Raw.Offset)
			}
			d.indexValue(ep, c)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				d.indexKeyValue(path, c)
			}
		}
	}
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// position returns the 1-based line and column of offset.
func (d *document) position(offset int) (line, col int) {
	before := d.text[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = offset - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// locate returns the offset of key, or of its longest prefix present in
// the file ("tls" for "tls.cert_file" when only [tls] is written), and
// false if no prefix is.
func (d *document) locate(key string) (int, bool) {
	for key != "" {
		if off, ok := d.keys[key]; ok {
			return off, true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0, false
}

// block is one [[name]] entry written as a header and its key-values.
type block struct {
	header int // index of the header in exprs
	last   int // index of the last expression inside the entry
	path   string
}

// entries returns the [[name]] entries at the top level, in order. An
// array written inline ("peers = [...]") is an error: its entries cannot be
// edited one by one.
func (d *document) entries(name string) ([]block, error) {
	var out []block
	for i, e := range d.exprs {
		switch {
		case e.kind == unstable.KeyValue && e.path == name:
			line, _ := d.position(e.start)
			return nil, fmt.Errorf("line %d: %s is written as an inline array; edit it by hand, or write each entry as a [[%s]] table", line, name, name)
		case e.kind == unstable.ArrayTable && e.table == fmt.Sprintf("%s[%d]", name, len(out)):
			b := block{header: i, last: i, path: e.table}
			for j := i + 1; j < len(d.exprs) && (d.exprs[j].table == b.path || strings.HasPrefix(d.exprs[j].table, b.path+".")); j++ {
				b.last = j
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// find returns the entry of entries whose key (a string) is value.
func (d *document) find(entries []block, key, value string) (block, bool) {
	for _, b := range entries {
		for j := b.header + 1; j <= b.last; j++ {
			if e := d.exprs[j]; e.path == b.path+"."+key && e.isStr && e.str == value {
				return b, true
			}
		}
	}
	return block{}, false
}

// keyIn returns the index of the key-value key directly in entry b, or -1.
func (d *document) keyIn(b block, key string) int {
	for j := b.header + 1; j <= b.last; j++ {
		if d.exprs[j].kind == unstable.KeyValue && d.exprs[j].path == b.path+"."+key {
			return j
		}
	}
	return -1
}

// splice is a replacement of text[from:to].
type splice struct {
	from, to int
	with     []byte
}

// apply returns the text with the splices made; they must not overlap.
func (d *document) apply(edits ...splice) []byte {
	var out bytes.Buffer
	at := 0
	// Few edits: sort by insertion.
	for len(edits) > 0 {
		k := 0
		for i := range edits {
			if edits[i].from < edits[k].from {
				k = i
			}
		}
		e := edits[k]
		edits = append(edits[:k], edits[k+1:]...)
		out.Write(d.text[at:e.from])
		out.Write(e.with)
		at = e.to
	}
	out.Write(d.text[at:])
	return out.Bytes()
}

// setKey returns the splice that gives key the TOML value text in entry b:
// the old value's bytes are replaced (its line's indentation and trailing
// comment stay), or a new line is added after the entry's last key-value,
// indented like it.
func (d *document) setKey(b block, key, value string) splice {
	if j := d.keyIn(b, key); j >= 0 {
		e := d.exprs[j]
		return splice{e.start, e.end, []byte(key + " = " + value)}
	}
	last := d.exprs[b.header]
	indent := ""
	for j := b.header + 1; j <= b.last; j++ {
		if e := d.exprs[j]; e.kind == unstable.KeyValue && e.table == b.path {
			last = e
			indent = string(d.text[e.lineStart:e.start])
		}
	}
	line := indent + key + " = " + value + "\n"
	if last.lineEnd == len(d.text) && (len(d.text) == 0 || d.text[len(d.text)-1] != '\n') {
		line = "\n" + line
	}
	return splice{last.lineEnd, last.lineEnd, []byte(line)}
}

// deleteKey returns the splice removing the lines of key in entry b, and
// false if it is not there.
func (d *document) deleteKey(b block, key string) (splice, bool) {
	j := d.keyIn(b, key)
	if j < 0 {
		return splice{}, false
	}
	e := d.exprs[j]
	return splice{e.lineStart, e.lineEnd, nil}, true
}

// removeEntry returns the splice removing entry b: its header through its
// last key-value, comments between them included. Comments after it stay,
// and a blank line left doubled is dropped.
func (d *document) removeEntry(b block) splice {
	from, to := d.exprs[b.header].lineStart, d.exprs[b.last].lineEnd
	blankBefore := from == 0 || (from >= 2 && d.text[from-2] == '\n')
	if blankBefore {
		// Drop blank lines that followed the entry.
		for to < len(d.text) {
			i := bytes.IndexByte(d.text[to:], '\n')
			if i < 0 || len(bytes.TrimSpace(d.text[to:to+i])) > 0 {
				break
			}
			to += i + 1
		}
		if to == len(d.text) && from > 0 {
			from-- // no blank line left at the end of the file
		}
	}
	return splice{from, to, nil}
}
