package core

import (
	"strings"
	"testing"
)

// TestParseAddrDefaultsPort: a port-less host gets DefaultPort; a bare
// NodeID says how to configure a resolver; nonsense still fails.
func TestParseAddrDefaultsPort(t *testing.T) {
	id := testNodeID(t, 1)
	for _, tc := range []struct {
		in, want, err string
	}{
		{"example.org:99", "example.org:99", ""},
		{"example.org", "example.org:4433", ""},
		{"127.0.0.1", "127.0.0.1:4433", ""},
		{"::1", "[::1]:4433", ""},
		{"[::1]", "[::1]:4433", ""},
		{id.String() + "@example.org", "example.org:4433", ""},
		{id.String(), "", "no resolver is configured"},
		{"a:b:c", "", "want [nodeid@]host[:port]"},
		{"", "", "want [nodeid@]host[:port]"},
	} {
		_, got, err := ParseAddr(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseAddr(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestRefusalNamesTheCause: Restrict's close reason tells an unknown key
// from a missing scope and names the scope.
func TestRefusalNamesTheCause(t *testing.T) {
	ac := AccessControl{AllScopes: []string{"perf"}}
	for _, tc := range []struct {
		id   *Identity
		want string
	}{
		{nil, `unknown key: needs scope "perf"`},
		{&Identity{ID: "me"}, `forbidden: missing scope "perf"`},
	} {
		err := ac.Check(tc.id)
		if err == nil {
			t.Fatal("Check passed")
		}
		if got := ac.refusal(err); got != tc.want {
			t.Errorf("refusal(%v) = %q, want %q", err, got, tc.want)
		}
	}
	if got := (AccessControl{}).refusal(ErrUnauthenticated); got != "unknown key" {
		t.Errorf("no scopes: %q", got)
	}

}
