//go:build !unix

package sftp

import (
	"io/fs"
	"os"

	pkgsftp "github.com/pkg/sftp"
)

const openNonblock = 0

const openReadFlags = os.O_RDONLY

// sameOwner: ownership cannot be compared here, so changes are refused.
func sameOwner(fs.FileInfo, *pkgsftp.FileStat) bool { return false }
