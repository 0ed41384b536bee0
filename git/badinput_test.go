package git_test

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/git"
)

// pkt frames payload as one pkt-line.
func pkt(payload string) string {
	var b strings.Builder
	_ = pktline.NewEncoder(&b).EncodeString(payload)
	return b.String()
}

// TestBadInput sends malformed requests on streams of one connection and
// checks that each gets a clean ERR line and that the connection keeps
// serving.
func TestBadInput(t *testing.T) {
	// The backends word a bad want differently; both answer with an ERR.
	badWant := map[string]string{
		git.BackendGoGit: "ERR want:",
		git.BackendExec:  "ERR upload-pack: git upload-pack: protocol error",
	}
	eachBackend(t, func(t *testing.T, backend string) {
		f := start(t, git.Config{Backend: backend}, peer{"alice", rw})
		if err := f.srv.Create("app"); err != nil {
			t.Fatal(err)
		}
		conn := f.node.Dial(t, core.NetworkQUIC, f.keys["alice"], git.ALPN)
		cases := []struct {
			name, send, want string
		}{
			{"garbage", "hello world\n", "ERR expected a request line"},
			{"garbage pkt-line", pkt("hello world"), "ERR bad request line"},
			{"unknown service", pkt("git-upload-archive /app.git\x00host=x\x00"), "ERR bad request line: unknown service"},
			{"traversal", pkt("git-upload-pack /../etc.git\x00host=x\x00"), "ERR invalid repository name"},
			{"deep traversal", pkt("git-upload-pack /a/../../b.git\x00"), "ERR invalid repository name"},
			{"too many levels", pkt("git-upload-pack /a/b/c.git\x00"), "ERR invalid repository name"},
			{"oversized pkt-line", "ffff" + strings.Repeat("a", 100), "ERR expected a request line"},
			{"flush first", "0000", "ERR expected a request line"},
			{"missing repository", pkt("git-upload-pack /nope.git\x00host=x\x00"), "ERR repository not found"},
			{"bad want", pkt("git-upload-pack /app.git\x00") + pkt("want zzzz\n"), badWant[backend]},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got := exchange(t, conn, c.send)
				if !strings.Contains(got, c.want) {
					t.Errorf("sent %q, got %q, want %q", c.send, got, c.want)
				}
			})
		}
		// The same connection still serves a good request.
		got := exchange(t, conn, pkt("git-upload-pack /app.git\x00host=x\x00")+"0000")
		// An empty repository's advertisement: at most capabilities, then a flush.
		if strings.Contains(got, "ERR") || !strings.HasSuffix(got, "0000") {
			t.Errorf("good request after bad ones: got %q", got)
		}
	})
}

// exchange sends data on a new stream, half-closes it and returns all the
// server answered.
func exchange(t *testing.T, conn core.Conn, data string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(st, data); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	b, _ := io.ReadAll(bufio.NewReader(st))
	return string(b)
}
