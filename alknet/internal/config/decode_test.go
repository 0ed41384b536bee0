package config

import (
	"os"
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
