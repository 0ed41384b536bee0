//go:build !unix

package core

import (
	"errors"
	"fmt"
)

func fileLimit() (soft, hard uint64, err error) {
	return 0, 0, fmt.Errorf("core: file descriptor limit: %w", errors.ErrUnsupported)
}

func raiseFileLimit() (soft, hard uint64, err error) { return fileLimit() }
