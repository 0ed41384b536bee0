package core_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// seen is what a handler learns about one connection.
type seen struct {
	peer    core.Peer
	resumed bool
}

// resumeNode serves "test/a": it reports each connection's peer and
// whether it resumed, and echoes one stream.
func resumeNode(t *testing.T, dir *core.Directory) (*coretest.Node, *core.LiveDirectory, chan seen) {
	t.Helper()
	live := core.NewLiveDirectory(dir, nil)
	conns := make(chan seen, 8)
	n := coretest.Start(t, core.Config{Identities: live}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		select {
		case conns <- seen{c.Peer(), core.Resumed(c)}:
		default: // a test that does not look
		}
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		defer s.Close()
		data, _ := io.ReadAll(s)
		_, _ = s.Write(data)
		_ = s.CloseWrite()
		<-c.Context().Done()
		return nil
	}})
	return n, live, conns
}

// dialOnce dials with a fresh Dialer over a SessionCache read from file
// (a new process, as each alknet command is), makes one round trip (which
// also delivers the node's ticket) and closes.
func dialOnce(t *testing.T, n *coretest.Node, network core.Network, key []byte, file string) (clientResumed bool, err error) {
	t.Helper()
	d := &core.Dialer{Key: key, Network: network, Sessions: core.NewSessionCache(file, 0, nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, n.Addr, "test/a")
	if err != nil {
		return false, err
	}
	defer c.CloseWithError(core.CodeNoError, "")
	s, err := c.OpenStream(ctx)
	if err != nil {
		return false, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	// A refused key learns it from the first read (TLS 1.3 clients finish
	// their handshake before the node checks them); a write may fail first.
	_, _ = s.Write([]byte("hi"))
	_ = s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil {
		if cause := context.Cause(c.Context()); cause != nil && !core.IsKeyRefused(err) {
			err = cause
		}
		return false, err
	}
	if string(got) != "hi" {
		t.Fatalf("echo %q", got)
	}
	return core.Resumed(c), nil
}

// TestResumptionKeepsIdentity: a second process resumes the session from
// the file, and the node still sees the key proved in the full handshake;
// another key never resumes a session it did not prove; a key disabled
// after its ticket was issued is refused in the resumed handshake.
func TestResumptionKeepsIdentity(t *testing.T) {
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			a, b := coretest.NewKey(t), coretest.NewKey(t)
			entries := func(disabled bool) *core.Directory {
				return mustDir(t, []core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(a)}, Disabled: disabled}}, nil)
			}
			n, live, conns := resumeNode(t, entries(false))
			file := filepath.Join(t.TempDir(), "sessions")

			for i, want := range []struct {
				key     []byte
				resumed bool
				full    uint64
				resumes uint64
			}{
				{a, false, 1, 0}, // full handshake; the ticket goes to the file
				{a, true, 1, 1},  // a new process resumes as a
				{b, false, 2, 1}, // b does not get a's session
				{b, true, 2, 2},
				{nil, false, 3, 2}, // anonymous neither
			} {
				resumed, err := dialOnce(t, n, network, want.key, file)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				got := <-conns
				wantID := core.NodeID{}
				if want.key != nil {
					wantID = coretest.NodeID(want.key)
				}
				if got.peer.NodeID != wantID {
					t.Errorf("dial %d: node sees %v, want %v", i, got.peer.NodeID, wantID)
				}
				if want.key != nil && bytes.Equal(want.key, a) && got.peer.Identity.String() != "laptop" {
					t.Errorf("dial %d: identity %s, want laptop", i, got.peer.Identity)
				}
				if got.resumed != want.resumed || resumed != want.resumed {
					t.Errorf("dial %d: resumed node %v client %v, want %v", i, got.resumed, resumed, want.resumed)
				}
				if full, res := n.Endpoint.Handshakes(); full != want.full || res != want.resumes {
					t.Errorf("dial %d: node counted %d full, %d resumed handshakes; want %d, %d", i, full, res, want.full, want.resumes)
				}
			}

			live.Store(entries(true))
			_, err := dialOnce(t, n, network, a, file)
			if !core.IsKeyRefused(err) {
				t.Errorf("disabled key's resumption: %v, want a refusal IsKeyRefused knows", err)
			}
			if _, res := n.Endpoint.Handshakes(); res != 3 {
				t.Errorf("the disabled key's dial did not resume (%d resumed); the test proves nothing", res)
			}
			select {
			case got := <-conns:
				t.Errorf("disabled key served: %+v", got.peer)
			default:
			}
		})
	}
}

// TestSessionCacheFile: the file is private, bounded and survives garbage.
func TestSessionCacheFile(t *testing.T) {
	n, _, _ := resumeNode(t, nil)
	file := filepath.Join(t.TempDir(), "d", "sessions")

	if _, err := dialOnce(t, n, core.NetworkQUIC, nil, file); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", fi.Mode().Perm())
	}
	if l := core.NewSessionCache(file, 0, nil).Len(); l != 1 {
		t.Errorf("file holds %d sessions, want 1", l)
	}

	for _, garbage := range []string{"", "{", `{"version":9,"sessions":[]}`, `{"version":1,"sessions":[{"key":"k","ticket":"AAAA","state":"AAAA"}]}`, strings.Repeat(" ", 5<<20)} {
		if err := os.WriteFile(file, []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		var log coretest.Buffer
		d := &core.Dialer{Network: core.NetworkQUIC, Sessions: core.NewSessionCache(file, 0, slog.New(slog.NewTextHandler(&log, nil)))}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := d.Dial(ctx, n.Addr, "test/a")
		cancel()
		if err != nil {
			t.Fatalf("dial with a garbage session file (%.20q): %v", garbage, err)
		}
		if core.Resumed(c) {
			t.Errorf("resumed from garbage %.20q", garbage)
		}
		c.CloseWithError(core.CodeNoError, "")
		if strings.Contains(log.String(), "AAAA") {
			t.Errorf("session bytes logged: %s", log.String())
		}
	}
}

// TestSessionCacheBounded: the least recently used sessions go first.
func TestSessionCacheBounded(t *testing.T) {
	nodes := make([]*coretest.Node, 3)
	for i := range nodes {
		nodes[i], _, _ = resumeNode(t, nil)
	}
	file := filepath.Join(t.TempDir(), "sessions")
	cache := core.NewSessionCache(file, 2, nil)
	dial := func(n *coretest.Node) bool {
		t.Helper()
		return dialEcho(t, &core.Dialer{Network: core.NetworkTCP, Sessions: cache}, n)
	}
	dial(nodes[0])
	dial(nodes[1])
	if !dial(nodes[0]) { // 0 is now the most recent
		t.Fatal("node 0 did not resume")
	}
	dial(nodes[2]) // evicts 1
	if cache.Len() != 2 {
		t.Errorf("cache holds %d, want 2", cache.Len())
	}
	if l := core.NewSessionCache(file, 2, nil).Len(); l != 2 {
		t.Errorf("file holds %d, want 2", l)
	}
	if dial(nodes[1]) {
		t.Error("node 1's session survived eviction")
	}
	if !dial(nodes[2]) {
		t.Error("node 2 did not resume")
	}
}

// TestSessionCacheFileWritesSeldom: a node gives a new ticket on every
// connection; a Dialer that connects often keeps resuming without
// rewriting the file for each, and the file's ticket still serves a new
// process.
func TestSessionCacheFileWritesSeldom(t *testing.T) {
	n, _, _ := resumeNode(t, nil)
	file := filepath.Join(t.TempDir(), "sessions")
	cache := core.NewSessionCache(file, 0, nil)
	d := &core.Dialer{Network: core.NetworkTCP, Sessions: cache}
	dial := func() bool {
		t.Helper()
		return dialEcho(t, d, n)
	}
	dial()
	first, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !dial() {
			t.Fatalf("dial %d did not resume", i+2)
		}
	}
	if now, err := os.ReadFile(file); err != nil || !bytes.Equal(now, first) {
		t.Errorf("the session file was rewritten for tickets minutes younger than its own (%v)", err)
	}
	if resumed, err := dialOnce(t, n, core.NetworkTCP, nil, file); err != nil || !resumed {
		t.Errorf("a new process with the file: resumed %v, %v", resumed, err)
	}
}

// dialEcho dials n with d, makes one round trip on a stream (which also
// delivers the node's ticket) and reports whether the session resumed.
func dialEcho(t *testing.T, d *core.Dialer, n *coretest.Node) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, n.Addr, "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("x"))
	_ = s.CloseWrite()
	_, _ = io.ReadAll(s)
	return core.Resumed(c)
}
