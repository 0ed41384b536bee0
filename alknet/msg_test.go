package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// freeLoopback returns a loopback address whose port is free for UDP and
// TCP, for nodes whose configs must name each other before they start.
func freeLoopback(t *testing.T) string {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := u.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		u.Close()
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port")
	return ""
}

// TestMsgMixnet: three mix nodes and a directory node that is also the
// recipient's node; `alknet msg send --mixnet` fetches the signed
// directory and sends through one mix per layer; the recipient reads the
// message. One mix sends loop cover traffic meanwhile.
func TestMsgMixnet(t *testing.T) {
	sdir, sid := clientID(t)
	bdir, bid := clientID(t)
	baddr := freeLoopback(t)
	var mdirs, mids, maddrs []string
	var mixes []*testNode
	for range 3 {
		d, id := clientID(t)
		mdirs, mids, maddrs = append(mdirs, d), append(mids, id), append(maddrs, freeLoopback(t))
	}
	common := fmt.Sprintf("[msg]\ndirectories = [\"%s@%s\"]\n\n[msg.homes]\n%q = \"%s@%s\"\n", bid, baddr, bid, bid, baddr)
	relayers := fmt.Sprintf("[[peers]]\nid = \"relayers\"\nkeys = [%q, %q, %q, %q]\nscopes = [\"msg:relay\"]\n\n", sid, mids[0], mids[1], mids[2])
	for i := range 3 {
		cover := 0
		if i == 1 {
			cover = 5
		}
		writeFile(t, filepath.Join(mdirs[i], "alknet.toml"), relayers+common+fmt.Sprintf(
			"\n[msg.mix]\nenabled = true\nmean_delay = \"5ms\"\nbatch_interval = \"5ms\"\ncover_rate = %d\n", cover))
		mixes = append(mixes, startNodeIn(t, mdirs[i], "", "--listen", maddrs[i]))
	}
	dirConfig := fmt.Sprintf("[[peers]]\nid = \"mixes\"\nkeys = [%q, %q, %q]\nscopes = [\"msg:relay\"]\n\n[msg.directory]\npublish = true\n", mids[0], mids[1], mids[2])
	for i := range 3 {
		dirConfig += fmt.Sprintf("\n[[msg.directory.mixes]]\naddr = \"%s@%s\"\nlayer = %d\n", mids[i], maddrs[i], i)
	}
	b := startNodeIn(t, bdir, dirConfig, "--listen", baddr)
	b.waitLog(t, `msg="mix directory published" epoch=\d+ mixes=3`)
	writeFile(t, filepath.Join(sdir, "alknet.toml"), common)

	out := run(t, "", "msg", "send", "--mixnet", "--data-dir", sdir, bid, "through three mixes")
	if !strings.HasPrefix(out, "sent ") || !strings.Contains(out, "through the mixnet") {
		t.Fatalf("send printed %q", out)
	}
	rec := strings.TrimSpace(run(t, "", "msg", "key", "--data-dir", bdir))
	run(t, "", "msg", "send", "--mixnet", "--key", rec, "--data-dir", sdir, bid, "with the key given")
	want := map[string]bool{"through three mixes": true, "with the key given": true}
	deadline := time.Now().Add(30 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		out := run(t, "", "msg", "read", "--ack", "--data-dir", bdir, "--node", b.addr)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m struct{ From, Text, Error string }
			if line == "" || json.Unmarshal([]byte(line), &m) != nil || m.From != sid || m.Error != "" {
				continue
			}
			delete(want, m.Text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(want) > 0 {
		t.Fatalf("not delivered: %v", want)
	}
	// Mix 1's cover loops come back to it and are dropped, not kept.
	mixes[1].waitLog(t, `msg="mix cover loop returned"`)
	if out := run(t, "", "msg", "read", "--data-dir", mdirs[1], "--node", mixes[1].addr); out != "" {
		t.Fatalf("cover traffic reached the mix's inbox: %q", out)
	}

	// A sender whose directory node is someone else refuses the directory.
	writeFile(t, filepath.Join(sdir, "alknet.toml"), strings.Replace(common, bid+"@", mids[0]+"@", 1))
	if _, errOut, err := runErr(t, "", "msg", "send", "--mixnet", "--key", rec, "--data-dir", sdir, bid, "x"); err == nil {
		t.Fatalf("sent with an untrusted directory: %q", errOut)
	}
}
