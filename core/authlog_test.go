package core_test

import (
	"bytes"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"log/slog"

	"github.com/alkdev/alknet/core"
)

// TestAuthLineMatchesFail2banFilter keeps docs/fail2ban's filter and the
// auth line from drifting apart.
func TestAuthLineMatchesFail2banFilter(t *testing.T) {
	conf, err := os.ReadFile("../docs/fail2ban/filter.d/alknet.conf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^failregex = (.*)$`).FindSubmatch(conf)
	if m == nil {
		t.Fatal("no failregex in the filter")
	}
	// fail2ban's <HOST> matches an address; \b and \S are the same in Go.
	re := regexp.MustCompile(strings.Replace(string(m[1]), "<HOST>", `(?P<host>[0-9a-fA-F.:]+)`, 1))

	node, _ := core.ParseNodeID("ra8qwatp8yokz6aammntquugwzr947zosqzhgs8adhmkoqb11e4y")
	for _, tc := range []struct {
		name   string
		result core.AuthResult
		peer   core.Peer
		id     *core.Identity
		want   string // host the filter bans; "" for no match
	}{
		{"reject ipv4 anonymous", core.AuthReject, core.Peer{RemoteAddr: &net.UDPAddr{IP: net.ParseIP("203.0.113.5"), Port: 9}}, nil, "203.0.113.5"},
		{"reject ipv6 with key", core.AuthReject, core.Peer{RemoteAddr: &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 9}, NodeID: node}, nil, "2001:db8::7"},
		{"reject known identity", core.AuthReject, core.Peer{RemoteAddr: &net.UDPAddr{IP: net.ParseIP("198.51.100.1")}}, &core.Identity{ID: "laptop"}, "198.51.100.1"},
		{"accept is not banned", core.AuthAccept, core.Peer{RemoteAddr: &net.UDPAddr{IP: net.ParseIP("203.0.113.5")}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			core.LogAuth(slog.New(slog.NewTextHandler(&buf, nil)), tc.result, "alknet/ssh", tc.peer, tc.id)
			line := strings.TrimRight(buf.String(), "\n")
			m := re.FindStringSubmatch(line)
			switch {
			case tc.want == "" && m != nil:
				t.Errorf("filter matched %q", line)
			case tc.want != "" && (m == nil || m[1] != tc.want):
				t.Errorf("filter on %q gave %v, want host %s", line, m, tc.want)
			}
		})
	}
}
