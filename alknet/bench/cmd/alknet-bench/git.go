package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alkdev/alknet/alknet/bench/internal/gitbench"
)

// Flags of the git scenario (-only git): alknet's git hosting against git
// daemon on a generated repository.
var (
	gitRuns  = flag.Int("git-runs", 3, "git: interleaved rounds (a full clone through alknet takes about a minute)")
	gitOps   = flag.String("git-ops", "clone,shallow,fetch,push", "git: comma-separated operations to run")
	gitTOML  = flag.String("git-alknet-config", "", "git: TOML added to the node's config, e.g. $'[git]\\npack_window = -1'")
	gitCache = flag.String("git-cache", "", "git: directory of generated repositories; empty: $ALKNET_BENCH_CACHE, else the user cache directory")
)

// gitScenario runs the git scenario with the alknet binary bin, building
// it first if bin is empty.
func gitScenario(ctx context.Context, w io.Writer, bin string) error {
	var ops []gitbench.GitOp
	for _, s := range strings.Split(*gitOps, ",") {
		op, err := gitbench.ParseGitOp(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-git-ops: %w", err)
		}
		ops = append(ops, op)
	}
	bin, cleanup, err := alknetBinary(ctx, "git", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	cache := *gitCache
	if cache == "" {
		cache = gitbench.GitRepoCache()
	}
	fmt.Fprintln(os.Stderr, "git: generating the repository (minutes the first time; cached in", cache+")")
	info, err := gitbench.GenerateGitRepo(ctx, cache, gitbench.DefaultGitRepo)
	if err != nil {
		return err
	}
	rep, err := gitbench.CompareGit(ctx, gitbench.GitConfig{Binary: bin, Repo: info.Dir, Runs: *gitRuns, Ops: ops, AlknetConfig: *gitTOML,
		Progress: func(s gitbench.GitSample) {
			fmt.Fprintf(os.Stderr, "git run %d %-15s %-10s %10v, peak %6.1f MB, tree %6.1f MB\n",
				s.Run, s.Op, s.Server, s.Wall, float64(s.Peak)/1e6, float64(s.TreePeak)/1e6)
		}})
	rep.WriteMarkdown(w, err)
	return err
}
