package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/alkdev/alknet/fs"
)

// fsConfig is the [fs] section: the content-addressed store and its
// transfer service (alknet/fs); the user guide is docs/fs.md. Public is
// reloaded without a restart; the rest is static.
type fsConfig struct {
	// StoreDir holds the blocks (StoreDir/blocks) and the pins
	// (StoreDir/pins.json); absolute. Default "<data-dir>/fs".
	StoreDir string `toml:"store_dir"`
	// Public lets anonymous callers get, stat and has over alknet/fs.
	// Default false: reads need fs:read. Writes always need fs:write.
	// Dynamic: hot-reloaded.
	Public bool `toml:"public" reload:"dynamic"`
	// NoSync skips syncing the block files: adds and transfers get faster,
	// but blocks written just before a power loss may be lost (never torn).
	// Default false: blocks are written in batches of up to 4 MiB, each
	// synced before its files are renamed into place and once after, so an
	// add or a transfer has every block on disk when it returns.
	NoSync bool `toml:"no_sync"`
	// MaxGets bounds the gets the node sends at once; each holds about 290
	// KiB until its peer has taken the CAR (or is cut for reading too
	// slowly). Anonymous peers get an eighth of them. A get past either is
	// answered unavailable. Default 256; at most 1048576.
	MaxGets int `toml:"max_gets"`
}

// validate reports every problem of the section.
func (c *fsConfig) validate() error {
	if c.StoreDir != "" && !filepath.IsAbs(c.StoreDir) {
		return fmt.Errorf("fs.store_dir: %q is not an absolute path", c.StoreDir)
	}
	if c.MaxGets < 0 || c.MaxGets > 1<<20 {
		return fmt.Errorf("fs.max_gets: %d out of range 0..%d", c.MaxGets, 1<<20)
	}
	return nil
}

// Dir returns the store directory for the data dir dataDir.
func (c *fsConfig) Dir(dataDir string) string {
	if c.StoreDir != "" {
		return c.StoreDir
	}
	return filepath.Join(dataDir, "fs")
}

// buildFS opens the store, serves it on alknet/fs, registers the fs/*
// operations and reloads fs.public with the config. The store closes after
// the handlers drained.
func buildFS(n *node) (part, error) {
	c := n.cfg.FS
	store, err := OpenStore(c.Dir(n.dataDir), fs.Options{NoSync: c.NoSync, Logger: n.logger})
	if err != nil {
		return part{}, err
	}
	h, err := fs.New(fs.Config{Store: store.Store, Public: c.Public, Logger: n.logger, MaxGets: c.MaxGets})
	if err == nil {
		err = fs.RegisterOps(n.calls, store.Store)
	}
	if err != nil {
		return part{}, errors.Join(err, store.Close())
	}
	return part{handler: h, closers: []func() error{store.Close}, reload: func(next *Config) { h.SetPublic(next.FS.Public) }}, nil
}

// storeLockFile is the file in a store directory that a process holding
// the store open keeps locked (flock). The store keeps its pins and the
// roots of running transfers in memory, so two processes on one store
// would overwrite each other's pins and collect each other's blocks.
const storeLockFile = "lock"

// ErrStoreInUse says another process has the store open.
var ErrStoreInUse = errors.New("in use by another process (a running `alknet serve` on this data dir?): reach that node with --node ADDR, or stop it")

// LockedStore is a store this process alone has open.
type LockedStore struct {
	*fs.Store
	lock *os.File
}

// OpenStore opens the store in dir and locks it for this process; a store
// another process holds is an error matching ErrStoreInUse.
func OpenStore(dir string, opts fs.Options) (*LockedStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, storeLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fs store: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			err = ErrStoreInUse
		}
		return nil, fmt.Errorf("fs store %s: %w", dir, err)
	}
	s, err := fs.Open(dir, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &LockedStore{Store: s, lock: lock}, nil
}

// Close closes the store, then releases the lock.
func (s *LockedStore) Close() error {
	return errors.Join(s.Store.Close(), s.lock.Close())
}
