//go:build !linux

package core

import (
	"errors"
	"fmt"
)

// openFiles is not implemented off Linux: FilesLow then never reports low
// and only the services' own caps bound descriptors.
func openFiles() (int, error) {
	return 0, fmt.Errorf("core: count open files: %w", errors.ErrUnsupported)
}
