package git_test

import (
	"fmt"
	"log"
	"os"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/git"
)

// A git server whose "site" repository anyone may clone, where only the
// identity "ci" may push to "site", and whose other repositories follow the
// default git:read / git:write scopes. Serve it by adding it to a
// core.Router with the node's other handlers.
func Example() {
	root, err := os.MkdirTemp("", "git")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	srv, err := git.New(git.Config{
		Root: root,
		Rules: git.Rules{Repos: map[string]git.Repo{
			"site": {Public: true, Write: git.Grant{IDs: []string{"ci"}}, Protected: []string{"main"}},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Create("site"); err != nil {
		log.Fatal(err)
	}
	reg := call.NewRegistry()
	if err := srv.Register(reg); err != nil {
		log.Fatal(err)
	}
	if _, err := core.NewRouter(srv); err != nil {
		log.Fatal(err)
	}
	repos, _ := srv.List(nil)
	fmt.Println(srv.ALPNs(), repos)
	// Output: [alknet/git] [{site true false}]
}
