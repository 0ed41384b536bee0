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

// TestAuthLineMatchesFail2banFilter keeps the fail2ban filter and the auth
// line from drifting apart. The filter lives in testdata, so the test runs
// from a module download too; docs/fail2ban/filter.d/alknet.conf links to it.
func TestAuthLineMatchesFail2banFilter(t *testing.T) {
	conf, err := os.ReadFile("testdata/fail2ban-filter.conf")
	if err != nil {
		t.Fatal(err)
	}
	// failregex and its indented continuation lines, one regex each.
	m := regexp.MustCompile(`(?m)^failregex = (.*\n(?:[ \t]+\S.*\n)*)`).FindSubmatch(conf)
	if m == nil {
		t.Fatal("no failregex in the filter")
	}
	var res []*regexp.Regexp
	for _, line := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
		// fail2ban's <HOST> matches an address; \b and \S are the same in Go.
		res = append(res, regexp.MustCompile(strings.Replace(strings.TrimSpace(line), "<HOST>", `(?P<host>[0-9a-fA-F.:]+)`, 1)))
	}
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}

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
		for format, handler := range handlers {
			t.Run(tc.name+" "+format, func(t *testing.T) {
				var buf bytes.Buffer
				core.LogAuth(slog.New(handler(&buf)), tc.result, "alknet/ssh", tc.peer, tc.id)
				line := strings.TrimRight(buf.String(), "\n")
				var m []string
				for _, re := range res {
					if m = re.FindStringSubmatch(line); m != nil {
						break
					}
				}
				switch {
				case tc.want == "" && m != nil:
					t.Errorf("filter matched %q", line)
				case tc.want != "" && (m == nil || m[1] != tc.want):
					t.Errorf("filter on %q gave %v, want host %s", line, m, tc.want)
				}
			})
		}
	}
}
