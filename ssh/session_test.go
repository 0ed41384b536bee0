package ssh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// shellEnv is a node whose server runs commands and an "echo" subsystem,
// with alice (ssh:shell) and bob (no ssh:shell) as peers.
func shellEnv(t *testing.T, edit func(*Config)) (e *env, alice, bob *xssh.Client) {
	t.Helper()
	e = newEnv(t, func(c *Config) {
		c.Exec = &Exec{}
		c.Subsystems = map[string]SubsystemFunc{
			"echo": func(ctx context.Context, rw io.ReadWriteCloser, id *core.Identity) error {
				if _, err := io.WriteString(rw, id.ID+":"); err != nil {
					return err
				}
				_, err := io.Copy(rw, rw)
				return err
			},
		}
		if edit != nil {
			edit(c)
		}
	})
	ak, a := newPeer(t, "alice", ScopeConnect, ScopeShell)
	bk, b := newPeer(t, "bob", ScopeConnect)
	e.setPeers(a, b)
	return e, e.mustDial(ak, "alice"), e.mustDial(bk, "bob")
}

func newSession(t *testing.T, c *xssh.Client) *xssh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestExec(t *testing.T) {
	e, alice, bob := shellEnv(t, nil)

	t.Run("output and stderr", func(t *testing.T) {
		s := newSession(t, alice)
		var stdout, stderr bytes.Buffer
		s.Stdout, s.Stderr = &stdout, &stderr
		if err := s.Run("echo ok; echo oops >&2"); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != "ok\n" || stderr.String() != "oops\n" {
			t.Fatalf("stdout %q stderr %q, want ok and oops", stdout.String(), stderr.String())
		}
	})
	t.Run("exit status", func(t *testing.T) {
		err := newSession(t, alice).Run("exit 3")
		var ee *xssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
			t.Fatalf("exit 3 gave %v", err)
		}
	})
	t.Run("stdin until EOF", func(t *testing.T) {
		s := newSession(t, alice)
		s.Stdin = strings.NewReader("from stdin")
		out, err := s.Output("cat")
		if err != nil || string(out) != "from stdin" {
			t.Fatalf("cat = %q, %v", out, err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		e.setPolicy(Policy{Env: []string{"ALLOWED_*"}})
		defer e.setPolicy(Policy{})
		s := newSession(t, alice)
		if err := s.Setenv("ALLOWED_X", "yes"); err != nil {
			t.Fatalf("allowed variable refused: %v", err)
		}
		if err := s.Setenv("LD_PRELOAD", "/x.so"); err == nil {
			t.Fatal("variable outside the allow-list accepted")
		}
		out, err := s.Output(`echo "$ALLOWED_X|$LD_PRELOAD|$ALKNET_IDENTITY"`)
		if err != nil || string(out) != "yes||alice\n" {
			t.Fatalf("env = %q, %v", out, err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		s := newSession(t, alice)
		if err := s.Start("exec sleep 30"); err != nil {
			t.Fatal(err)
		}
		if err := s.Signal(xssh.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err := s.Wait()
		var ee *xssh.ExitError
		if !errors.As(err, &ee) || ee.Signal() != "TERM" {
			t.Fatalf("after SIGTERM: %v, want exit-signal TERM", err)
		}
	})
	t.Run("pty", func(t *testing.T) {
		s := newSession(t, alice)
		if err := s.RequestPty("xterm-test", 40, 100, xssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		out, err := s.Output(`stty size; echo "$TERM"; tty`)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.ReplaceAll(string(out), "\r", "")
		if !strings.HasPrefix(got, "40 100\nxterm-test\n/dev/pts/") {
			t.Fatalf("on a pty: %q", got)
		}
	})
	t.Run("window change", func(t *testing.T) {
		s := newSession(t, alice)
		if err := s.RequestPty("xterm", 24, 80, xssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		in, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s.Stdout = &out
		if err := s.Start("read x; stty size"); err != nil {
			t.Fatal(err)
		}
		if err := s.WindowChange(50, 120); err != nil {
			t.Fatal(err)
		}
		// Requests are answered in order: once this one is, the size is set.
		if _, err := s.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(in, "\n"); err != nil {
			t.Fatal(err)
		}
		if err := s.Wait(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "50 120") {
			t.Fatalf("after window-change: %q", out.String())
		}
	})
	t.Run("shell", func(t *testing.T) {
		s := newSession(t, alice)
		s.Stdin = strings.NewReader("echo from-shell\nexit 4\n")
		var out bytes.Buffer
		s.Stdout = &out
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		err := s.Wait()
		var ee *xssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 4 || out.String() != "from-shell\n" {
			t.Fatalf("shell: %v, output %q", err, out.String())
		}
	})
	t.Run("one command per session", func(t *testing.T) {
		s := newSession(t, alice)
		if err := s.Start("exec sleep 30"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.SendRequest("exec", true, xssh.Marshal(execMsg{"true"})); ok || err != nil {
			t.Fatalf("second exec: ok %v err %v, want refused", ok, err)
		}
	})
	t.Run("exec refused without ssh:shell", func(t *testing.T) {
		if err := newSession(t, bob).Run("echo hi"); err == nil {
			t.Fatal("exec ran without ssh:shell")
		}
		if err := newSession(t, bob).RequestPty("xterm", 24, 80, nil); err == nil {
			t.Fatal("pty granted without ssh:shell")
		}
		if err := newSession(t, bob).Shell(); err == nil {
			t.Fatal("shell started without ssh:shell")
		}
	})
	t.Run("subsystem", func(t *testing.T) {
		for name, c := range map[string]*xssh.Client{"alice": alice, "bob": bob} {
			s := newSession(t, c)
			in, _ := s.StdinPipe()
			out, _ := s.StdoutPipe()
			if err := s.RequestSubsystem("echo"); err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(in, "data")
			_ = in.Close()
			got, err := io.ReadAll(out)
			if err != nil || string(got) != name+":data" {
				t.Fatalf("subsystem as %s = %q, %v", name, got, err)
			}
		}
		if err := newSession(t, alice).RequestSubsystem("sftp"); err == nil {
			t.Fatal("unconfigured subsystem accepted")
		}
	})
	t.Run("agent and x11 refused", func(t *testing.T) {
		s := newSession(t, alice)
		for _, typ := range []string{"auth-agent-req@openssh.com", "x11-req", "no-such-request"} {
			if ok, err := s.SendRequest(typ, true, nil); ok || err != nil {
				t.Errorf("%s: ok %v err %v, want refused", typ, ok, err)
			}
		}
	})
}

func TestExecDisabled(t *testing.T) {
	e := newEnv(t, nil) // Config.Exec nil
	k, p := newPeer(t, "alice", ScopeConnect, ScopeShell)
	e.setPeers(p)
	c := e.mustDial(k, "alice")
	if err := newSession(t, c).Run("true"); err == nil {
		t.Fatal("exec ran with Config.Exec nil")
	}
}

func TestGlobalRequests(t *testing.T) {
	_, alice, _ := shellEnv(t, nil)
	for _, typ := range []string{"keepalive@openssh.com", "no-such-request@example.com"} {
		ok, _, err := alice.SendRequest(typ, true, nil)
		if ok || err != nil {
			t.Errorf("%s: ok %v err %v, want a failure reply", typ, ok, err)
		}
	}
	// OpenSSH wants no reply; asking for one orders it before the open.
	if _, _, err := alice.SendRequest("no-more-sessions@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.NewSession(); err == nil {
		t.Fatal("session opened after no-more-sessions")
	}
}

func TestMaxChannels(t *testing.T) {
	_, alice, _ := shellEnv(t, func(c *Config) { c.MaxChannels = 2 })
	newSession(t, alice)
	newSession(t, alice)
	_, err := alice.NewSession()
	if openErr(err) != xssh.ResourceShortage {
		t.Fatalf("third channel: %v, want resource shortage", err)
	}
}
