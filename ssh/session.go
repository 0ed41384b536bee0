package ssh

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// waitDelay bounds how long output is drained after a command exited, when
// a background process still holds its output open.
const waitDelay = 2 * time.Second

// Session request payloads (RFC 4254 §6).
type (
	ptyReqMsg struct {
		Term   string
		Cols   uint32
		Rows   uint32
		Width  uint32
		Height uint32
		Modes  string
	}
	windowChangeMsg struct {
		Cols   uint32
		Rows   uint32
		Width  uint32
		Height uint32
	}
	envMsg struct {
		Name  string
		Value string
	}
	execMsg struct {
		Command string
	}
	subsystemMsg struct {
		Name string
	}
	signalMsg struct {
		Signal string
	}
	exitStatusMsg struct {
		Status uint32
	}
	exitSignalMsg struct {
		Signal     string
		CoreDumped bool
		Message    string
		Lang       string
	}
)

// signals maps SSH signal names (RFC 4254 §6.10) to Unix signals.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// signalName returns the SSH name of sig, or "" if it has none.
func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return name
		}
	}
	return ""
}

// session is one session channel: at most one command, shell or subsystem.
type session struct {
	c   *connection
	ch  xssh.Channel
	ctx context.Context // ends when the channel or connection ends
	wg  sync.WaitGroup  // the goroutines of what runs

	env     []string
	pty     *ptyReqMsg
	started bool

	mu     sync.Mutex // guards master and proc, set once running
	master *os.File
	proc   *os.Process
}

// session serves a session channel until it is closed.
func (c *connection) session(nc xssh.NewChannel) {
	if c.noMoreSessions.Load() {
		c.refuse(nc, xssh.Prohibited, "no more sessions")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	s := &session{c: c, ch: ch, ctx: ctx}
	stop := context.AfterFunc(ctx, func() { _ = ch.Close() })
	for req := range reqs {
		s.request(req)
	}
	// The channel is closed (by the client, by us after the exit status, or
	// with the connection): stop what still runs and wait for it.
	cancel()
	stop()
	_ = ch.Close()
	s.wg.Wait()
}

// request answers one channel request.
func (s *session) request(req *xssh.Request) {
	ok := false
	switch req.Type {
	case "env":
		ok = s.setEnv(req.Payload)
	case "pty-req":
		ok = s.ptyReq(req.Payload)
	case "window-change":
		ok = s.windowChange(req.Payload)
	case "exec":
		var m execMsg
		if xssh.Unmarshal(req.Payload, &m) == nil {
			s.start(req, startExec, m.Command)
			return
		}
	case "shell":
		s.start(req, startShell, "")
		return
	case "subsystem":
		var m subsystemMsg
		if xssh.Unmarshal(req.Payload, &m) == nil {
			s.start(req, startSubsystem, m.Name)
			return
		}
	case "signal":
		ok = s.signal(req.Payload)
	default:
		// x11-req, auth-agent-req@openssh.com, keepalive@openssh.com and
		// anything unknown.
	}
	_ = req.Reply(ok, nil)
}

func (s *session) setEnv(payload []byte) bool {
	var m envMsg
	if xssh.Unmarshal(payload, &m) != nil || s.started {
		return false
	}
	if !envAllowed(s.c.srv.policy().Env, m.Name) || len(m.Value) > 64<<10 || len(s.env) >= 256 {
		return false
	}
	s.env = append(s.env, m.Name+"="+m.Value)
	return true
}

func (s *session) ptyReq(payload []byte) bool {
	var m ptyReqMsg
	if xssh.Unmarshal(payload, &m) != nil || s.started || s.pty != nil {
		return false
	}
	if !s.c.mayExec() || !s.c.info.permitPTY {
		s.c.log.Warn("ssh request refused", "type", "pty-req", "reason", "not permitted")
		return false
	}
	s.pty = &m
	return true
}

func (s *session) windowChange(payload []byte) bool {
	var m windowChangeMsg
	if xssh.Unmarshal(payload, &m) != nil || s.pty == nil {
		return false
	}
	s.pty.Cols, s.pty.Rows, s.pty.Width, s.pty.Height = m.Cols, m.Rows, m.Width, m.Height
	s.mu.Lock()
	master := s.master
	s.mu.Unlock()
	if master != nil {
		return setSize(master, s.pty) == nil
	}
	return true
}

func (s *session) signal(payload []byte) bool {
	var m signalMsg
	if xssh.Unmarshal(payload, &m) != nil {
		return false
	}
	sig, known := signals[m.Signal]
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if !known || p == nil {
		return false
	}
	return p.Signal(sig) == nil
}

// What a start request asks for.
type startKind int

const (
	startExec startKind = iota
	startShell
	startSubsystem
)

func (k startKind) String() string {
	return [...]string{"exec", "shell", "subsystem"}[k]
}

// start answers an exec, shell or subsystem request: it starts what was
// asked for, replies, and only then lets output flow, so the client sees
// the reply before any data or exit status. A certificate's force-command
// replaces the command, the shell and the subsystem alike.
func (s *session) start(req *xssh.Request, kind startKind, arg string) {
	var launch func()
	if !s.started {
		launch = s.prepare(kind, arg)
	}
	_ = req.Reply(launch != nil, nil)
	if launch != nil {
		s.started = true
		launch()
	}
}

// prepare starts a process or picks a subsystem and returns the function
// that runs the rest; nil means refused or failed.
func (s *session) prepare(kind startKind, arg string) func() {
	c := s.c
	info := c.info
	switch {
	case info.hasForce:
		if !c.mayExec() {
			c.log.Warn("ssh request refused", "type", kind.String(), "reason", "not permitted")
			return nil
		}
		return s.startCommand(info.forceCommand, false, arg, kind != startShell)
	case kind == startSubsystem:
		fn, ok := c.srv.cfg.Subsystems[arg]
		if !ok {
			c.log.Warn("ssh request refused", "type", "subsystem", "reason", "unknown subsystem")
			return nil
		}
		return func() { s.runSubsystem(fn) }
	default:
		if !c.mayExec() {
			c.log.Warn("ssh request refused", "type", kind.String(), "reason", "not permitted")
			return nil
		}
		return s.startCommand(arg, kind == startShell, "", false)
	}
}

// runSubsystem serves a subsystem on the channel.
func (s *session) runSubsystem(fn SubsystemFunc) {
	id := s.c.info.id
	s.wg.Go(func() {
		status := uint32(0)
		if err := fn(s.ctx, s.ch, &id); err != nil {
			s.c.log.Debug("ssh subsystem ended", "err", err)
			status = 1
		}
		s.exit(exitStatusMsg{Status: status}, nil)
	})
}

// exit reports how the command ended, sends EOF and closes the channel.
func (s *session) exit(status exitStatusMsg, sig *exitSignalMsg) {
	if sig != nil {
		_, _ = s.ch.SendRequest("exit-signal", false, xssh.Marshal(sig))
	} else {
		_, _ = s.ch.SendRequest("exit-status", false, xssh.Marshal(status))
	}
	_ = s.ch.CloseWrite()
	_ = s.ch.Close()
}

// startCommand starts command (or the login shell) as the server's user and
// returns the function that connects it to the channel. origCmd, when
// hasOrig, becomes SSH_ORIGINAL_COMMAND.
func (s *session) startCommand(command string, shell bool, origCmd string, hasOrig bool) func() {
	srv := s.c.srv
	e := srv.cfg.Exec
	cmd := exec.CommandContext(s.ctx, e.Shell, "-c", command)
	if shell {
		// A login shell, by the argv[0] convention.
		cmd.Args = []string{"-" + filepath.Base(e.Shell)}
	}
	cmd.Dir = srv.execBase.dir
	env := append([]string(nil), srv.execBase.env...)
	if s.pty != nil && s.pty.Term != "" {
		env = append(env, "TERM="+s.pty.Term)
	}
	env = append(env, s.env...)
	env = append(env, "ALKNET_IDENTITY="+s.c.info.id.ID)
	if hasOrig {
		env = append(env, "SSH_ORIGINAL_COMMAND="+origCmd)
	}
	cmd.Env = env
	// End the whole process group when the session ends.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	if s.pty != nil {
		return s.startPTY(cmd)
	}
	return s.startPipes(cmd)
}

// startPipes starts cmd with pipes for stdin, stdout and stderr.
func (s *session) startPipes(cmd *exec.Cmd) func() {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err1 := pipe()
	outR, outW, err2 := pipe()
	errR, errW, err3 := pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll()
		s.c.log.Error("ssh command: pipes", "err", err)
		return nil
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		closeAll()
		s.c.log.Info("ssh command failed to start", "err", err)
		return nil
	}
	// The child has its ends now.
	_ = inR.Close()
	_ = outW.Close()
	_ = errW.Close()
	s.mu.Lock()
	s.proc = cmd.Process
	s.mu.Unlock()
	return func() {
		var out sync.WaitGroup
		out.Go(func() { _, _ = io.Copy(s.ch, outR) })
		out.Go(func() { _, _ = io.Copy(s.ch.Stderr(), errR) })
		s.wg.Go(func() {
			// Client EOF closes the command's stdin.
			_, _ = io.Copy(inW, s.ch)
			_ = inW.Close()
		})
		s.wg.Go(func() {
			err := cmd.Wait()
			s.drain(&out, outR, errR)
			_ = inW.Close()
			s.exitFrom(cmd, err)
		})
	}
}

// startPTY starts cmd on a new PTY.
func (s *session) startPTY(cmd *exec.Cmd) func() {
	ws := winsize(s.pty)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: ws.Row, Cols: ws.Col, X: ws.Xpixel, Y: ws.Ypixel})
	if err != nil {
		s.c.log.Info("ssh command failed to start", "err", err)
		return nil
	}
	master, err := pollable(f)
	if err != nil {
		s.c.log.Error("ssh pty setup failed", "err", err)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil
	}
	s.mu.Lock()
	s.master = master
	s.proc = cmd.Process
	s.mu.Unlock()
	return func() {
		var out sync.WaitGroup
		out.Go(func() { _, _ = io.Copy(s.ch, master) })
		s.wg.Go(func() { _, _ = io.Copy(master, s.ch) })
		s.wg.Go(func() {
			err := cmd.Wait()
			s.drain(&out, master)
			s.exitFrom(cmd, err)
		})
	}
}

// drain waits for the output copies to end. Output ends when the last
// holder of the pipe or terminal exits; a background process may keep it
// open, so after waitDelay (or when the session ends) the files are closed.
func (s *session) drain(out *sync.WaitGroup, files ...*os.File) {
	done := make(chan struct{})
	go func() {
		out.Wait()
		close(done)
	}()
	t := time.NewTimer(waitDelay)
	select {
	case <-done:
	case <-t.C:
	case <-s.ctx.Done():
	}
	t.Stop()
	for _, f := range files {
		_ = f.Close()
	}
	<-done
}

// exitFrom sends the exit status or signal of a finished command.
func (s *session) exitFrom(cmd *exec.Cmd, err error) {
	status := exitStatusMsg{Status: 255}
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if name := signalName(ws.Signal()); name != "" {
				s.exit(status, &exitSignalMsg{Signal: name, CoreDumped: ws.CoreDump()})
				return
			}
			status.Status = 128 + uint32(ws.Signal())
		} else if code := ps.ExitCode(); code >= 0 {
			status.Status = uint32(code)
		}
	} else if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		s.c.log.Debug("ssh command wait failed", "err", err)
	}
	s.exit(status, nil)
}

// pollable turns the PTY master creack/pty returns (in blocking mode, which
// Close cannot interrupt) into a non-blocking, pollable file.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(raw uintptr) { fd, dupErr = unix.Dup(int(raw)) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// setSize applies the PTY size without touching the file's blocking mode.
func setSize(f *os.File, m *ptyReqMsg) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	ws := winsize(m)
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ioErr
}

func winsize(m *ptyReqMsg) *unix.Winsize {
	clamp := func(v uint32) uint16 { return uint16(min(v, 0xffff)) }
	return &unix.Winsize{Row: clamp(m.Rows), Col: clamp(m.Cols), Xpixel: clamp(m.Width), Ypixel: clamp(m.Height)}
}
