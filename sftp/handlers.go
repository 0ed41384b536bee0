package sftp

import (
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	pkgsftp "github.com/pkg/sftp"
)

// The session implements pkg/sftp's handler interfaces, with the optional
// ones that make it exact: read-write opens, POSIX rename, statvfs, lstat
// and readlink.
var (
	_ pkgsftp.FileReader           = (*session)(nil)
	_ pkgsftp.OpenFileWriter       = (*session)(nil)
	_ pkgsftp.PosixRenameFileCmder = (*session)(nil)
	_ pkgsftp.StatVFSFileCmder     = (*session)(nil)
	_ pkgsftp.LstatFileLister      = (*session)(nil)
	_ pkgsftp.ReadlinkFileLister   = (*session)(nil)
)

// Fileread serves OPEN for reading. Only regular files open; the file is
// opened without blocking so that a FIFO placed in the root cannot stall
// the session.
func (s *session) Fileread(r *pkgsftp.Request) (_ io.ReaderAt, err error) {
	defer s.guard("open", &err)
	vpath := r.Filepath
	if !s.read {
		return nil, denied("open", vpath)
	}
	if err := s.acquire(); err != nil {
		return nil, fsErr("open", vpath, err)
	}
	f, err := s.root.OpenFile(rel(vpath), openReadFlags, 0)
	if err != nil {
		s.release()
		return nil, fsErr("open", vpath, err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		err = fsErr("open", vpath, err)
	case fi.IsDir():
		err = statusErr("open", vpath, syscall.EISDIR)
	case !fi.Mode().IsRegular():
		err = statusErr("open", vpath, pkgsftp.ErrSSHFxOpUnsupported)
	}
	if err != nil {
		_ = f.Close()
		s.release()
		return nil, err
	}
	return &handle{f: f, s: s, vpath: vpath}, nil
}

// Filewrite serves OPEN for writing; see [upload].
func (s *session) Filewrite(r *pkgsftp.Request) (_ io.WriterAt, err error) {
	defer s.guard("open", &err)
	w, err := s.openWrite(r, false)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// OpenFile serves OPEN for reading and writing. Unless it truncates the
// file, it needs ScopeRead as well as ScopeWrite.
func (s *session) OpenFile(r *pkgsftp.Request) (_ pkgsftp.WriterAtReaderAt, err error) {
	defer s.guard("open", &err)
	return s.openWrite(r, true)
}

// Filecmd serves SETSTAT, FSETSTAT, RENAME, RMDIR, MKDIR, REMOVE, SYMLINK
// and hardlink@openssh.com. All need ScopeWrite.
func (s *session) Filecmd(r *pkgsftp.Request) (err error) {
	defer s.guard(r.Method, &err)
	if !s.write {
		return denied(opName(r.Method), r.Filepath)
	}
	switch r.Method {
	case "Setstat":
		return s.setstat(r)
	case "Rename":
		return s.rename(r.Filepath, r.Target, false)
	case "Rmdir":
		return s.remove(r.Filepath, true)
	case "Remove":
		return s.remove(r.Filepath, false)
	case "Mkdir":
		name := rel(r.Filepath)
		if name == "." {
			return statusErr("mkdir", r.Filepath, syscall.EEXIST)
		}
		return fsErr("mkdir", r.Filepath, s.root.Mkdir(name, 0o755))
	case "Link":
		return fsErr("link", r.Target, s.root.Link(rel(r.Filepath), rel(r.Target)))
	case "Symlink":
		// pkg/sftp puts the link's path in Target and its raw target in
		// Filepath.
		t, err := linkTarget(r.Target, r.Filepath)
		if err != nil {
			return fsErr("symlink", r.Target, err)
		}
		return fsErr("symlink", r.Target, s.root.Symlink(t, rel(r.Target)))
	}
	return statusErr(opName(r.Method), r.Filepath, pkgsftp.ErrSSHFxOpUnsupported)
}

// PosixRename serves posix-rename@openssh.com: rename, replacing the
// target.
func (s *session) PosixRename(r *pkgsftp.Request) (err error) {
	defer s.guard("rename", &err)
	if !s.write {
		return denied("rename", r.Filepath)
	}
	return s.rename(r.Filepath, r.Target, true)
}

// StatVFS serves statvfs@openssh.com for the file system holding the path.
func (s *session) StatVFS(r *pkgsftp.Request) (_ *pkgsftp.StatVFS, err error) {
	defer s.guard("statvfs", &err)
	if !s.read {
		return nil, denied("statvfs", r.Filepath)
	}
	f, err := s.root.OpenFile(rel(r.Filepath), openReadFlags, 0)
	if err != nil {
		return nil, fsErr("statvfs", r.Filepath, err)
	}
	defer f.Close()
	st, err := statVFS(f)
	return st, fsErr("statvfs", r.Filepath, err)
}

// Filelist serves OPENDIR (Method "List") and STAT. Both need ScopeRead.
func (s *session) Filelist(r *pkgsftp.Request) (_ pkgsftp.ListerAt, err error) {
	defer s.guard("list", &err)
	vpath := r.Filepath
	switch r.Method {
	case "List":
		if !s.read {
			return nil, denied("opendir", vpath)
		}
		return s.opendir(vpath)
	case "Stat":
		if !s.read {
			return nil, denied("stat", vpath)
		}
		if u := s.uploadAt(vpath); u != nil {
			fi, err := u.stat()
			if err != nil {
				return nil, err
			}
			return listerOf{fi}, nil
		}
		fi, err := s.root.Stat(rel(vpath))
		if err != nil {
			return nil, fsErr("stat", vpath, err)
		}
		return listerOf{fi}, nil
	}
	return nil, statusErr(opName(r.Method), vpath, pkgsftp.ErrSSHFxOpUnsupported)
}

// Lstat serves LSTAT: the link itself, not what it points to.
func (s *session) Lstat(r *pkgsftp.Request) (_ pkgsftp.ListerAt, err error) {
	defer s.guard("lstat", &err)
	if !s.read {
		return nil, denied("lstat", r.Filepath)
	}
	fi, err := s.root.Lstat(rel(r.Filepath))
	if err != nil {
		return nil, fsErr("lstat", r.Filepath, err)
	}
	return listerOf{fi}, nil
}

// Readlink serves READLINK with the target as stored.
func (s *session) Readlink(vpath string) (_ string, err error) {
	defer s.guard("readlink", &err)
	if !s.read {
		return "", denied("readlink", vpath)
	}
	t, err := s.root.Readlink(rel(vpath))
	if err != nil {
		return "", fsErr("readlink", vpath, err)
	}
	return t, nil
}

// setstat applies SETSTAT/FSETSTAT: size, permissions (the 0777 bits
// only), times, and uid/gid only when they are unchanged (a remote user
// never gives files away).
func (s *session) setstat(r *pkgsftp.Request) error {
	vpath := r.Filepath
	flags, attrs := r.AttrFlags(), r.Attributes()
	if attrs == nil { // malformed attributes
		return statusErr("setstat", vpath, pkgsftp.ErrSSHFxBadMessage)
	}
	if flags.Size && attrs.Size > math.MaxInt64 {
		return statusErr("setstat", vpath, syscall.EINVAL)
	}
	if u := s.uploadAt(vpath); u != nil {
		return u.setstat(flags, attrs)
	}
	name := rel(vpath)
	if flags.Size {
		f, err := s.root.OpenFile(name, os.O_WRONLY|openNonblock, 0)
		if err != nil {
			return fsErr("setstat", vpath, err)
		}
		fi, err := f.Stat()
		switch {
		case err != nil:
		case !fi.Mode().IsRegular():
			err = pkgsftp.ErrSSHFxOpUnsupported
		default:
			err = f.Truncate(int64(attrs.Size))
		}
		_ = f.Close()
		if err != nil {
			return fsErr("setstat", vpath, err)
		}
	}
	if flags.Permissions {
		if err := s.root.Chmod(name, fs.FileMode(attrs.Mode)&fs.ModePerm); err != nil {
			return fsErr("setstat", vpath, err)
		}
	}
	if flags.Acmodtime {
		err := s.root.Chtimes(name, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0))
		if err != nil {
			return fsErr("setstat", vpath, err)
		}
	}
	if flags.UidGid {
		fi, err := s.root.Stat(name)
		if err != nil {
			return fsErr("setstat", vpath, err)
		}
		if !sameOwner(fi, attrs) {
			return denied("setstat", vpath)
		}
	}
	return nil
}

// rename serves RENAME (fails if newpath exists, as SFTP v3 says) and
// posix-rename (replaces it). The root itself never moves.
func (s *session) rename(oldpath, newpath string, replace bool) error {
	from, to := rel(oldpath), rel(newpath)
	if from == "." || to == "." {
		return denied("rename", oldpath)
	}
	if !replace {
		if _, err := s.root.Lstat(to); err == nil {
			return statusErr("rename", newpath, syscall.EEXIST)
		}
	}
	return fsErr("rename", oldpath, s.root.Rename(from, to))
}

// remove serves REMOVE (files and links only) and RMDIR (directories
// only). The root itself is never removed.
func (s *session) remove(vpath string, dir bool) error {
	op := "remove"
	if dir {
		op = "rmdir"
	}
	name := rel(vpath)
	if name == "." {
		return denied(op, vpath)
	}
	fi, err := s.root.Lstat(name)
	switch {
	case err != nil:
		return fsErr(op, vpath, err)
	case dir && !fi.IsDir():
		return statusErr(op, vpath, syscall.ENOTDIR)
	case !dir && fi.IsDir():
		return statusErr(op, vpath, syscall.EISDIR)
	}
	return fsErr(op, vpath, s.root.Remove(name))
}

// opendir opens a directory listing.
func (s *session) opendir(vpath string) (pkgsftp.ListerAt, error) {
	if err := s.acquire(); err != nil {
		return nil, fsErr("opendir", vpath, err)
	}
	f, err := s.root.Open(rel(vpath))
	if err != nil {
		s.release()
		return nil, fsErr("opendir", vpath, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		_ = f.Close()
		s.release()
		return nil, fsErr("opendir", vpath, err)
	}
	return &dirLister{f: f, s: s, vpath: vpath}, nil
}

// handle is an open file: a read handle, or a write handle that changes an
// existing file in place (see [upload]).
type handle struct {
	f     *os.File
	s     *session
	vpath string
	once  sync.Once
}

func (h *handle) ReadAt(p []byte, off int64) (int, error) {
	n, err := h.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, fsErr("read", h.vpath, err)
	}
	return n, err
}

func (h *handle) WriteAt(p []byte, off int64) (int, error) {
	n, err := h.f.WriteAt(p, off)
	return n, fsErr("write", h.vpath, err)
}

func (h *handle) Close() error {
	var err error
	h.once.Do(func() {
		err = h.f.Close()
		h.s.release()
	})
	return fsErr("close", h.vpath, err)
}

// dirLister reads a directory in the chunks READDIR asks for. pkg/sftp
// asks for consecutive offsets; anything else is refused. Entries describe
// links themselves (lstat), as ls expects.
type dirLister struct {
	f     *os.File
	s     *session
	vpath string

	mu     sync.Mutex
	next   int64
	closed bool
}

func (l *dirLister) ListAt(buf []os.FileInfo, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || off != l.next {
		return 0, statusErr("readdir", l.vpath, pkgsftp.ErrSSHFxFailure)
	}
	if len(buf) == 0 {
		return 0, nil
	}
	infos, err := l.f.Readdir(len(buf))
	n := copy(buf, infos)
	l.next += int64(n)
	if err == io.EOF {
		return n, io.EOF
	}
	return n, fsErr("readdir", l.vpath, err)
}

func (l *dirLister) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.f.Close()
	l.s.release()
	return fsErr("closedir", l.vpath, err)
}

// listerOf lists one entry, for STAT and LSTAT.
type listerOf [1]os.FileInfo

func (l listerOf) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off >= 1 {
		return 0, io.EOF
	}
	return copy(buf, l[:]), nil
}

// opName turns a pkg/sftp method name into an operation for messages.
func opName(method string) string {
	switch method {
	case "Setstat":
		return "setstat"
	case "Rename", "PosixRename":
		return "rename"
	case "Rmdir":
		return "rmdir"
	case "Remove":
		return "remove"
	case "Mkdir":
		return "mkdir"
	case "Link":
		return "link"
	case "Symlink":
		return "symlink"
	case "List":
		return "opendir"
	}
	return "request"
}

// baseName is the last element of an SFTP path.
func baseName(vpath string) string { return path.Base(vpath) }
