package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestErrorsSayWhatToDo: a refused or failed command prints one line that
// says what happened in words (no close codes, no CRYPTO_ERROR) and, for a
// refusal, the command to run on the node.
func TestErrorsSayWhatToDo(t *testing.T) {
	cdir, cid := clientID(t)
	odir, oid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\nscopes = [\"call:route\"]\n", cid))
	hostport := strings.SplitN(n.addr, "@", 2)[1]
	zone := filepath.Join(t.TempDir(), "me.zone")
	writeFile(t, zone, "_alknet 300 IN TXT \"v=client\"\n")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"perf unknown key", []string{"perf", n.addr, "--bytes", "1000", "--network", "quic", "--data-dir", odir},
			[]string{"node " + n.id + " does not know your key " + oid, "alknet peers add NAME " + oid + " --scope perf`"}},
		{"perf missing scope", []string{"perf", n.addr, "--bytes", "1000", "--network", "quic", "--data-dir", cdir},
			[]string{"lacks the scope perf", "alknet peers grant ID perf`"}},
		{"call unknown key", []string{"call", n.addr, "sys/echo", `{"message":"x"}`, "--data-dir", odir},
			[]string{"node " + n.id + " does not know your key " + oid, "alknet peers add NAME " + oid}},
		{"call unknown key, routed", []string{"call", n.addr, "sys/echo", `{"message":"x"}`, "--peer", "w", "--data-dir", odir},
			[]string{"does not know your key " + oid}},
		{"call missing scope", []string{"call", n.addr, "sys/status", "--data-dir", cdir},
			[]string{"lacks the scope admin", "alknet peers grant ID admin`"}},
		{"call schema violation", []string{"call", n.addr, "sys/echo", `{"message":1}`, "--data-dir", cdir},
			[]string{"INVALID_INPUT", `/properties/message`, `want "string"`}},
		{"no such worker", []string{"call", n.addr, "sys/echo", `{"message":"x"}`, "--peer", "nobody", "--data-dir", cdir},
			[]string{`no worker named "nobody" is attached to this node (none is attached)`}},
		{"wrong pin", []string{"perf", oid + "@" + hostport, "--network", "quic", "--data-dir", cdir},
			[]string{"TLS handshake failed (bad certificate): node identity", "not the pinned"}},
		{"resolve an unpublished node", []string{"resolve", "--resolver", n.addr, oid, "--data-dir", cdir},
			[]string{"has no signed record of node " + oid, "has not published"}},
		{"dns publish without the scope", []string{"dns", "publish", "--zone", zone, "--to", n.addr, "--data-dir", cdir},
			[]string{"it needs your key " + cid + " with the dns:publish scope", "alknet peers grant ID dns:publish`"}},
		{"port-less address", []string{"call", oid + "@127.0.0.1", "services/ping", "--network", "tcp", "--data-dir", cdir},
			[]string{"127.0.0.1:4433"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runErr(t, "", tc.args...)
			if err == nil {
				t.Fatal("succeeded")
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
				t.Errorf("stderr has %d lines, want 1: %q", lines, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			for _, bad := range []string{"Application error", "CRYPTO_ERROR", "0x"} {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr %q shows a raw code (%q)", stderr, bad)
				}
			}
		})
	}
}

// TestSubscriptionInterruptExits130: Ctrl-C on `alknet call` of a
// subscription ends it as a shell expects: exit status 130, nothing on
// stderr.
func TestSubscriptionInterruptExits130(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\n", cid))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "call", n.addr, "sys/ticks", `{"count":1000,"interval":"50ms"}`, "--data-dir", cdir)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=", "ALKNET_DATA_DIR=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("no event: %v", lines.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want status 130", err)
	}
	if stderr.String() != "" {
		t.Errorf("stderr %q, want nothing", stderr.String())
	}
}
