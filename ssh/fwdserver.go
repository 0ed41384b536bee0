package ssh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/netutil"
	"github.com/alkdev/alknet/ssh/internal/dialfail"
)

// fwdHeaderTimeout bounds the arrival of a header once its stream opened,
// and each reply and notice write.
const fwdHeaderTimeout = 10 * time.Second

// fwdMaxPending bounds the connections one listener over TCP+TLS holds
// waiting for the client to claim them.
const fwdMaxPending = 64

// fwdConn is one alknet/fwd connection on the node.
type fwdConn struct {
	srv   *Server
	conn  core.Conn
	id    core.Identity
	multi bool // QUIC: the node opens a stream per forwarded connection
	log   *slog.Logger
	lim   core.FrameLimits

	ctx context.Context // ends with the connection or the server's ctx
	wg  sync.WaitGroup

	streams   atomic.Int32 // forwards in flight, against MaxChannels
	listeners atomic.Int32 // listens in force, against MaxRemoteForwards
	nextID    atomic.Uint32
}

// serveFwd serves one alknet/fwd connection: every stream the client opens
// carries one header and then, if the node accepted it, the bytes of one
// forwarded connection. Anonymous peers and identities without ssh:connect
// are refused with core.CodeForbidden before any header is read.
func (s *Server) serveFwd(ctx context.Context, conn core.Conn) error {
	peer := conn.Peer()
	log := conn.Logger()
	_, multi := conn.(core.QUICConn)
	if peer.Identity == nil || !peer.Identity.HasScope(ScopeConnect) {
		// The auth line fail2ban reads, as for a failed SSH login.
		core.LogAuth(s.cfg.Logger, core.AuthReject, FwdALPN, peer, peer.Identity)
		if !multi {
			// TCP carries no close code: say it in a reply.
			s.refuseKey(ctx, conn, log)
		}
		_ = conn.CloseWithError(core.CodeForbidden, "forwarding not permitted")
		return nil
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	f := &fwdConn{
		srv:   s,
		conn:  conn,
		id:    *peer.Identity,
		multi: multi,
		log:   log.With("id", peer.Identity.ID),
		lim:   core.FrameLimitsOf(conn),
		ctx:   fctx,
	}
	for {
		st, err := conn.AcceptStream(fctx)
		if err != nil {
			break
		}
		f.wg.Go(func() { f.serveStream(st) })
	}
	// A single-stream connection reports closed after its one stream while
	// the forward runs: wait for it to end by itself, or for ctx.
	f.wg.Wait()
	return nil
}

// refuseKey answers the one stream of a single-stream connection whose
// peer may not forward with detailKeyRefused, after reading its header
// within the connection's limits.
func (s *Server) refuseKey(ctx context.Context, conn core.Conn, log *slog.Logger) {
	actx, cancel := context.WithTimeout(ctx, fwdHeaderTimeout)
	st, err := conn.AcceptStream(actx)
	cancel()
	if err != nil {
		return
	}
	f := &fwdConn{srv: s, conn: conn, log: log}
	_ = st.SetReadDeadline(time.Now().Add(fwdHeaderTimeout))
	if _, err := readRequest(st, core.FrameLimitsOf(conn)); err != nil {
		st.Abort(core.CodeForbidden)
		return
	}
	f.refuse(st, fwdReply{xssh.Prohibited, detailKeyRefused})
}

// serveStream reads a stream's header and serves it.
func (f *fwdConn) serveStream(st core.Stream) {
	// A forward, idle or not, is work in flight, as an SSH session is: the
	// application idle timeout leaves the connection alone.
	defer core.Hold(f.conn)()
	stop := context.AfterFunc(f.ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	if int(f.streams.Add(1)) > f.srv.cfg.MaxChannels {
		f.streams.Add(-1)
		f.log.Warn("fwd stream refused", "reason", "too many forwards")
		st.Abort(core.CodeBusy)
		return
	}
	defer f.streams.Add(-1)
	_ = st.SetReadDeadline(time.Now().Add(fwdHeaderTimeout))
	req, err := readRequest(st, f.lim)
	switch {
	case errors.Is(err, core.ErrOverBudget):
		f.log.Debug("fwd header over the in-flight budget; refusing the stream")
		st.Abort(core.CodeBusy)
		return
	case err != nil:
		f.log.Debug("fwd header unreadable", "err", err)
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailMalformed})
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	switch req.op {
	case fwdConnect:
		f.connect(st, req)
	case fwdListen:
		f.listen(st, req)
	case fwdClaim:
		f.claim(st, req)
	case fwdWatch:
		f.watch(st)
	default:
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailMalformed})
	}
}

// reply writes rep (and extra) within the header timeout.
func (f *fwdConn) reply(st core.Stream, rep fwdReply, extra ...byte) error {
	_ = st.SetWriteDeadline(time.Now().Add(fwdHeaderTimeout))
	defer st.SetWriteDeadline(time.Time{})
	_, err := st.Write(append([]byte{byte(rep.reason), rep.detail}, extra...))
	return err
}

// refuse answers rep, logs why (never the destination) and ends the
// stream cleanly, so the reply arrives.
func (f *fwdConn) refuse(st core.Stream, rep fwdReply) {
	f.log.Warn("fwd forward refused", "reason", fwdDetailMessages[rep.detail])
	if f.reply(st, rep) != nil {
		st.Abort(core.CodeShutdown)
		return
	}
	_ = st.CloseWrite()
	// Let the client read the reply before the stream goes (a TCP+TLS
	// connection closed with unread input would reset it), at most
	// briefly.
	_ = st.SetReadDeadline(time.Now().Add(time.Second))
	var buf [512]byte
	for {
		if _, err := st.Read(buf[:]); err != nil {
			break
		}
	}
	_ = st.Close()
}

// connect serves -L and SOCKS CONNECT, as directTCPIP does for a channel:
// check, dial, and only then reply success.
func (f *fwdConn) connect(st core.Stream, req fwdRequest) {
	host := normHost(req.host)
	switch {
	case strings.HasPrefix(host, "alknet-"):
		f.refuse(st, fwdReply{xssh.Prohibited, detailReserved})
		return
	case !f.id.HasScope(ScopeForward):
		f.refuse(st, fwdReply{xssh.Prohibited, detailNotPermitted})
		return
	case req.port == 0:
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailPortZero})
		return
	}
	target, err := f.srv.dialForward(f.ctx, &f.id, host, req.port)
	if err != nil {
		switch {
		case errors.Is(err, errDenied):
			f.refuse(st, fwdReply{xssh.Prohibited, detailDenied})
		case errors.Is(err, errFilesLow):
			f.refuse(st, fwdReply{xssh.ResourceShortage, detailFilesLow})
		default:
			f.refuse(st, fwdReply{xssh.ConnectionFailed, dialDetail(err)})
		}
		return
	}
	// Recorded before the reply, so before the client can send a byte
	// through it: see Server.Forwarded.
	defer f.srv.dialled.add(target)()
	if f.reply(st, replyOK) != nil {
		_ = target.Close()
		st.Abort(core.CodeShutdown)
		return
	}
	relay(f.ctx, st, target, f.conn.Peer().RemoteAddr)
}

// watch holds a stream the client keeps open to learn when its connection
// ends (a revocation closes it): reply, then wait for the client's end.
func (f *fwdConn) watch(st core.Stream) {
	if f.reply(st, replyOK) != nil {
		st.Abort(core.CodeShutdown)
		return
	}
	var buf [64]byte
	for {
		if _, err := st.Read(buf[:]); err != nil {
			break
		}
	}
	st.Abort(core.CodeNoError)
}

// dialDetail names why dialling a forward failed.
func dialDetail(err error) byte {
	switch dialfail.Why(err) {
	case dialfail.Refused:
		return detailRefused
	case dialfail.NetworkUnreachable:
		return detailNetUnreachable
	case dialfail.HostUnreachable:
		return detailHostUnreachable
	}
	return detailConnectFailed
}

// listen serves -R: the stream is the listen's control stream, and the
// listener lives until the client ends it (EOF or reset) or the connection
// ends. Over QUIC the node opens a stream per accepted connection; over
// TCP+TLS it writes a notice with a ticket on the control stream and the
// client claims the connection on a new TCP+TLS connection.
func (f *fwdConn) listen(st core.Stream, req fwdRequest) {
	if !f.id.HasScope(ScopeRemoteForward) {
		f.refuse(st, fwdReply{xssh.Prohibited, detailNotPermitted})
		return
	}
	if int(f.listeners.Add(1)) > f.srv.cfg.MaxRemoteForwards {
		f.listeners.Add(-1)
		f.refuse(st, fwdReply{xssh.ResourceShortage, detailTooMany})
		return
	}
	defer f.listeners.Add(-1)
	ln, err := f.srv.listenRemote(f.ctx, &f.id, req.host, req.port)
	switch {
	case errors.Is(err, errDenied):
		f.refuse(st, fwdReply{xssh.Prohibited, detailDenied})
		return
	case errors.Is(err, errBadBind):
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailBindFailed})
		return
	case err != nil:
		f.log.Info("fwd remote forward failed", "err", err)
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailBindFailed})
		return
	}
	id := f.nextID.Add(1)
	extra := binary.BigEndian.AppendUint16(nil, uint16(ln.Addr().(*net.TCPAddr).Port))
	extra = binary.BigEndian.AppendUint32(extra, id)
	if f.reply(st, replyOK, extra...) != nil {
		_ = ln.Close()
		st.Abort(core.CodeShutdown)
		return
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	// The client ends the listen by ending the control stream.
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		var buf [64]byte
		for {
			if _, err := st.Read(buf[:]); err != nil {
				return
			}
		}
	})
	var notices sync.Mutex // serializes the writes of notices
	_ = netutil.Serve(ctx, ln, f.log, func(ctx context.Context, c net.Conn) {
		if f.multi {
			f.forwardStream(ctx, c, id)
			return
		}
		f.notify(st, &notices, c, cancel)
	})
	st.Abort(core.CodeNoError)
	wg.Wait()
}

// forwardStream opens a stream to the client for c, accepted by listener
// id, and relays the two.
func (f *fwdConn) forwardStream(ctx context.Context, c net.Conn, id uint32) {
	orig := c.RemoteAddr().(*net.TCPAddr)
	octx, cancel := context.WithTimeout(ctx, fwdHeaderTimeout)
	out, err := f.conn.OpenStream(octx)
	cancel()
	if err != nil {
		_ = c.Close()
		return
	}
	hdr, _ := appendRequest(nil, fwdRequest{op: fwdForwarded, id: id, host: orig.IP.String(), port: uint16(orig.Port)})
	_ = out.SetWriteDeadline(time.Now().Add(fwdHeaderTimeout))
	if _, err := out.Write(hdr); err != nil {
		out.Abort(core.CodeShutdown)
		_ = c.Close()
		return
	}
	_ = out.SetWriteDeadline(time.Time{})
	relay(ctx, out, c, f.conn.Peer().RemoteAddr)
}

// notify parks c under a fresh ticket and tells the client on the control
// stream st; an unclaimed connection is closed after DialTimeout. A notice
// that cannot be written ends the listen (cancel).
func (f *fwdConn) notify(st core.Stream, mu *sync.Mutex, c net.Conn, cancel context.CancelFunc) {
	orig := c.RemoteAddr().(*net.TCPAddr)
	ticket, ok := f.srv.tickets.park(f.id.ID, c, f.srv.cfg.DialTimeout)
	if !ok {
		_ = c.Close()
		return
	}
	mu.Lock()
	_ = st.SetWriteDeadline(time.Now().Add(fwdHeaderTimeout))
	_, err := st.Write(appendNotice(nil, ticket, orig.IP.String(), uint16(orig.Port)))
	_ = st.SetWriteDeadline(time.Time{})
	mu.Unlock()
	if err != nil {
		if c, ok := f.srv.tickets.take(f.id.ID, ticket); ok {
			_ = c.Close()
		}
		cancel()
	}
}

// claim serves the claim of a ticket: the connection it names is relayed
// on this stream. Only the identity that listened may claim it.
func (f *fwdConn) claim(st core.Stream, req fwdRequest) {
	c, ok := f.srv.tickets.take(f.id.ID, req.ticket)
	if !ok {
		f.refuse(st, fwdReply{xssh.ConnectionFailed, detailUnknownTicket})
		return
	}
	if f.reply(st, replyOK) != nil {
		_ = c.Close()
		st.Abort(core.CodeShutdown)
		return
	}
	relay(f.ctx, st, c, f.conn.Peer().RemoteAddr)
}

// relay pipes st and c until both directions ended, passing half-closes
// on; ctx ending closes both.
func relay(ctx context.Context, st core.Stream, c net.Conn, remote net.Addr) {
	netutil.Relay(ctx, newStreamConn(st, remote), c)
}

// fwdTickets holds the connections accepted by listeners over TCP+TLS
// until their client claims them. The zero value is empty; safe for
// concurrent use.
type fwdTickets struct {
	mu      sync.Mutex
	pending map[[fwdTicketLen]byte]*parked
	per     map[string]int // parked connections per identity
}

type parked struct {
	owner string
	conn  net.Conn
	timer *time.Timer
}

// park keeps c for owner under a new ticket for at most ttl. It refuses
// (false) past fwdMaxPending connections of one identity.
func (t *fwdTickets) park(owner string, c net.Conn, ttl time.Duration) ([fwdTicketLen]byte, bool) {
	var ticket [fwdTicketLen]byte
	_, _ = rand.Read(ticket[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = make(map[[fwdTicketLen]byte]*parked)
		t.per = make(map[string]int)
	}
	if t.per[owner] >= fwdMaxPending {
		return ticket, false
	}
	p := &parked{owner: owner, conn: c}
	p.timer = time.AfterFunc(ttl, func() {
		if c, ok := t.take(owner, ticket); ok {
			_ = c.Close()
		}
	})
	t.pending[ticket] = p
	t.per[owner]++
	return ticket, true
}

// take removes and returns the connection of ticket if owner parked it.
func (t *fwdTickets) take(owner string, ticket [fwdTicketLen]byte) (net.Conn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[ticket]
	if !ok || p.owner != owner {
		return nil, false
	}
	p.timer.Stop()
	delete(t.pending, ticket)
	if t.per[owner]--; t.per[owner] <= 0 {
		delete(t.per, owner)
	}
	return p.conn, true
}
