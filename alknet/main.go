// Command alknet runs an alknet node and its client tools: one QUIC+TLS
// endpoint on one port, each protocol chosen by the ALPN of the handshake.
//
// Run a node with every service on embedded defaults:
//
//	alknet serve
//
// See README.md for the user guide.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	args := os.Args
	switch filepath.Base(args[0]) {
	case gitHelperName, gitProxyName:
		args = gitLinkArgs(args)
	}
	if len(args) > 1 && args[1] == completeCommand {
		complete(app, args[2:], os.Stdout)
		return
	}
	if err := app.Run(flagsFirst(app, args)); err != nil {
		fmt.Fprintln(os.Stderr, "alknet:", explain(err))
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "alknet",
		Usage: "one QUIC+TLS endpoint, one port, many protocols",
		Description: "alknet serves every protocol on one port, choosing the handler by the ALPN of the\n" +
			"TLS handshake. Its identity is an Ed25519 key derived from a BIP39 recovery phrase\n" +
			"kept in an encrypted vault in the data directory.",
		EnableBashCompletion: true,
		Version:              version(),
		// The common flags may also come before the command
		// (flagsFirst moves them after it).
		Flags: commonFlags(),
		Commands: []*cli.Command{
			serveCommand,
			statusCommand,
			initCommand,
			idCommand,
			pipeCommand,
			sshCommand,
			socksCommand,
			forwardCommand,
			perfCommand,
			pingCommand,
			callCommand,
			resolveCommand,
			dnsCommand,
			gitCommand,
			fsCommand,
			msgCommand,
			opsCommand,
			vaultCommand,
			tokenCommand,
			peersCommand,
			knownNodesCommand,
			configCommand,
			versionCommand,
			completionCommand,
			manCommand(),
		},
	}
}
