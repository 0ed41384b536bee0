package sftp

import (
	"os"
	"syscall"

	pkgsftp "github.com/pkg/sftp"
)

// statVFS describes the file system holding f.
func statVFS(f *os.File) (*pkgsftp.StatVFS, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var st syscall.Statfs_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return &pkgsftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  uint64(st.Frsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Fsid:    uint64(uint32(st.Fsid.X__val[0]))<<32 | uint64(uint32(st.Fsid.X__val[1])),
		Flag:    uint64(st.Flags),
		Namemax: uint64(st.Namelen),
	}, nil
}
