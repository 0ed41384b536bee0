package git_test

import (
	"strings"
	"testing"

	"github.com/alkdev/alknet/git"
)

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  git.Config
		want []string // substrings of the error; none: valid
	}{
		{"minimal", git.Config{Root: "/srv/git"}, nil},
		{"no root", git.Config{}, []string{"Root"}},
		{"relative root", git.Config{Root: "git"}, []string{"Root"}},
		{"unknown backend", git.Config{Root: "/srv/git", Backend: "cgit"}, []string{"Backend", `"cgit"`}},
		{"exec without git", git.Config{Root: "/srv/git", Backend: git.BackendExec, GitPath: "/nonexistent/git"}, []string{"GitPath", "needs a git executable"}},
		{"everything wrong", git.Config{
			Root:           "rel",
			DefaultBranch:  "../x",
			RequestTimeout: -1,
			MaxPackBytes:   -1,
			Rules: git.Rules{Repos: map[string]git.Repo{
				"../etc": {},
				"ok":     {Read: git.Grant{Scopes: []string{"bad scope"}}, Protected: []string{"a*b"}},
			}},
		}, []string{"Root", "DefaultBranch", "RequestTimeout", "MaxPackBytes", `Rules.Repos["../etc"]`, "invalid scope", "invalid protected branch"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := git.New(c.cfg)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		url, addr, path string
		ok              bool
	}{
		{"alknet://abc@example.com:4433/team/app.git", "abc@example.com:4433", "/team/app.git", true},
		{"alknet://127.0.0.1:4433/app.git", "127.0.0.1:4433", "/app.git", true},
		{"alknet://[::1]:4433/app", "[::1]:4433", "/app", true},
		{"alknet://example.com/app.git", "", "", false},
		{"alknet://6r8ekmzqchttyeeh3o9og96kwb6qepy3npb3xn7jbqt6wogwecio/app.git", "6r8ekmzqchttyeeh3o9og96kwb6qepy3npb3xn7jbqt6wogwecio", "/app.git", true}, // a NodeID: resolved or relayed
		{"alknet://6r8ekmzqchttyeeh3o9og96kwb6qepy3npb3xn7jbqt6wogwecio@6r8ekmzqchttyeeh3o9og96kwb6qepy3npb3xn7jbqt6wogwecio/app.git", "", "", false},
		{"alknet://h:1/../x.git", "", "", false},
		{"git://h:1/app.git", "", "", false},
	}
	for _, c := range cases {
		addr, path, err := git.ParseURL(c.url)
		if (err == nil) != c.ok || addr != c.addr || path != c.path {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, ok=%v", c.url, addr, path, err, c.addr, c.path, c.ok)
		}
	}
}
