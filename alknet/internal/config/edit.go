package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/alkdev/alknet/core"
)

// newFileMode is the mode of a config file that an edit creates: it may name
// who is trusted, so only its owner reads it.
const newFileMode fs.FileMode = 0o600

// Check validates the whole text of a config file before an edit writes
// it; path is used only in messages. Nil means [CheckCore].
type Check func(path string, data []byte) error

// CheckCore checks that data parses and that its peers and tokens form a
// valid directory. Sections the core does not know (those of the services)
// are only checked for syntax: pass a Check of the whole config to an edit
// to validate them too.
func CheckCore(path string, data []byte) error {
	var syntax map[string]any
	if err := toml.Unmarshal(data, &syntax); err != nil {
		return decodeError(path, err)
	}
	var dyn struct {
		Peers  []Peer  `toml:"peers"`
		Tokens []Token `toml:"tokens"`
	}
	if err := toml.Unmarshal(data, &dyn); err != nil {
		return decodeError(path, err)
	}
	c := Core{Peers: dyn.Peers, Tokens: dyn.Tokens}
	_, err := c.Directory()
	return err
}

// ErrNotFound is returned, wrapped, by an edit of a peer or token that the
// file does not hold.
var ErrNotFound = errors.New("not found")

// AppendPeer adds p as a [[peers]] block at the end of the file at path,
// keeping every byte already there, comments included. The file is created
// (mode 0600) if it does not exist. The edit is refused, leaving the file
// untouched, if p is invalid or the result fails check: an ID, a key
// already used by another peer, or a file that no longer parses.
//
// The file is replaced atomically (a temporary file in the same directory,
// synced, then renamed over it) and keeps its permission bits; a symbolic
// link is followed and the file it names is replaced. Concurrent edits of one
// file are not coordinated: the last writer wins.
func AppendPeer(path string, p Peer, check Check) error {
	block, err := encodeBlock(struct {
		Peers []Peer `toml:"peers"`
	}{[]Peer{p}})
	if err == nil {
		err = editFile(path, true, check, appendText(block))
	}
	if err != nil {
		return fmt.Errorf("config: append peer %q to %s: %w", core.Clip(p.ID), path, err)
	}
	return nil
}

// AppendToken adds t as a [[tokens]] block at the end of the file at path,
// like [AppendPeer]; it is refused if the name or hash is already there.
func AppendToken(path string, t Token, check Check) error {
	block, err := encodeBlock(struct {
		Tokens []Token `toml:"tokens"`
	}{[]Token{t}})
	if err == nil {
		err = editFile(path, true, check, appendText(block))
	}
	if err != nil {
		return fmt.Errorf("config: append token %q to %s: %w", core.Clip(t.Name), path, err)
	}
	return nil
}

// UpdatePeer calls fn with the [[peers]] entry of the file at path whose id
// is id and writes back the keys fn changed (scopes, keys, enabled), each in
// place: every other byte of the file stays, comments included. A list made
// empty, or enabled set to nil, removes its line. The ID cannot change. The
// edit is checked and written like [AppendPeer]'s; a peer the file does not
// hold is an error matching [ErrNotFound].
func UpdatePeer(path, id string, check Check, fn func(*Peer) error) error {
	err := editFile(path, false, check, func(text []byte) ([]byte, error) {
		d, b, i, err := findEntry(text, "peers", "id", id)
		if err != nil {
			return nil, err
		}
		var all struct {
			Peers []Peer `toml:"peers"`
		}
		if err := toml.Unmarshal(text, &all); err != nil {
			return nil, err
		}
		if i >= len(all.Peers) || all.Peers[i].ID != id {
			return nil, fmt.Errorf("peer %q: its entry did not decode", core.Clip(id))
		}
		old := all.Peers[i]
		p := old
		p.Scopes = slices.Clone(old.Scopes)
		p.Keys = slices.Clone(old.Keys)
		if err := fn(&p); err != nil {
			return nil, err
		}
		if p.ID != old.ID {
			return nil, errors.New("the ID of a peer cannot change")
		}
		var edits []splice
		set := func(key string, v any, remove bool) error {
			if remove {
				if s, ok := d.deleteKey(b, key); ok {
					edits = append(edits, s)
				}
				return nil
			}
			text, err := encodeValue(v)
			if err != nil {
				return err
			}
			edits = append(edits, d.setKey(b, key, text))
			return nil
		}
		if !slices.Equal(old.Scopes, p.Scopes) {
			if err := set("scopes", p.Scopes, len(p.Scopes) == 0); err != nil {
				return nil, err
			}
		}
		if !slices.EqualFunc(old.Keys, p.Keys, func(a, b Key) bool { return a.String() == b.String() }) {
			if err := set("keys", p.Keys, false); err != nil {
				return nil, err
			}
		}
		if (old.Enabled == nil) != (p.Enabled == nil) || enabled(old.Enabled) != enabled(p.Enabled) {
			if err := set("enabled", p.Enabled, p.Enabled == nil); err != nil {
				return nil, err
			}
		}
		return d.apply(edits...), nil
	})
	if err != nil {
		return fmt.Errorf("config: peer %q in %s: %w", core.Clip(id), path, err)
	}
	return nil
}

// RemovePeer removes the [[peers]] entry whose id is id from the file at
// path: its header through its last key, comments among them included;
// comments after it stay. It is checked and written like [AppendPeer]'s
// edit; a peer the file does not hold is an error matching [ErrNotFound].
func RemovePeer(path, id string, check Check) error {
	if err := removeEntry(path, "peers", "id", id, check); err != nil {
		return fmt.Errorf("config: remove peer %q from %s: %w", core.Clip(id), path, err)
	}
	return nil
}

// RemoveToken removes the [[tokens]] entry named name, like [RemovePeer].
func RemoveToken(path, name string, check Check) error {
	if err := removeEntry(path, "tokens", "name", name, check); err != nil {
		return fmt.Errorf("config: remove token %q from %s: %w", core.Clip(name), path, err)
	}
	return nil
}

func removeEntry(path, array, key, value string, check Check) error {
	return editFile(path, false, check, func(text []byte) ([]byte, error) {
		d, b, _, err := findEntry(text, array, key, value)
		if err != nil {
			return nil, err
		}
		return d.apply(d.removeEntry(b)), nil
	})
}

// findEntry parses text and returns the [[array]] entry whose key is value,
// with its index among the entries.
func findEntry(text []byte, array, key, value string) (*document, block, int, error) {
	d, err := parseDocument(text)
	if err != nil {
		return nil, block{}, 0, err
	}
	entries, err := d.entries(array)
	if err != nil {
		return nil, block{}, 0, err
	}
	b, ok := d.find(entries, key, value)
	if !ok {
		return nil, block{}, 0, fmt.Errorf("no [[%s]] entry with %s %q: %w", array, key, core.Clip(value), ErrNotFound)
	}
	for i := range entries {
		if entries[i].header == b.header {
			return d, b, i, nil
		}
	}
	return d, b, 0, nil
}

// encodeBlock encodes v as TOML text, one array element per line.
func encodeBlock(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).SetArraysMultiline(true).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeValue encodes v as the TOML text of a value on one line.
func encodeValue(v any) (string, error) {
	b, err := toml.Marshal(map[string]any{"v": v})
	if err != nil {
		return "", err
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "v = ")
	if !ok {
		return "", fmt.Errorf("cannot encode %T as a value", v)
	}
	return s, nil
}

// appendText returns an edit that appends block, after a blank line.
func appendText(block []byte) func([]byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		var text bytes.Buffer
		text.Write(old)
		if len(old) > 0 {
			text.WriteByte('\n')
		}
		text.Write(block)
		return text.Bytes(), nil
	}
}

// editFile replaces the file at path with change's result, once check
// accepts it. A missing file is empty text if create is set (the new file
// gets mode 0600), else an error. A file not ending in a newline gets one
// before change sees it. A result that fails check is not written; if the
// old text fails check too, the error says to fix the file first.
func editFile(path string, create bool, check Check, change func([]byte) ([]byte, error)) error {
	if check == nil {
		check = CheckCore
	}
	target, err := resolve(path)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(target)
	mode := newFileMode
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w (no config file)", ErrNotFound)
	case err != nil:
		return err
	default:
		fi, err := os.Stat(target)
		if err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	}
	text := old
	if len(text) > 0 && text[len(text)-1] != '\n' {
		text = append(slices.Clip(text), '\n')
	}
	next, err := change(text)
	if err != nil {
		return err
	}
	if err := check(path, next); err != nil {
		if len(old) > 0 && check(path, old) != nil {
			return fmt.Errorf("the file has problems already; fix them first (alknet config check):\n%w", err)
		}
		return err
	}
	return writeFileAtomic(target, next, mode)
}

// WriteFileAtomic replaces the file at path with data like the edits here
// do (see [AppendPeer]), keeping its mode; a new file gets mode.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	target, err := resolve(path)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(target); err == nil {
		mode = fi.Mode().Perm()
	}
	return writeFileAtomic(target, data, mode)
}

// resolve follows symbolic links to the file an edit replaces; a path that
// does not exist yet is returned as is.
func resolve(path string) (string, error) {
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil
	}
	return target, err
}

// writeFileAtomic replaces the file at path with data: it writes a temporary
// file in the same directory, syncs it, renames it over path and syncs the
// directory, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = errors.Join(f.Chmod(mode), writeSync(f, data), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return syncDir(dir)
}

func writeSync(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
