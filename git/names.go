package git

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alkdev/alknet/core"
)

// errBadName is wrapped by the errors of [ParseRepoPath].
var errBadName = errors.New("invalid repository name")

// MaxNameBytes is the longest repository name accepted, without the
// leading slash.
const MaxNameBytes = 200

// ParseRepoPath turns a request path ("/name.git", "/owner/name.git", with
// or without the leading slash and the ".git" suffix) into the repository's
// canonical name ("name" or "owner/name"). Each part is 1 to 100 characters
// of [A-Za-z0-9._-], starting with a letter or digit; "..", absolute file
// paths, backslashes and empty parts are refused.
func ParseRepoPath(p string) (string, error) {
	name := strings.TrimPrefix(p, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := validName(name); err != nil {
		return "", fmt.Errorf("%w %q: %v", errBadName, core.Clip(p), err)
	}
	return name, nil
}

// validName checks a canonical repository name.
func validName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return fmt.Errorf("name must be 1 to %d bytes", MaxNameBytes)
	}
	parts := strings.Split(name, "/")
	if len(parts) > 2 {
		return fmt.Errorf("at most one owner level (owner/name)")
	}
	for _, part := range parts {
		if err := validPart(part); err != nil {
			return err
		}
	}
	return nil
}

// validPart checks one path component of a repository name.
func validPart(s string) error {
	if s == "" || len(s) > 100 {
		return fmt.Errorf("each part must be 1 to 100 characters")
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("each part must start with a letter or digit")
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("\"..\" is not allowed")
	}
	if strings.HasSuffix(s, ".git") || strings.HasSuffix(s, ".lock") {
		return fmt.Errorf("a part may not end in .git or .lock")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("character %q is not allowed", c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
