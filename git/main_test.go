package git_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/git"
)

// helperName is the name git runs for alknet:// URLs; the tests link it to
// the test binary, which then acts as the helper (see runHelper).
const helperName = "git-remote-alknet"

// keyEnv carries the hex seed of the key the helper dials with; empty:
// anonymous.
const keyEnv = "ALKNET_GIT_TEST_KEY"

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == helperName {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}

// runHelper is the remote helper git starts during the interop tests.
func runHelper() int {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: git-remote-alknet REMOTE URL")
		return 2
	}
	var key ed25519.PrivateKey
	if seed := os.Getenv(keyEnv); seed != "" {
		b, err := hex.DecodeString(seed)
		if err != nil || len(b) != ed25519.SeedSize {
			fmt.Fprintln(os.Stderr, "bad", keyEnv)
			return 2
		}
		key = ed25519.NewKeyFromSeed(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &core.Dialer{Key: key, Network: core.NetworkQUIC}
	err := git.RemoteHelper(ctx, os.Args[2], os.Stdin, os.Stdout, func(ctx context.Context, addr string) (core.Conn, error) {
		return d.Dial(ctx, addr, git.ALPN)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
