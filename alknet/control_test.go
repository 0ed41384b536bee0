package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIBesideRunningNode: after `alknet serve`, the commands run on its
// data dir reach the node through its control socket, as its operator:
// status, call self (and the node's own address), fs add and ls, msg read.
func TestCLIBesideRunningNode(t *testing.T) {
	n := startNode(t, "[fs]\nno_sync = true\n")
	dd := []string{"--data-dir", n.dir}
	_, listen, _ := strings.Cut(n.addr, "@")

	sock := filepath.Join(n.dir, "alknet.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a socket with 0600", sock, fi.Mode())
	}

	out := run(t, "", append([]string{"status"}, dd...)...)
	idLines := strings.Split(strings.TrimSpace(run(t, "", append([]string{"id"}, dd...)...)), "\n")
	pin := idLines[len(idLines)-1] // the web certificate's, as alknet id prints it
	if !strings.HasPrefix(pin, "sha256//") {
		t.Fatalf("alknet id printed no pin: %q", idLines)
	}
	for _, want := range []string{"status  ", "up ", n.id, listen, "service fs", "alknet/fs", "workers", "reload", "none since the start", "web pin", pin} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var st struct {
		Up          bool           `json:"up"`
		NodeID      string         `json:"nodeId"`
		Listen      string         `json:"listen"`
		Version     string         `json:"version"`
		Connections map[string]int `json:"connections"`
		Services    []struct {
			Name  string   `json:"name"`
			ALPNs []string `json:"alpns"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(run(t, "", append([]string{"status", "--json"}, dd...)...)), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Up || st.NodeID != n.id || st.Listen != listen || st.Version == "" || st.Connections == nil || len(st.Services) == 0 {
		t.Errorf("status --json: %+v", st)
	}

	// self, the node's own NodeID (no resolver needed) and its address.
	for _, addr := range []string{"self", n.id, n.addr} {
		var info struct {
			NodeID string `json:"nodeId"`
		}
		if err := json.Unmarshal([]byte(run(t, "", append([]string{"call", addr, "sys/info"}, dd...)...)), &info); err != nil {
			t.Fatal(err)
		}
		if info.NodeID != n.id {
			t.Errorf("call %s sys/info: node %q, want %q", addr, info.NodeID, n.id)
		}
	}

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "alpha\n")
	root := strings.TrimSpace(run(t, "", append([]string{"fs", "add", "-q", src}, dd...)...))
	if out := run(t, "", append([]string{"fs", "ls", root}, dd...)...); !strings.Contains(out, "a.txt") {
		t.Errorf("fs ls %s: %q", root, out)
	}
	if out := run(t, "", append([]string{"fs", "cat", root + "/a.txt"}, dd...)...); out != "alpha\n" {
		t.Errorf("fs cat: %q", out)
	}
	if out := run(t, "", append([]string{"fs", "pins"}, dd...)...); !strings.Contains(out, root) {
		t.Errorf("fs pins lacks %s: %q", root, out)
	}
	run(t, "", append([]string{"msg", "read"}, dd...)...)
}

// TestCLIStatusDown: with no node on the data dir, status says so and
// exits 3; call self names the data dir and how to start a node.
func TestCLIStatusDown(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"status"}, 3, "down: no node runs on " + dir, ""},
		{[]string{"status", "--json"}, 3, `"up":false`, ""},
		{[]string{"call", "self", "sys/info"}, 1, "", "no node runs on " + dir},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, err := runErr(t, "", append(tt.args, "--data-dir", dir)...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
				t.Fatalf("exit %v, want code %d\n%s%s", err, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", out, errOut, tt.out, tt.err)
			}
		})
	}
}

// TestCLISecondNodeRefused: a second node on a data dir refuses to start
// while one runs there, whatever its port.
func TestCLISecondNodeRefused(t *testing.T) {
	n := startNode(t, "")
	_, errOut, err := runErr(t, "", "serve", "--data-dir", n.dir, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(errOut, "a node already runs on this data dir") {
		t.Fatalf("second serve: %v\n%s", err, errOut)
	}
	// The first still answers.
	run(t, "", "call", "self", "sys/info", "--data-dir", n.dir)
}

// TestCLIDashboardCountsEveryALPN: the dashboard shows the live
// connections of every ALPN (not n/a for the non-HTTP ones) and the last
// reload, which `peers add` beside the node triggers.
func TestCLIDashboardCountsEveryALPN(t *testing.T) {
	n := startNode(t, "[http]\ndashboard = true\ntrust_loopback = true\n")
	_, cid := clientID(t)
	run(t, "", "peers", "add", "laptop", cid, "--scope", "perf", "--data-dir", n.dir)
	_, listen, _ := strings.Cut(n.addr, "@")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{
		`<code>alknet/call</code></td><td class="num">0</td>`,
		`<code>h2</code></td><td class="num">1</td>`,
		"Connections open now", `id="config-reload">Config: last reloaded`, "): applied",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if strings.Contains(page, "n/a") {
		t.Errorf("dashboard still shows n/a counts")
	}
}
