package sftp

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
)

// Refusals of a session or a handle; the client reads the message in a
// FAILURE status.
var (
	errSessionHandles  = errors.New("too many open handles in this session")
	errIdentityHandles = errors.New("too many open handles for this identity")
	errConnSessions    = errors.New("too many sessions on this connection")
	errIdentitySession = errors.New("too many sessions for this identity")
	// errBusy is the node's own limit: MaxHandlesPerNode, or the process
	// down to its descriptor reserve (core.FilesLow).
	errBusy = errors.New("server: too many open files, try later")
)

// limitErr reports whether err is one of the refusals above.
func limitErr(err error) bool {
	for _, e := range []error{errSessionHandles, errIdentityHandles, errConnSessions, errIdentitySession, errBusy} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// usage counts what sessions hold, per identity and for the whole server,
// to enforce Config's MaxHandlesPerIdentity, MaxHandlesPerNode and
// MaxSessions* limits. Sessions always have an identity (Config.Access
// cannot be public), so they are counted by identity ID; were anonymous
// sessions ever admitted, they would have to be counted by remote IP.
// Safe for concurrent use.
type usage struct {
	cfg *Config

	mu    sync.Mutex
	files int // handles and sessions (each holds its root open) of all identities
	ids   map[string]*idUsage

	lastWarn atomic.Int64 // unix nanoseconds of the last refusal logged at Warn
}

// idUsage is what one identity holds.
type idUsage struct{ sessions, handles int }

// connUsage counts the sessions of one connection, under usage.mu.
type connUsage struct{ sessions int }

func newUsage(cfg *Config) *usage {
	return &usage{cfg: cfg, ids: make(map[string]*idUsage)}
}

// startSession admits a session of id on conn (nil: a stream outside any
// connection the server sees, the ssh subsystem) or returns why not. A
// session takes one file of the node's budget, for its root.
func (u *usage) startSession(id string, conn *connUsage) error {
	if core.FilesLow() {
		return errBusy
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	iu := u.ids[id]
	switch {
	case conn != nil && conn.sessions >= u.cfg.MaxSessionsPerConn:
		return errConnSessions
	case iu != nil && iu.sessions >= u.cfg.MaxSessionsPerIdentity:
		return errIdentitySession
	case u.files >= u.cfg.MaxHandlesPerNode:
		return errBusy
	}
	if iu == nil {
		iu = &idUsage{}
		u.ids[id] = iu
	}
	iu.sessions++
	u.files++
	if conn != nil {
		conn.sessions++
	}
	return nil
}

// endSession undoes startSession.
func (u *usage) endSession(id string, conn *connUsage) {
	u.mu.Lock()
	defer u.mu.Unlock()
	iu := u.ids[id]
	iu.sessions--
	u.files--
	if conn != nil {
		conn.sessions--
	}
	if iu.sessions == 0 && iu.handles == 0 {
		delete(u.ids, id)
	}
}

// openHandle counts a handle of id, whose session is running, or returns
// why not.
func (u *usage) openHandle(id string) error {
	if core.FilesLow() {
		return errBusy
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	iu := u.ids[id]
	switch {
	case iu.handles >= u.cfg.MaxHandlesPerIdentity:
		return errIdentityHandles
	case u.files >= u.cfg.MaxHandlesPerNode:
		return errBusy
	}
	iu.handles++
	u.files++
	return nil
}

// closeHandle undoes openHandle.
func (u *usage) closeHandle(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ids[id].handles--
	u.files--
}

// logRefusal logs a refusal at Warn, at most once a second (a peer
// hammering a limit must not flood the log), and at Debug otherwise.
func (u *usage) logRefusal(logger *slog.Logger, msg string, err error) {
	now := time.Now().UnixNano()
	last := u.lastWarn.Load()
	if now-last >= int64(time.Second) && u.lastWarn.CompareAndSwap(last, now) {
		logger.Warn(msg, "reason", err.Error())
		return
	}
	logger.Debug(msg, "reason", err.Error())
}

// SFTP packet types and the status code refuse uses.
const (
	typeInit    = 1
	typeVersion = 2
	typeStatus  = 101
	fxFailure   = 4
	// maxPacket is the largest packet a session accepts (pkg/sftp's
	// limit); refuse ends at a larger one.
	maxPacket = 256 * 1024
	// refuseTimeout bounds how long a refused session may hold its stream.
	refuseTimeout = 5 * time.Second
)

// refuse answers a session that may not start, so that its client learns
// why instead of seeing the stream drop: VERSION to the client's INIT, then
// a FAILURE status carrying reason to its first request. Then it ends its
// side and reads until the client ends its own (closing at once could
// reset a TCP connection before the client read the status). It never
// buffers a packet body, answers one request at most, and closes rw after
// refuseTimeout or when ctx ends. It closes rw before returning.
func refuse(ctx context.Context, rw io.ReadWriteCloser, reason string) {
	ctx, cancel := context.WithTimeout(ctx, refuseTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = rw.Close() })
	defer stop()
	defer rw.Close()
	if answerRefused(rw, reason) != nil {
		return
	}
	if cw, ok := rw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_, _ = io.Copy(io.Discard, rw)
	}
}

// answerRefused reads the INIT and the first request and answers them.
func answerRefused(rw io.ReadWriter, reason string) error {
	var hdr [9]byte // length, type, request id
	for first := true; ; first = false {
		if _, err := io.ReadFull(rw, hdr[:5]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := hdr[4]
		switch {
		case n == 0 || n > maxPacket:
			return errors.New("bad packet length")
		case first != (typ == typeInit):
			return errors.New("INIT expected first, and only first")
		case typ == typeInit:
			if _, err := io.CopyN(io.Discard, rw, int64(n)-1); err != nil {
				return err
			}
			var v [9]byte
			binary.BigEndian.PutUint32(v[:4], 5)
			v[4] = typeVersion
			binary.BigEndian.PutUint32(v[5:], 3)
			if _, err := rw.Write(v[:]); err != nil {
				return err
			}
			continue
		case n < 5:
			return errors.New("request without an id")
		}
		if _, err := io.ReadFull(rw, hdr[5:9]); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, rw, int64(n)-5); err != nil {
			return err
		}
		_, err := rw.Write(statusPacket(binary.BigEndian.Uint32(hdr[5:9]), reason))
		return err
	}
}

// statusPacket is an SSH_FXP_STATUS FAILURE for request id with msg.
func statusPacket(id uint32, msg string) []byte {
	b := make([]byte, 0, 4+1+4+4+4+len(msg)+4)
	b = binary.BigEndian.AppendUint32(b, uint32(1+4+4+4+len(msg)+4))
	b = append(b, typeStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, fxFailure)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, msg...)
	return binary.BigEndian.AppendUint32(b, 0) // language tag
}
