package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkedInMan is the page checked in beside the docs.
const checkedInMan = "../docs/man/alknet.1"

// TestManPageCheckedIn fails when docs/man/alknet.1 no longer matches the
// commands and flags, as scripts/configdoc --check does for docs/config.md.
// The page comes from the binary run with a data dir, a home and
// environment values set, which must not reach it.
func TestManPageCheckedIn(t *testing.T) {
	want, err := os.ReadFile(checkedInMan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "man")
	cmd.Env = append(os.Environ(), "HOME=/home/someone-else", "XDG_STATE_HOME=/var/tmp/state",
		"ALKNET_DATA_DIR="+dataDir, "ALKNET_LOG_FORMAT=json", "ALKNET_NETWORK=tcp", "ALKNET_RESOLVERS=x@192.0.2.77:7")
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("alknet man: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/man/alknet.1 is stale or alknet man depends on the machine: run (cd alknet && go run . man --dir ../docs/man)\n%s",
			firstDiff(string(want), string(got)))
	}
	for _, s := range []string{dataDir, "someone-else", "/var/tmp/state", "192.0.2.77"} {
		if strings.Contains(string(got), s) {
			t.Errorf("the page contains %q, from this run's environment", s)
		}
	}

	dir := t.TempDir()
	if out, err := exec.CommandContext(ctx, bin, "man", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("alknet man --dir: %v\n%s", err, out)
	}
	if written, err := os.ReadFile(filepath.Join(dir, "alknet.1")); err != nil || !bytes.Equal(written, want) {
		t.Errorf("alknet man --dir wrote another page (%v)", err)
	}
}

// TestManPageRenders checks the page is roff groff reads without a
// warning, and that every visible command and flag is on it.
func TestManPageRenders(t *testing.T) {
	page := manPage(newApp())
	for _, want := range []string{
		".TH ALKNET 1", ".SH NAME", "alknet \\- one QUIC+TLS endpoint", ".SH GLOBAL OPTIONS",
		".SS alknet peers grant", ".SS alknet forward", "\\fB-R\\fP", "\\fB--data-dir\\fP",
		"ALKNET_PASSPHRASE", ".SH FILES", "known_nodes",
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, r := range string(page) {
		if r >= 0x80 {
			t.Errorf("the page has the non-ASCII %q", r)
			break
		}
	}
	if bytes.Contains(page, []byte(completeCommand)) {
		t.Errorf("the page shows the hidden %s", completeCommand)
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("no groff to render the page")
	}
	cmd := exec.Command("groff", "-man", "-ww", "-z")
	cmd.Stdin = bytes.NewReader(page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, stderr.String())
	}
}

// firstDiff shows the first line where want and got differ.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  checked in: %s\n  generated:  %s", i+1, wl, gl)
		}
	}
	return ""
}
