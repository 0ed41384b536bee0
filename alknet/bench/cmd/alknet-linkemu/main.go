// Command alknet-linkemu is the link emulator's forwarder on its own, for
// netem.StartLink (alknet/bench/internal/netem) when the program calling it
// is built with the race detector (which would slow the forwarder several
// times): StartLink builds and runs it. It speaks the protocol of linkemu.Main on its
// standard input and output; it is not meant to be run by hand.
package main

import (
	"os"

	"github.com/alkdev/alknet/alknet/bench/internal/linkemu"
)

func main() { os.Exit(linkemu.Main(os.Stdin, os.Stdout)) }
