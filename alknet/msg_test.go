package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMsgSendReadAck: a client sends to a node; the node restarts; its
// owner reads the message, acks it, and it is gone. A sender without
// msg:send is refused.
func TestMsgSendReadAck(t *testing.T) {
	cdir, cid := clientID(t)
	odir, oid := clientID(t)
	config := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"msg:send\"]\n\n[[peers]]\nid = \"other\"\nkeys = [%q]\n", cid, oid)
	dir := t.TempDir()
	t.Run("send", func(t *testing.T) {
		n := startNodeIn(t, dir, config)
		out := run(t, "", "msg", "send", "--data-dir", cdir, n.addr, "hello over alknet/msg")
		if !strings.HasPrefix(out, "sent ") {
			t.Fatalf("send printed %q", out)
		}
		_, errOut, err := runErr(t, "", "msg", "send", "--data-dir", odir, n.addr, "not allowed")
		if err == nil || !strings.Contains(errOut, "forbidden") {
			t.Fatalf("send without msg:send: %v %q", err, errOut)
		}
	})
	n := startNodeIn(t, dir, config)
	out := run(t, "", "msg", "read", "--data-dir", dir, "--node", n.addr, "--ack")
	var m struct {
		From, Text, Error string
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("read printed %q: %v", out, err)
	}
	if m.From != cid || m.Text != "hello over alknet/msg" || m.Error != "" {
		t.Fatalf("read %+v, want the text from %s", m, cid)
	}
	if out := run(t, "", "msg", "read", "--data-dir", dir, "--node", n.addr); out != "" {
		t.Fatalf("after --ack the inbox still holds %q", out)
	}
	if out := run(t, "", "msg", "key", "--data-dir", dir); !strings.HasPrefix(out, "alkmsgkey1:") {
		t.Fatalf("msg key printed %q", out)
	}

	// msg watch prints a message sent while it runs, and stops on SIGINT.
	watch := exec.Command(bin, "msg", "watch", "--data-dir", dir, "--node", n.addr, "--ack")
	watch.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	run(t, "", "msg", "send", "--data-dir", cdir, n.addr, "watched")
	if !lines.Scan() || !strings.Contains(lines.Text(), `"text":"watched"`) {
		watch.Process.Kill()
		watch.Wait()
		t.Fatalf("watch printed %q", lines.Text())
	}
	watch.Process.Signal(os.Interrupt)
	if err := watch.Wait(); err != nil {
		t.Fatalf("msg watch exited with %v", err)
	}
	if out := run(t, "", "msg", "read", "--data-dir", dir, "--node", n.addr); out != "" {
		t.Fatalf("watch --ack left %q", out)
	}
}
