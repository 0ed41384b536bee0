package callbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/quic-go/quic-go/http3"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
	alkhttp "github.com/alkdev/alknet/http"
)

// The HTTP front doors of the call registry, and the floor they are
// measured against. Each serves the same echo operation as [AlknetQUIC].
const (
	// RESTH2 is `POST /v1/ops/bench/echo` with a bearer token, over h2 on
	// the node's port (TCP+TLS), one connection for every caller.
	RESTH2 CallSystem = "rest-h2"
	// RESTH3 is the same request over HTTP/3 (quic-go's http3 client).
	RESTH3 CallSystem = "rest-h3"
	// MCPTool is an MCP tools/call of bench_echo over the streamable HTTP
	// transport on h2 (the official Go SDK's client).
	MCPTool CallSystem = "mcp"
	// PlainH2 is a net/http handler that decodes and encodes the JSON
	// payload, over h2 on its own TLS listener: no gateway, no registry.
	PlainH2 CallSystem = "plain-h2"
)

// HTTPSystems returns the systems of the HTTP comparison: alknet/call over
// QUIC first, as the reference.
func HTTPSystems() []CallSystem {
	return []CallSystem{AlknetQUIC, RESTH2, RESTH3, MCPTool, PlainH2}
}

// httpClient is a JSON-over-HTTP echo client: REST on an alknet node, or
// the plain handler.
type httpClient struct {
	hc    *http.Client
	url   string
	token string
	stop  func() error
}

func (c *httpClient) call(ctx context.Context, in, out *payload) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (c *httpClient) close() error {
	c.hc.CloseIdleConnections()
	return c.stop()
}

// mcpClient calls bench_echo as an MCP tool.
type mcpClient struct {
	session *mcp.ClientSession
	hc      *http.Client
	stop    func() error
}

func (c *mcpClient) call(ctx context.Context, in, out *payload) error {
	res, err := c.session.CallTool(ctx, &mcp.CallToolParams{Name: alkhttp.ToolName(echoOp), Arguments: in})
	if err != nil {
		return err
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", b)
	}
	return json.Unmarshal(b, out)
}

func (c *mcpClient) close() error {
	err := c.session.Close()
	c.hc.CloseIdleConnections()
	return errors.Join(err, c.stop())
}

// startHTTPNode serves the node registry through the http module on a
// fresh node, without rate limits, and returns the node, a bearer token
// for it, and its stop function.
func startHTTPNode() (*harness.Endpoint, string, func() error, error) {
	reg, err := nodeRegistry()
	if err != nil {
		return nil, "", nil, err
	}
	token, hash, err := core.NewToken()
	if err != nil {
		return nil, "", nil, err
	}
	dir, err := core.NewDirectory(nil, []core.TokenEntry{{Name: clientID, Hash: hash}})
	if err != nil {
		return nil, "", nil, err
	}
	ids := core.NewLiveDirectory(dir, nil)
	srv, err := alkhttp.New(alkhttp.Config{Registry: reg, Identities: ids, Limits: alkhttp.Limits{Rate: -1}, Logger: harness.Discard()})
	if err != nil {
		return nil, "", nil, err
	}
	keys, err := newKeys(2)
	if err != nil {
		return nil, "", nil, err
	}
	node, err := startNode(keys[0], keys[1], ids, srv)
	if err != nil {
		return nil, "", nil, errors.Join(err, srv.Close())
	}
	return node, token, func() error { return errors.Join(srv.Close(), node.Close()) }, nil
}

// benchTLS trusts any server certificate: the servers are this process's
// own, on loopback.
func benchTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

// h2Client returns an HTTP client that speaks only h2 over TLS.
func h2Client() *http.Client {
	p := new(http.Protocols)
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: benchTLS(), Protocols: p}, Timeout: runGrace}
}

// startREST starts a node with the http module and an h2 (RESTH2) or h3
// (RESTH3) client of its echo route.
func startREST(sys CallSystem) (*httpClient, error) {
	node, token, stop, err := startHTTPNode()
	if err != nil {
		return nil, err
	}
	c := &httpClient{url: fmt.Sprintf("https://127.0.0.1:%d/v1/ops/%s", node.Port, echoOp), token: token, stop: stop}
	if sys == RESTH3 {
		tr := &http3.Transport{TLSClientConfig: benchTLS()}
		c.hc = &http.Client{Transport: tr, Timeout: runGrace}
		c.stop = func() error { return errors.Join(tr.Close(), stop()) }
	} else {
		c.hc = h2Client()
	}
	return c, nil
}

// startMCP starts a node with the http module and connects an MCP client
// session to its /mcp endpoint over h2.
func startMCP(ctx context.Context) (*mcpClient, error) {
	node, token, stop, err := startHTTPNode()
	if err != nil {
		return nil, err
	}
	hc := h2Client()
	hc.Transport = bearer{token: token, next: hc.Transport}
	cl := mcp.NewClient(&mcp.Implementation{Name: "alknet-bench", Version: "1"}, nil)
	session, err := cl.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: fmt.Sprintf("https://127.0.0.1:%d/mcp", node.Port), HTTPClient: hc, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		return nil, errors.Join(err, stop())
	}
	return &mcpClient{session: session, hc: hc, stop: stop}, nil
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// startPlainH2 serves a JSON echo handler with net/http over TLS (h2) on
// 127.0.0.1 and returns an h2 client of it.
func startPlainH2() (*httpClient, error) {
	cert, _, err := harness.SelfSigned()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p payload
			if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return &httpClient{hc: h2Client(), url: "https://" + ln.Addr().String() + "/echo", stop: srv.Close}, nil
}
