package core

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KnownNodes is a trust-on-first-use store, like OpenSSH's known_hosts with
// StrictHostKeyChecking=accept-new: the first key seen at an address is
// recorded, and a different key there later is refused. The file has one
// "host:port nodeid" line per address; '#' starts a comment. It is safe for
// concurrent use within one process.
type KnownNodes struct {
	// Added, if set, is called after Record wrote a new entry (not for an
	// address already known), so a client can tell its user, as OpenSSH's
	// "Permanently added". Set it before the store is used.
	Added func(addr string, id NodeID)

	path string
	mu   sync.Mutex
}

// NewKnownNodes returns the store kept in path. The file is created on the
// first record.
func NewKnownNodes(path string) *KnownNodes { return &KnownNodes{path: path} }

// Path returns the file the store is kept in.
func (k *KnownNodes) Path() string { return k.path }

// KeyMismatchError reports a node presenting a key other than the recorded
// one: either the node was re-keyed or someone is in the middle.
type KeyMismatchError struct {
	Addr      string
	Got, Want NodeID
	File      string
	Line      int
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("core: node at %s presented key %s, but %s:%d records %s; "+
		"if the node's key changed on purpose, delete that line or dial %s@%s to pin the new key",
		e.Addr, e.Got, e.File, e.Line, e.Want, e.Got, e.Addr)
}

// lookup returns the NodeID recorded for addr and its line number.
func (k *KnownNodes) lookup(addr string) (NodeID, int, error) {
	data, err := os.ReadFile(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return NodeID{}, 0, nil
	}
	if err != nil {
		return NodeID{}, 0, fmt.Errorf("core: known nodes: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 || fields[0] != addr {
			continue
		}
		id, err := ParseNodeID(fields[1])
		if err != nil {
			return NodeID{}, 0, fmt.Errorf("core: %s:%d: %w", k.path, line, err)
		}
		return id, line, nil
	}
	return NodeID{}, 0, nil
}

// Check returns nil if addr is unknown or known with id, and a
// [*KeyMismatchError] if another key is recorded for it.
func (k *KnownNodes) Check(addr string, id NodeID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	want, line, err := k.lookup(addr)
	if err != nil || want.IsZero() || want == id {
		return err
	}
	return &KeyMismatchError{Addr: addr, Got: id, Want: want, File: k.path, Line: line}
}

// Record stores id for addr if addr is not known yet. It refuses to replace a
// different recorded key.
func (k *KnownNodes) Record(addr string, id NodeID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	want, line, err := k.lookup(addr)
	switch {
	case err != nil:
		return err
	case want == id:
		return nil
	case !want.IsZero():
		return &KeyMismatchError{Addr: addr, Got: id, Want: want, File: k.path, Line: line}
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("core: known nodes: %w", err)
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("core: known nodes: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", addr, id); err != nil {
		f.Close()
		return fmt.Errorf("core: known nodes: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("core: known nodes: %w", err)
	}
	if k.Added != nil {
		k.Added(addr, id)
	}
	return nil
}

// known returns the NodeID recorded for addr, zero if none.
func (k *KnownNodes) known(addr string) (NodeID, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, _, err := k.lookup(addr)
	return id, err
}
