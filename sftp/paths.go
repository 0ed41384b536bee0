package sftp

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// maxLinks bounds how many symbolic links are followed for one path.
const maxLinks = 40

// errEscape reports a path or link target that would leave the root.
var errEscape = errors.New("path escapes the root")

// rel turns an SFTP path into a name for [os.Root]: the root is "/", so the
// path is cleaned as an absolute path ("/../x" is "/x") and its leading
// slash dropped. The root itself is ".".
func rel(vpath string) string {
	p := path.Clean("/" + vpath)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// validID reports whether an identity ID is safe as a directory name: 1 to
// 128 characters of [A-Za-z0-9._-], starting with a letter or digit, so
// never "", ".", ".." or anything holding a slash.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// linkTarget checks the target of a symbolic link the client wants at
// linkPath (a cleaned absolute SFTP path) and returns what to store on disk.
//
// Only links that point at or below their own directory are accepted: a
// relative target without ".." after cleaning, or an absolute SFTP path
// inside the link's directory, stored relative. Such a link stays inside
// the root wherever the link or its directory is moved later, which a link
// climbing with ".." would not (move it up a level and it points out), and
// an absolute target on disk would name the host's file system.
func linkTarget(linkPath, target string) (string, error) {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return "", syscall.EINVAL
	}
	t := path.Clean(target)
	if path.IsAbs(t) {
		dir := path.Dir(path.Clean("/" + linkPath))
		switch {
		case t == dir:
			return ".", nil
		case dir == "/":
			return t[1:], nil
		case strings.HasPrefix(t, dir+"/"):
			return t[len(dir)+1:], nil
		}
		return "", errEscape
	}
	if t == ".." || strings.HasPrefix(t, "../") {
		return "", errEscape
	}
	return t, nil
}

// followLinks resolves symbolic links in the last element of name (a root
// name from [rel]) so that an upload replaces the file a link points to,
// not the link. It returns name unchanged when it does not exist or is not
// a link. Links are resolved lexically against their directory, which is
// exact for the links SFTP creates (see [linkTarget]); os.Root confines
// whatever is opened in any case.
func followLinks(root *os.Root, name string) (string, error) {
	for range maxLinks {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return name, nil
		}
		t, err := root.Readlink(name)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			return "", errEscape
		}
		next := path.Join(path.Dir(name), t)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", errEscape
		}
		name = next
	}
	return "", syscall.ELOOP
}

// tempName returns the name of a fresh upload file beside name: hidden,
// derived from the target's name (shortened so the result stays within
// NAME_MAX) and random.
func tempName(name string, random string) string {
	dir, base := path.Split(name)
	if len(base) > 160 {
		base = base[:160]
	}
	return dir + "." + base + ".upload-" + random + ".part"
}
