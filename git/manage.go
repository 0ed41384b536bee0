package git

import (
	"errors"
	"fmt"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/alkdev/alknet/core"
)

// Create makes an empty bare repository named name ("name" or
// "owner/name", an optional ".git" suffix and leading slash ignored). It
// fails with [ErrExists] if the repository is there already.
func (s *Server) Create(name string) error { return s.create(name, false) }

// CreatePublic is [Server.Create] for a repository anyone may read,
// whatever the rules say.
func (s *Server) CreatePublic(name string) error { return s.create(name, true) }

// create makes a repository, marked public if asked.
func (s *Server) create(name string, public bool) error {
	n, err := ParseRepoPath(name)
	if err != nil {
		return fmt.Errorf("git: %w", err)
	}
	if err := s.repos.create(n, public); err != nil {
		return fmt.Errorf("git: create %s: %w", n, err)
	}
	return nil
}

// Delete removes the named repository and everything in it. It fails with
// [ErrNotFound] if there is no such repository.
func (s *Server) Delete(name string) error {
	n, err := ParseRepoPath(name)
	if err != nil {
		return fmt.Errorf("git: %w", err)
	}
	if err := s.repos.remove(n); err != nil {
		return fmt.Errorf("git: delete %s: %w", n, err)
	}
	return nil
}

// RepoInfo describes a repository in a listing.
type RepoInfo struct {
	// Name is the canonical name ("owner/name").
	Name string `json:"name"`
	// Public reports whether anonymous callers may read it.
	Public bool `json:"public"`
	// Write reports whether the caller may push to it.
	Write bool `json:"write"`
}

// List returns the repositories id may read (id nil: anonymous), sorted by
// name.
func (s *Server) List(id *core.Identity) ([]RepoInfo, error) {
	names, err := s.repos.list()
	if err != nil {
		return nil, fmt.Errorf("git: list: %w", err)
	}
	out := []RepoInfo{}
	for _, n := range names {
		rule := s.rule(n)
		if rule.canRead(id) {
			out = append(out, RepoInfo{Name: n, Public: rule.Public, Write: rule.canWrite(id)})
		}
	}
	return out, nil
}

// rule returns the rule of the named repository, public if the repository
// carries the public marker.
func (s *Server) rule(name string) Repo {
	rule := s.rules.Load().For(name)
	rule.Public = rule.Public || s.repos.public(name)
	return rule
}

// readable reports whether id may read the named repository.
func (s *Server) readable(id *core.Identity, name string) bool {
	return s.rule(name).canRead(id)
}

// Ref is one reference of a repository.
type Ref struct {
	// Name is the full name ("refs/heads/main", or "HEAD").
	Name string `json:"name"`
	// Hash is the object ID it points at; empty for a symbolic reference
	// whose target does not exist yet.
	Hash string `json:"hash,omitempty"`
	// Target is the reference a symbolic reference (HEAD) points at.
	Target string `json:"target,omitempty"`
}

// Refs returns the references of the named repository if id may read it,
// sorted by name; otherwise, or if the repository does not exist, it fails
// with [ErrNotFound].
func (s *Server) Refs(id *core.Identity, name string) ([]Ref, error) {
	n, err := ParseRepoPath(name)
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	if !s.readable(id, n) {
		return nil, fmt.Errorf("git: %s: %w", n, ErrNotFound)
	}
	sto, err := s.repos.open(n)
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", n, err)
	}
	defer sto.Close()
	iter, err := sto.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("git: %s: %w", n, err)
	}
	out := []Ref{}
	err = iter.ForEach(func(r *plumbing.Reference) error {
		switch r.Type() {
		case plumbing.HashReference:
			out = append(out, Ref{Name: r.Name().String(), Hash: r.Hash().String()})
		case plumbing.SymbolicReference:
			ref := Ref{Name: r.Name().String(), Target: r.Target().String()}
			if t, err := sto.Reference(r.Target()); err == nil {
				ref.Hash = t.Hash().String()
			}
			out = append(out, ref)
		}
		return nil
	})
	if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, fmt.Errorf("git: %s: %w", n, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
