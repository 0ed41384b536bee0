package git_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/git"
)

// TestOps drives the management operations over alknet/call, and checks
// that git/events delivers one event per ref a push changed.
func TestOps(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		needGit(t)
		admin := append([]string{git.ScopeAdmin}, rw...)
		f := start(t, git.Config{Backend: backend}, peer{"alice", rw}, peer{"root", admin}, peer{"maker", []string{git.ScopeCreate}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		root, alice, anon := f.client(t, "root"), f.client(t, "alice"), f.client(t, "")

		var info git.RepoInfo
		if err := f.client(t, "maker").Call(ctx, "git/repos/create", git.CreateInput{Name: "team/site", Public: true}, &info); err != nil {
			t.Fatal(err)
		}
		if err := root.Call(ctx, "git/repos/create", git.CreateInput{Name: "team/app"}, &info); err != nil {
			t.Fatal(err)
		}
		if err := root.Call(ctx, "git/repos/create", git.CreateInput{Name: "team/app"}, &info); !call.IsCode(err, call.CodeInvalidInput) {
			t.Errorf("creating twice: %v, want INVALID_INPUT", err)
		}
		if err := alice.Call(ctx, "git/repos/create", git.CreateInput{Name: "x"}, &info); !call.IsCode(err, call.CodeForbidden) {
			t.Errorf("create without git:create: %v, want FORBIDDEN", err)
		}
		if err := root.Call(ctx, "git/repos/create", git.CreateInput{Name: "../x"}, &info); !call.IsCode(err, call.CodeInvalidInput) {
			t.Errorf("create ../x: %v, want INVALID_INPUT", err)
		}
		var list []git.RepoInfo
		if err := anon.Call(ctx, "git/repos/list", nil, &list); err != nil || len(list) != 1 || list[0].Name != "team/site" {
			t.Errorf("anonymous list = %v, %v; want only team/site", list, err)
		}
		if err := alice.Call(ctx, "git/repos/list", nil, &list); err != nil || len(list) != 2 || !list[0].Write {
			t.Errorf("alice's list = %v, %v; want both, writable", list, err)
		}

		sub, stop := context.WithCancel(ctx)
		defer stop()
		events := make(chan git.Event, 8)
		subErr := make(chan error, 1)
		go func() {
			for raw, err := range alice.Subscribe(sub, "git/events", json.RawMessage(`{"repo":"team/app"}`)) {
				if err != nil {
					subErr <- err
					return
				}
				var ev git.Event
				_ = json.Unmarshal(raw, &ev)
				events <- ev
			}
			subErr <- nil
		}()
		// The subscription must be in place before the push: push until an
		// event arrives, each time to a new branch.
		env := f.gitEnv(t, "alice")
		work := workRepo(t, env, 1)
		head := mustGit(t, env, work, "rev-parse", "HEAD")
		var ev git.Event
		for i := 0; ; i++ {
			mustGit(t, env, work, "push", "-q", f.url("team/app"), "HEAD:refs/heads/b"+string(rune('a'+i)))
			select {
			case ev = <-events:
			case <-time.After(200 * time.Millisecond):
				if i < 20 {
					continue
				}
				t.Fatal("no event after 20 pushes")
			}
			break
		}
		if ev.Repo != "team/app" || ev.New != head || ev.Pusher != "alice" || ev.Old != "0000000000000000000000000000000000000000" {
			t.Errorf("event %+v", ev)
		}
		stop()
		<-subErr

		var refs []git.Ref
		if err := alice.Call(ctx, "git/refs", git.NameInput{Name: "team/app"}, &refs); err != nil || len(refs) < 2 || refs[0].Name != "HEAD" {
			t.Errorf("refs = %v, %v", refs, err)
		}
		if err := anon.Call(ctx, "git/refs", git.NameInput{Name: "team/app"}, &refs); !call.IsCode(err, call.CodeNotFound) {
			t.Errorf("anonymous refs of a private repository: %v, want NOT_FOUND", err)
		}
		if err := alice.Call(ctx, "git/repos/delete", git.NameInput{Name: "team/app"}, nil); !call.IsCode(err, call.CodeForbidden) {
			t.Errorf("delete without admin: %v, want FORBIDDEN", err)
		}
		if err := root.Call(ctx, "git/repos/delete", git.NameInput{Name: "team/app"}, nil); err != nil {
			t.Errorf("delete: %v", err)
		}
		if err := root.Call(ctx, "git/repos/delete", git.NameInput{Name: "team/app"}, nil); !call.IsCode(err, call.CodeNotFound) {
			t.Errorf("deleting twice: %v, want NOT_FOUND", err)
		}
	})
}
