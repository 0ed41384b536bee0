//go:build !linux

package sftp

import (
	"os"

	pkgsftp "github.com/pkg/sftp"
)

// statVFS is only implemented on Linux; elsewhere clients are told the
// operation is unsupported.
func statVFS(*os.File) (*pkgsftp.StatVFS, error) {
	return nil, pkgsftp.ErrSSHFxOpUnsupported
}
