//go:build unix

package sftp

import (
	"io/fs"
	"os"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// openNonblock keeps open(2) from blocking on a FIFO or device someone
// placed in a root; such files are then refused. It changes nothing for
// regular files.
const openNonblock = syscall.O_NONBLOCK

// openReadFlags opens files for reading.
const openReadFlags = os.O_RDONLY | openNonblock

// sameOwner reports whether attrs carry fi's current uid and gid.
func sameOwner(fi fs.FileInfo, attrs *pkgsftp.FileStat) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == attrs.UID && st.Gid == attrs.GID
}
