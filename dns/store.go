package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// storeExt names the files of a [Store]: "<z32>.pkarr".
const storeExt = ".pkarr"

// Store holds the latest signed packet of each key, in memory and, when it
// has a directory, durably as one file per key. A packet file is written
// to a temporary name, synced and renamed over the old one, so a crash
// leaves either the old or the new packet, never a torn one. Packets older
// than the store's maximum age are dropped when met. Safe for concurrent
// use.
type Store struct {
	dir    string
	maxAge time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu      sync.RWMutex
	packets map[core.NodeID]*SignedPacket
}

// StoreConfig configures a [Store].
type StoreConfig struct {
	// Dir holds the packet files; created 0700 if missing. Empty: the
	// store lives in memory only.
	Dir string
	// MaxAge drops packets whose timestamp is older. Zero:
	// DefaultSignedMaxAge; negative: never.
	MaxAge time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives warnings about unreadable files; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultSignedMaxAge is how long a signed packet is served after its
// timestamp when nothing newer arrives.
const DefaultSignedMaxAge = 48 * time.Hour

// OpenStore opens (creating) the store and loads every packet in it.
// Files that no longer verify are skipped with a warning and left in place.
func OpenStore(cfg StoreConfig) (*Store, error) {
	s := &Store{dir: cfg.Dir, maxAge: cfg.MaxAge, now: cfg.Clock, logger: cfg.Logger, packets: map[core.NodeID]*SignedPacket{}}
	if s.maxAge == 0 {
		s.maxAge = DefaultSignedMaxAge
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("dns: store: %w", err)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("dns: store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, storeExt) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err == nil && len(b) > MaxSignedPacketBytes {
			err = ErrTooLarge
		}
		var p *SignedPacket
		if err == nil {
			p, err = DecodeSignedPacket(b)
		}
		if err == nil && p.Key().String()+storeExt != name {
			err = errors.New("file name does not match its key")
		}
		if err != nil {
			s.logger.Warn("dns: skipping stored packet", "file", name, "err", err)
			continue
		}
		if s.stale(p) {
			s.remove(p.Key())
			continue
		}
		s.packets[p.Key()] = p
	}
	return s, nil
}

// Len returns the number of packets held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.packets)
}

func (s *Store) stale(p *SignedPacket) bool {
	return s.maxAge > 0 && s.now().Sub(p.Time()) > s.maxAge
}

// Get returns key's latest packet; a stale one is dropped and not returned.
func (s *Store) Get(key core.NodeID) (*SignedPacket, bool) {
	s.mu.RLock()
	p, ok := s.packets[key]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if s.stale(p) {
		s.mu.Lock()
		if s.packets[key] == p {
			delete(s.packets, key)
			s.remove(key)
		}
		s.mu.Unlock()
		return nil, false
	}
	return p, true
}

// Precondition is a compare-and-swap condition on a [Store.Put].
type Precondition struct {
	// IfMatch, if set, is the timestamp the stored packet must have.
	IfMatch *uint64
	// IfNoneMatch requires that no packet is stored for the key.
	IfNoneMatch bool
}

func (c Precondition) set() bool { return c.IfMatch != nil || c.IfNoneMatch }

// Put stores p if its timestamp is newer than the stored packet's and the
// precondition holds. Storing the very packet already held succeeds and
// changes nothing. Errors: [ErrNotNewer], [ErrCASFailed], or a write error.
func (s *Store) Put(p *SignedPacket, cond Precondition) error { return s.put(p, cond, 0) }

// put is Put that, with limit > 0, refuses a key not held yet with
// ErrStoreFull while the store holds limit packets or more, after dropping
// the stale ones.
func (s *Store) put(p *SignedPacket, cond Precondition, limit int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.packets[p.Key()]
	if ok && s.stale(old) {
		old, ok = nil, false
	}
	if !ok && limit > 0 && len(s.packets) >= limit {
		s.dropStale()
		if len(s.packets) >= limit {
			return ErrStoreFull
		}
	}
	switch {
	case cond.IfNoneMatch && ok:
		return ErrCASFailed
	case cond.IfMatch != nil && (!ok || old.ts != *cond.IfMatch):
		return ErrCASFailed
	case ok && old.ts == p.ts && old.sig == p.sig:
		return nil
	case ok && old.ts >= p.ts:
		return ErrNotNewer
	}
	if s.dir != "" {
		if err := writeAtomic(filepath.Join(s.dir, p.Key().String()+storeExt), p.Bytes()); err != nil {
			return fmt.Errorf("dns: store: %w", err)
		}
	}
	s.packets[p.Key()] = p
	return nil
}

// dropStale drops every stale packet; the caller holds mu.
func (s *Store) dropStale() {
	for key, p := range s.packets {
		if s.stale(p) {
			delete(s.packets, key)
			s.remove(key)
		}
	}
}

// remove deletes key's file; the caller holds mu or owns s exclusively.
func (s *Store) remove(key core.NodeID) {
	if s.dir == "" {
		return
	}
	err := os.Remove(filepath.Join(s.dir, key.String()+storeExt))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Warn("dns: removing stale packet", "err", err)
	}
}

// writeAtomic writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
