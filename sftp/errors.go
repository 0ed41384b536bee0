package sftp

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// errDraining refuses new handles while the server shuts down.
var errDraining = errors.New("server shutting down")

// statusErr builds the error a client sees for op on vpath (an SFTP path).
// pkg/sftp turns it into an SSH_FXP_STATUS: a syscall.Errno maps to its
// code (ENOENT: no such file, EACCES/EPERM: permission denied, others:
// failure) and a pkg/sftp status code is used as it is. The message names
// only the SFTP path, never a host path.
func statusErr(op, vpath string, code error) error {
	return &os.PathError{Op: op, Path: vpath, Err: code}
}

// denied is the permission-denied status for op on vpath.
func denied(op, vpath string) error {
	return statusErr(op, vpath, pkgsftp.ErrSSHFxPermissionDenied)
}

// fsErr turns an error from the file system under the root into the status
// for op on vpath. Attempts to leave the root read as permission denied.
func fsErr(op, vpath string, err error) error {
	if err == nil {
		return nil
	}
	if escapes(err) {
		return denied(op, vpath)
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return statusErr(op, vpath, errno)
	case errors.Is(err, fs.ErrNotExist):
		return statusErr(op, vpath, syscall.ENOENT)
	case errors.Is(err, fs.ErrExist):
		return statusErr(op, vpath, syscall.EEXIST)
	case errors.Is(err, fs.ErrPermission):
		return statusErr(op, vpath, syscall.EACCES)
	case errors.Is(err, errDraining), limitErr(err):
		return statusErr(op, vpath, err)
	}
	for _, code := range []error{pkgsftp.ErrSSHFxPermissionDenied, pkgsftp.ErrSSHFxOpUnsupported, pkgsftp.ErrSSHFxBadMessage, pkgsftp.ErrSSHFxNoSuchFile} {
		if errors.Is(err, code) {
			return statusErr(op, vpath, code)
		}
	}
	return statusErr(op, vpath, pkgsftp.ErrSSHFxFailure)
}

// escapes reports whether err says a path would leave the root: ours, or
// os.Root's, which it does not export ("path escapes from parent").
func escapes(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e == errEscape || e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
