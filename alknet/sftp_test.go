package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
)

// startNodeWithFileLimit is startNode for a node whose soft and hard
// RLIMIT_NOFILE are nofile (set by the shell that execs it).
func startNodeWithFileLimit(t *testing.T, nofile int, config string) *testNode {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alknet.toml"), config)
	args := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), bin}, args...)...)
	n := startProcess(t, cmd, "serve")
	n.dir = dir
	m := n.logMatch(t, listeningRE.String())
	n.id, n.addr = m[2], m[2]+"@"+m[1]
	return n
}

// newPeerKey returns a key and its NodeID as text.
func newPeerKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := core.NodeIDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key, id.String()
}

// sftpSession opens an SFTP session on a new stream of conn; the client
// is closed when the test ends.
func sftpSession(t *testing.T, conn core.Conn) *pkgsftp.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	c, err := pkgsftp.NewClientPipe(st, st)
	if err != nil {
		t.Fatalf("start sftp session: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSFTPReadOnlyPeerCannotStarveNode attacks a node whose file limit is
// 256 with a peer that holds only sftp:read: it opens every session and
// file it can over QUIC and TCP+TLS, 720 opens in all. With the identity
// limits, the peer gets its own budget and clear refusals past it, and
// another peer can still open files. With those limits out of the way, the
// node's reserve of descriptors stops the peer instead. Either way the
// node keeps accepting connections on both transports, and every refusal
// is an SFTP status.
func TestSFTPReadOnlyPeerCannotStarveNode(t *testing.T) {
	const nofile = 256
	tests := []struct {
		name   string
		limits string
		opened func(n int) bool // what the attacker may have opened
		busy   bool             // the node is down to its reserve
	}{
		{
			name:   "identity limits",
			limits: "max_handles_per_identity = 60\nmax_sessions_per_identity = 8\nmax_sessions_per_conn = 4\n",
			opened: func(n int) bool { return n == 60 },
		},
		{
			name: "descriptor reserve",
			limits: "max_handles_per_identity = 100000\nmax_handles_per_node = 100000\n" +
				"max_sessions_per_identity = 1000\nmax_sessions_per_conn = 1000\n",
			opened: func(n int) bool { return n > 60 && n < nofile-core.FileReserve(nofile) },
			busy:   true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attackSFTP(t, nofile, tc.limits, tc.opened, tc.busy)
		})
	}
}

func attackSFTP(t *testing.T, nofile int, limits string, wantOpened func(int) bool, busy bool) {
	readerKey, readerID := newPeerKey(t)
	adminKey, adminID := newPeerKey(t)
	n := startNodeWithFileLimit(t, nofile, fmt.Sprintf(`
[[peers]]
id = "reader"
keys = [%q]
scopes = ["sftp:read"]

[[peers]]
id = "admin"
keys = [%q]
scopes = ["admin", "sftp:read", "sftp:write"]

[sftp]
%s`, readerID, adminID, limits))
	n.waitLog(t, fmt.Sprintf(`level=INFO msg="file descriptor limit" soft=%d hard=%d`, nofile, nofile))
	for _, id := range []string{"reader", "admin"} {
		dir := filepath.Join(n.dir, "sftp", id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "f"), id)
	}

	// The attack: 3 QUIC connections of 6 sessions and 6 TCP+TLS
	// connections (one session each), every session opening the file 30
	// times: 720 opens, far past the node's 256 descriptors.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader := &core.Dialer{Key: readerKey}
	var conns []core.Conn
	opened := 0
	for i := range 9 {
		reader.Network = core.NetworkQUIC
		streams := 6
		if i >= 3 {
			reader.Network, streams = core.NetworkTCP, 1
		}
		conn, err := reader.Dial(ctx, n.addr, sftp.ALPN)
		if err != nil {
			t.Fatalf("attacker dial %d: %v", i, err)
		}
		t.Cleanup(func() { _ = conn.CloseWithError(core.CodeNoError, "") })
		conns = append(conns, conn)
		for range streams {
			c := sftpSession(t, conn)
			for range 30 {
				_, err := c.Open("/f")
				if err == nil {
					opened++
					continue
				}
				if !failureStatus(err) {
					t.Fatalf("refusal %v is not an SFTP failure status", err)
				}
				break
			}
		}
	}
	if !wantOpened(opened) {
		t.Errorf("the attacker opened %d files", opened)
	}
	// A TCP+TLS connection is one session; the QUIC ones outlive their
	// refused sessions.
	for i, conn := range conns[:3] {
		if conn.Context().Err() != nil {
			t.Fatalf("attacker's QUIC connection %d was dropped: %v", i, context.Cause(conn.Context()))
		}
	}
	if runtime.GOOS == "linux" {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", n.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		// Descriptors the checks do not see (accepted TCP connections, a
		// root's transient opens) may dip into the reserve a little.
		if limit := nofile - core.FileReserve(uint64(nofile))/2; len(fds) > limit {
			t.Errorf("node holds %d descriptors under attack, want at most %d", len(fds), limit)
		}
	}

	// The node still accepts on both transports. Admin still opens and
	// writes files, unless the node is down to its reserve: then admin is
	// told so.
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		admin := &core.Dialer{Key: adminKey, Network: network}
		conn, err := admin.Dial(ctx, n.addr, sftp.ALPN)
		if err != nil {
			t.Fatalf("admin dial over %s under attack: %v", network, err)
		}
		c := sftpSession(t, conn)
		err = adminReadWrite(c, "/written-over-"+string(network))
		switch {
		case busy && (err == nil || !failureStatus(err) || !strings.Contains(err.Error(), "server: too many open files, try later")):
			t.Fatalf("admin over %s with the node at its reserve: %v, want the node's refusal", network, err)
		case !busy && err != nil:
			t.Fatalf("admin over %s under attack: %v", network, err)
		}
		_ = conn.CloseWithError(core.CodeNoError, "")
	}
}

// failureStatus reports whether err is an SFTP FAILURE status.
func failureStatus(err error) bool {
	var se *pkgsftp.StatusError
	return errors.As(err, &se) && se.FxCode() == pkgsftp.ErrSSHFxFailure
}

// adminReadWrite reads /f, which holds "admin", and writes name.
func adminReadWrite(c *pkgsftp.Client, name string) error {
	f, err := c.Open("/f")
	if err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return err
	}
	if string(b) != "admin" {
		return fmt.Errorf("read %q, want %q", b, "admin")
	}
	w, err := c.Create(name)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("ok")); err != nil {
		return err
	}
	return w.Close()
}
