package sftp

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestRel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "."},
		{"", "."},
		{".", "."},
		{"/a/b", "a/b"},
		{"a/b/", "a/b"},
		{"/../x", "x"},
		{"../../x", "x"},
		{"/a/../../b", "b"},
		{"//a//b", "a/b"},
	}
	for _, tc := range tests {
		if got := rel(tc.in); got != tc.want {
			t.Errorf("rel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"alice", true},
		{"ci-bot_2", true},
		{"token.deploy", true},
		{"A", true},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-flag", false},
		{"a/b", false},
		{"../x", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
	}
	for _, tc := range tests {
		if got := validID(tc.id); got != tc.want {
			t.Errorf("validID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestLinkTarget(t *testing.T) {
	tests := []struct {
		link, target string
		want         string // "" with escape: refused
		escape       bool
	}{
		{"/l", "f", "f", false},
		{"/d/l", "f", "f", false},
		{"/d/l", "./sub/../f", "f", false},
		{"/d/l", "sub/f", "sub/f", false},
		{"/d/l", ".", ".", false},
		{"/l", "/f", "f", false},
		{"/l", "/", ".", false},
		{"/d/l", "/d/f", "f", false},
		{"/d/l", "/d", ".", false},
		{"/d/l", "/d/e/f", "e/f", false},
		{"/d/l", "/dx/f", "", true},
		{"/d/l", "/f", "", true},
		{"/d/l", "../f", "", true},
		{"/l", "..", "", true},
		{"/d/l", "a/../../f", "", true},
		{"/d/l", "/../../etc/passwd", "", true},
	}
	for _, tc := range tests {
		got, err := linkTarget(tc.link, tc.target)
		switch {
		case tc.escape && !errors.Is(err, errEscape):
			t.Errorf("linkTarget(%q, %q) = %q, %v; want refused", tc.link, tc.target, got, err)
		case !tc.escape && (err != nil || got != tc.want):
			t.Errorf("linkTarget(%q, %q) = %q, %v; want %q", tc.link, tc.target, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "a\x00b"} {
		if _, err := linkTarget("/l", bad); err == nil {
			t.Errorf("linkTarget(/l, %q) accepted", bad)
		}
	}
}

// FuzzLinkTarget checks that an accepted target is relative, never climbs,
// and resolves inside the link's directory.
func FuzzLinkTarget(f *testing.F) {
	seeds := [][2]string{
		{"/d/l", "f"},              // plain
		{"/d/l", "/d/f"},           // absolute inside the directory
		{"/d/l", "../f"},           // climbing
		{"/d/l", "a/../../f"},      // climbing after a detour
		{"/l", "/"},                // the root itself
		{"../../l", "/../x"},       // a link path with dot-dots
		{"/d/l", "//d//./f/"},      // untidy absolute
		{"/d/l", "a/\x00/b"},       // NUL
		{"/d/l", "...."},           // dots that are a name
		{"/d/l", "..a/../..b/../"}, // names starting with dots
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, link, target string) {
		got, err := linkTarget(link, target)
		if err != nil {
			return
		}
		if path.IsAbs(got) || got == ".." || strings.HasPrefix(got, "../") || path.Clean(got) != got {
			t.Fatalf("linkTarget(%q, %q) = %q: absolute, climbing or unclean", link, target, got)
		}
		dir := path.Dir(path.Clean("/" + link))
		if r := path.Join(dir, got); r != dir && !strings.HasPrefix(r, strings.TrimSuffix(dir, "/")+"/") {
			t.Fatalf("linkTarget(%q, %q) = %q resolves to %q, outside %q", link, target, got, r, dir)
		}
	})
}

// FuzzValidID checks that an accepted ID is a single plain path element.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"alice", "..", ".", "a/b", "a\x00", "-x", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validID(id) {
			return
		}
		if path.Clean(id) != id || strings.ContainsAny(id, `/\`) || id == "." || id == ".." || strings.HasPrefix(id, ".") {
			t.Fatalf("validID(%q) accepted a name that is not one plain element", id)
		}
	})
}
