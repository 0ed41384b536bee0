package sftp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
)

// This package writes no packet decoder of its own: github.com/pkg/sftp
// decodes SFTP. These tests and FuzzServeStream feed raw bytes through
// ServeStream to check that no input makes the server panic or hang, and
// that the handlers' own parsing (attributes, paths, link targets) holds.

// SFTP packet types used below.
const (
	fxpInit     = 1
	fxpVersion  = 2
	fxpOpen     = 3
	fxpClose    = 4
	fxpWrite    = 6
	fxpSetstat  = 9
	fxpOpendir  = 11
	fxpReaddir  = 12
	fxpMkdir    = 14
	fxpRealpath = 16
	fxpStat     = 17
	fxpRename   = 18
	fxpSymlink  = 20
	fxpStatus   = 101
	fxpExtended = 200
)

// pkt builds one SFTP packet: length, type, then fields (uint32, uint64,
// string, []byte as a string, byte).
func pkt(typ byte, fields ...any) []byte {
	b := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		case uint64:
			b = binary.BigEndian.AppendUint64(b, v)
		case string:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func cat(ps ...[]byte) []byte { return bytes.Join(ps, nil) }

var initPkt = pkt(fxpInit, 3)

// pipeStream is the server's side of an in-memory duplex stream.
type pipeStream struct {
	io.Reader
	io.Writer
	closers []io.Closer
}

func (p *pipeStream) Close() error {
	for _, c := range p.closers {
		_ = c.Close()
	}
	return nil
}

// sentinelID marks the REALPATH that ends a test input whose session must
// survive: its reply shows every earlier request was answered.
const sentinelID = 0x5e471e1

var sentinel = pkt(fxpRealpath, sentinelID, ".")

// serveBytes serves one session whose client sends in and then ends its
// side; it returns what the server sent and what ServeStream returned. With
// wait, in ends with the sentinel and the client waits for its reply
// before ending (pkg/sftp may drop replies still queued when the client
// ends its side first).
func serveBytes(t testing.TB, srv *sftp.Server, in []byte, wait bool) ([]byte, error) {
	cr, sw := io.Pipe() // server to client
	sr, cw := io.Pipe() // client to server
	rw := &pipeStream{Reader: sr, Writer: sw, closers: []io.Closer{sr, sw}}
	id := &core.Identity{ID: "fuzz", Scopes: []string{sftp.ScopeRead, sftp.ScopeWrite}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeStream(context.Background(), rw, id) }()
	if wait {
		in = cat(in, sentinel)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = cw.Write(in)
		if !wait {
			_ = cw.Close()
		}
	}()
	var out []byte
	for {
		frame, err := readFrame(cr)
		out = append(out, frame...)
		if err != nil {
			break // the server closed the stream
		}
		if wait && len(frame) >= 9 && binary.BigEndian.Uint32(frame[5:9]) == sentinelID {
			<-wrote
			_ = cw.Close()
			_, _ = io.Copy(io.Discard, cr)
			break
		}
	}
	_ = cw.CloseWithError(io.ErrClosedPipe) // unblocks the writer if the server stopped reading
	_ = cr.Close()
	select {
	case err := <-done:
		return out, err
	case <-time.After(10 * time.Second):
		t.Fatalf("ServeStream still running after the client ended, input %x", in)
		return nil, nil
	}
}

// readFrame reads one length-prefixed packet.
func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(n[:]))
	copy(b, n[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

// newFuzzServer returns a server and its Root. Under a fuzz target it
// logs nowhere: *testing.F must not be used inside the target.
func newFuzzServer(t testing.TB) (*sftp.Server, string) {
	root := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	if tt, ok := t.(*testing.T); ok {
		logger = testLogger(tt)
	}
	srv, err := sftp.New(sftp.Config{Root: root, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return srv, root
}

func TestBadInput(t *testing.T) {
	srv, root := newFuzzServer(t)
	// Inputs that keep the session alive end with a request whose reply
	// must come (survive); the others must end the session with an error.
	tests := []struct {
		name    string
		in      []byte
		survive bool
	}{
		{"init", initPkt, true},
		{"zero length", []byte{0, 0, 0, 0}, false},
		{"length past the limit", []byte{0xff, 0xff, 0xff, 0xff, 1}, false},
		{"truncated length", []byte{0, 0}, false},
		{"truncated body", []byte{0, 0, 0, 9, fxpInit, 0, 0}, false},
		{"unknown type", cat(initPkt, pkt(0x7f, 1)), false},
		{"open without fields", cat(initPkt, pkt(fxpOpen)), false},
		{"open with a huge path length", cat(initPkt, pkt(fxpOpen, 1, []byte{0xff, 0xff, 0xff, 0xf0})), false},
		{"setstat with short attributes", cat(initPkt, pkt(fxpSetstat, 1, "/f", uint32(0xffffffff), []byte{1, 2})), true},
		{"setstat with a huge size", cat(initPkt,
			pkt(fxpOpen, 1, "/f", uint32(0x1a), uint32(0)), // write|creat|trunc
			pkt(fxpSetstat, 2, "/f", uint32(1), uint64(1)<<63)), true},
		{"extended unknown", cat(initPkt, pkt(fxpExtended, 1, "nobody@example.com", "x")), true},
		{"extended posix-rename without paths", cat(initPkt, pkt(fxpExtended, 1, "posix-rename@openssh.com")), false},
		{"readdir of an unknown handle", cat(initPkt, pkt(fxpReaddir, 1, "99")), true},
		{"write to an unknown handle", cat(initPkt, pkt(fxpWrite, 1, "7", uint64(0), "data")), true},
		{"close twice", cat(initPkt, pkt(fxpOpendir, 1, "/"), pkt(fxpClose, 2, "1"), pkt(fxpClose, 3, "1")), true},
		{"symlink with empty target", cat(initPkt, pkt(fxpSymlink, 1, "", "/l")), true},
		{"symlink with a NUL", cat(initPkt, pkt(fxpSymlink, 1, "a\x00b", "/l")), true},
		{"stat with a NUL", cat(initPkt, pkt(fxpStat, 1, "/a\x00b")), true},
		{"rename the root", cat(initPkt, pkt(fxpRename, 1, "/", "/x")), true},
		{"mkdir the root", cat(initPkt, pkt(fxpMkdir, 1, "/..", uint32(0))), true},
		{"write past any sane offset", cat(initPkt,
			pkt(fxpOpen, 1, "/f", uint32(0x1a), uint32(0)),
			pkt(fxpWrite, 2, "1", uint64(1)<<63, "x")), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := serveBytes(t, srv, tc.in, tc.survive)
			if tc.survive {
				if len(out) < 9 || out[4] != fxpVersion {
					t.Fatalf("no VERSION reply first: %x", out)
				}
				// Files left open at the end make the end unclean.
				if err != nil && !strings.Contains(err.Error(), "request unfinished") {
					t.Fatalf("ServeStream: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ServeStream returned nil, want an error; sent %x", out)
			}
		})
	}
	// An upload left open when the client ends is discarded.
	if _, err := serveBytes(t, srv, cat(initPkt, pkt(fxpOpen, 1, "/left", uint32(0x1a), uint32(0)), pkt(fxpWrite, 2, "1", uint64(0), "x")), true); err == nil {
		t.Fatal("session ending with an open upload returned nil")
	}
	if parts := partFiles(t, root); len(parts) > 0 {
		t.Fatalf("temporary files left: %q", parts)
	}
}

// FuzzServeStream feeds arbitrary bytes to a session. The server must not
// panic, must return once the client ends, and must close the stream.
func FuzzServeStream(f *testing.F) {
	seeds := [][]byte{
		initPkt,                                // a well-formed start
		cat(initPkt, pkt(fxpRealpath, 1, ".")), // realpath
		cat(initPkt, pkt(fxpOpendir, 1, "/"), pkt(fxpReaddir, 2, "1")),                                                              // listing
		cat(initPkt, pkt(fxpOpen, 1, "/f", uint32(0x1a), uint32(0)), pkt(fxpWrite, 2, "1", uint64(0), "hi"), pkt(fxpClose, 3, "1")), // upload
		cat(initPkt, pkt(fxpSymlink, 1, "../x", "/l")),                                                                              // climbing link
		cat(initPkt, pkt(fxpSetstat, 1, "/", uint32(0xf), []byte{0})),                                                               // short attributes
		cat(initPkt, pkt(fxpExtended, 1, "statvfs@openssh.com", "/")),                                                               // extension
		cat(initPkt, pkt(fxpExtended, 1, "hardlink@openssh.com", "/a")),                                                             // extension missing a field
		{0, 0, 0, 0},             // zero length
		{0xff, 0xff, 0xff, 0xff}, // huge length
		{0, 0, 0, 5, 0xff, 1},    // unknown type, truncated
	}
	for _, s := range seeds {
		f.Add(s)
	}
	srv, _ := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = serveBytes(t, srv, in, false)
	})
}
