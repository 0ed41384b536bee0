package core

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnauthenticated is returned by [AccessControl.Check] when a caller without
// an identity is refused. Protocols map it to their "authenticate first"
// answer (HTTP 401).
var ErrUnauthenticated = errors.New("authentication required")

// ErrForbidden is returned by [AccessControl.Check] when an identity lacks a
// required scope. Protocols map it to their "forbidden" answer (HTTP 403).
var ErrForbidden = errors.New("forbidden")

// AccessControl decides who may use an operation, a service or a resource.
//
// The zero value admits any authenticated identity and refuses anonymous
// callers. Public admits anonymous callers too. AllScopes must all be held;
// if AnyScopes is not empty, at least one of them must be held as well.
type AccessControl struct {
	// Public admits every caller, with or without an identity; the scope
	// lists are then not consulted.
	Public bool
	// AllScopes are required together (AND).
	AllScopes []string
	// AnyScopes, when not empty, require at least one of them (OR).
	AnyScopes []string
}

// Check reports whether id may pass. id is nil for an anonymous caller. It
// returns nil, an error wrapping [ErrUnauthenticated], or one wrapping
// [ErrForbidden] that names the missing scope.
func (ac AccessControl) Check(id *Identity) error {
	if ac.Public {
		return nil
	}
	if id == nil {
		return ErrUnauthenticated
	}
	for _, s := range ac.AllScopes {
		if !id.HasScope(s) {
			return fmt.Errorf("%w: missing scope %q", ErrForbidden, s)
		}
	}
	if len(ac.AnyScopes) == 0 {
		return nil
	}
	for _, s := range ac.AnyScopes {
		if id.HasScope(s) {
			return nil
		}
	}
	return fmt.Errorf("%w: needs one of the scopes %s", ErrForbidden, strings.Join(ac.AnyScopes, ", "))
}

// refusal is the close reason for an identity Check refused with err: it
// says whether the key is unknown or which scope it lacks, so the client
// can tell its operator what to grant (see [Restrict]).
func (ac AccessControl) refusal(err error) string {
	if !errors.Is(err, ErrUnauthenticated) {
		return err.Error()
	}
	switch {
	case len(ac.AllScopes) > 0:
		return fmt.Sprintf("unknown key: needs scope %q", ac.AllScopes[0])
	case len(ac.AnyScopes) > 0:
		return fmt.Sprintf("unknown key: needs scope %q", ac.AnyScopes[0])
	}
	return "unknown key"
}
