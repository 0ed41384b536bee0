package ssh

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestNewValidates(t *testing.T) {
	_, err := New(Config{
		MaxAuthTries:     -1,
		HandshakeTimeout: -time.Second,
		MaxChannels:      -2,
		Exec:             &Exec{Shell: "sh", Env: []string{"NOEQUALS"}, Dir: "rel"},
		Subsystems:       map[string]SubsystemFunc{"sftp": nil},
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"HostKey", "MaxAuthTries", "HandshakeTimeout", "MaxChannels", "Exec.Shell", "Exec.Env", "Exec.Dir", "Subsystems"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
	key := coretest.NewKey(t)
	cfg := Config{HostKey: key, Exec: &Exec{}}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Exec.Shell != "" {
		t.Error("New filled defaults into the caller's Exec")
	}
	if s.cfg.Exec.Shell != defaultShell || s.cfg.MaxAuthTries != 6 || s.cfg.HandshakeTimeout != 30*time.Second {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	if got := s.ALPNs(); len(got) != 2 || got[0] != "alknet/ssh" || got[1] != "alknet/fwd" {
		t.Errorf("ALPNs = %v", got)
	}
}

// TestHostKeyIsNodeKey checks that SSH clients see the node's key.
func TestHostKeyIsNodeKey(t *testing.T) {
	e := newEnv(t, nil)
	ck, ok := e.srv.HostKey().(xssh.CryptoPublicKey)
	if !ok {
		t.Fatal("host key is not a crypto key")
	}
	if !bytes.Equal(ck.CryptoPublicKey().(ed25519.PublicKey), e.node.ID.PublicKey()) {
		t.Fatal("host key differs from the node key")
	}
	// And it is what the handshake presents: dial checks it with FixedHostKey.
	k, p := newPeer(t, "alice", ScopeConnect)
	e.setPeers(p)
	e.mustDial(k, "alice")
}

func TestPublicKeyAuth(t *testing.T) {
	e := newEnv(t, nil)
	aliceKey, alice := newPeer(t, "alice", ScopeConnect)
	noConnKey, noConn := newPeer(t, "noconn", ScopeForward)
	offKey, off := newPeer(t, "off", ScopeConnect)
	off.Disabled = true
	strangerKey, _ := newPeer(t, "stranger", ScopeConnect)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := xssh.NewSignerFromKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	e.setPeers(alice, noConn, off, core.PeerEntry{ID: "ec", SSHKeys: [][]byte{ecSigner.PublicKey().Marshal()}, Scopes: []string{ScopeConnect}})

	for _, tt := range []struct {
		name   string
		signer xssh.Signer
		ok     bool
	}{
		{"ed25519 peer", aliceKey, true},
		{"ecdsa peer by SSH key", ecSigner, true},
		{"unknown key", strangerKey, false},
		{"without ssh:connect", noConnKey, false},
		{"disabled peer", offKey, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.dial(tt.signer, "whoever")
			if (err == nil) != tt.ok {
				t.Fatalf("login: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	// One fixed line per connection; the username is not checked for keys.
	coretest.Eventually(t, 5*time.Second, "auth lines", func() bool {
		return len(e.logs.lines("msg=auth result=reject alpn=alknet/ssh remote_ip=127.0.0.1 id=- node=-")) == 3 &&
			len(e.logs.lines("msg=auth result=accept alpn=alknet/ssh remote_ip=127.0.0.1 id=alice node=-")) == 1 &&
			len(e.logs.lines("msg=auth result=accept alpn=alknet/ssh remote_ip=127.0.0.1 id=ec node=-")) == 1
	})

	t.Run("max auth tries", func(t *testing.T) {
		// With MaxAuthTries 1, x/crypto allows one free failed key query;
		// the second unknown key ends the connection before the good one.
		e2 := newEnv(t, func(c *Config) { c.MaxAuthTries = 1 })
		e2.setPeers(alice)
		u1, _ := newPeer(t, "u1")
		u2, _ := newPeer(t, "u2")
		conn := e2.node.Dial(t, core.NetworkQUIC, nil, ALPN)
		st, err := conn.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = xssh.NewClientConn(newStreamConn(st, nil), "x", &xssh.ClientConfig{
			User:            "alice",
			Auth:            []xssh.AuthMethod{xssh.PublicKeys(u1, u2, aliceKey)},
			HostKeyCallback: xssh.FixedHostKey(e2.srv.HostKey()),
		})
		if err == nil {
			t.Fatal("login succeeded past MaxAuthTries")
		}
		if !strings.Contains(err.Error(), "too many authentication failures") {
			t.Errorf("error %v, want too many authentication failures", err)
		}
	})
}

// userCert signs a certificate for key.
func userCert(t *testing.T, ca xssh.Signer, key xssh.Signer, principals []string, from, to time.Time, crit, ext map[string]string) xssh.Signer {
	t.Helper()
	if ext == nil {
		ext = map[string]string{"permit-pty": "", "permit-port-forwarding": ""}
	}
	cert := &xssh.Certificate{
		Key:             key.PublicKey(),
		CertType:        xssh.UserCert,
		KeyId:           "test-cert",
		ValidPrincipals: principals,
		ValidAfter:      uint64(from.Unix()),
		ValidBefore:     uint64(to.Unix()),
		Permissions:     xssh.Permissions{CriticalOptions: crit, Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	s, err := xssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCertificateAuth(t *testing.T) {
	e, _, _ := shellEnv(t, nil)
	ca := newCA(t)
	otherCA := newCA(t)
	noConnCA := newCA(t)
	e.setPolicy(Policy{
		Forward: mustRules(t, "allow self"),
		CertAuthorities: []CertAuthority{
			{Name: "main", Key: ca.PublicKey(), Scopes: []string{ScopeConnect, ScopeShell, ScopeForward}},
			{Name: "weak", Key: noConnCA.PublicKey(), Scopes: []string{ScopeShell}},
		},
	})
	key, _ := newPeer(t, "unlisted") // the key itself is in no directory
	now := time.Now()
	valid := func(crit, ext map[string]string) xssh.Signer {
		return userCert(t, ca, key, []string{"alice", "ops"}, now.Add(-time.Hour), now.Add(time.Hour), crit, ext)
	}
	for _, tt := range []struct {
		name   string
		signer xssh.Signer
		user   string
		ok     bool
	}{
		{"valid", valid(nil, nil), "alice", true},
		{"second principal", valid(nil, nil), "ops", true},
		{"wrong principal", valid(nil, nil), "bob", false},
		{"expired", userCert(t, ca, key, []string{"alice"}, now.Add(-2*time.Hour), now.Add(-time.Hour), nil, nil), "alice", false},
		{"not yet valid", userCert(t, ca, key, []string{"alice"}, now.Add(time.Hour), now.Add(2*time.Hour), nil, nil), "alice", false},
		{"unknown CA", userCert(t, otherCA, key, []string{"alice"}, now.Add(-time.Hour), now.Add(time.Hour), nil, nil), "alice", false},
		{"CA without ssh:connect", userCert(t, noConnCA, key, []string{"alice"}, now.Add(-time.Hour), now.Add(time.Hour), nil, nil), "alice", false},
		{"unknown critical option", valid(map[string]string{"verify-required": ""}, nil), "alice", false},
		{"source-address matches", valid(map[string]string{"source-address": "127.0.0.1/32,10.0.0.0/8"}, nil), "alice", true},
		{"source-address mismatch", valid(map[string]string{"source-address": "10.0.0.0/8"}, nil), "alice", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.dial(tt.signer, tt.user)
			if (err == nil) != tt.ok {
				t.Fatalf("login as %s: %v, want ok=%v", tt.user, err, tt.ok)
			}
		})
	}

	t.Run("identity and scopes from the CA", func(t *testing.T) {
		c := e.mustDial(valid(nil, nil), "alice")
		out, err := newSession(t, c).Output("echo $ALKNET_IDENTITY")
		if err != nil || string(out) != "alice\n" {
			t.Fatalf("identity = %q, %v", out, err)
		}
		if _, err := c.Dial("tcp", echoServer(t).String()); err != nil {
			t.Fatalf("forward with the CA's ssh:forward: %v", err)
		}
	})
	t.Run("force-command", func(t *testing.T) {
		c := e.mustDial(valid(map[string]string{"force-command": `echo "forced:$SSH_ORIGINAL_COMMAND"`}, nil), "alice")
		out, err := newSession(t, c).Output("echo asked")
		if err != nil || string(out) != "forced:echo asked\n" {
			t.Fatalf("exec under force-command = %q, %v", out, err)
		}
		s := newSession(t, c)
		o, _ := s.StdoutPipe()
		if err := s.RequestSubsystem("echo"); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(o)
		if buf.String() != "forced:echo\n" {
			t.Fatalf("subsystem under force-command = %q", buf.String())
		}
	})
	t.Run("no permit extensions", func(t *testing.T) {
		c := e.mustDial(valid(nil, map[string]string{}), "alice")
		if err := newSession(t, c).RequestPty("xterm", 24, 80, nil); err == nil {
			t.Fatal("pty granted without permit-pty")
		}
		if _, err := c.Dial("tcp", echoServer(t).String()); openErr(err) != xssh.Prohibited {
			t.Fatalf("forward without permit-port-forwarding: %v", err)
		}
	})
	t.Run("removing the CA closes the connection", func(t *testing.T) {
		c := e.mustDial(valid(nil, nil), "alice")
		pol := *e.pol.Load()
		pol.CertAuthorities = pol.CertAuthorities[1:]
		e.setPolicy(pol)
		waitClosed(t, c)
	})
}

// waitClosed waits for the server to end the client's connection.
func waitClosed(t *testing.T, c *xssh.Client) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("connection still open 3s after revocation")
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, nil)
	k, p := newPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(p)

	t.Run("disabled peer on QUIC", func(t *testing.T) {
		c := e.mustDial(k, "alice")
		p.Disabled = true
		e.setPeers(p)
		defer func() {
			p.Disabled = false
			e.setPeers(p)
		}()
		e.node.Endpoint.Revalidate()
		waitClosed(t, c)
	})
	t.Run("scope removed on TCP listener", func(t *testing.T) {
		c := tcpClient(t, e, k, "alice")
		q := p
		q.Scopes = []string{ScopeConnect}
		e.setPeers(q)
		defer e.setPeers(p)
		waitClosed(t, c)
	})
}

// serveTCP serves e.srv on a plain TCP listener until the test ends and
// returns the listener's address.
func serveTCP(t *testing.T, e *env) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeListener returned %v, want context.Canceled", err)
		}
	})
	return ln.Addr().(*net.TCPAddr)
}

// dialTCP logs in to e.srv at addr over plain TCP as user.
func dialTCP(e *env, addr *net.TCPAddr, signer xssh.Signer, user string) (*xssh.Client, error) {
	return xssh.Dial("tcp", addr.String(), &xssh.ClientConfig{
		User:            user,
		Auth:            []xssh.AuthMethod{xssh.PublicKeys(signer)},
		HostKeyCallback: xssh.FixedHostKey(e.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
}

// tcpClient serves e.srv on a plain TCP listener for the test and logs in.
func tcpClient(t *testing.T, e *env, signer xssh.Signer, user string) *xssh.Client {
	t.Helper()
	c, err := dialTCP(e, serveTCP(t, e), signer, user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTransports(t *testing.T) {
	e, _, _ := shellEnv(t, nil)
	k, p := newPeer(t, "carol", ScopeConnect, ScopeShell)
	d, _ := core.NewDirectory(append(e.live.Load().Peers(), p), nil)
	e.live.Store(d)
	run := func(t *testing.T, c *xssh.Client) {
		t.Helper()
		out, err := newSession(t, c).Output("echo ok")
		if err != nil || string(out) != "ok\n" {
			t.Fatalf("echo ok = %q, %v", out, err)
		}
	}
	t.Run("several sessions on one QUIC connection", func(t *testing.T) {
		conn := e.node.Dial(t, core.NetworkQUIC, nil, ALPN)
		var cs []*xssh.Client
		for range 3 {
			c, err := e.dialOn(conn, k, "carol")
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			run(t, c)
		}
	})
	t.Run("TCP+TLS single stream", func(t *testing.T) {
		conn := e.node.Dial(t, core.NetworkTCP, nil, ALPN)
		c, err := e.dialOn(conn, k, "carol")
		if err != nil {
			t.Fatal(err)
		}
		run(t, c)
	})
	t.Run("plain TCP listener", func(t *testing.T) {
		run(t, tcpClient(t, e, k, "carol"))
	})
	t.Run("listener shutdown closes sessions", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- e.srv.ServeListener(ctx, ln) }()
		c, err := xssh.Dial("tcp", ln.Addr().String(), &xssh.ClientConfig{
			User: "carol", Auth: []xssh.AuthMethod{xssh.PublicKeys(k)},
			HostKeyCallback: xssh.FixedHostKey(e.srv.HostKey()),
		})
		if err != nil {
			t.Fatal(err)
		}
		s := newSession(t, c)
		if err := s.Start("exec sleep 30"); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeListener returned %v", err)
		}
		waitClosed(t, c)
	})
}

// TestTCPListenerPerIPCap checks that the plain TCP listener caps the
// connections one IP address holds, as core does for QUIC and TCP+TLS.
func TestTCPListenerPerIPCap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	k, p := newPeer(t, "alice", ScopeConnect)
	e.setPeers(p)
	addr := serveTCP(t, e)
	dial := func() (*xssh.Client, error) { return dialTCP(e, addr, k, "alice") }
	var held []*xssh.Client
	for range 2 {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third connection from one IP was served")
	}
	if !strings.Contains(e.logs.String(), "connection refused: limit reached") {
		t.Error("the refusal was not logged")
	}
	held[0].Close()
	_ = held[0].Wait()
	coretest.Eventually(t, 5*time.Second, "a slot to free up", func() bool {
		c, err := dial()
		if err == nil {
			held = append(held, c)
		}
		return err == nil
	})
	for _, c := range held[1:] {
		c.Close()
	}
}
