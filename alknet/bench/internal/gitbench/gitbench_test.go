package gitbench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/core/coretest"
)

func TestGenerateGitRepo(t *testing.T) {
	coretest.RequireTool(t, "git")
	ctx := benchtest.TestContext(t)
	cache := t.TempDir()
	info, err := GenerateGitRepo(ctx, cache, SmallGitRepo)
	if err != nil {
		t.Fatal(err)
	}
	if info.cached || info.PackBytes <= 0 {
		t.Errorf("first generation: %+v", info)
	}
	if n, err := countCommits(ctx, info.Dir, "main"); err != nil || n != SmallGitRepo.Commits {
		t.Errorf("main has %d commits (%v), want %d", n, err, SmallGitRepo.Commits)
	}
	if err := gitRun(ctx, info.Dir, nil, "fsck", "--strict", "--no-progress"); err != nil {
		t.Error(err)
	}
	head, err := GitOutput(ctx, info.Dir, nil, "rev-parse", "main")
	if err != nil {
		t.Fatal(err)
	}
	// The same spec makes the same history, and the cache is reused.
	again, err := GenerateGitRepo(ctx, cache, SmallGitRepo)
	if err != nil || !again.cached || again.Dir != info.Dir {
		t.Errorf("second generation: %+v, %v; want the cached %s", again, err, info.Dir)
	}
	other, err := GenerateGitRepo(ctx, t.TempDir(), SmallGitRepo)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := GitOutput(ctx, other.Dir, nil, "rev-parse", "main"); got != head {
		t.Errorf("regenerated main is %s, want %s", got, head)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Errorf("cache holds %d entries, want the repository only", len(entries))
	}
	if _, err := GenerateGitRepo(ctx, cache, GitRepoSpec{Commits: 1}); err == nil {
		t.Error("a one-commit spec was accepted")
	}
}

// TestCompareGitSmoke runs one round of every operation against a real
// git daemon and a real `alknet serve` built from this tree, on a small
// repository, and checks the measurements and the report. $ALKNET_BIN
// names a prebuilt alknet binary; without it the test builds one.
func TestCompareGitSmoke(t *testing.T) {
	coretest.RequireTool(t, "git")
	coretest.RequireTool(t, timeTool)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin := benchtest.AlknetBinary(t)
	info, err := GenerateGitRepo(ctx, t.TempDir(), SmallGitRepo)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var progress int
	rep, err := CompareGit(ctx, GitConfig{Binary: bin, Repo: info.Dir, Runs: 1, pushCommits: 3,
		Progress: func(GitSample) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CompareGit took %v", time.Since(start))
	if want := len(allGitOps()) * 2; len(rep.samples) != want || progress != want {
		t.Errorf("%d samples, %d progress calls; want %d", len(rep.samples), progress, want)
	}
	for _, s := range rep.samples {
		if s.Wall <= 0 || s.Peak <= 0 || s.TreePeak <= 0 {
			t.Errorf("%s %s: %+v, want positive measurements", s.Server, s.Op, s)
		}
	}
	if rep.commits != SmallGitRepo.Commits || rep.packBytes != info.PackBytes {
		t.Errorf("report describes %d commits, %d bytes; want %d, %d", rep.commits, rep.packBytes, SmallGitRepo.Commits, info.PackBytes)
	}
	var md strings.Builder
	rep.WriteMarkdown(&md, nil)
	for _, want := range []string{"## git hosting against git daemon", "| clone | git-daemon |", "| push | alknet |", "| clone --depth 1 | ",
		"\ngoal git-clone-time loopback ratio ", "\ngoal git-shallow-memory loopback ratio ", "\ngoal git-push-time loopback ratio "} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if testing.Verbose() {
		os.Stdout.WriteString(md.String())
	}
}
