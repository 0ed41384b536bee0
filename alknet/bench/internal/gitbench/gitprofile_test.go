package gitbench

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/git"
)

var gitRepoFlag = flag.String("gitrepo", "small", "BenchmarkGitServer: the repository served: small (generated in a second) or default (DefaultGitRepo, cached)")

// inProcessTarget is git.Server running in the test process: the target
// of BenchmarkGitServer, whose profiles then show the server alone (git
// and the helper run in child processes). It measures no memory.
type inProcessTarget struct {
	work, addr string
	client     *GitClient
}

func (p *inProcessTarget) name() GitServer { return "alknet-in-process" }

func (p *inProcessTarget) dir() string { return p.work }

func (p *inProcessTarget) served() string { return filepath.Join(p.work, "root", BenchRepo+".git") }

func (p *inProcessTarget) url() string { return "alknet://" + p.addr + "/" + BenchRepo + ".git" }

func (p *inProcessTarget) clientEnv() []string { return p.client.Env() }

func (p *inProcessTarget) clientRepo(n string) string { return filepath.Join(p.work, n) }

func (p *inProcessTarget) before(context.Context) error { return nil }

func (p *inProcessTarget) pid() int { return os.Getpid() }

func (p *inProcessTarget) after(context.Context) (int64, error) { return 0, nil }

func (p *inProcessTarget) close() error { return nil }

func (p *inProcessTarget) prepareClients(ctx context.Context, repo string) error {
	return clientRepos(ctx, repo, p.work, p.url(), p.clientEnv())
}

// BenchmarkGitServer serves a generated repository with git.Server in this
// process, behind core.Endpoint on QUIC, and runs each operation of
// CompareGit with stock git through git-remote-alknet (the alknet binary:
// $ALKNET_BIN, else built from this tree). It is there for profiles:
//
//	go test -run '^$' -bench GitServer -benchtime 1x -gitrepo default -cpuprofile cpu.out
//
// Each iteration's time includes the client's work and, for push, making
// the pushed commits.
func BenchmarkGitServer(b *testing.B) {
	coretest.RequireTool(b, "git")
	ctx := b.Context()
	spec, cache := SmallGitRepo, b.TempDir()
	if *gitRepoFlag == "default" {
		spec, cache = DefaultGitRepo, GitRepoCache()
	}
	info, err := GenerateGitRepo(ctx, cache, spec)
	if err != nil {
		b.Fatal(err)
	}
	head, err := GitOutput(ctx, info.Dir, nil, "rev-parse", "main")
	if err != nil {
		b.Fatal(err)
	}
	p := &inProcessTarget{work: b.TempDir()}
	if p.client, err = NewGitClient(ctx, benchtest.AlknetBinary(b), p.work); err != nil {
		b.Fatal(err)
	}
	id, err := core.ParseNodeID(p.client.nodeID)
	if err != nil {
		b.Fatal(err)
	}
	if err := CopyTree(info.Dir, p.served()); err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	srv, err := git.New(git.Config{Root: filepath.Dir(p.served()), Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: alknetPeer, NodeIDs: []core.NodeID{id}, Scopes: []string{git.ScopeRead, git.ScopeWrite}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	node := coretest.Start(b, core.Config{Identities: core.NewLiveDirectory(dir, nil), Logger: logger}, srv)
	p.addr = node.Addr
	if err := p.prepareClients(ctx, info.Dir); err != nil {
		b.Fatal(err)
	}
	cfg := GitConfig{pushCommits: 100, timeout: gitOpTimeout}
	for _, op := range allGitOps() {
		b.Run(gitOpNames[op], func(b *testing.B) {
			for run := 1; b.Loop(); run++ {
				if _, err := runGitOp(ctx, cfg, p, GitSample{Run: run, Op: op}, head); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
