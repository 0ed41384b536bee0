package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile is the systemd unit shipped in docs/deploy.
const unitFile = "../docs/deploy/alknet.service"

// TestSystemdUnit checks the hardening of the shipped unit and that its
// ExecStart is a command line `alknet serve` accepts: the node it starts
// comes up (logging JSON, as the unit asks) and stops cleanly on SIGTERM.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: malformed line %q", unitFile, line)
		}
		unit[k] = append(unit[k], v)
	}
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "alknet",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if got := unit[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%v, want %s", k, got, want)
		}
	}
	exec1 := unit["ExecStart"]
	if len(exec1) != 1 {
		t.Fatalf("want one ExecStart, got %v", exec1)
	}
	args := strings.Fields(exec1[0])
	if args[0] != "/usr/local/bin/alknet" || args[1] != "serve" {
		t.Fatalf("ExecStart %q does not run /usr/local/bin/alknet serve", exec1[0])
	}

	state, creds := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(creds, "passphrase"), "correct horse battery staple\n")
	r := strings.NewReplacer("${STATE_DIRECTORY}", state, "${CREDENTIALS_DIRECTORY}", creds)
	for i := range args {
		args[i] = r.Replace(args[i])
	}
	// The unit's port 443 is not ours to take in a test: a later --listen wins.
	cmd := exec.Command(bin, append(args[1:], "--listen", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=", "ALKNET_DATA_DIR=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	listening := make(chan string, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `"msg":"listening"`) {
				listening <- sc.Text()
			}
		}
		close(listening)
	}()
	select {
	case line, ok := <-listening:
		if !ok {
			t.Fatalf("the unit's command exited without listening: %v", <-done)
		}
		if !strings.HasPrefix(line, "{") {
			t.Errorf("log line is not JSON: %s", line)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the unit's command did not come up")
	}
	if _, err := os.Stat(filepath.Join(state, vaultFile)); err != nil {
		t.Errorf("no vault in the state directory: %v", err)
	}
	// The recovery phrase is in a file, not in the journal
	// (TestServeKeepsPhraseOutOfLogs checks the log).
	if _, err := os.Stat(filepath.Join(state, recoveryPhraseFile)); err != nil {
		t.Errorf("no recovery phrase file: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("did not stop on SIGTERM")
	}
}

// TestServeRefusesBadConfig checks that a bad config stops `alknet serve`
// at once with a non-zero status and a one-line reason naming the place.
func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alknet.toml"), "[node]\nlisten = 5\n")
	_, stderr, err := runErr(t, "", "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if exitCode(err) != 1 {
		t.Fatalf("exit %v, want status 1", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "alknet.toml:2:10: node.listen") {
		t.Errorf("stderr is not one line naming file:line:col and key:\n%s", stderr)
	}
}
