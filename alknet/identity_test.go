package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientCommandsNeedInit: client commands on a data dir with no vault
// fail with a pointer to `alknet init` and create nothing, rather than make
// a vault and print its recovery phrase as a side effect.
func TestClientCommandsNeedInit(t *testing.T) {
	n := startNode(t, "")
	for _, args := range [][]string{
		{"id"},
		{"call", n.addr, "sys/info"},
		{"perf", n.addr},
		{"fs", "get", "--node", n.addr, "bafkqaaa", "-o", "x"},
		{"msg", "read"},
		{"vault", "derive", "--path", "m/74'/0'/0'"},
	} {
		t.Run(args[0], func(t *testing.T) {
			dir := t.TempDir()
			_, stderr, err := runErr(t, "", append(args, "--data-dir", dir)...)
			if err == nil {
				t.Fatal("succeeded without a vault")
			}
			want := "no vault in " + dir + ": run `alknet init`"
			if !strings.Contains(stderr, want) || strings.Contains(stderr, "recovery phrase") {
				t.Errorf("stderr %q, want it to say %q", stderr, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "vault")); !os.IsNotExist(err) {
				t.Errorf("a vault appeared: %v", err)
			}
		})
	}
}

// TestServeKeepsPhraseOutOfLogs: `serve` on a fresh data dir still creates
// the vault, but with stderr not a terminal (a service log) the recovery
// phrase goes to a 0600 file and the log only says where.
func TestServeKeepsPhraseOutOfLogs(t *testing.T) {
	n := startNode(t, "")
	file := filepath.Join(n.dir, "recovery-phrase.txt")
	n.waitLog(t, `phrase_file=`+file)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 12 {
			words = f
		}
	}
	if words == nil {
		t.Fatalf("no 12-word phrase in %q", data)
	}
	if log := n.logText(); strings.Contains(log, strings.Join(words[:3], " ")) {
		t.Errorf("the phrase is in the log:\n%s", log)
	}
	// The phrase restores the node's identity.
	dir := t.TempDir()
	if out := run(t, strings.Join(words, " ")+"\n", "init", "--restore", "--data-dir", dir); !strings.Contains(out, n.id) {
		t.Errorf("restore from the saved phrase printed %q, want node ID %s", out, n.id)
	}
}

// TestGlobalFlagsAndVersion: the common flags work before the command too,
// and --version prints the version.
func TestGlobalFlagsAndVersion(t *testing.T) {
	dir, id := clientID(t)
	if out := run(t, "", "--data-dir", dir, "id"); !strings.HasPrefix(out, id+"\n") {
		t.Errorf("alknet --data-dir DIR id printed %q, want %s", out, id)
	}
	if out := run(t, "", "--data-dir="+dir, "--log-level", "warn", "peers", "add", "p", id, "--scope", "perf"); !strings.Contains(out, `added peer "p"`) {
		t.Errorf("peers add after global flags printed %q", out)
	}
	if out := run(t, "", "--version"); !strings.HasPrefix(out, "alknet version ") {
		t.Errorf("--version printed %q", out)
	}
}
