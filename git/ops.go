package git

import (
	"context"
	"errors"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// CreateInput is the input of git/repos/create.
type CreateInput struct {
	// Name is the repository name ("name" or "owner/name").
	Name string `json:"name"`
	// Public lets anonymous callers read the new repository.
	Public bool `json:"public,omitempty"`
}

// NameInput names one repository (git/repos/delete, git/refs).
type NameInput struct {
	// Name is the repository name ("name" or "owner/name").
	Name string `json:"name"`
}

// EventsInput filters git/events.
type EventsInput struct {
	// Repo limits events to one repository; empty: every repository the
	// caller may read.
	Repo string `json:"repo,omitempty"`
}

// Register adds the management operations to reg:
//
//   - git/repos/list (query, anyone): the repositories the caller may read.
//   - git/repos/create (mutation, scope git:create or admin): an empty
//     repository, optionally public.
//   - git/repos/delete (mutation, scope admin): removes a repository.
//   - git/refs (query, anyone who may read the repository): its references.
//   - git/events (subscription, anyone): an [Event] per reference a push
//     changed, for the repositories the caller may read.
//
// A repository the caller may not read is NOT_FOUND, as if missing.
func (s *Server) Register(reg *call.Registry) error {
	public := core.AccessControl{Public: true}
	return errors.Join(
		call.Register(reg, call.Spec{Name: "git/repos/list", Type: call.Query, Access: public,
			Description: "repositories the caller may read"},
			func(_ context.Context, req *call.Request, _ struct{}) ([]RepoInfo, error) {
				return s.List(req.Caller)
			}),
		call.Register(reg, call.Spec{Name: "git/repos/create", Type: call.Mutation,
			Access:      core.AccessControl{AnyScopes: []string{ScopeCreate, ScopeAdmin}},
			Description: "create an empty repository"},
			func(_ context.Context, _ *call.Request, in CreateInput) (RepoInfo, error) {
				if err := s.create(in.Name, in.Public); err != nil {
					return RepoInfo{}, opError(err)
				}
				n, _ := ParseRepoPath(in.Name)
				return RepoInfo{Name: n, Public: in.Public}, nil
			}),
		call.Register(reg, call.Spec{Name: "git/repos/delete", Type: call.Mutation,
			Access:      core.AccessControl{AllScopes: []string{ScopeAdmin}},
			Description: "delete a repository and everything in it"},
			func(_ context.Context, _ *call.Request, in NameInput) (struct{}, error) {
				return struct{}{}, opError(s.Delete(in.Name))
			}),
		call.Register(reg, call.Spec{Name: "git/refs", Type: call.Query, Access: public,
			Description: "references of a repository"},
			func(_ context.Context, req *call.Request, in NameInput) ([]Ref, error) {
				refs, err := s.Refs(req.Caller, in.Name)
				return refs, opError(err)
			}),
		call.RegisterStream(reg, call.Spec{Name: "git/events", Type: call.Subscription, Access: public,
			Description: "an event per reference a successful push changed"},
			func(ctx context.Context, req *call.Request, in EventsInput, send func(Event) error) error {
				return s.streamEvents(ctx, req.Caller, in, send)
			}),
	)
}

// streamEvents sends the push events id may see until ctx ends.
func (s *Server) streamEvents(ctx context.Context, id *core.Identity, in EventsInput, send func(Event) error) error {
	want := ""
	if in.Repo != "" {
		n, err := ParseRepoPath(in.Repo)
		if err != nil {
			return call.Errorf(call.CodeInvalidInput, "%v", err)
		}
		want = n
	}
	sub, cancel := s.events.subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.gone:
			return call.Errorf(call.CodeUnavailable, "subscriber fell behind; subscribe again")
		case ev := <-sub.ch:
			if want != "" && ev.Repo != want || !s.readable(id, ev.Repo) {
				continue
			}
			if err := send(ev); err != nil {
				return err
			}
		}
	}
}

// opError maps a management error to a call error.
func opError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return call.Errorf(call.CodeNotFound, "repository not found")
	case errors.Is(err, ErrExists):
		return call.Errorf(call.CodeInvalidInput, "repository already exists")
	case errors.Is(err, errBadName):
		return call.Errorf(call.CodeInvalidInput, "%v", err)
	}
	return err
}
