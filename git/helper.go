package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/alkdev/alknet/core"
)

// HelperScheme is the URL scheme git hands to git-remote-alknet.
const HelperScheme = "alknet"

// ParseURL splits an alknet:// URL ("alknet://<nodeid>@host:port/repo.git",
// the node ID optional, or "alknet://<nodeid>/repo.git", found by the
// dialer's resolvers or through its relay head) into the dial address
// ("<nodeid>@host:port", "host:port" or "<nodeid>") and the repository
// path ("/repo.git"). The path is checked with [ParseRepoPath].
func ParseURL(raw string) (addr, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("git: url: %w", err)
	}
	if u.Scheme != HelperScheme || u.Host == "" || u.Opaque != "" {
		return "", "", fmt.Errorf("git: url %q: want alknet://[NODEID@]HOST:PORT/REPO.git", raw)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		if _, idErr := core.ParseNodeID(u.Host); idErr != nil || u.User != nil {
			return "", "", fmt.Errorf("git: url %q: want HOST:PORT or a NodeID: %w", raw, err)
		}
	}
	if _, err := ParseRepoPath(u.Path); err != nil {
		return "", "", fmt.Errorf("git: url: %w", err)
	}
	addr = u.Host
	if u.User != nil {
		addr = u.User.Username() + "@" + u.Host
	}
	return addr, u.Path, nil
}

// Dial opens a connection for [RemoteHelper]; addr is "[NODEID@]HOST:PORT".
type Dial func(ctx context.Context, addr string) (core.Conn, error)

// RemoteHelper runs git's remote-helper protocol on in and out for url
// (the second argument git passes to git-remote-alknet). It offers only
// the connect capability: on "connect git-upload-pack" or "connect
// git-receive-pack" it dials url's node on [ALPN], sends the request line
// for url's repository and then copies bytes both ways until the server
// ends the stream. Errors are for git's stderr; they are prefixed "git:".
//
// It returns when the exchange is over. The connection is closed before
// RemoteHelper returns; reading in may still be in progress in a goroutine
// that ends with in (git closes it when it is done with the helper).
func RemoteHelper(ctx context.Context, rawURL string, in io.Reader, out io.Writer, dial Dial) error {
	addr, path, err := ParseURL(rawURL)
	if err != nil {
		return err
	}
	br := bufio.NewReader(in)
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			return nil // git had nothing to ask
		}
		if err != nil {
			return fmt.Errorf("git: read command: %w", err)
		}
		cmd := strings.TrimSuffix(line, "\n")
		switch {
		case cmd == "capabilities":
			if _, err := io.WriteString(out, "connect\n\n"); err != nil {
				return err
			}
		case cmd == "":
			return nil
		case strings.HasPrefix(cmd, "connect "):
			service := strings.TrimPrefix(cmd, "connect ")
			if service != ServiceUploadPack && service != ServiceReceivePack {
				return fmt.Errorf("git: unsupported service %q", service)
			}
			req := Request{Service: service, Path: path, Host: addr[strings.LastIndex(addr, "@")+1:]}
			if service == ServiceUploadPack {
				// As git does on git://: a server that speaks protocol
				// version 2 answers in it, others in version 0.
				req.Extra = []string{"version=2"}
			}
			return connect(ctx, dial, addr, req, br, out)
		default:
			return fmt.Errorf("git: unsupported helper command %q", cmd)
		}
	}
}

// connect dials, sends req, acknowledges the connect command and bridges
// in and out to the stream.
func connect(ctx context.Context, dial Dial, addr string, req Request, in io.Reader, out io.Writer) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("git: dial %s: %w", addr, err)
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return fmt.Errorf("git: open stream: %w", err)
	}
	if err := req.Encode(st); err != nil {
		st.Abort(core.CodeInternal)
		return fmt.Errorf("git: send request: %w", err)
	}
	if _, err := io.WriteString(out, "\n"); err != nil {
		st.Abort(core.CodeInternal)
		return err
	}
	return bridge(ctx, conn, st, in, out)
}

// bridge copies in to st (half-closing st when in ends) and st to out. It
// returns once st has ended and in has ended too (git closes it when done),
// or the connection ended. A failure while receiving aborts st, so the
// server never takes a truncated stream for a complete one; once the server
// ended the stream cleanly the exchange is complete, and a failure to send
// what git still writes (its closing flush) is not an error.
func bridge(ctx context.Context, conn core.Conn, st core.Stream, in io.Reader, out io.Writer) error {
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		if _, err := io.Copy(st, in); err == nil {
			_ = st.CloseWrite()
		}
	}()
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	if _, err := io.Copy(out, st); err != nil {
		st.Abort(core.CodeInternal)
		return fmt.Errorf("git: receive: %w", err)
	}
	select {
	case <-upDone:
	case <-conn.Context().Done():
	}
	return nil
}
