package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Load reads the file at path and decodes it with [Decode]. A missing file
// is an error that names it and matches fs.ErrNotExist.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, data, v)
}

// Decode decodes the TOML document data, read from path, into v, a pointer
// to a struct such as [Core]. Decoding is strict: a key with no matching
// field is an error. If v has a Validate() error method it is called after
// decoding, and each line of its error is mapped back to the key it names.
//
// Every problem is reported, each as "<path>:<line>:<col>: <key>: <what>",
// joined with errors.Join: decoding goes on past a value of the wrong type
// (its key is left out of the rest of the checks, and so are validation
// problems of the entry or section holding it, which would only repeat it).
// Only a syntax error stops everything, as the rest cannot be read. A
// validation problem whose key is not in the file (a default that is
// invalid with the others) is given the position of its nearest section
// written there, or none.
//
// path is used only in messages; nothing is read from it.
func Decode(path string, data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return validate(path, data, nil, v, nil)
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		// Everything else decoded: the values can be validated too.
		return errors.Join(decodeError(path, err), validate(path, data, nil, v, nil))
	}
	doc, perr := parseDocument(data)
	if perr != nil {
		return decodeError(path, err) // a syntax error: nothing more to read
	}
	return decodeRest(path, data, doc, v, err)
}

// maxProblems bounds the decoding passes of one file.
const maxProblems = 100

// decodeRest collects the problems of a document whose decoding failed with
// err: it blanks the expression each type error is in and decodes again,
// into a fresh value, until the rest decodes; then it validates that.
func decodeRest(path string, data []byte, doc *document, v any, err error) error {
	var blanked []string
	var joined []error
	text := bytes.Clone(data)
	typ := reflect.TypeOf(v).Elem()
	for range maxProblems {
		var de *toml.DecodeError
		var strict *toml.StrictMissingError
		switch {
		case err == nil:
			return errors.Join(append(joined, validate(path, data, doc, v, blanked))...)
		case errors.As(err, &strict):
			joined = append(joined, decodeError(path, err))
			return errors.Join(append(joined, validate(path, data, doc, v, blanked))...)
		case !errors.As(err, &de):
			return errors.Join(append(joined, decodeError(path, err))...)
		}
		joined = append(joined, positioned(path, de, ""))
		line, col := de.Position()
		i := doc.exprAt(offsetOf(text, line, col))
		if i < 0 {
			return errors.Join(joined...)
		}
		from, to := doc.exprs[i].lineStart, doc.exprs[i].lineEnd
		if k := doc.exprs[i].kind; k != unstable.KeyValue {
			// A header: its keys go with it, lest they land in the
			// table before.
			for j := i + 1; j < len(doc.exprs) && doc.exprs[j].kind == unstable.KeyValue; j++ {
				to = doc.exprs[j].lineEnd
			}
		}
		if from >= to || isBlank(text[from:to]) {
			return errors.Join(joined...) // no progress
		}
		for j := from; j < to; j++ {
			if text[j] != '\n' && text[j] != '\r' {
				text[j] = ' '
			}
		}
		blanked = append(blanked, doc.exprs[i].path)
		v = reflect.New(typ).Interface()
		err = toml.NewDecoder(bytes.NewReader(text)).DisallowUnknownFields().Decode(v)
	}
	return errors.Join(joined...)
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// offsetOf returns the offset of a 1-based line and column.
func offsetOf(text []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(text[off:], '\n')
		if i < 0 {
			return len(text)
		}
		off += i + 1
	}
	return min(off+col-1, len(text))
}

// exprAt returns the index of the expression whose lines hold offset, or -1.
func (d *document) exprAt(offset int) int {
	for i, e := range d.exprs {
		if offset >= e.lineStart && offset < e.lineEnd {
			return i
		}
	}
	return -1
}

// validate calls v's Validate method, if it has one, and maps each line of
// its error to the position of the key it names in data (parsed as doc, if
// not nil). Problems of a key related to a blanked one (which failed to
// decode) are dropped: they would only repeat it.
func validate(path string, data []byte, doc *document, v any, blanked []string) error {
	val, ok := v.(interface{ Validate() error })
	if !ok {
		return nil
	}
	err := val.Validate()
	if err == nil {
		return nil
	}
	if doc == nil {
		var perr error
		if doc, perr = parseDocument(data); perr != nil {
			return &fileError{path: path, err: err}
		}
	}
	return locateProblems(path, doc, err, blanked)
}

// directoryPrefix starts the errors of core.NewDirectory.
const directoryPrefix = "core: directory: "

// entryRE matches a problem core.NewDirectory reports of a peer or token:
// by its ID or name, quoted or not, or, when it has none, by its 1-based
// number.
var entryRE = regexp.MustCompile(`^(peer|token) ("(?:[^"\\]|\\.)*"|[^":][^:]*):`)

// locateProblems maps each line of err, a validation error whose lines start with
// the key they are about ("limits.max_conns: …", `peer "alice": …`), to that
// key's position in doc: "<path>:<line>:<col>: <line of err>".
func locateProblems(path string, doc *document, err error, blanked []string) error {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimPrefix(l, directoryPrefix)
		key := problemKey(doc, l)
		if slices.ContainsFunc(blanked, func(b string) bool { return related(key, b) }) {
			continue
		}
		if off, ok := doc.locate(key); ok && key != "" {
			line, col := doc.position(off)
			out = append(out, fmt.Sprintf("%s:%d:%d: %s", path, line, col, l))
		} else {
			out = append(out, path+": "+l)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &locatedError{msg: strings.Join(out, "\n"), err: err}
}

// problemKey returns the key path a validation problem is about.
func problemKey(doc *document, problem string) string {
	if m := entryRE.FindStringSubmatch(problem); m != nil {
		array, field := "peers", "id"
		if m[1] == "token" {
			array, field = "tokens", "name"
		}
		if n, err := strconv.Atoi(m[2]); err == nil && strings.HasSuffix(problem, ": empty "+field) {
			return fmt.Sprintf("%s[%d]", array, n-1)
		}
		name := m[2]
		if strings.HasPrefix(name, `"`) {
			var err error
			if name, err = strconv.Unquote(name); err != nil {
				return array
			}
		}
		key := array
		for _, e := range doc.exprs {
			if e.isStr && e.str == name && strings.HasPrefix(e.path, array+"[") && strings.HasSuffix(e.path, "]."+field) {
				key = strings.TrimSuffix(e.path, "."+field) // the last one: a duplicate's second
			}
		}
		return key
	}
	key, _, _ := strings.Cut(problem, ":")
	key, _, _ = strings.Cut(key, " ")
	return key
}

// related reports whether one key path is the other or holds it.
func related(a, b string) bool {
	within := func(k, p string) bool {
		return k == p || strings.HasPrefix(k, p+".") || strings.HasPrefix(k, p+"[")
	}
	return a != "" && (within(a, b) || within(b, a))
}

// locatedError is a validation error whose lines name their position.
type locatedError struct {
	msg string
	err error
}

func (e *locatedError) Error() string { return e.msg }

func (e *locatedError) Unwrap() error { return e.err }

// decodeError turns go-toml's errors into errors naming path, line and key.
func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			what := "unknown key"
			if strings.HasSuffix(de.Error(), "missing table") {
				what = "unknown table"
			}
			errs[i] = positioned(path, de, what)
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return positioned(path, de, "")
	}
	return &fileError{path: path, err: err}
}

// positioned formats one go-toml DecodeError as
// "<path>:<line>:<col>: <key>: <what>"; what replaces its message if not
// empty. The result unwraps to de.
func positioned(path string, de *toml.DecodeError, what string) error {
	line, col := de.Position()
	if what == "" {
		what = strings.TrimPrefix(de.Error(), "toml: ")
	}
	msg := fmt.Sprintf("%s:%d:%d: %s", path, line, col, what)
	if key := de.Key(); len(key) > 0 {
		msg = fmt.Sprintf("%s:%d:%d: %s: %s", path, line, col, strings.Join(key, "."), what)
	}
	return &lineError{msg: msg, err: de}
}

// lineError is a decoding problem located in the file.
type lineError struct {
	msg string
	err *toml.DecodeError
}

func (e *lineError) Error() string { return e.msg }

func (e *lineError) Unwrap() error { return e.err }

// fileError prefixes each line of err's message with the file's path, so
// every problem of a joined error names the file.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	for i, l := range lines {
		lines[i] = e.path + ": " + l
	}
	return strings.Join(lines, "\n")
}

func (e *fileError) Unwrap() error { return e.err }
