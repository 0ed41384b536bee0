package core

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// openFiles counts the entries of /proc/self/fd, less the one its own
// read opens.
func openFiles() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("core: count open files: %w", err)
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("core: count open files: %w", err)
		}
	}
	return n - 1, nil
}
