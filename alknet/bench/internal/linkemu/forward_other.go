//go:build !linux

package linkemu

import (
	"fmt"
	"io"
)

// Main needs Linux (network namespaces and TUN devices).
func Main(in io.Reader, out io.Writer) int {
	fmt.Fprintln(out, "error: the link emulator needs Linux")
	return 1
}
