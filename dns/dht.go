package dns

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	k_nearest_nodes "github.com/anacrolix/dht/v2/k-nearest-nodes"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/dht/v2/types"
	alog "github.com/anacrolix/log"
	"golang.org/x/time/rate"

	"github.com/alkdev/alknet/core"
)

// Defaults and bounds of a [DHT].
const (
	// DefaultDHTTimeout bounds one Publish or Resolve traversal.
	DefaultDHTTimeout = 20 * time.Second
	// DefaultDHTMaxQueries bounds the DHT nodes one traversal asks.
	DefaultDHTMaxQueries = 200
	// DefaultDHTQueryTimeout is how long one query waits for its answer.
	DefaultDHTQueryTimeout = 2 * time.Second
	// MaxDHTValueBytes bounds a BEP 44 item's bencoded v: "<len>:<packet>".
	MaxDHTValueBytes = 1000
	// dhtAlpha is how many queries of a traversal run at once.
	dhtAlpha = 8
	// dhtSettle is how long Resolve keeps listening for newer items after
	// the first verified one, before the traversal ends on its own.
	dhtSettle = 2 * time.Second
	// dhtSendRate bounds the packets per second a DHT sends (burst: as
	// many).
	dhtSendRate = 100
)

// DefaultDHTBootstrap are the public Mainline DHT routers a [DHT] starts
// from when its routing table is empty.
var DefaultDHTBootstrap = []string{
	"router.bittorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"router.utorrent.com:6881",
	"dht.libtorrent.org:25401",
}

// ErrDHTNotFound: no DHT node asked holds a verified item for the key.
var ErrDHTNotFound = errors.New("no record on the DHT")

// DHTConfig configures a [DHT].
type DHTConfig struct {
	// Listen is the UDP host:port of the DHT socket. Empty: an ephemeral
	// port on all addresses.
	Listen string
	// Bootstrap are host:port of DHT nodes to start from. Empty:
	// DefaultDHTBootstrap.
	Bootstrap []string
	// Timeout bounds one Publish or Resolve. Zero: DefaultDHTTimeout.
	Timeout time.Duration
	// MaxQueries bounds the nodes one traversal asks. Zero:
	// DefaultDHTMaxQueries.
	MaxQueries int
	// QueryTimeout is how long a query waits for its answer. Zero:
	// DefaultDHTQueryTimeout.
	QueryTimeout time.Duration
	// Logger receives the DHT library's messages at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// DHT publishes and resolves signed packets on the BitTorrent Mainline
// DHT as pkarr does: a packet is a BEP 44 mutable item under the node's
// Ed25519 key, no salt, seq = the packet's timestamp, v = the DNS packet,
// so the packet's own signature is the item's. It is a read-only node
// (BEP 43) on its own UDP socket: it asks other nodes and answers none,
// so it stores nothing for others.
type DHT struct {
	cfg    DHTConfig
	srv    *dht.Server
	logger *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool           // under mu
	wg     sync.WaitGroup // Publish and Resolve in flight; Add under mu
}

// NewDHT opens the DHT socket. It contacts no one until Publish or
// Resolve; Close releases it.
func NewDHT(cfg DHTConfig) (*DHT, error) {
	if len(cfg.Bootstrap) == 0 {
		cfg.Bootstrap = DefaultDHTBootstrap
	}
	var errs []error
	for i, b := range cfg.Bootstrap {
		if _, err := splitBootstrap(b); err != nil {
			errs = append(errs, fmt.Errorf("bootstrap[%d]: %w", i, err))
		}
	}
	if cfg.Listen != "" {
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q: %w", cfg.Listen, err))
		}
	}
	if cfg.Timeout < 0 || cfg.MaxQueries < 0 || cfg.QueryTimeout < 0 {
		errs = append(errs, errors.New("negative timeout or query bound"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(errors.New("dns: dht"), err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultDHTTimeout
	}
	if cfg.MaxQueries == 0 {
		cfg.MaxQueries = DefaultDHTMaxQueries
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = DefaultDHTQueryTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	listen := cfg.Listen
	if listen == "" {
		listen = ":0"
	}
	conn, err := net.ListenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("dns: dht: %w", err)
	}
	logger := alog.NewLogger("dht")
	logger.SetHandlers(slogHandler{cfg.Logger})
	qt := cfg.QueryTimeout
	srv, err := dht.NewServer(&dht.ServerConfig{
		Conn:             steadyConn{conn},
		Passive:          true,
		NoSecurity:       true,
		Store:            bep44.NewMemory(),
		Exp:              2 * time.Hour,
		Logger:           logger,
		SendLimiter:      rate.NewLimiter(dhtSendRate, dhtSendRate),
		QueryResendDelay: func() time.Duration { return qt },
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dns: dht: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &DHT{cfg: cfg, srv: srv, logger: cfg.Logger, ctx: ctx, cancel: cancel}, nil
}

// steadyConn keeps the DHT library's read loop alive through a read error
// on a socket that is still open (an ICMP error reported on it, say): the
// library panics on any read error before it is closed, which would take
// the node down. A closed socket's error passes.
type steadyConn struct{ net.PacketConn }

// steadyRetry is the pause before reading again after a read error.
const steadyRetry = 10 * time.Millisecond

func (c steadyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err == nil || errors.Is(err, net.ErrClosed) {
			return n, addr, err
		}
		time.Sleep(steadyRetry)
	}
}

// Addr returns the DHT socket's address.
func (d *DHT) Addr() net.Addr { return d.srv.Addr() }

// Close ends the Publish and Resolve calls in flight, waits for them and
// closes the socket.
func (d *DHT) Close() error {
	d.mu.Lock()
	was := d.closed
	d.closed = true
	d.mu.Unlock()
	if was {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	d.srv.Close()
	return nil
}

// begin bounds ctx by the timeout and by Close; done must be called.
func (d *DHT) begin(ctx context.Context) (context.Context, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, errors.New("dns: dht: closed")
	}
	d.wg.Add(1)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() { stop(); cancel(); d.wg.Done() }, nil
}

// Publish puts p on the DHT: it finds the nodes closest to p's key and
// stores p on each that gave a write token. It succeeds when at least one
// node stored it.
func (d *DHT) Publish(ctx context.Context, p *SignedPacket) error {
	if n := bencodedLen(len(p.packet)); n > MaxDHTValueBytes {
		return fmt.Errorf("dns: dht publish: %w: v is %d bytes bencoded, limit %d", ErrTooLarge, n, MaxDHTValueBytes)
	}
	if p.ts > math.MaxInt64 {
		return fmt.Errorf("dns: dht publish: %w: timestamp out of range", ErrBadPacket)
	}
	ctx, done, err := d.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	key := [32]byte(p.key.PublicKey())
	put := bep44.Put{V: p.packet, K: &key, Sig: p.sig, Seq: int64(p.ts)}
	// The traversal leaves a quarter of the time to the puts.
	tctx, tcancel := context.WithTimeout(ctx, d.cfg.Timeout*3/4)
	defer tcancel()
	var newer atomic.Bool
	op, err := d.traverse(tctx, p.key, func(r *krpc.Return) {
		if q, err := dhtItem(p.key, r); err == nil && q != nil && q.ts > p.ts {
			newer.Store(true)
		}
	}, nil)
	if err != nil {
		return fmt.Errorf("dns: dht publish of %s: %w", p.key.ShortString(), err)
	}
	if newer.Load() {
		return fmt.Errorf("dns: dht publish of %s: %w: the DHT holds a newer one", p.key.ShortString(), ErrNotNewer)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int
		errs   []error
	)
	op.Closest().Range(func(e k_nearest_nodes.Elem) {
		token, _ := e.Data.(string) // the traversal keeps only nodes that gave one
		addr := e.Addr.UDP()
		wg.Go(func() {
			err := d.srv.Put(ctx, dht.NewAddr(addr), put, token, dht.QueryRateLimiting{}).ToError()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			stored++
		})
	})
	wg.Wait()
	if stored == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no DHT node answered with a write token"))
		}
		return fmt.Errorf("dns: dht publish of %s: stored on no node: %w", p.key.ShortString(), errors.Join(errs...))
	}
	d.logger.Debug("dns: dht publish", "key", p.key.ShortString(), "stored", stored, "refused", len(errs))
	return nil
}

// Resolve gets key's latest signed packet from the DHT: it asks the nodes
// closest to sha1(key), verifies each item (key, signature, size, DNS
// packet) and keeps the highest seq. It returns once the traversal ended,
// or dhtSettle after the first verified item, or at the timeout with the
// best item found so far. ErrDHTNotFound: no node had a valid item.
func (d *DHT) Resolve(ctx context.Context, key core.NodeID) (*SignedPacket, error) {
	ctx, done, err := d.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var (
		mu    sync.Mutex
		best  *SignedPacket
		bad   []error
		first = make(chan struct{})
	)
	_, err = d.traverse(ctx, key, func(r *krpc.Return) {
		p, err := dhtItem(key, r)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			if len(bad) < 4 {
				bad = append(bad, err)
			}
		case p == nil:
		case best == nil:
			best = p
			close(first)
		case p.ts > best.ts:
			best = p
		}
	}, first)
	mu.Lock()
	defer mu.Unlock()
	if best != nil {
		return best, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns: dht resolve of %s: %w", key.ShortString(), err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("dns: dht resolve of %s: %w: every item found was refused: %w", key.ShortString(), ErrDHTNotFound, errors.Join(bad...))
	}
	return nil, fmt.Errorf("dns: dht resolve of %s: %w", key.ShortString(), ErrDHTNotFound)
}

// ResolveNode resolves key's verified self-description from the DHT.
func (d *DHT) ResolveNode(ctx context.Context, key core.NodeID) (NodeRecord, error) {
	p, err := d.Resolve(ctx, key)
	if err != nil {
		return NodeRecord{}, err
	}
	return ReadSelf(p)
}

// traverse runs a BEP 44 get traversal towards sha1(key), calling got with
// every reply (from several goroutines). It returns when the traversal
// ran out of closer nodes, when ctx ends, or dhtSettle after found is
// closed (if not nil); the traversal has stopped by then. It fails only
// when there was no node to start from or ctx ended before any answer.
func (d *DHT) traverse(ctx context.Context, key core.NodeID, got func(*krpc.Return), found <-chan struct{}) (*traversal.Operation, error) {
	target := bep44.Target(sha1.Sum(key.PublicKey()))
	start, err := d.startingNodes(ctx)
	if err != nil {
		return nil, err
	}
	// On the public DHT, a node named by another is asked only at a public
	// address: a hostile node cannot aim our queries at the local network.
	// A DHT bootstrapped at a local address (a private one) may use any.
	local := slices.ContainsFunc(start, func(n types.AddrMaybeId) bool { return !publicAddr(n.Addr.Addr()) })
	var queries, answers atomic.Int64
	op := traversal.Start(traversal.OperationInput{
		Target: target,
		Alpha:  dhtAlpha,
		DoQuery: func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
			if queries.Add(1) > int64(d.cfg.MaxQueries) {
				return traversal.QueryResult{}
			}
			qctx, cancel := context.WithCancel(qctx)
			defer context.AfterFunc(ctx, cancel)()
			defer cancel()
			res := d.srv.Get(qctx, dht.NewAddr(addr.UDP()), target, nil, dht.QueryRateLimiting{})
			r := res.Reply.R
			if r == nil {
				return traversal.QueryResult{}
			}
			answers.Add(1)
			got(r)
			tqr := res.TraversalQueryResult(addr)
			// Only nodes that gave a write token are kept as the closest:
			// they are the ones a put goes to.
			if _, ok := tqr.ClosestData.(string); !ok {
				tqr.ResponseFrom = nil
			}
			return tqr
		},
		NodeFilter: func(n types.AddrMaybeId) bool {
			return d.srv.TraversalNodeFilter(n) && (local || publicAddr(n.Addr.Addr()))
		},
	})
	op.AddNodes(start)
	select {
	case <-op.Stalled():
	case <-ctx.Done():
	case <-found: // nil: never
		t := time.NewTimer(dhtSettle)
		defer t.Stop()
		select {
		case <-op.Stalled():
		case <-ctx.Done():
		case <-t.C:
		}
	}
	op.Stop()
	<-op.Stopped()
	if answers.Load() == 0 {
		if err := ctx.Err(); err != nil {
			return op, fmt.Errorf("no DHT node answered: %w", err)
		}
		return op, fmt.Errorf("no DHT node answered (%d asked)", min(queries.Load(), int64(d.cfg.MaxQueries)))
	}
	return op, nil
}

// startingNodes are the nodes of the routing table and the bootstrap
// nodes. The traversal asks bootstrap nodes (their IDs unknown) only while
// it has not found enough closer nodes.
func (d *DHT) startingNodes(ctx context.Context) ([]types.AddrMaybeId, error) {
	nodes, _ := d.srv.TraversalStartingNodes() // fails when the table is empty
	var errs []error
	for _, b := range d.cfg.Bootstrap {
		addrs, err := lookupBootstrap(ctx, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			nodes = append(nodes, types.AddrMaybeId{Addr: dht.NewAddr(net.UDPAddrFromAddrPort(a)).KRPC().ToNodeAddrPort()})
		}
	}
	if len(nodes) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no bootstrap node configured"))
		}
		return nil, fmt.Errorf("no DHT node to start from: %w", errors.Join(errs...))
	}
	return nodes, nil
}

// publicAddr reports whether a is a global unicast address outside the
// private, shared (CGNAT) and loopback ranges.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

// cgnat is the shared address space of RFC 6598.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// splitBootstrap parses a bootstrap host:port.
func splitBootstrap(b string) (port uint16, err error) {
	host, p, err := net.SplitHostPort(b)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", b, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 || host == "" {
		return 0, fmt.Errorf("%q: want host:port", b)
	}
	return uint16(n), nil
}

// lookupBootstrap resolves a bootstrap host:port (bounded by ctx).
func lookupBootstrap(ctx context.Context, b string) ([]netip.AddrPort, error) {
	port, err := splitBootstrap(b)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(b)
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), port)}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", b, err)
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, a := range ips {
		out = append(out, netip.AddrPortFrom(a.Unmap(), port))
	}
	return out, nil
}

// dhtItem reads the BEP 44 item of a get reply for key: nil when the
// reply holds none, an error when it holds one that is not key's valid
// signed packet.
func dhtItem(key core.NodeID, r *krpc.Return) (*SignedPacket, error) {
	if len(r.V) == 0 {
		return nil, nil
	}
	return decodeDHTItem(key, r.K, r.Seq, r.V, r.Sig)
}

// decodeDHTItem verifies a mutable item (k, seq, bencoded v, sig) as key's
// signed packet: v must be a bencoded string of at most MaxPacketBytes,
// the signature must verify, the DNS packet must parse.
func decodeDHTItem(key core.NodeID, k [32]byte, seq *int64, v []byte, sig [64]byte) (*SignedPacket, error) {
	if k != [32]byte(key.PublicKey()) {
		return nil, fmt.Errorf("%w: item of another key", ErrBadKey)
	}
	if seq == nil || *seq < 0 {
		return nil, fmt.Errorf("%w: item without a valid seq", ErrBadPacket)
	}
	if len(v) > MaxDHTValueBytes {
		return nil, fmt.Errorf("%w: v is %d bytes", ErrTooLarge, len(v))
	}
	packet, err := bencodedString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: v: %w", ErrBadPacket, err)
	}
	payload := make([]byte, 0, sigLen+tsLen+len(packet))
	payload = append(payload, sig[:]...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(*seq))
	return DecodeRelayPayload(key, append(payload, packet...))
}

// bencodedString decodes b, which must be exactly one bencoded byte string
// "<len>:<bytes>" (no leading zeros); it returns the bytes, aliasing b.
func bencodedString(b []byte) ([]byte, error) {
	i := 0
	for i < len(b) && i < 5 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i == len(b) || b[i] != ':' {
		return nil, errors.New("not a bencoded string")
	}
	if b[0] == '0' && i > 1 {
		return nil, errors.New("bencoded length with a leading zero")
	}
	n, _ := strconv.Atoi(string(b[:i])) // at most 5 digits
	if n != len(b)-i-1 {
		return nil, fmt.Errorf("bencoded length %d, %d bytes follow", n, len(b)-i-1)
	}
	return b[i+1:], nil
}

// bencodedLen is the length of a bencoded string of n bytes.
func bencodedLen(n int) int { return len(strconv.Itoa(n)) + 1 + n }

// slogHandler passes the DHT library's messages to slog at debug level.
type slogHandler struct{ l *slog.Logger }

func (h slogHandler) Handle(r alog.Record) {
	if h.l.Enabled(context.Background(), slog.LevelDebug) {
		h.l.Debug("dns: dht: "+r.Text(), "level", r.Level.LogString())
	}
}
