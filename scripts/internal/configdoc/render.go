package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// renderer writes the Markdown reference of one config struct.
type renderer struct {
	w   io.Writer
	err error
	// seen maps a struct already described to the heading it was
	// described under, so a type used twice gets one table.
	seen map[*structType]string
}

func (r *renderer) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

// render writes intro, one section per table the root struct reaches (in
// field order, depth first) and trailer.
func render(w io.Writer, root *structType, intro, trailer string) error {
	r := &renderer{w: w, seen: map[*structType]string{}}
	r.printf("%s\n", strings.TrimSpace(intro))
	r.rows(root)
	r.subsections(root, nil, "", 2)
	r.printf("\n%s\n", strings.TrimSpace(trailer))
	return r.err
}

// subsections writes a section for each field of st that is a table, an
// array of tables or a table of tables.
func (r *renderer) subsections(st *structType, path []string, status string, level int) {
	for _, f := range st.fields {
		sub, heading := section(f, path)
		if sub == nil {
			continue
		}
		s := status
		if label := statusOf(f.doc); label != "" {
			s = label
		}
		r.printf("\n%s `%s`", strings.Repeat("#", min(level, 4)), heading)
		if s != "" {
			r.printf(" (%s)", s)
		}
		r.printf("\n")
		siblings := keysOf(st)
		prose := []string{clean(f.doc, f.goName, "`"+f.key+"`", siblings)}
		if first, ok := r.seen[sub]; ok {
			prose = append(prose, fmt.Sprintf("Its keys are those of `%s`.", first))
		} else {
			r.seen[sub] = heading
			subject := "This section"
			if f.typ.kind != table {
				subject = "Each entry"
			}
			prose = append(prose, clean(sub.doc, sub.name, subject, keysOf(sub)))
		}
		for _, p := range prose {
			if p != "" {
				r.printf("\n%s\n", p)
			}
		}
		if r.seen[sub] == heading {
			r.rows(sub)
		}
		r.subsections(sub, append(path[:len(path):len(path)], keyPath(f)), s, level+1)
	}
}

// section returns the struct a field opens as a section, and the header
// naming it, or nil for a plain key.
func section(f field, path []string) (*structType, string) {
	name := strings.Join(append(path[:len(path):len(path)], quoteKey(f.key)), ".")
	switch {
	case f.typ.kind == table:
		return f.typ.st, "[" + name + "]"
	case f.typ.kind == array && f.typ.elem.kind == table:
		return f.typ.elem.st, "[[" + name + "]]"
	case f.typ.kind == dict && f.typ.elem.kind == table:
		return f.typ.elem.st, "[" + name + `."NAME"]`
	}
	return nil, ""
}

// keyPath is the dotted-path element of a field's subsections.
func keyPath(f field) string {
	if f.typ.kind == dict {
		return quoteKey(f.key) + `."NAME"`
	}
	return quoteKey(f.key)
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func quoteKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return fmt.Sprintf("%q", k)
}

// rows writes the table of st's plain keys, if it has any.
func (r *renderer) rows(st *structType) {
	siblings := keysOf(st)
	header := false
	for _, f := range st.fields {
		if sub, _ := section(f, nil); sub != nil {
			continue
		}
		if !header {
			r.printf("\n| key | type | default | meaning |\n|---|---|---|---|\n")
			header = true
		}
		doc, def := splitDefault(f.doc)
		r.printf("| `%s` | %s | %s | %s |\n", f.key, typeName(f.typ), cell(formatDefault(def, f.typ)), cell(clean(doc, f.goName, "", siblings)))
	}
}

// keysOf maps the Go names of st's fields to their keys.
func keysOf(st *structType) map[string]string {
	m := map[string]string{}
	for _, f := range st.fields {
		m[f.goName] = f.key
	}
	return m
}

func typeName(t *tomlType) string {
	switch t.kind {
	case array:
		return "array of " + typeName(t.elem)
	case dict:
		return "table of " + typeName(t.elem)
	case table:
		return "table"
	}
	return t.name
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// statusOf returns "static" or "dynamic" when a sentence of doc starts
// with "Static" or "Dynamic", else "".
func statusOf(doc string) string {
	for _, s := range sentences(doc) {
		switch {
		case strings.HasPrefix(s, "Static"):
			return "static"
		case strings.HasPrefix(s, "Dynamic"):
			return "dynamic"
		}
	}
	return ""
}

// sentences splits a doc comment into sentences, its lines joined. A
// sentence ends at a period followed by a space and a capital letter.
func sentences(doc string) []string {
	text := strings.Join(strings.Fields(doc), " ")
	var out []string
	for text != "" {
		end := len(text)
		for i := 0; i+2 < len(text); i++ {
			if text[i] == '.' && text[i+1] == ' ' && isUpper(text[i+2]) {
				end = i + 1
				break
			}
		}
		out = append(out, text[:end])
		text = strings.TrimSpace(text[end:])
	}
	return out
}

func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }

// splitDefault takes the "Default X." sentence out of doc and returns the
// rest and X. Text after X following "; " or ": " stays in the doc as a
// sentence of its own ("Default 15s; negative disables keep-alives.").
// "Default is …" is a sentence about a field named Default, not a default.
// Without such a sentence, X is "required" if the doc says so, else "".
func splitDefault(doc string) (rest, def string) {
	var kept []string
	found := false
	for _, s := range sentences(doc) {
		v, ok := strings.CutPrefix(s, "Default")
		if found || !ok || (v != "" && v[0] != ' ' && v[0] != ':') || strings.HasPrefix(v, " is ") || strings.HasPrefix(v, " are ") {
			kept = append(kept, s)
			continue
		}
		found = true
		v = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(v, ":")), ".")
		if i := strings.IndexAny(v, ";:"); i >= 0 && i+1 < len(v) && v[i+1] == ' ' {
			after := strings.TrimSpace(v[i+1:])
			kept = append(kept, strings.ToUpper(after[:1])+after[1:]+".")
			v = v[:i]
		}
		def = v
	}
	rest = strings.Join(kept, " ")
	if !found && requiredWord.MatchString(rest) {
		def = "required"
	}
	return rest, def
}

var (
	requiredWord = regexp.MustCompile(`\b[Rr]equired\b`)
	// literal is a whole TOML value: a string, an array, a number or a
	// boolean, optionally followed by a parenthesised remark.
	literal  = regexp.MustCompile(`^("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|-?[0-9][0-9_]*(?:\.[0-9]+)?|true|false)( \(.*\))?$`)
	duration = regexp.MustCompile(`^-?([0-9.]+(ns|us|µs|ms|s|m|h))+$`)
)

// formatDefault shows a default as code when it is a TOML value (a
// duration written bare in the comment is quoted, as the file needs it),
// as prose otherwise, and as the type's zero value when the doc gives none.
func formatDefault(def string, t *tomlType) string {
	if def == "" {
		return zero(t)
	}
	if t.text != "" && duration.MatchString(def) {
		if _, err := time.ParseDuration(def); err == nil {
			return "`\"" + def + "\"`"
		}
	}
	if m := literal.FindStringSubmatch(def); m != nil {
		return "`" + m[1] + "`" + prose(m[2], nil)
	}
	return prose(def, nil)
}

func zero(t *tomlType) string {
	switch {
	case t.kind == array:
		return "`[]`"
	case t.kind == dict:
		return "`{}`"
	case t.name == "string":
		return "`\"\"`"
	case t.name == "integer":
		return "`0`"
	case t.name == "float":
		return "`0.0`"
	case t.name == "boolean":
		return "`false`"
	}
	return "none"
}

// sectionLine matches a sentence that only names the section ("Node is the
// [node] section." or "Peer is one [[peers]] entry: …"); the part after a
// colon or semicolon, if any, is kept.
var sectionLine = regexp.MustCompile(`^\S+ (?:is|are) (?:the|one) \[[^ ]+\] (?:section|entry|entries)(?:\.|[:;] (.+))$`)

// clean turns a Go doc comment into reference prose: the sentences giving
// the section's status or only naming the section go, a leading Go name
// becomes subject (or goes, with its "is" or "are", when subject is ""), the other fields' Go names become their keys, and
// quoted values, TOML headers and Go doc links become code.
func clean(doc, goName, subject string, siblings map[string]string) string {
	var out []string
	for _, s := range sentences(doc) {
		if strings.HasPrefix(s, "Static") || strings.HasPrefix(s, "Dynamic") {
			continue
		}
		if m := sectionLine.FindStringSubmatch(s); m != nil {
			if m[1] == "" {
				continue
			}
			s = strings.ToUpper(m[1][:1]) + m[1][1:]
		} else if rest, ok := strings.CutPrefix(s, goName+" "); ok && goName != "" {
			s = subject + " " + rest
			if subject == "" {
				s = strings.TrimPrefix(strings.TrimPrefix(rest, "is "), "are ")
				s = strings.ToUpper(s[:1]) + s[1:]
			}
		}
		out = append(out, prose(s, siblings))
	}
	return strings.TrimSpace(strings.Join(out, " "))
}

var (
	quoted  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	docLink = regexp.MustCompile(`\[((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*)\]`)
	header  = regexp.MustCompile(`\[\[?[a-z][a-z0-9_.]*(?:\."[^"]*")?\]\]?`)
	goWord  = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)
	docFile = regexp.MustCompile(`\bdocs/([A-Za-z0-9_/.-]+\.md)\b`)
)

// prose formats running text outside code spans: TOML headers, quoted
// strings and Go doc links become code, the Go names in siblings become
// their keys (unless all capitals, like TTL), "<" is escaped and docs/x.md becomes a link relative to docs/.
func prose(s string, siblings map[string]string) string {
	s = outsideCode(s, func(p string) string { return header.ReplaceAllString(p, "`$0`") })
	s = outsideCode(s, func(p string) string { return quoted.ReplaceAllString(p, "`$0`") })
	s = outsideCode(s, func(p string) string {
		return docLink.ReplaceAllStringFunc(p, func(m string) string {
			name := m[1 : len(m)-1]
			if k, ok := siblings[name]; ok {
				return "`" + k + "`"
			}
			return "`" + name + "`"
		})
	})
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = keys(parts[i], siblings, i == 0)
		parts[i] = strings.ReplaceAll(parts[i], "<", `\<`)
		parts[i] = docFile.ReplaceAllString(parts[i], "[$1]($1)")
	}
	return strings.Join(parts, "`")
}

// keys replaces the Go names in siblings with their keys, except a name
// opening the sentence (at the start of s if start is set): that is a word
// such as "Default", not a reference.
func keys(s string, siblings map[string]string, start bool) string {
	var b strings.Builder
	last := 0
	for _, m := range goWord.FindAllStringIndex(s, -1) {
		w := s[m[0]:m[1]]
		k, ok := siblings[w]
		if !ok || strings.ToUpper(w) == w || (start && m[0] == 0) {
			continue
		}
		b.WriteString(s[last:m[0]] + "`" + k + "`")
		last = m[1]
	}
	return b.String() + s[last:]
}

// outsideCode applies f to the parts of s outside `code spans`.
func outsideCode(s string, f func(string) string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = f(parts[i])
	}
	return strings.Join(parts, "`")
}
