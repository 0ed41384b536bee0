package fs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// haveSyncfs says flush syncs the whole file system in one call.
const haveSyncfs = true

// syncfs flushes the file system holding path (syncfs(2)): the data and
// metadata of every file written there, this process's and others'.
func syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}
