package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/ipfs/go-cid"
)

// pinsFile holds the named pins, as a JSON object of name to CID.
const pinsFile = "pins.json"

// pinName is what a pin may be called: 1..128 letters, digits and ._-/:@+
// so names read well in listings and file paths.
var pinName = regexp.MustCompile(`^[A-Za-z0-9._\-/:@+]{1,128}$`)

// Pin is a named reference that keeps a root and everything below it from
// garbage collection.
type Pin struct {
	// Name is the pin's name.
	Name string `json:"name"`
	// CID is the pinned root.
	CID string `json:"cid"`
}

// Pin names root: GC keeps it and every block below it. The whole DAG must
// be in the store (the error names the first missing block). Pinning an
// existing name moves it to root.
func (s *Store) Pin(ctx context.Context, name string, root cid.Cid) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("fs: pin %q: want 1..128 characters of A-Z a-z 0-9 . _ - / : @ +", name)
	}
	if _, err := s.walk(ctx, root, nil); err != nil {
		return fmt.Errorf("fs: pin %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]cid.Cid, len(s.pins)+1)
	for k, v := range s.pins {
		next[k] = v
	}
	next[name] = root
	if err := savePins(filepath.Join(s.dir, pinsFile), next); err != nil {
		return fmt.Errorf("fs: pin %q: %w", name, err)
	}
	s.pins = next
	return nil
}

// Unpin removes the pin called name; the content stays until a GC. An
// unknown name is an error matching [ErrNotFound].
func (s *Store) Unpin(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pins[name]; !ok {
		return fmt.Errorf("fs: unpin %q: %w", name, ErrNotFound)
	}
	next := make(map[string]cid.Cid, len(s.pins))
	for k, v := range s.pins {
		if k != name {
			next[k] = v
		}
	}
	if err := savePins(filepath.Join(s.dir, pinsFile), next); err != nil {
		return fmt.Errorf("fs: unpin %q: %w", name, err)
	}
	s.pins = next
	return nil
}

// Pins lists the pins sorted by name.
func (s *Store) Pins() []Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Pin, 0, len(s.pins))
	for k, v := range s.pins {
		out = append(out, Pin{Name: k, CID: v.String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func loadPins(path string) (map[string]cid.Cid, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return make(map[string]cid.Cid), nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pins := make(map[string]cid.Cid, len(raw))
	for name, v := range raw {
		c, err := cid.Decode(v)
		if err != nil {
			return nil, fmt.Errorf("%s: pin %q: %w", path, name, err)
		}
		pins[name] = c
	}
	return pins, nil
}

// savePins writes the pins atomically: a synced temporary file renamed over
// the old one.
func savePins(path string, pins map[string]cid.Cid) error {
	raw := make(map[string]string, len(pins))
	for k, v := range pins {
		raw[k] = v.String()
	}
	data, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pins-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
