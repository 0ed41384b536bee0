package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
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
// field is an error. Each problem found while decoding is reported as
// "<path>:<line>:<col>: <field>: <what>", joined with errors.Join when there
// are several. If v has a Validate() error method it is called after a
// successful decode, and each line of its error is reported as
// "<path>: <what>".
//
// path is used only in messages; nothing is read from it.
func Decode(path string, data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(path, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return &fileError{path: path, err: err}
		}
	}
	return nil
}

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
