package sftp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/sftp"
)

// The messages of the refusals, as the client reads them.
const (
	msgSessionHandles  = "too many open handles in this session"
	msgIdentityHandles = "too many open handles for this identity"
	msgConnSessions    = "too many sessions on this connection"
	msgIdentitySession = "too many sessions for this identity"
	msgBusy            = "server: too many open files, try later"
)

// wantRefusal checks that err is a FAILURE status carrying msg.
func wantRefusal(err error, msg string) error {
	if fxCode(err) != fxFailure || !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("got %v, want a failure status saying %q", err, msg)
	}
	return nil
}

// refusedSession opens a session on conn that the server refuses: the
// client starts (the server answers INIT), and its first request fails
// with msg.
func refusedSession(t *testing.T, conn core.Conn, msg string) {
	t.Helper()
	c, err := session(t, conn)
	if err != nil {
		t.Fatalf("refused session did not start: %v", err)
	}
	if _, err := c.Stat("/"); wantRefusal(err, msg) != nil {
		t.Fatalf("first request of a refused session: %v", wantRefusal(err, msg))
	}
}

// openN opens name n times on c and returns the files.
func openN(t *testing.T, c *pkgsftp.Client, name string, n int) []*pkgsftp.File {
	t.Helper()
	var fs []*pkgsftp.File
	for i := range n {
		f, err := c.Open(name)
		if err != nil {
			t.Fatalf("open %d of %d: %v", i+1, n, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// alive checks that conn is up and c still serves.
func alive(t *testing.T, conn core.Conn, c *pkgsftp.Client) {
	t.Helper()
	if err := conn.Context().Err(); err != nil {
		t.Fatalf("connection ended: %v", context.Cause(conn.Context()))
	}
	if _, err := c.Stat("/"); err != nil {
		t.Fatalf("session after a refusal: %v", err)
	}
}

func TestHandleLimits(t *testing.T) {
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			f := start(t, sftp.Config{MaxHandles: 2, MaxHandlesPerIdentity: 3, MaxHandlesPerNode: 7}, core.Limits{},
				peer{"alice", rw}, peer{"bob", rw}, peer{"carol", rw})
			for _, id := range []string{"alice", "bob", "carol"} {
				mustWrite(t, filepath.Join(f.root(id), "f"), id)
			}
			a1, a1conn := f.client(t, network, "alice")
			a2, _ := f.client(t, network, "alice")
			b, _ := f.client(t, network, "bob")
			// Node: 3 sessions so far.

			// Per session: alice's first session holds 2 of its 2.
			held := openN(t, a1, "/f", 2)
			if _, err := a1.Open("/f"); wantRefusal(err, msgSessionHandles) != nil {
				t.Fatal(wantRefusal(err, msgSessionHandles))
			}
			if _, err := a1.ReadDir("/"); wantRefusal(err, msgSessionHandles) != nil {
				t.Fatal(wantRefusal(err, msgSessionHandles))
			}
			alive(t, a1conn, a1)

			// Per identity: alice's second session gets 1, the identity's 3rd.
			held = append(held, openN(t, a2, "/f", 1)...)
			if _, err := a2.Create("/new"); wantRefusal(err, msgIdentityHandles) != nil {
				t.Fatal(wantRefusal(err, msgIdentityHandles))
			}

			// Per node: 3 sessions + 3 handles; bob takes the 7th.
			bf := openN(t, b, "/f", 1)
			if _, err := b.Open("/f"); wantRefusal(err, msgBusy) != nil {
				t.Fatal(wantRefusal(err, msgBusy))
			}
			refusedSession(t, f.dial(t, network, "carol"), msgBusy)

			// Closing gives the budgets back, at every level.
			bf[0].Close()
			if err := wantBytes(readFile(b, "/f"))("bob"); err != nil {
				t.Fatalf("bob after closing a file: %v", err)
			}
			held[0].Close()
			if err := wantBytes(readFile(a2, "/f"))("alice"); err != nil {
				t.Fatalf("alice after closing a file: %v", err)
			}
			for _, h := range held[1:] {
				h.Close()
			}
			c, _ := f.client(t, network, "carol")
			if err := wantBytes(readFile(c, "/f"))("carol"); err != nil {
				t.Fatalf("carol once the node had room: %v", err)
			}
		})
	}
}

func TestSessionLimits(t *testing.T) {
	f := start(t, sftp.Config{MaxSessionsPerConn: 2, MaxSessionsPerIdentity: 3}, core.Limits{},
		peer{"alice", rw}, peer{"bob", rw})
	conn := f.dial(t, core.NetworkQUIC, "alice")
	first, err := session(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	second, err := session(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	// Per connection: the third stream is refused; the connection and its
	// sessions go on.
	refusedSession(t, conn, msgConnSessions)
	alive(t, conn, first)
	alive(t, conn, second)

	// Per identity, over all connections: alice's third session (on TCP)
	// is its last, the fourth (on a new QUIC connection) is refused.
	third, _ := f.client(t, core.NetworkTCP, "alice")
	alive(t, conn, third)
	refusedSession(t, f.dial(t, core.NetworkQUIC, "alice"), msgIdentitySession)
	// ... and through the ssh subsystem's entry point too.
	if err := serveStreamRefused(t, f.srv, "alice", msgIdentitySession); err != nil {
		t.Fatal(err)
	}
	// Another identity is not affected.
	b, _ := f.client(t, core.NetworkQUIC, "bob")
	alive(t, conn, b)

	// An ended session frees its slots.
	second.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := session(t, conn)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Stat("/")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after one ended: %v", err)
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// serveStreamRefused runs ServeStream for id, as the ssh subsystem does,
// with a pkg/sftp client on an in-memory pipe, and checks that the client
// reads msg and ServeStream returns it.
func serveStreamRefused(t *testing.T, srv *sftp.Server, id, msg string) error {
	t.Helper()
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	stream := &pipeStream{Reader: sr, Writer: sw, closers: []io.Closer{sr, sw}}
	done := make(chan error, 1)
	go func() {
		done <- srv.ServeStream(context.Background(), stream, &core.Identity{ID: id, Scopes: rw})
	}()
	c, err := pkgsftp.NewClientPipe(cr, cw)
	if err != nil {
		return fmt.Errorf("refused subsystem session did not start: %w", err)
	}
	_, err = c.Stat("/")
	c.Close()
	if err := wantRefusal(err, msg); err != nil {
		return err
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), msg) {
			return fmt.Errorf("ServeStream returned %v, want an error saying %q", err, msg)
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("ServeStream still running after the client left")
	}
	return nil
}

// TestDescriptorReserve lowers the process's file limit to just above the
// reserve, and checks that sessions and handles are refused with a clear
// status while the node keeps serving, then served again once there is
// room.
func TestDescriptorReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("open descriptors are counted on Linux only")
	}
	f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
	mustWrite(t, filepath.Join(f.root("alice"), "f"), "x")
	conn := f.dial(t, core.NetworkQUIC, "alice")
	c, err := session(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	restore := coretest.AtFileReserve(t)

	if _, err := c.Open("/f"); wantRefusal(err, msgBusy) != nil {
		t.Fatal(wantRefusal(err, msgBusy))
	}
	refusedSession(t, conn, msgBusy)
	alive(t, conn, c)

	restore()
	if err := wantBytes(readFile(c, "/f"))("x"); err != nil {
		t.Fatalf("open once there is room: %v", err)
	}
	c2, err := session(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	alive(t, conn, c2)
}

// newRefusingServer returns a server that refuses every further session
// of the identity serveBytes uses: it allows one session per identity and
// holds that one open until the test ends.
func newRefusingServer(t testing.TB) *sftp.Server {
	srv, err := sftp.New(sftp.Config{Root: t.TempDir(), MaxSessionsPerIdentity: 1, MaxSessionsPerConn: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	stream := &pipeStream{Reader: sr, Writer: sw, closers: []io.Closer{sr, sw}}
	done := make(chan error, 1)
	go func() {
		done <- srv.ServeStream(context.Background(), stream, &core.Identity{ID: "fuzz", Scopes: rw})
	}()
	t.Cleanup(func() {
		_ = cw.Close()
		_ = cr.Close()
		<-done
	})
	if _, err := cw.Write(initPkt); err != nil {
		t.Fatal(err)
	}
	if v, err := readFrame(cr); err != nil || v[4] != fxpVersion {
		t.Fatalf("held session: %x, %v", v, err)
	}
	return srv
}

// TestRefusedSessionInput checks what a refused session answers, byte for
// byte: VERSION to INIT, a FAILURE status with the reason to the first
// request, and nothing to input that breaks the protocol.
func TestRefusedSessionInput(t *testing.T) {
	srv := newRefusingServer(t)
	version := pkt(fxpVersion, 3)
	status := func(id uint32) []byte { return pkt(fxpStatus, id, fxFailure, msgIdentitySession, "") }
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"init and a request", cat(initPkt, pkt(fxpStat, 7, "/")), cat(version, status(7))},
		{"only the first request is answered", cat(initPkt, pkt(fxpStat, 7, "/"), pkt(fxpStat, 8, "/")), cat(version, status(7))},
		{"a large request is skipped, not buffered", cat(initPkt, pkt(fxpWrite, 9, "1", uint64(0), strings.Repeat("x", 200<<10))), cat(version, status(9))},
		{"init only", initPkt, version},
		{"request before init", pkt(fxpStat, 7, "/"), nil},
		{"init twice", cat(initPkt, initPkt), version},
		{"zero length", []byte{0, 0, 0, 0}, nil},
		{"length past the limit", []byte{0, 0x04, 0, 1, fxpInit}, nil},
		{"truncated init", []byte{0, 0, 0, 9, fxpInit, 0, 0}, nil},
		{"request without an id", cat(initPkt, pkt(fxpStat)), version},
		{"truncated request", cat(initPkt, []byte{0, 0, 0, 20, fxpStat, 0, 0, 0, 7}), version},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := serveBytes(t, srv, tc.in, false)
			if !bytes.Equal(out, tc.want) {
				t.Errorf("sent %x\nwant %x", out, tc.want)
			}
			if err == nil || !strings.Contains(err.Error(), msgIdentitySession) {
				t.Errorf("ServeStream: %v, want the reason", err)
			}
		})
	}
}

// FuzzRefusedSession feeds arbitrary bytes to a session refused for a
// limit: the server must not panic, must return once the client ends, and
// must close the stream.
func FuzzRefusedSession(f *testing.F) {
	for _, s := range [][]byte{
		cat(initPkt, pkt(fxpStat, 7, "/")), // init and a request
		initPkt,                            // init only
		{0, 0, 0, 0},                       // zero length
		{0xff, 0xff, 0xff, 0xff},           // huge length
		cat(initPkt, pkt(fxpStat)),         // request without an id
	} {
		f.Add(s)
	}
	srv := newRefusingServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = serveBytes(t, srv, in, false)
	})
}
