package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"

	"github.com/alkdev/alknet/core"
)

// newFileMode is the mode of a config file that an edit creates: it may name
// who is trusted, so only its owner reads it.
const newFileMode fs.FileMode = 0o600

// AppendPeer adds p as a [[peers]] block at the end of the file at path,
// keeping every byte already there, comments included. The file is created
// (mode 0600) if it does not exist. The edit is refused, leaving the file
// untouched, if p is invalid or the result would not load: an ID, a key
// already used by another peer, or a file that no longer parses.
//
// The file is replaced atomically (a temporary file in the same directory,
// synced, then renamed over it) and keeps its permission bits; a symbolic
// link is followed and the file it names is replaced. Concurrent edits of one
// file are not coordinated: the last writer wins.
func AppendPeer(path string, p Peer) error {
	block, err := encodeBlock(struct {
		Peers []Peer `toml:"peers"`
	}{[]Peer{p}})
	if err != nil {
		return fmt.Errorf("config: append peer %q to %s: %w", core.Clip(p.ID), path, err)
	}
	if err := appendBlock(path, block); err != nil {
		return fmt.Errorf("config: append peer %q to %s: %w", core.Clip(p.ID), path, err)
	}
	return nil
}

// AppendToken adds t as a [[tokens]] block at the end of the file at path,
// like [AppendPeer]; it is refused if the name or hash is already there.
func AppendToken(path string, t Token) error {
	block, err := encodeBlock(struct {
		Tokens []Token `toml:"tokens"`
	}{[]Token{t}})
	if err != nil {
		return fmt.Errorf("config: append token %q to %s: %w", core.Clip(t.Name), path, err)
	}
	if err := appendBlock(path, block); err != nil {
		return fmt.Errorf("config: append token %q to %s: %w", core.Clip(t.Name), path, err)
	}
	return nil
}

// encodeBlock encodes v as TOML text, one array element per line.
func encodeBlock(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).SetArraysMultiline(true).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// appendBlock appends a TOML block to the file at path after checking that
// the whole text still parses and that its peers and tokens form a valid
// directory. Sections the core does not know (those of protocol modules) are
// only checked for syntax: their owner validates them at load.
func appendBlock(path string, block []byte) error {
	target, err := resolve(path)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(target)
	mode := newFileMode
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		fi, err := os.Stat(target)
		if err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	}

	var text bytes.Buffer
	text.Write(old)
	if len(old) > 0 {
		if old[len(old)-1] != '\n' {
			text.WriteByte('\n')
		}
		text.WriteByte('\n')
	}
	text.Write(block)

	var syntax map[string]any
	if err := toml.Unmarshal(text.Bytes(), &syntax); err != nil {
		return decodeError(path, err)
	}
	var dyn struct {
		Peers  []Peer  `toml:"peers"`
		Tokens []Token `toml:"tokens"`
	}
	if err := toml.Unmarshal(text.Bytes(), &dyn); err != nil {
		return decodeError(path, err)
	}
	c := Core{Peers: dyn.Peers, Tokens: dyn.Tokens}
	if _, err := c.Directory(); err != nil {
		return err
	}
	return writeFileAtomic(target, text.Bytes(), mode)
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
