// Package benchtest holds the test helpers the benchmark packages share:
// a bounded context and the alknet binary built from this tree.
package benchtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// TestContext is t's context, cancelled after 30 s at the latest.
func TestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var builtAlknet string

// BuildAlknetOnce builds the alknet binary once for this test run; the
// temporary directory holding it stays until the machine cleans it.
func BuildAlknetOnce(t *testing.T) string {
	t.Helper()
	if builtAlknet == "" {
		bin, _, err := harness.BuildTempAlknet(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		builtAlknet = bin
	}
	return builtAlknet
}

// AlknetBinary returns $ALKNET_BIN, or else an alknet binary built from
// this tree.
func AlknetBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("ALKNET_BIN"); bin != "" {
		return bin
	}
	root, err := harness.FindRepoRoot(".")
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(tb.TempDir(), "alknet")
	if err := harness.BuildAlknet(tb.Context(), root, bin); err != nil {
		tb.Fatal(err)
	}
	return bin
}
