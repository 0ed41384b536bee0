package git

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"

	"github.com/alkdev/alknet/core"
)

// Server hosts the bare repositories under [Config.Root]. It is a
// [core.Handler] for [ALPN]. Create it with [New]; it is safe for
// concurrent use.
type Server struct {
	cfg    Config
	rules  atomic.Pointer[Rules]
	repos  *repos
	events broker
}

var _ core.Handler = (*Server)(nil)

// New checks cfg and returns a Server. It touches no file: Root is created
// with the first repository. Every problem in cfg is reported at once, each
// naming its field.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, repos: &repos{root: cfg.Root, branch: cfg.DefaultBranch}}
	rules := cfg.Rules
	s.rules.Store(&rules)
	return s, nil
}

// SetRules replaces the access rules; streams that start afterwards use
// them. Invalid rules are refused and the old ones stay.
func (s *Server) SetRules(r Rules) error {
	r, err := r.validate()
	if err != nil {
		return fmt.Errorf("git: rules: %w", err)
	}
	s.rules.Store(&r)
	return nil
}

// ALPNs implements [core.Handler]: it returns [ALPN].
func (s *Server) ALPNs() []string { return []string{ALPN} }

// Serve implements [core.Handler]. Each stream the peer opens carries one
// request (a fetch, an ls-remote or a push); streams run concurrently.
// Anonymous peers are admitted: each request is checked against the rules
// of its repository, with conn.Peer().Identity (nil when anonymous).
//
// When ctx ends Serve takes no new streams and waits for the requests in
// flight; their streams are aborted if the connection ends first. Serve
// returns nil: failures of one request are answered on its stream.
func (s *Server) Serve(ctx context.Context, conn core.Conn) error {
	id := conn.Peer().Identity
	logger := conn.Logger()
	var wg sync.WaitGroup
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(conn.Context(), st, id, logger)
		}()
	}
	wg.Wait()
	return nil
}

// serveStream serves one request and closes st.
func (s *Server) serveStream(ctx context.Context, st core.Stream, id *core.Identity, logger *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	defer func() {
		if p := recover(); p != nil {
			logger.Error("git stream panicked", "panic", p, "stack", string(debug.Stack()))
			st.Abort(core.CodeInternal)
		}
	}()
	sess := &session{r: bufio.NewReaderSize(st, 64<<10), w: bufio.NewWriterSize(st, 64<<10)}
	sess.sc = pktline.NewScanner(sess.r)
	err := s.serveRequest(ctx, st, sess, id, logger)
	var pe *ProtocolError
	switch {
	case err == nil:
		finish(st)
	case errors.As(err, &pe):
		logger.Debug("git request refused", "id", id.String(), "reason", pe.Reason)
		_ = sess.w.Flush()
		_ = writeERR(st, pe.Reason)
		finish(st)
	default:
		logger.Debug("git request failed", "id", id.String(), "err", err)
		st.Abort(core.CodeInternal)
	}
}

// serveRequest reads the request line, checks access and runs the
// service. Refusals are ProtocolErrors.
func (s *Server) serveRequest(ctx context.Context, st core.Stream, sess *session, id *core.Identity, logger *slog.Logger) error {
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	line, flush, err := readLine(sess.sc)
	if err != nil || flush {
		return protoErr("expected a request line")
	}
	req, err := ParseRequest(line)
	if err != nil {
		return protoErr("%v", err)
	}
	_ = st.SetReadDeadline(time.Time{})
	name, err := ParseRepoPath(req.Path)
	if err != nil {
		return protoErr("%v", err)
	}
	rule := s.rule(name)
	notFound := protoErr("repository not found")
	canRead, canWrite := rule.canRead(id), rule.canWrite(id)
	if !canRead {
		return notFound
	}
	if !s.repos.exists(name) {
		if req.Service != ServiceReceivePack || !s.cfg.AllowCreate || !canWrite || !id.HasScope(ScopeCreate) {
			return notFound
		}
		if err := s.repos.create(name, false); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
		logger.Info("git repository created", "repo", name, "id", id.String())
	}
	if core.FilesLow() {
		// Serving a repository opens its files (or starts git): not while
		// the node is down to its reserve of descriptors.
		return protoErr("the node is out of file descriptors; try later")
	}
	logger.Debug("git request", "service", req.Service, "repo", name, "id", id.String())
	exec := s.cfg.Backend == BackendExec
	if req.Service == ServiceUploadPack && exec {
		return s.execUploadPack(ctx, st, sess, name, req.Extra) // git reads the repository
	}
	sto, err := s.repos.open(name)
	if err != nil {
		return notFound
	}
	defer sto.Close()
	sess.sto = sto
	switch {
	case req.Service == ServiceUploadPack:
		return s.uploadPack(ctx, sess)
	case !canWrite:
		return protoErr("push to %s refused: needs write access (scope %s)", name, ScopeWrite)
	case exec:
		return s.execReceivePack(ctx, st, sess, pushTarget{name: name, rule: rule, id: id})
	}
	return s.receivePack(ctx, sess, pushTarget{name: name, rule: rule, id: id})
}

// Bounds on what finish reads after the answer.
const (
	drainBytes   = 64 << 10
	drainTimeout = 5 * time.Second
)

// finish ends a stream whose answer is complete: it half-closes it, reads
// what the client still sends (git's closing flush) until the client ends
// its side, within drainBytes and drainTimeout, then closes it. A client
// bridging stdio thus sees both directions end cleanly.
func finish(st core.Stream) {
	if err := st.CloseWrite(); err != nil {
		st.Abort(core.CodeInternal)
		return
	}
	_ = st.SetReadDeadline(time.Now().Add(drainTimeout))
	_, err := io.Copy(io.Discard, io.LimitReader(st, drainBytes))
	if err != nil {
		st.Abort(core.CodeNoError)
		return
	}
	_ = st.Close()
}
