package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultWithOpenPermissionsRefused: like ssh with a private key others
// can read, every command refuses a vault file its group or others may
// read or write, and says how to fix it.
func TestVaultWithOpenPermissionsRefused(t *testing.T) {
	dir, id := clientID(t)
	path := filepath.Join(dir, vaultFile)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o606} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runErr(t, "", "id", "--data-dir", dir)
		if err == nil {
			t.Fatalf("alknet id with the vault at %#o succeeded: %q", mode, out)
		}
		if !strings.Contains(errOut, "chmod 600 "+path) {
			t.Errorf("alknet id with the vault at %#o said %q, want the fix chmod 600 %s", mode, errOut, path)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "", "id", "--data-dir", dir); !strings.HasPrefix(out, id) {
		t.Errorf("alknet id after chmod 600 printed %q, want %s", out, id)
	}
}

func TestWorldWritableDataDirWarns(t *testing.T) {
	dir, _ := clientID(t)
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o700, false}, {0o750, false}, {0o777, true}, {os.ModeSticky | 0o777, true}} {
		if err := os.Chmod(dir, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, errOut, err := runErr(t, "", "id", "--data-dir", dir)
		if err != nil {
			t.Fatalf("alknet id with the data dir at %#o: %v\n%s", tt.mode, err, errOut)
		}
		warned := strings.Contains(errOut, "writable by everyone") && strings.Contains(errOut, "chmod 700 "+dir)
		if warned != tt.warn {
			t.Errorf("data dir at %#o: warned %v, want %v; stderr %q", tt.mode, warned, tt.warn, errOut)
		}
	}
}
