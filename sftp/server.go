package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
)

// Server serves SFTP sessions, each confined to its identity's root. It is
// a [core.Handler] for [ALPN] and serves single streams for the ssh
// module's "sftp" subsystem ([Server.ServeStream]). Create it with [New];
// it is safe for concurrent use. Between sessions it holds no file; it
// counts what sessions hold to enforce the limits of [Config].
type Server struct {
	cfg Config
	use *usage
}

var _ core.Handler = (*Server)(nil)

// New checks cfg and returns a Server. It touches no file: roots are
// created when the first session needs them. Every problem in cfg is
// reported at once, each naming its field.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	s.use = newUsage(&s.cfg)
	return s, nil
}

// ALPNs implements [core.Handler]: it returns [ALPN].
func (s *Server) ALPNs() []string { return []string{ALPN} }

// Serve implements [core.Handler]. Each stream the peer opens is one SFTP
// session; sessions run concurrently until the peer ends them or the
// connection ends.
//
// The peer's identity (conn.Peer().Identity) must pass [Config.Access] and
// hold [ScopeRead] or [ScopeWrite], and must have a root: an entry in
// [Config.Roots], or an ID valid as a directory name under [Config.Root].
// Otherwise the refusal is logged with [core.LogAuth] and the connection is
// closed with [core.CodeForbidden] before any stream is read.
//
// A stream past the session limits of [Config] is answered with a FAILURE
// status saying why and closed; the connection goes on. A session whose
// root cannot be opened (a local failure, logged at Error) is aborted with
// [core.CodeInternal].
//
// When ctx ends Serve takes no new streams, closes the sessions that hold
// no open file or directory (their clients read end of stream), lets the
// others finish until the connection ends, and returns once every session
// has ended. It returns nil.
func (s *Server) Serve(ctx context.Context, conn core.Conn) error {
	p := conn.Peer()
	id := p.Identity
	if err := s.admit(id); err != nil {
		core.LogAuth(s.cfg.Logger, core.AuthReject, ALPN, p, id)
		conn.Logger().Debug("sftp refused", "reason", err.Error())
		_ = conn.CloseWithError(core.CodeForbidden, "forbidden")
		return nil
	}
	logger := conn.Logger().With("id", id.ID)
	var cu connUsage
	var wg sync.WaitGroup
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			break
		}
		wg.Go(func() {
			// A session, idle at the client's prompt or not, is work in
			// flight, as an SSH session is: the node's application idle
			// timeout leaves it alone. Sessions are capped per identity.
			defer core.Hold(conn)()
			err := s.serveSession(ctx, conn.Context(), st, id, &cu, logger)
			switch {
			case err == nil:
			case limitErr(err):
			case errors.Is(err, errRoot):
				logger.Error("sftp session failed", "err", err)
			default:
				logger.Debug("sftp session failed", "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// ServeStream serves one SFTP session on rw for id: the ssh module's
// "sftp" subsystem hook, or any other byte stream. It blocks until the
// client ends the session (nil), rw fails, the client breaks the protocol,
// or ctx ends (see [Server.Serve] for how a session drains).
//
// ServeStream owns rw: it always closes it before returning, refused or
// not, and the caller must not use rw afterwards. A caller that wants to
// send something when the session ends (an ssh channel's exit-status)
// passes a wrapper whose Close does that first; OpenSSH's sftp client does
// not need one.
//
// id is the authenticated identity; nil is refused. A refusal returns an
// error matching [core.ErrUnauthenticated] or [core.ErrForbidden] and is
// logged at Warn (the ssh module writes the auth line itself). A session
// past the limits of [Config] is answered with a FAILURE status saying why
// before rw is closed, and returns that reason as an error. Errors are
// prefixed "sftp:".
func (s *Server) ServeStream(ctx context.Context, rw io.ReadWriteCloser, id *core.Identity) error {
	if err := s.admit(id); err != nil {
		_ = rw.Close()
		s.cfg.Logger.Warn("sftp session refused", "id", id.String(), "reason", err.Error())
		return fmt.Errorf("sftp: %w", err)
	}
	if err := s.serveSession(ctx, nil, rw, id, nil, s.cfg.Logger.With("id", id.ID)); err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	return nil
}

// admit checks that id may open sessions and has a root. Refusals wrap
// core.ErrUnauthenticated or core.ErrForbidden.
func (s *Server) admit(id *core.Identity) error {
	if id == nil {
		return core.ErrUnauthenticated
	}
	if err := s.cfg.Access.Check(id); err != nil {
		return err
	}
	if !id.HasScope(ScopeRead) && !id.HasScope(ScopeWrite) {
		return fmt.Errorf("%w: needs scope %s or %s", core.ErrForbidden, ScopeRead, ScopeWrite)
	}
	if _, ok := s.cfg.Roots[id.ID]; ok {
		return nil
	}
	if s.cfg.Root == "" {
		return fmt.Errorf("%w: identity %q has no root (not in Roots, and no Root is set)", core.ErrForbidden, id.ID)
	}
	if !validID(id.ID) {
		return fmt.Errorf("%w: identity id %q cannot name a directory; give it an entry in Roots", core.ErrForbidden, id.ID)
	}
	return nil
}

// errRoot marks a session whose root could not be opened: a local
// failure.
var errRoot = errors.New("root")

// serveSession serves one session of an admitted identity on rw within the
// limits, conn being its connection's count (nil for ServeStream), and
// closes rw before returning. Past a limit the client is told why (see
// refuse) and the reason returned.
func (s *Server) serveSession(ctx, connDone context.Context, rw io.ReadWriteCloser, id *core.Identity, conn *connUsage, logger *slog.Logger) error {
	if err := s.use.startSession(id.ID, conn); err != nil {
		s.use.logRefusal(logger, "sftp session refused", err)
		refuse(ctx, rw, err.Error())
		return err
	}
	defer s.use.endSession(id.ID, conn)
	root, err := s.openRoot(id)
	if err != nil {
		if st, ok := rw.(core.Stream); ok {
			st.Abort(core.CodeInternal)
		}
		_ = rw.Close()
		return fmt.Errorf("%w of %q: %w", errRoot, id.ID, err)
	}
	defer root.Close()
	if err := s.session(ctx, connDone, rw, root, id, logger); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

// openRoot opens the root of an admitted id, creating it (mode 0700) if
// needed.
func (s *Server) openRoot(id *core.Identity) (*os.Root, error) {
	if dir, ok := s.cfg.Roots[id.ID]; ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		return os.OpenRoot(dir)
	}
	if err := os.MkdirAll(s.cfg.Root, 0o700); err != nil {
		return nil, err
	}
	base, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	if err := base.Mkdir(id.ID, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return base.OpenRoot(id.ID)
}

// errPanic marks a session that ended in a recovered panic.
var errPanic = errors.New("internal error")

// session serves one SFTP session on rw and closes rw before returning. It
// returns nil when the client ended the session cleanly or when ctx ended
// it. When connDone (optional) ends, the session is closed at once: the
// connection under rw is gone.
func (s *Server) session(ctx, connDone context.Context, rw io.ReadWriteCloser, root *os.Root, id *core.Identity, logger *slog.Logger) error {
	sess := newSession(root, id, s.cfg.MaxHandles, s.use, logger)
	defer sess.end()
	ts := newTrackedStream(rw)
	rs := pkgsftp.NewRequestServer(ts, sess.handlers())
	// rs.Close closes rw under the lock pkg/sftp writes under, so it never
	// races a response being sent.
	stop := context.AfterFunc(ctx, func() {
		if sess.drain() {
			_ = rs.Close()
		}
	})
	defer stop()
	if connDone != nil {
		stopConn := context.AfterFunc(connDone, func() { _ = rs.Close() })
		defer stopConn()
	}
	logger.Debug("sftp session started")
	err := serve(rs, logger)
	switch {
	case err == nil || errors.Is(err, io.EOF):
		_ = rs.Close()
		logger.Debug("sftp session ended")
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF) && ts.readFailed(io.EOF):
		// The client ended its side with files still open or in the
		// middle of a packet; open uploads were discarded.
		_ = rs.Close()
		logger.Debug("sftp session ended by the client mid-request")
		return fmt.Errorf("client ended the session with a request unfinished: %w", err)
	case ts.readFailed(err):
		// The stream failed or was closed: the connection ended, or ctx
		// ended and the session was drained.
		_ = rs.Close()
		if ctx.Err() != nil {
			logger.Debug("sftp session closed for shutdown")
			return nil
		}
		return err
	case errors.Is(err, errPanic):
		ts.abort(core.CodeInternal)
		_ = rs.Close()
		return err
	default:
		// A packet pkg/sftp could not decode; it has closed rw already.
		logger.Warn("sftp bad packet from peer", "err", err)
		ts.abort(core.CodeProtocol)
		_ = rs.Close()
		return err
	}
}

// serve runs rs, turning a panic in the packet decoder into an error.
func serve(rs *pkgsftp.RequestServer, logger *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			logger.Error("sftp session panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", errPanic, v)
		}
	}()
	return rs.Serve()
}
