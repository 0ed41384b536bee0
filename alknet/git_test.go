package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// gitRig is a node serving git and a client data dir whose identity may
// read, write and create repositories, with stock git set up to use the
// built binary as git-remote-alknet and alknet-git-proxy. extra is added
// to the node's config.
type gitRig struct {
	node *testNode
	cdir string
	env  []string
}

func newGitRig(t *testing.T, extra string) *gitRig {
	t.Helper()
	coretest.RequireTool(t, "git")
	r := &gitRig{}
	var cid string
	r.cdir, cid = clientID(t)
	r.node = startNode(t, fmt.Sprintf("[[peers]]\nid = \"dev\"\nkeys = [%q]\nscopes = [\"git:read\", \"git:write\", \"git:create\"]\n%s", cid, extra))
	links := t.TempDir()
	out := run(t, "", "git", "install-helper", links)
	for _, name := range []string{gitHelperName, gitProxyName} {
		if !strings.Contains(out, filepath.Join(links, name)) {
			t.Fatalf("install-helper printed %q, want %s", out, name)
		}
	}
	home := t.TempDir()
	r.env = append(os.Environ(),
		"PATH="+links+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ALKNET_DATA_DIR="+r.cdir, "ALKNET_PASSPHRASE=",
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	return r
}

// git runs stock git in dir and fails the test if it fails.
func (r *gitRig) git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, r.env
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestGitServiceWithStockGit(t *testing.T) {
	for name, config := range map[string]string{"go-git": "", "exec": "[git]\nbackend = \"exec\"\n"} {
		t.Run(name, func(t *testing.T) {
			r := newGitRig(t, config)
			if out := run(t, "", "git", "create", "--data-dir", r.cdir, r.node.addr, "team/app"); !strings.Contains(out, "created team/app") {
				t.Fatalf("git create printed %q", out)
			}
			url := "alknet://" + r.node.addr + "/team/app.git"
			work := t.TempDir()
			r.git(t, work, "init", "-q", "-b", "main")
			writeFile(t, filepath.Join(work, "a.txt"), "hello\n")
			r.git(t, work, "add", "a.txt")
			r.git(t, work, "commit", "-q", "-m", "first")
			r.git(t, work, "push", "-q", url, "main")
			head := r.git(t, work, "rev-parse", "HEAD")

			clone := filepath.Join(t.TempDir(), "clone")
			r.git(t, "", "clone", "-q", url, clone)
			if got := r.git(t, clone, "rev-parse", "HEAD"); got != head {
				t.Errorf("clone through git-remote-alknet has HEAD %s, want %s", got, head)
			}
			if refs := r.git(t, "", "ls-remote", url); !strings.Contains(refs, head+"\trefs/heads/main") {
				t.Errorf("ls-remote:\n%s", refs)
			}

			_, port, err := net.SplitHostPort(r.node.addr[strings.Index(r.node.addr, "@")+1:])
			if err != nil {
				t.Fatal(err)
			}
			viaProxy := filepath.Join(t.TempDir(), "proxy")
			r.git(t, "", "-c", "core.gitProxy="+gitProxyName, "clone", "-q", "git://127.0.0.1:"+port+"/team/app.git", viaProxy)
			if got := r.git(t, viaProxy, "rev-parse", "HEAD"); got != head {
				t.Errorf("clone through core.gitProxy has HEAD %s, want %s", got, head)
			}

			if out := run(t, "", "git", "repos", "--data-dir", r.cdir, r.node.addr); !strings.Contains(out, "team/app") {
				t.Errorf("git repos printed %q", out)
			}
		})
	}
}
