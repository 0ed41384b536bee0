package http

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// fixture is a running node serving the test operations over HTTP.
type fixture struct {
	node    *coretest.Node
	srv     *Server
	reg     *call.Registry
	admin   string // token with admin and secret
	user    string // token with no scopes
	peerKey ed25519.PrivateKey
	aborted chan struct{} // demo/forever's handler saw its context end
}

type echoIn struct {
	Text string `json:"text"`
}
type echoOut struct {
	Text string `json:"text"`
}
type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}
type addOut struct {
	Sum int `json:"sum"`
}
type ticksIn struct {
	N int `json:"n"`
}
type tick struct {
	I int `json:"i"`
}
type none struct{}

// testRegistry registers the operations the tests call.
func testRegistry(t testing.TB, aborted chan struct{}) *call.Registry {
	t.Helper()
	reg := call.NewRegistry()
	public := core.AccessControl{Public: true}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(call.Register(reg, call.Spec{Name: "demo/echo", Description: "echoes", Access: public},
		func(_ context.Context, _ *call.Request, in echoIn) (echoOut, error) { return echoOut(in), nil }))
	must(call.Register(reg, call.Spec{Name: "demo/add", Type: call.Mutation, Access: public},
		func(_ context.Context, _ *call.Request, in addIn) (addOut, error) { return addOut{in.A + in.B}, nil }))
	must(call.RegisterStream(reg, call.Spec{Name: "demo/ticks", Access: public},
		func(ctx context.Context, _ *call.Request, in ticksIn, send func(tick) error) error {
			for i := range in.N {
				if err := send(tick{i}); err != nil {
					return err
				}
			}
			return nil
		}))
	must(call.RegisterStream(reg, call.Spec{Name: "demo/forever", Access: public},
		func(ctx context.Context, _ *call.Request, _ none, send func(tick) error) error {
			if err := send(tick{0}); err != nil {
				return err
			}
			<-ctx.Done()
			if aborted != nil {
				close(aborted)
			}
			return ctx.Err()
		}))
	must(call.Register(reg, call.Spec{Name: "demo/teapot", Access: public, Errors: []call.ErrorDef{{Code: "TEAPOT", HTTPStatus: 418}}},
		func(context.Context, *call.Request, none) (none, error) {
			return none{}, call.Errorf("TEAPOT", "short and stout")
		}))
	must(call.Register(reg, call.Spec{Name: "demo/secret", Access: core.AccessControl{AllScopes: []string{"secret"}}},
		func(context.Context, *call.Request, none) (echoOut, error) { return echoOut{"hush"}, nil }))
	must(call.Register(reg, call.Spec{Name: "demo/whoami"},
		func(_ context.Context, req *call.Request, _ none) (echoOut, error) {
			return echoOut{req.Caller.ID}, nil
		}))
	must(call.Register(reg, call.Spec{Name: "demo/slow", Access: public, Timeout: 50 * time.Millisecond},
		func(ctx context.Context, _ *call.Request, _ none) (none, error) {
			<-ctx.Done()
			return none{}, ctx.Err()
		}))
	must(call.Register(reg, call.Spec{Name: "demo/unavailable", Access: public},
		func(context.Context, *call.Request, none) (none, error) {
			return none{}, call.Errorf(call.CodeUnavailable, "try later")
		}))
	must(call.Register(reg, call.Spec{Name: "demo/boom", Access: public},
		func(context.Context, *call.Request, none) (none, error) {
			return none{}, errors.New("secret internals")
		}))
	must(call.Register(reg, call.Spec{Name: "demo/hidden", Visibility: call.Internal, Access: public},
		func(context.Context, *call.Request, none) (none, error) { return none{}, nil }))
	return reg
}

// start runs a node with the http server and the test operations.
func start(t testing.TB, limits Limits) *fixture {
	t.Helper()
	f := &fixture{aborted: make(chan struct{}), peerKey: coretest.NewKey(t)}
	f.reg = testRegistry(t, f.aborted)
	var hash, uhash core.TokenHash
	var err error
	f.admin, hash, err = core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	f.user, uhash, _ = core.NewToken()
	dir, err := core.NewDirectory(
		[]core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(f.peerKey)}, Scopes: []string{"secret"}}},
		[]core.TokenEntry{{Name: "ops", Hash: hash, Scopes: []string{AdminScope, "secret"}}, {Name: "user", Hash: uhash}})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	f.srv, err = New(Config{Registry: f.reg, Identities: live, NodeID: "test", Limits: limits, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Close() })
	f.node = coretest.Start(t, core.Config{Identities: live, Logger: slog.New(slog.DiscardHandler)}, f.srv)
	return f
}

// url is the https URL of path on the node.
func (f *fixture) url(path string) string { return "https://" + f.node.HostPort + path }

// client returns an HTTP client over TCP+TLS speaking h2 or http/1.1.
func (f *fixture) client(t testing.TB, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: h2}
	p := new(http.Protocols)
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
		// Go offers no ALPN for HTTP/1 (and strips it on upgrades).
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNHTTP1}}}
			return d.DialContext(ctx, network, addr)
		}
	}
	tr.Protocols = p
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h3Client returns an HTTP/3 client; with key it dials alknet/http and
// presents key as its identity, without it plain h3.
func (f *fixture) h3Client(t *testing.T, key ed25519.PrivateKey) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if key != nil {
		d := &core.Dialer{Key: key, Network: core.NetworkQUIC}
		tr.Dial = func(ctx context.Context, _ string, _ *tls.Config, _ *quic.Config) (*quic.Conn, error) {
			c, err := d.Dial(ctx, f.node.Addr, ALPN)
			if err != nil {
				return nil, err
			}
			return c.(core.QUICConn).QUIC(), nil
		}
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// do sends a request and returns the status, headers and body.
func do(t *testing.T, c *http.Client, method, url, token, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// errCode returns the code of a call error body.
func errCode(t *testing.T, body string) call.Code {
	t.Helper()
	var e call.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body %q is not a call error: %v", body, err)
	}
	return e.Code
}
