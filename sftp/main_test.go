package sftp_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alkdev/alknet/core"
)

// bridgeCommand, as the first argument of the test binary, turns it into
// the stdio bridge the OpenSSH interop tests hand to `sftp -D`: the same
// job as `alknet pipe`, without building the CLI (which this module cannot
// import). The client key comes in bridgeKeyEnv as a hex Ed25519 seed.
const (
	bridgeCommand = "alknet-pipe"
	bridgeKeyEnv  = "ALKNET_SFTP_TEST_KEY"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == bridgeCommand {
		if err := bridge(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "alknet-pipe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// bridge implements `alknet-pipe --alpn ALPN [--network quic|tcp] ADDR`:
// one stream, stdin to it (half-closed at EOF), it to stdout.
func bridge(args []string) error {
	fs := flag.NewFlagSet(bridgeCommand, flag.ContinueOnError)
	alpn := fs.String("alpn", "", "protocol")
	network := fs.String("network", "", "quic or tcp (default both)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *alpn == "" {
		return errors.New("usage: alknet-pipe --alpn ALPN [--network quic|tcp] NODEID@HOST:PORT")
	}
	d := &core.Dialer{Network: core.Network(*network)}
	if seed := os.Getenv(bridgeKeyEnv); seed != "" {
		b, err := hex.DecodeString(seed)
		if err != nil || len(b) != ed25519.SeedSize {
			return fmt.Errorf("%s: want a hex Ed25519 seed", bridgeKeyEnv)
		}
		d.Key = ed25519.NewKeyFromSeed(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := d.Dial(ctx, fs.Arg(0), *alpn)
	if err != nil {
		return err
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	s, err := conn.OpenStream(ctx)
	if err != nil {
		return err
	}
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, os.Stdin)
		if err == nil {
			err = s.CloseWrite()
		}
		up <- err
	}()
	if _, err := io.Copy(os.Stdout, s); err != nil {
		s.Abort(core.CodeInternal)
		return fmt.Errorf("receive: %w", err)
	}
	// The server closed its side: the session is over. Do not wait for
	// stdin, which the client may keep open.
	select {
	case err := <-up:
		return err
	default:
		return nil
	}
}
