package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode decodes arbitrary bytes into Core: it must never panic, and an
// error must name the file.
func FuzzDecode(f *testing.F) {
	example, err := os.ReadFile("../../../docs/alknet.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		string(example),                      // every key, valid
		"",                                   // empty file: all defaults
		"[node]\nlisten = \"[::]:4433\"\n",   // one static section
		"[limits]\nidle_timeout = \"10x\"\n", // bad duration string
		"[limits]\nidle_timeout = 10\n",      // bare number where a duration goes
		"[limits]\nidle_timeout = {}\n",      // table where a duration goes
		"[limits]\nmax_conns = 99999999999999999999\n",                                                                           // integer overflow
		"[[peers]]\nid = \"a\"\nkeys = [\"ybndrfg8ejkmcpqxot1uwisza3\"]\n",                                                       // short node ID
		"[[peers]]\nid = \"a\"\nkeys = [\"ssh-ed25519 AAAA\"]\n",                                                                 // truncated ssh key
		"[[peers]]\nid = \"a\"\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClPUSfRD/E2+fRhasfqf0Nv8qmObQWS1vgJSpgNT6k/\"]\n", // valid ssh key
		"[[tokens]]\nname = \"t\"\nhash = \"sha256:zz\"\n",                                                                       // bad hash
		"[[tokens]]\nname = \"t\"\nexpires = 2027-01-01\n",                                                                       // local date expiry
		"bogus = 1\n[nodes]\n[[peerz]]\n",                                                                                        // unknown keys and tables
		"[node\n",                                                                                                                // unterminated table header
		"peers = 1\n[[peers]]\n",                                                                                                 // redefinition
		"a = \"\\uD800\"\n",                                                                                                      // invalid escape
		"\xff\xfe\x00",                                                                                                           // not UTF-8
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Core
		if err := Decode("fuzz.toml", data, &c); err != nil && len(err.Error()) > 0 && err.Error()[:9] != "fuzz.toml" {
			t.Errorf("error %q does not name the file", err)
		}
	})
}

// TestDecodeReportsEveryProblem: decoding goes on past each problem, and
// every one is reported with its line, column and key, validation problems
// included.
func TestDecodeReportsEveryProblem(t *testing.T) {
	k := newTestKeys(t)
	text := "[node]\n" + //                                   1
		"listen = 5\n" + //                                    2: type
		"bogus = 1\n" + //                                     3: unknown
		"[limits]\n" + //                                      4
		"max_conns = \"many\"\n" + //                          5: type
		"idle_timeout = \"10ms\"\n" + //                       6: below minimum
		"[tls]\n" + //                                         7
		"cert_file = \"a.pem\"\n" + //                         8: needs key_file
		"[[peers]]\n" + //                                     9
		"id = \"a\"\n" + //                                    10
		"keys = [\"" + k.nodeID.String() + "\"]\n" + //        11
		"scopes = [\"a b\"]\n" + //                            12: bad scope
		"[[peers]]\n" + //                                     13
		"id = \"b\"\n" + //                                    14
		"keys = 7\n" + //                                      15: type; "no keys" not repeated
		"[[tokens]]\n" + //                                    16
		"name = \"t\"\n" //                                    17: no hash
	var c Core
	err := Decode("f.toml", []byte(text), &c)
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		"f.toml:2:10: node.listen:",
		"f.toml:5:13: limits.max_conns:",
		"f.toml:15:8: peers.keys:",
		"f.toml:3:1: node.bogus: unknown key",
		"f.toml:6:1: limits.idle_timeout:",
		"f.toml:7:1: tls: cert_file and key_file go together",
		`f.toml:9:1: peer a: invalid scope`,
		`f.toml:16:1: token "t": no hash`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem starting %q in:\n%s", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(got), len(want), err)
	}
}
