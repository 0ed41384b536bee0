package sftp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	pkgsftp "github.com/pkg/sftp"
)

// upload is an open write handle that replaces or creates a file: OPEN
// with O_TRUNC, or of a file that does not exist yet. Writes go to a
// temporary file beside the target; Close syncs it and renames it over the
// target, so the target changes in one step and only when the client closes
// the handle. A handle that ends otherwise (the session dies, a write
// fails) removes the temporary file and leaves the target as it was.
//
// An OPEN that keeps an existing file's content (no O_TRUNC: OpenSSH's
// "reput", partial rewrites, sshfs) writes in place instead (see
// [handle]): it never truncates, an interrupted resume keeps its progress,
// and copying the old content to a temporary file would cost as much as
// the file is large on every such open (a sparse file would even be
// filled in).
//
// WriteAt and ReadAt run concurrently on pkg/sftp's workers; the file's
// positional I/O allows that.
type upload struct {
	s      *session
	f      *os.File
	vpath  string // SFTP path the client opened, for messages and the uploads map
	tmp    string // root name of the temporary file
	target string // root name the file is renamed to
	excl   bool   // the client asked for O_EXCL: never replace an existing file

	mu       sync.Mutex
	mode     fs.FileMode
	times    *[2]time.Time // atime, mtime set by FSETSTAT, applied on close
	failed   error         // a write or the transfer failed: discard on close
	finished bool
}

// openWrite serves OPEN for writing (write only, or read-write when rw).
func (s *session) openWrite(r *pkgsftp.Request, rw bool) (_ pkgsftp.WriterAtReaderAt, err error) {
	vpath := r.Filepath
	flags := r.Pflags()
	// A read-write handle on an existing file lets the client read it, so
	// that needs ScopeRead too; truncating ones (pkg/sftp's Create) expose
	// only what the client wrote.
	if !s.write || (rw && !flags.Trunc && !s.read) {
		return nil, denied("open", vpath)
	}
	name := rel(vpath)
	if name == "." {
		return nil, statusErr("open", vpath, syscall.EISDIR)
	}
	target, err := followLinks(s.root, name)
	if err != nil {
		return nil, fsErr("open", vpath, err)
	}
	fi, err := s.root.Stat(target)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fsErr("open", vpath, err)
	case exists && flags.Excl:
		return nil, statusErr("open", vpath, syscall.EEXIST)
	case !exists && !flags.Creat:
		return nil, statusErr("open", vpath, syscall.ENOENT)
	case exists && fi.IsDir():
		return nil, statusErr("open", vpath, syscall.EISDIR)
	case exists && !fi.Mode().IsRegular():
		return nil, statusErr("open", vpath, pkgsftp.ErrSSHFxOpUnsupported)
	}
	if err := s.acquire(); err != nil {
		return nil, fsErr("open", vpath, err)
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if exists && !flags.Trunc {
		h, err := s.openInPlace(vpath, target, rw)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
	// pkg/sftp hands OPEN's attributes over without their flags, so the
	// mode the client asked for cannot be read; new files get 0644 and
	// replaced files keep their mode. A later SETSTAT/FSETSTAT changes it.
	mode := fs.FileMode(0o644)
	if exists {
		mode = fi.Mode().Perm()
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := tempName(target, hex.EncodeToString(rnd[:]))
	f, err := s.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fsErr("open", vpath, err)
	}
	u := &upload{s: s, f: f, vpath: vpath, tmp: tmp, target: target, excl: flags.Excl, mode: mode}
	s.addUpload(vpath, u)
	return u, nil
}

// openInPlace opens an existing regular file for writing in place.
func (s *session) openInPlace(vpath, target string, rw bool) (*handle, error) {
	flag := os.O_WRONLY
	if rw {
		flag = os.O_RDWR
	}
	f, err := s.root.OpenFile(target, flag|openNonblock, 0)
	if err != nil {
		return nil, fsErr("open", vpath, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = pkgsftp.ErrSSHFxOpUnsupported
		}
		return nil, fsErr("open", vpath, err)
	}
	return &handle{f: f, s: s, vpath: vpath}, nil
}

// WriteAt writes to the temporary file. A failed write dooms the upload:
// Close then discards it instead of publishing a file with a hole.
func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	n, err := u.f.WriteAt(p, off)
	if err != nil {
		u.fail(err)
		return n, fsErr("write", u.vpath, err)
	}
	return n, nil
}

// ReadAt reads what has been written so far (read-write handles).
func (u *upload) ReadAt(p []byte, off int64) (int, error) {
	n, err := u.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, fsErr("read", u.vpath, err)
	}
	return n, err
}

// TransferError is called by pkg/sftp when the session ends with the handle
// still open: the upload is then discarded on Close.
func (u *upload) TransferError(err error) {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	u.fail(err)
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.failed == nil {
		u.failed = err
	}
	u.mu.Unlock()
}

// setstat applies SETSTAT or FSETSTAT attributes to the open upload.
func (u *upload) setstat(flags pkgsftp.FileAttrFlags, attrs *pkgsftp.FileStat) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.finished {
		return statusErr("setstat", u.vpath, syscall.EBADF)
	}
	if flags.Size {
		if err := u.f.Truncate(int64(attrs.Size)); err != nil {
			return fsErr("setstat", u.vpath, err)
		}
	}
	if flags.Permissions {
		u.mode = fs.FileMode(attrs.Mode) & fs.ModePerm
	}
	if flags.Acmodtime {
		u.times = &[2]time.Time{time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)}
	}
	if flags.UidGid {
		fi, err := u.f.Stat()
		if err != nil {
			return fsErr("setstat", u.vpath, err)
		}
		if !sameOwner(fi, attrs) {
			return denied("setstat", u.vpath)
		}
	}
	return nil
}

// stat describes the upload as written so far.
func (u *upload) stat() (fs.FileInfo, error) {
	fi, err := u.f.Stat()
	if err != nil {
		return nil, fsErr("stat", u.vpath, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return &uploadInfo{FileInfo: fi, name: baseName(u.vpath), mode: u.mode}, nil
}

// Close publishes the upload: mode, sync, close, then rename over the
// target (or link, for O_EXCL). Any failure, and any earlier write or
// transfer failure, removes the temporary file instead. pkg/sftp calls it
// once, on CLOSE or when the session ends.
func (u *upload) Close() error {
	u.mu.Lock()
	if u.finished {
		u.mu.Unlock()
		return nil
	}
	u.finished = true
	failed, mode, times := u.failed, u.mode, u.times
	u.mu.Unlock()
	defer u.s.release()
	defer u.s.removeUpload(u.vpath, u)

	root := u.s.root
	if failed != nil {
		_ = u.f.Close()
		_ = root.Remove(u.tmp)
		return statusErr("close", u.vpath, pkgsftp.ErrSSHFxFailure)
	}
	err := u.f.Chmod(mode)
	if err == nil {
		err = u.f.Sync()
	}
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && times != nil {
		err = root.Chtimes(u.tmp, times[0], times[1])
	}
	if err == nil {
		err = u.publish()
	}
	if err != nil {
		_ = root.Remove(u.tmp)
		return fsErr("close", u.vpath, err)
	}
	// Make the rename itself durable; a failure here loses nothing yet.
	if d, err := root.Open(path.Dir(u.target)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// publish moves the temporary file to the target: a rename, or for O_EXCL
// a hard link, which fails if the target appeared meanwhile (with a
// check-then-rename fallback where hard links are not supported).
func (u *upload) publish() error {
	root := u.s.root
	if !u.excl {
		return root.Rename(u.tmp, u.target)
	}
	err := root.Link(u.tmp, u.target)
	switch {
	case err == nil:
		_ = root.Remove(u.tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return err
	}
	if _, err := root.Lstat(u.target); err == nil {
		return syscall.EEXIST
	}
	return root.Rename(u.tmp, u.target)
}

// uploadInfo is a stat of an upload's temporary file under the target's
// name and the mode it will get.
type uploadInfo struct {
	fs.FileInfo
	name string
	mode fs.FileMode
}

func (i *uploadInfo) Name() string      { return i.name }
func (i *uploadInfo) Mode() fs.FileMode { return i.mode }
