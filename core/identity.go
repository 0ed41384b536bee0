package core

import (
	"slices"
	"strings"
)

// Identity is an authenticated principal: a configured peer (found by its
// node key) or an API token. Identities are values; a resolved Identity is a
// snapshot and does not change when the configuration does (see
// [IdentityProvider.Valid] for revocation).
type Identity struct {
	// ID is the stable name from configuration: the peer's id, or the token's
	// name.
	ID string
	// NodeID is the key the peer authenticated with; zero for token identities.
	NodeID NodeID
	// Scopes are the permissions granted to the identity.
	Scopes []string

	// token is the hash of the token this identity came from, and sshKey the
	// wire form of the SSH key; they let the provider tell later whether the
	// credential is still valid.
	token  TokenHash
	sshKey string
}

// sameGrant reports whether id and o came from the same credential with
// the same scopes: revalidating one revalidates the other.
func (id Identity) sameGrant(o Identity) bool {
	return id.ID == o.ID && id.NodeID == o.NodeID && id.token == o.token &&
		id.sshKey == o.sshKey && slices.Equal(id.Scopes, o.Scopes)
}

// HasScope reports whether the identity holds scope. A granted scope ending in
// "*" matches every scope with that prefix ("call:*" grants "call:fs/stat");
// "*" alone grants everything. A nil identity has no scopes.
func (id *Identity) HasScope(scope string) bool {
	if id == nil {
		return false
	}
	for _, s := range id.Scopes {
		if s == scope {
			return true
		}
		if prefix, ok := strings.CutSuffix(s, "*"); ok && strings.HasPrefix(scope, prefix) {
			return true
		}
	}
	return false
}

// String returns the identity's ID, for logs.
func (id *Identity) String() string {
	if id == nil {
		return "-"
	}
	return id.ID
}

// ValidScope reports whether s is a well-formed scope: non-empty, no spaces or
// control characters, and "*" at most once, as the last character.
func ValidScope(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	if i := strings.IndexByte(s, '*'); i >= 0 && i != len(s)-1 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

func cloneScopes(s []string) []string { return slices.Clone(s) }

// coversScopes reports whether every scope in want is in have.
func coversScopes(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
