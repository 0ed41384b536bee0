package hostile

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// An AttackShape is one way a hostile client tries to make a node hold
// memory: frames whose header declares far more than is sent. The client
// is anonymous, or a known peer allowed to write (fs:write) where the
// frame is one only a writer may send.
type AttackShape struct {
	// Name identifies the shape in reports and tests.
	Name string
	// alpn is the protocol attacked; "ws" is alknet/call over a WebSocket
	// on http/1.1.
	alpn string
	// get says the client asks for the node's public file over
	// alknet/fs, complete requests, and never reads the answers.
	get bool
	// writer says the client is the known peer with fs:write, and its
	// frame a CAR section of an fs put. A known peer's frames are bounded
	// by the known peers' budgets, larger than the anonymous ones by
	// design, so issue 14's memory goal (an anonymous attacker's) does not
	// apply; its goal is the other known peer's pings, which must pass
	// however many connections the writer opens.
	writer bool
	// network is QUIC or TCP (TCP+TLS: one stream per connection).
	network core.Network
	// conns and Streams are how many connections the attacker opens and
	// how many streams on each (TCP: 1).
	conns, streams int
	// declared is the frame length the header announces; Sent is how many
	// bytes of the body follow.
	declared, sent int
}

// attackShapes are the attack shapes of issue 14: half-sent frames near
// each protocol's largest, over QUIC and TCP+TLS, and streams that send
// a few bytes only.
var attackShapes = []AttackShape{
	{Name: "call-quic", alpn: call.ALPN, network: core.NetworkQUIC, conns: 2, streams: 30, declared: 15 << 20, sent: 1 << 20},
	{Name: "call-tcp", alpn: call.ALPN, network: core.NetworkTCP, conns: 40, streams: 1, declared: 15 << 20, sent: 1 << 20},
	{Name: "call-6-bytes", alpn: call.ALPN, network: core.NetworkQUIC, conns: 20, streams: 100, declared: 15 << 20, sent: 2},
	{Name: "msg-quic", alpn: "alknet/msg", network: core.NetworkQUIC, conns: 2, streams: 30, declared: 1 << 20, sent: 512 << 10},
	{Name: "fs-quic", alpn: "alknet/fs", network: core.NetworkQUIC, conns: 2, streams: 30, declared: 8 << 20, sent: 1 << 20},
	{Name: "ws-tcp", alpn: "ws", network: core.NetworkTCP, conns: 40, streams: 1, declared: 15 << 20, sent: 1 << 20},
	{Name: "fs-get-stalled", alpn: "alknet/fs", get: true, network: core.NetworkQUIC, conns: 20, streams: 100},
	// Over TCP+TLS a stalled get blocks the node's write with a batch of
	// records in hand (core's tlsStream); the batches are bounded.
	{Name: "fs-get-stalled-tcp", alpn: "alknet/fs", get: true, network: core.NetworkTCP, conns: 200, streams: 1},
	{Name: "fs-put-known", alpn: "alknet/fs", writer: true, network: core.NetworkQUIC, conns: 10, streams: 30, declared: 2 << 20, sent: 1 << 20},
}

// HostileOptions configures [MeasureHostile].
type HostileOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// config is extra alknet.toml text (a [limits] section, say); the
	// legitimate client's [[peers]] entry is added to it.
	config string
	// shapes are the attacks, run one after another; nil means
	// AttackShapes.
	shapes []AttackShape
	// Hold is how long each attack holds its connections while the node's
	// memory and a legitimate client's pings are sampled; zero means 5s.
	Hold time.Duration
}

// HostileResult is what one attack shape did to the node.
type HostileResult struct {
	Shape AttackShape
	// idleRSS is the node's resident memory before the attack, peakRSS the
	// most seen during it, in bytes.
	idleRSS, peakRSS int64
	// pings are the legitimate client's services/ping round trips during
	// the attack; failed counts those that failed or took over a second,
	// errors those that failed (no answer within the call's 2 s).
	pings          []time.Duration
	failed, errors int
	// streams counts the attacker's streams that the node had not refused
	// when the hold ended.
	streams int
}

// Growth returns peakRSS - idleRSS.
func (r HostileResult) Growth() int64 { return r.peakRSS - r.idleRSS }

// MaxPing returns the slowest ping.
func (r HostileResult) MaxPing() time.Duration {
	if len(r.pings) == 0 {
		return 0
	}
	return slices.Max(r.pings)
}

// MeasureHostile starts `BINARY serve` on a fresh data directory and runs
// each attack shape against it in turn, anonymously (or as a known
// writer, for the shapes that need one), while another known peer
// pings it over QUIC, sampling the node's RSS every 50ms. The node is
// stopped with SIGTERM at the end; a non-zero exit is an error.
func MeasureHostile(ctx context.Context, opts HostileOptions) ([]HostileResult, error) {
	if opts.shapes == nil {
		opts.shapes = attackShapes
	}
	if opts.Hold == 0 {
		opts.Hold = 5 * time.Second
	}
	_, clientKey, _ := ed25519.GenerateKey(nil)
	clientID, _ := core.NodeIDFromPublicKey(clientKey.Public().(ed25519.PublicKey))
	_, writerKey, _ := ed25519.GenerateKey(nil)
	writerID, _ := core.NodeIDFromPublicKey(writerKey.Public().(ed25519.PublicKey))
	config := opts.config + fmt.Sprintf("\n[[peers]]\nid = \"legit\"\nkeys = [%q]\n", clientID.String()) +
		fmt.Sprintf("\n[[peers]]\nid = \"writer\"\nkeys = [%q]\nscopes = [\"fs:write\"]\n", writerID.String())
	n, err := startHostileNode(ctx, opts.Binary, config)
	if err != nil {
		return nil, err
	}
	client, err := call.Dial(ctx, n.addr, call.Options{Dialer: &core.Dialer{Key: clientKey, Network: core.NetworkQUIC}})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: hostile: legitimate client: %w", err), n.stop())
	}
	var results []HostileResult
	for _, shape := range opts.shapes {
		r, err := runAttack(ctx, n, client, shape, writerKey, opts.Hold)
		if err != nil {
			client.Close()
			return results, errors.Join(err, n.stop())
		}
		results = append(results, r)
	}
	client.Close()
	return results, n.stop()
}

// runAttack runs one shape against n and measures it.
func runAttack(ctx context.Context, n *hostileNode, client *call.Client, shape AttackShape, writerKey ed25519.PrivateKey, hold time.Duration) (HostileResult, error) {
	res := HostileResult{Shape: shape}
	// Let the previous shape's connections go before the baseline.
	time.Sleep(time.Second)
	var err error
	if res.idleRSS, _, err = harness.ProcMemory(n.Cmd.Process.Pid); err != nil {
		return res, err
	}
	res.peakRSS = res.idleRSS
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &attack{shape: shape, addr: n.addr, hostport: n.hostport, root: n.fsRoot}
	if shape.writer {
		a.key = writerKey
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.run(actx) })

	var mu sync.Mutex
	wg.Go(func() { // the legitimate client
		for actx.Err() == nil {
			start := time.Now()
			pctx, pcancel := context.WithTimeout(actx, 2*time.Second)
			var out any
			err := client.Call(pctx, "services/ping", nil, &out)
			pcancel()
			d := time.Since(start)
			if actx.Err() != nil {
				return
			}
			mu.Lock()
			res.pings = append(res.pings, d)
			if err != nil {
				res.errors++
			}
			if err != nil || d > time.Second {
				res.failed++
			}
			mu.Unlock()
			select {
			case <-actx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) {
		if rss, _, err := harness.ProcMemory(n.Cmd.Process.Pid); err == nil {
			res.peakRSS = max(res.peakRSS, rss)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.streams = a.alive()
	cancel()
	wg.Wait()
	a.close()
	return res, nil
}

// attack holds one shape's connections open.
type attack struct {
	shape          AttackShape
	addr, hostport string
	key            ed25519.PrivateKey // nil: anonymous
	root           string             // the node's public file

	mu      sync.Mutex
	conns   []func()
	streams []core.Stream
	raw     []net.Conn
}

// run opens the shape's connections and streams and sends their frames,
// until every one is sent or refused, or ctx ends.
func (a *attack) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range a.shape.conns {
		wg.Go(func() {
			if a.shape.alpn == "ws" {
				a.websocket(ctx)
				return
			}
			d := &core.Dialer{Network: a.shape.network, Key: a.key}
			c, err := d.Dial(ctx, a.addr, a.shape.alpn)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, func() { _ = c.CloseWithError(core.CodeNoError, "") })
			a.mu.Unlock()
			var swg sync.WaitGroup
			for range a.shape.streams {
				s, err := c.OpenStream(ctx)
				if err != nil {
					break
				}
				a.mu.Lock()
				a.streams = append(a.streams, s)
				a.mu.Unlock()
				swg.Go(func() { a.send(ctx, s) })
			}
			swg.Wait()
		})
	}
	wg.Wait()
}

// send writes a frame header declaring the shape's length, then as much of
// the body as the shape sends, as the node's flow control lets it.
func (a *attack) send(ctx context.Context, w interface {
	Write([]byte) (int, error)
	SetWriteDeadline(time.Time) error
}) {
	hdr := frameHeader(a.shape.alpn, a.shape.declared)
	switch {
	case a.shape.writer:
		hdr = carPutHeader(a.shape.declared)
	case a.shape.get:
		req, _ := json.Marshal(map[string]string{"op": "get", "root": a.root})
		hdr = append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...)
	}
	_ = w.SetWriteDeadline(time.Now().Add(30 * time.Second))
	stop := context.AfterFunc(ctx, func() { _ = w.SetWriteDeadline(time.Now()) })
	defer stop()
	if _, err := w.Write(hdr); err != nil {
		return
	}
	chunk := make([]byte, 32<<10)
	for sent := 0; sent < a.shape.sent; {
		m, err := w.Write(chunk[:min(len(chunk), a.shape.sent-sent)])
		sent += m
		if err != nil {
			return
		}
	}
}

// frameHeader is the start of a frame of length n: call's and fs's length
// prefix, msg's with a deliver request type.
func frameHeader(alpn string, n int) []byte {
	h := binary.BigEndian.AppendUint32(nil, uint32(n))
	if alpn == "alknet/msg" {
		h = append(h, 0x01)
	}
	return h
}

// carPutHeader is an alknet/fs put request, then the start of its CAR v1
// stream: the header naming the root, and a section that declares n bytes.
func carPutHeader(n int) []byte {
	// CIDv1, raw codec, SHA-256 (the digest need not match: the section
	// is never completed).
	digest := sha256.Sum256([]byte("hostile"))
	c := append([]byte{0x01, 0x55, 0x12, 0x20}, digest[:]...)
	root := "b" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(c))
	req, _ := json.Marshal(map[string]string{"op": "put", "root": root})
	out := append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...)
	// DAG-CBOR {"roots": [CID], "version": 1}: a map of two, the CID as
	// tag 42 over its bytes after a 0x00 prefix.
	h := []byte{0xa2, 0x65}
	h = append(h, "roots"...)
	h = append(h, 0x81, 0xd8, 0x2a, 0x58, byte(len(c)+1), 0x00)
	h = append(h, c...)
	h = append(h, 0x67)
	h = append(h, "version"...)
	h = append(h, 0x01)
	out = binary.AppendUvarint(out, uint64(len(h)))
	out = append(out, h...)
	return binary.AppendUvarint(out, uint64(n))
}

// websocket opens /v1/ws on http/1.1 and sends a binary message header
// declaring the shape's length, then part of its payload.
func (a *attack) websocket(ctx context.Context) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
	nc, err := d.DialContext(ctx, "tcp", a.hostport)
	if err != nil {
		return
	}
	a.mu.Lock()
	a.raw = append(a.raw, nc)
	a.mu.Unlock()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /v1/ws HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: alknet.call\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return
	}
	// FIN, binary; masked, 64-bit length; a zero mask key.
	hdr := []byte{0x82, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(a.shape.declared))
	hdr = append(hdr, 0, 0, 0, 0)
	_ = nc.SetDeadline(time.Time{})
	a.send(ctx, wsBody{nc, hdr})
}

// wsBody writes a WebSocket header before the first write of a frame
// header, which it drops: the WebSocket message is the frame.
type wsBody struct {
	net.Conn
	hdr []byte
}

func (w wsBody) Write(p []byte) (int, error) {
	if len(p) == 4 {
		_, err := w.Conn.Write(w.hdr)
		return len(p), err
	}
	return w.Conn.Write(p)
}

// alive counts the attack's streams and raw connections that the node has
// not refused: a write of nothing still succeeds, a one-byte read waits.
func (a *attack) alive() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.streams {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	for _, c := range a.raw {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	return n
}

// close ends every connection of the attack.
func (a *attack) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns {
		c()
	}
	for _, c := range a.raw {
		c.Close()
	}
}

// hostileNode is the `alknet serve` child under attack.
type hostileNode struct {
	*harness.Child
	dir      string
	fsRoot   string // CID of a 4 MiB file the node's public fs store holds
	addr     string // <nodeid>@127.0.0.1:port
	hostport string
}

// startHostileNode runs `BINARY serve` on a fresh data directory holding
// config and a public fs store with one 4 MiB file, on a free loopback
// port, and waits until it listens.
func startHostileNode(ctx context.Context, binary, config string) (*hostileNode, error) {
	dir, err := os.MkdirTemp("", "alknet-bench-hostile-")
	if err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "alknet.toml"), []byte(config+"\n[fs]\npublic = true\n"), 0o600)
	}
	var root string
	if err == nil {
		root, err = addContent(ctx, binary, dir)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	hostport := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, m, err := harness.StartChild(ctx, harness.ListeningLine, binary, "serve", "--data-dir", dir, "--listen", hostport)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &hostileNode{Child: c, dir: dir, fsRoot: root, addr: m[1] + "@" + hostport, hostport: hostport}, nil
}

// addContent adds a file of 4 MiB of random bytes to the fs store of the
// data directory dir and returns its CID.
func addContent(ctx context.Context, binary, dir string) (string, error) {
	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	file := filepath.Join(dir, "content")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, binary, "fs", "add", "-q", "--data-dir", dir, file).Output()
	if err != nil {
		return "", fmt.Errorf("bench: hostile: fs add: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// stop stops the node and removes its data directory.
func (n *hostileNode) stop() error {
	defer os.RemoveAll(n.dir)
	return n.Child.Stop()
}

// WriteHostileMarkdown prints results as a Markdown table, then one goal
// line per shape and goal: RSS growth over idle against its 64 MB bound
// (anonymous shapes only: see [AttackShape]), and the slowest legitimate
// ping against its one-second bound, each as a ratio to the bound (met at
// <= 1).
func WriteHostileMarkdown(w io.Writer, results []HostileResult, err error) {
	fmt.Fprintf(w, "## Hostile clients (issue 14)\n\n")
	if err != nil {
		fmt.Fprintf(w, "error: %v\n\n", err)
	}
	fmt.Fprintf(w, "| shape | attacker | idle RSS MB | peak RSS MB | growth MB (goal <= 64, anonymous) | pings | slowest ping (goal < 1s) | failed |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		s := r.Shape
		who := "anonymous"
		if s.writer {
			who = "known writer"
		}
		what := fmt.Sprintf("%d of %d bytes", s.sent, s.declared)
		if s.get {
			what = "gets of a 4 MiB file, never read"
		}
		fmt.Fprintf(w, "| %s | %s, %d conns x %d streams, %s | %.1f | %.1f | %.1f | %d | %v | %d |\n",
			s.Name, who, s.conns, s.streams, what, mb(r.idleRSS), mb(r.peakRSS), mb(r.Growth()),
			len(r.pings), r.MaxPing().Round(time.Millisecond), r.failed)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if !r.Shape.writer {
			harness.WriteGoal(w, "hostile-rss-growth", r.Shape.Name, float64(r.Growth())/float64(hostileRSSBound), "<=", 1)
		}
		ping := float64(r.MaxPing()) / float64(time.Second)
		if r.failed > 0 || len(r.pings) == 0 {
			ping = max(ping, 1.01) // a failed ping misses the goal
		}
		harness.WriteGoal(w, "hostile-ping", r.Shape.Name, ping, "<=", 1)
	}
}

// hostileRSSBound is issue 14's bound on RSS growth under attack.
const hostileRSSBound = 64 << 20

func mb(b int64) float64 { return float64(b) / (1 << 20) }
