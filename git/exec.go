package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"

	"github.com/alkdev/alknet/core"
)

// The backends [Config.Backend] selects between.
const (
	// BackendGoGit serves the smart protocol in Go with go-git: no
	// external program is needed. The default.
	BackendGoGit = "go-git"
	// BackendExec runs `git upload-pack` and `git receive-pack` from the
	// git executable for each request, as git daemon does; alknet keeps
	// the request line, access control and push policy. Faster and leaner
	// on large repositories; needs git installed.
	BackendExec = "exec"
)

// execReceiveCaps are the capabilities the exec backend advertises for a
// push. Thin packs are accepted: git's index-pack completes them.
var execReceiveCaps = []string{"report-status", "delete-refs", "ofs-delta", "atomic", "quiet", agent}

// gitWaitDelay bounds how long a git process may keep its pipes open after
// it was told to stop.
const gitWaitDelay = 5 * time.Second

// maxStderr bounds the git error output kept for the log.
const maxStderr = 4 << 10

// gitCommand returns git running args, with hooks off and the repository
// configuration overridden by the server's where they matter. It is
// killed when ctx ends. env is added to the node's environment, whose own
// GIT_PROTOCOL is dropped.
func (s *Server) gitCommand(ctx context.Context, env []string, args ...string) (*exec.Cmd, *tail) {
	base := []string{
		"-c", "core.hooksPath=" + os.DevNull,
		"-c", "pack.window=" + strconv.Itoa(s.cfg.PackWindow),
	}
	cmd := exec.CommandContext(ctx, s.cfg.GitPath, append(base, args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GIT_PROTOCOL=") })
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = gitWaitDelay
	stderr := &tail{max: maxStderr}
	cmd.Stderr = stderr
	return cmd, stderr
}

// protocolEnv returns GIT_PROTOCOL for the version the request line asked
// for (git daemon passes it the same way), or nothing for version 0.
func protocolEnv(extra []string) []string {
	for _, p := range extra {
		if p == "version=1" || p == "version=2" {
			return []string{"GIT_PROTOCOL=" + p}
		}
	}
	return nil
}

// execUploadPack serves a fetch with git upload-pack: after the request
// line, the stream is git's stdin and stdout.
func (s *Server) execUploadPack(ctx context.Context, st core.Stream, sess *session, name string, extra []string) error {
	timeout := strconv.Itoa(int(s.cfg.RequestTimeout.Seconds()))
	cmd, stderr := s.gitCommand(ctx, protocolEnv(extra), "upload-pack", "--strict", "--timeout="+timeout, s.repos.dir(name))
	cmd.Stdout = st
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git upload-pack: %w", err)
	}
	stop := feed(st, stdin, sess.r)
	err = cmd.Wait()
	stop()
	if err != nil {
		// git writes protocol errors to stderr only: pass the last line on,
		// without the repository's place on disk. Best effort: the client
		// may have left.
		s.cfg.Logger.Debug("git upload-pack failed", "repo", name, "err", err, "stderr", stderr.String())
		if msg := stderr.lastLine(); msg != "" {
			msg = strings.ReplaceAll(msg, s.repos.dir(name), "/"+name+".git")
			_ = writeERR(st, "upload-pack: "+msg)
		}
	}
	return nil
}

// feed copies what the client sends (r, read from st) to git's stdin
// until the client ends its side or git stops reading. The returned stop,
// called once git has exited, wakes a read still waiting on st and waits
// for the copy to end, so that st has a single reader at a time.
func feed(st core.Stream, stdin io.WriteCloser, r io.Reader) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(stdin, r)
		_ = stdin.Close()
	}()
	return func() {
		_ = st.SetReadDeadline(time.Now())
		<-done
		_ = st.SetReadDeadline(time.Time{})
	}
}

// execReceivePack serves a push with git receive-pack. alknet advertises
// the refs and reads the commands itself, refuses what the repository's
// rule forbids, and hands the rest (and the pack) to git with the rule's
// fast-forward policy in its configuration; the report the client gets
// merges both.
func (s *Server) execReceivePack(ctx context.Context, st core.Stream, sess *session, t pushTarget) error {
	req, err := readPush(sess, execReceiveCaps)
	if err != nil || len(req.cmds) == 0 {
		return err
	}
	atomic := slices.Contains(req.caps, "atomic")
	refused := false
	for _, c := range req.cmds {
		c.status = precheck(t.rule, c)
		refused = refused || c.status != ""
	}
	if atomic && refused {
		refuseAll(req.cmds)
	}
	accepted := slices.DeleteFunc(slices.Clone(req.cmds), func(c *command) bool { return c.status != "" })
	sendsPack := slices.ContainsFunc(req.cmds, func(c *command) bool { return !c.new.IsZero() })
	gitReadsPack := slices.ContainsFunc(accepted, func(c *command) bool { return !c.new.IsZero() })

	unpack := "ok"
	if sendsPack && !gitReadsPack {
		// Every update that needed the pack was refused: read it past.
		if err := copyPack(ctx, sess.r, io.Discard, s.cfg.MaxPackBytes); err != nil {
			unpack = unpackFailure(err)
			for _, c := range req.cmds {
				c.status = "unpacker error"
			}
			accepted = nil
		}
	}
	if len(accepted) > 0 {
		if unpack, err = s.runReceivePack(ctx, st, sess, t, accepted, atomic, gitReadsPack); err != nil {
			return err
		}
	}
	if slices.Contains(req.caps, "report-status") {
		if err := report(sess.w, unpack, req.cmds); err != nil {
			return err
		}
	}
	if events := t.events(accepted); len(events) > 0 {
		s.events.publish(events)
	}
	return sess.w.Flush()
}

// runReceivePack runs git receive-pack for the accepted commands under the
// repository's write lock, feeding it the client's pack when it needs one.
// It sets each command's status from git's report and returns git's
// unpack status.
func (s *Server) runReceivePack(ctx context.Context, st core.Stream, sess *session, t pushTarget, cmds []*command, atomic, withPack bool) (string, error) {
	l := s.repos.lock(t.name)
	l.Lock()
	defer l.Unlock()

	// Fast-forwards only, unless the rule allows force and no protected
	// branch is touched (git's setting covers the whole push).
	ffOnly := !t.rule.AllowForce || slices.ContainsFunc(cmds, func(c *command) bool { return t.rule.protected(c.ref) })
	cmd, stderr := s.gitCommand(ctx, nil,
		"-c", "receive.denyNonFastForwards="+strconv.FormatBool(ffOnly),
		"-c", "receive.maxInputSize="+strconv.FormatInt(s.cfg.MaxPackBytes, 10),
		"receive-pack", s.repos.dir(t.name))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start git receive-pack: %w", err)
	}
	unpack, err := receiveExchange(st, sess, stdin, stdout, cmds, atomic, withPack)
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		s.cfg.Logger.Debug("git receive-pack failed", "repo", t.name, "err", err, "stderr", stderr.String())
		for _, c := range cmds {
			if c.status == "" {
				c.status = "failed to update refs"
			}
		}
		return "unpack failed", nil
	}
	for _, c := range cmds {
		if c.status == "non-fast-forward" && t.rule.protected(c.ref) {
			c.status = "protected branch: non-fast-forward"
		}
	}
	return unpack, nil
}

// receiveExchange talks to a started git receive-pack: it skips git's
// advertisement (the client saw alknet's), sends the commands, feeds the
// pack when there is one and reads git's report into the commands.
func receiveExchange(st core.Stream, sess *session, stdin io.WriteCloser, stdout io.Reader, cmds []*command, atomic, withPack bool) (unpack string, err error) {
	out := pktline.NewScanner(bufio.NewReader(stdout))
	_, err = readSection(out, func([]byte) error { return nil })
	if err != nil {
		err = fmt.Errorf("git advertisement: %w", err)
	} else {
		err = writeCommands(stdin, cmds, atomic)
	}
	if err != nil {
		_ = stdin.Close()
		return "", err
	}
	if withPack {
		stop := feed(st, stdin, sess.r)
		defer stop()
	} else {
		_ = stdin.Close()
	}
	byRef := make(map[string]*command, len(cmds))
	for _, c := range cmds {
		c.status = "no report from git"
		byRef[c.ref] = c
	}
	_, err = readSection(out, func(line []byte) error {
		s := string(line)
		if u, ok := strings.CutPrefix(s, "unpack "); ok {
			unpack = u
			return nil
		}
		verdict, rest, _ := strings.Cut(s, " ")
		ref, reason, _ := strings.Cut(rest, " ")
		c, ok := byRef[ref]
		switch {
		case !ok:
			return fmt.Errorf("git report names unknown ref %q", core.Clip(ref))
		case verdict == "ok":
			c.status = ""
		case verdict == "ng":
			c.status = reason
		default:
			return fmt.Errorf("git report: unexpected line %q", core.Clip(s))
		}
		return nil
	})
	if err == nil && unpack == "" {
		err = errors.New("git report lacks the unpack status")
	}
	return unpack, err
}

// writeCommands sends git the command section of a push: cmds, with the
// capabilities alknet needs on the first line, and a flush.
func writeCommands(w io.Writer, cmds []*command, atomic bool) error {
	caps := "report-status quiet"
	if atomic {
		caps += " atomic"
	}
	var b bytes.Buffer
	enc := pktline.NewEncoder(&b)
	for i, c := range cmds {
		line := c.old.String() + " " + c.new.String() + " " + c.ref
		if i == 0 {
			line += "\x00" + caps
		}
		if err := enc.EncodeString(line + "\n"); err != nil {
			return err
		}
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// precheck returns why the rule refuses c regardless of the pack, or ""
// if git may try it: protected branches are never deleted, and tags move
// only where the rule allows force. Fast-forwards are git's to check.
func precheck(rule Repo, c *command) string {
	switch {
	case c.new.IsZero() && rule.protected(c.ref):
		return "protected branch may not be deleted"
	case strings.HasPrefix(c.ref, "refs/tags/") && !c.old.IsZero() && !c.new.IsZero() && !rule.AllowForce:
		return "tag already exists"
	}
	return ""
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

// lastLine returns the last non-empty line written, without git's "fatal: "
// or "error: " prefix.
func (t *tail) lastLine() string {
	s := t.String()
	s = s[strings.LastIndex(s, "\n")+1:]
	for _, p := range []string{"fatal: ", "error: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
