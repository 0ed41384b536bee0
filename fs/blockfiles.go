package fs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ipfs/boxo/datastore/dshelp"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	flatfs "github.com/ipfs/go-ds-flatfs"
	mh "github.com/multiformats/go-multihash"
)

// shard is the store's flatfs sharding: the next-to-last two characters of
// the key, kubo's default. Open refuses a store sharded otherwise.
var shard = flatfs.NextToLast(2)

// blockFiles writes batches of blocks into the flatfs layout of a store's
// blocks directory itself, with one sync for a whole batch instead of
// flatfs's per block: each block goes to a new file in flatfs's temporary
// directory, the batch is flushed (with sync), the files are renamed into
// their shard directories, and the batch is flushed again. A block is thus
// in place only once its data is on disk: the store never holds a torn
// block, and a crash loses at most the batches not yet flushed. Reads,
// deletes and listings stay flatfs's; its disk-usage estimate learns of
// these writes when the store closes ([blockFiles.addToDiskUsage]).
type blockFiles struct {
	dir     string // the flatfs root
	temp    string // flatfs's temporary directory, emptied when flatfs opens
	sync    bool
	dirs    sync.Map     // shard directories known to exist
	written atomic.Int64 // bytes of the blocks put in place
}

func newBlockFiles(dir string, sync bool) *blockFiles {
	return &blockFiles{dir: dir, temp: filepath.Join(dir, ".temp"), sync: sync}
}

// write stores bs; blocks already stored and identity blocks are skipped.
func (w *blockFiles) write(bs []blocks.Block) (err error) {
	type file struct {
		tmp, dst string
		size     int64
	}
	files := make([]file, 0, len(bs))
	defer func() {
		for _, f := range files {
			if f.tmp != "" {
				_ = os.Remove(f.tmp)
			}
		}
	}()
	for _, b := range bs {
		if b.Cid().Prefix().MhType == mh.IDENTITY {
			continue
		}
		dir, dst := w.path(b.Cid())
		if _, err := os.Lstat(dst); err == nil {
			continue // stored already: content addressed, so the same bytes
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := w.mkdir(dir); err != nil {
			return err
		}
		tmp, err := w.writeTemp(b.RawData())
		if tmp != "" {
			files = append(files, file{tmp: tmp, dst: dst, size: int64(len(b.RawData()))})
		}
		if err != nil {
			return err
		}
	}
	if len(files) == 0 {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	for i, f := range files {
		if err := os.Rename(f.tmp, f.dst); err != nil {
			return fmt.Errorf("store block: %w", err)
		}
		files[i].tmp = ""
		w.written.Add(f.size)
	}
	return w.flush()
}

// path returns the shard directory and the file of the block c, as flatfs
// names them.
func (w *blockFiles) path(c cid.Cid) (dir, file string) {
	key := dshelp.MultihashToDsKey(c.Hash()).String()[1:]
	dir = filepath.Join(w.dir, shard.Func()(key))
	return dir, filepath.Join(dir, key+".data")
}

// read appends the data of the stored block c to buf[:off] (growing it
// as needed) and returns the result; a missing block is a
// [MissingError]. It reads the file as flatfs's Get does, into memory the
// caller reuses.
func (w *blockFiles) read(c cid.Cid, buf []byte, off int) ([]byte, error) {
	_, name := w.path(c)
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return buf, &MissingError{CID: c}
	}
	if err != nil {
		return buf, fmt.Errorf("block %s: %w", c, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return buf, fmt.Errorf("block %s: %w", c, err)
	}
	n := off + int(info.Size())
	buf = slices.Grow(buf[:0], n)[:n]
	if _, err := io.ReadFull(f, buf[off:]); err != nil {
		return buf, fmt.Errorf("block %s: %w", c, err)
	}
	return buf, nil
}

// writeTemp writes data to a new temporary file and returns its name.
func (w *blockFiles) writeTemp(data []byte) (string, error) {
	f, err := os.CreateTemp(w.temp, "temp-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil && w.sync && !haveSyncfs {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

// mkdir makes the shard directory dir unless it is known to exist.
func (w *blockFiles) mkdir(dir string) error {
	if _, ok := w.dirs.Load(dir); ok {
		return nil
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	w.dirs.Store(dir, struct{}{})
	return nil
}

// flush makes what was written so far durable, if the store syncs: one
// syncfs of the file system where syncfs exists, else a sync of every
// directory written (the files were synced as they were written).
func (w *blockFiles) flush() error {
	if !w.sync {
		return nil
	}
	if haveSyncfs {
		return syncfs(w.dir)
	}
	var err error
	w.dirs.Range(func(k, _ any) bool {
		err = syncDir(k.(string))
		return err == nil
	})
	if err == nil {
		err = syncDir(w.temp)
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	return err
}

// addToDiskUsage adds the bytes this writer put in place to the estimate
// flatfs keeps in diskUsage.cache; call it after flatfs closed (and wrote
// its own count, which lacks them). Without it a GC that deletes these
// blocks drives the estimate below zero, and flatfs then recounts the
// whole store at its next open, printing to stdout (where `alknet fs cat`
// writes the file) when that takes over five seconds.
func (w *blockFiles) addToDiskUsage() error {
	n := w.written.Swap(0)
	if n == 0 {
		return nil
	}
	path := filepath.Join(w.dir, flatfs.DiskUsageFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // flatfs counts the store at its next open
	}
	if err != nil {
		return err
	}
	var v map[string]json.RawMessage // keeps flatfs's other fields
	var du int64
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("disk usage: %w", err)
	}
	if err := json.Unmarshal(v["diskUsage"], &du); err != nil {
		return fmt.Errorf("disk usage: %w", err)
	}
	if v["diskUsage"], err = json.Marshal(du + n); err != nil {
		return err
	}
	if data, err = json.Marshal(v); err != nil {
		return err
	}
	tmp := path + ".alknet-tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncDir fsyncs the directory dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
