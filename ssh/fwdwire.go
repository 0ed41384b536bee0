package ssh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// FwdALPN is the protocol of forwarding without an SSH layer: every
// forwarded TCP connection is one stream (one TCP+TLS connection where QUIC
// is not used), opened with a small binary header. The wire format is in
// docs/protocols/fwd.md; the server is [Server] (it serves both ALPNs), the
// client [DialFwd].
const FwdALPN = "alknet/fwd"

// fwdVersion is the first byte of every header.
const fwdVersion = 1

// Operations of a header.
const (
	fwdConnect   = 1 // client: connect host:port (ssh -L, -D)
	fwdListen    = 2 // client: listen on host:port (ssh -R); the control stream
	fwdClaim     = 3 // client: take the forwarded connection of a ticket (TCP+TLS)
	fwdForwarded = 4 // node: a connection accepted by a listener (QUIC)
	fwdWatch     = 5 // client: hold the connection open, to learn of its end
)

// fwdTicketLen is the length of a ticket naming a connection the node
// accepted for a listener, which the client claims on a new connection.
const fwdTicketLen = 16

// Reply details: the second byte of a reply, next to the SSH open-failure
// reason in the first; each stands for the message the SSH path sends with
// that reason, so both paths fail alike ([fwdDetailMessages]).
const (
	detailNone = iota
	detailRefused
	detailHostUnreachable
	detailNetUnreachable
	detailConnectFailed
	detailNotPermitted
	detailDenied
	detailReserved
	detailMalformed
	detailFilesLow
	detailTooMany
	detailUnknownTicket
	detailBindFailed
	detailPortZero
	detailKeyRefused
)

// fwdDetailMessages are the open-failure messages of the details.
var fwdDetailMessages = [...]string{
	detailNone:            "",
	detailRefused:         msgRefused,
	detailHostUnreachable: msgHostUnreachable,
	detailNetUnreachable:  msgNetUnreachable,
	detailConnectFailed:   msgConnectFailed,
	detailNotPermitted:    "forwarding not permitted",
	detailDenied:          "forwarding denied",
	detailReserved:        "reserved target",
	detailMalformed:       "malformed request",
	detailFilesLow:        "node out of file descriptors, try later",
	detailTooMany:         "too many forwards",
	detailUnknownTicket:   "unknown or expired ticket",
	detailBindFailed:      "listen failed",
	detailPortZero:        "port 0",
	detailKeyRefused:      "the node refused this key",
}

// fwdReply is the node's answer to a header: 0 and detailNone for success,
// else an SSH open-failure reason (RFC 4254 §5.1) and a detail.
type fwdReply struct {
	reason xssh.RejectionReason
	detail byte
}

var replyOK = fwdReply{}

// err returns the error a client sees for a refusal: the same
// *xssh.OpenChannelError the SSH path gives, so [openFailure] maps it to
// os.ErrPermission, syscall.ECONNREFUSED and the rest.
func (r fwdReply) err() error {
	msg := fmt.Sprintf("detail %d", r.detail)
	if int(r.detail) < len(fwdDetailMessages) {
		msg = fwdDetailMessages[r.detail]
	}
	return openFailure(&xssh.OpenChannelError{Reason: r.reason, Message: msg})
}

// fwdRequest is a decoded header.
type fwdRequest struct {
	op     byte
	host   string // connect, listen: the target or bind host; forwarded: the originator
	port   uint16 // connect, listen: the port; forwarded: the originator's port
	id     uint32 // forwarded: the listener
	ticket [fwdTicketLen]byte
}

// Header sizes: version and op, then the fixed parts of each op around a
// host of at most 255 bytes.
const (
	fwdMaxHost   = 255
	fwdMaxHeader = 2 + 4 + 1 + fwdMaxHost + 2
)

var (
	errFwdVersion = errors.New("fwd: unknown header version")
	errFwdOp      = errors.New("fwd: unknown operation")
	errFwdHost    = errors.New("fwd: host name too long")
)

// appendRequest encodes r.
func appendRequest(b []byte, r fwdRequest) ([]byte, error) {
	b = append(b, fwdVersion, r.op)
	switch r.op {
	case fwdConnect, fwdListen, fwdForwarded:
		if len(r.host) > fwdMaxHost {
			return nil, errFwdHost
		}
		if r.op == fwdForwarded {
			b = binary.BigEndian.AppendUint32(b, r.id)
		}
		b = append(b, byte(len(r.host)))
		b = append(b, r.host...)
		b = binary.BigEndian.AppendUint16(b, r.port)
	case fwdClaim:
		b = append(b, r.ticket[:]...)
	case fwdWatch:
	default:
		return nil, errFwdOp
	}
	return b, nil
}

// readRequest reads one header from r within lim (the connection's
// in-flight budget and frame deadline; the zero value reads unbounded in
// time, so callers set a read deadline). Memory is bounded by
// fwdMaxHeader whatever the peer sends.
func readRequest(r io.Reader, lim core.FrameLimits) (fwdRequest, error) {
	var req fwdRequest
	head, err := lim.ReadBody(r, 2)
	if err != nil {
		return req, err
	}
	if head[0] != fwdVersion {
		return req, errFwdVersion
	}
	req.op = head[1]
	switch req.op {
	case fwdConnect, fwdListen, fwdForwarded:
		n := 1
		if req.op == fwdForwarded {
			n = 5
		}
		fixed, err := lim.ReadBody(r, n)
		if err != nil {
			return req, err
		}
		if req.op == fwdForwarded {
			req.id = binary.BigEndian.Uint32(fixed)
		}
		rest, err := lim.ReadBody(r, int(fixed[n-1])+2)
		if err != nil {
			return req, err
		}
		req.host = string(rest[:len(rest)-2])
		req.port = binary.BigEndian.Uint16(rest[len(rest)-2:])
	case fwdClaim:
		t, err := lim.ReadBody(r, fwdTicketLen)
		if err != nil {
			return req, err
		}
		copy(req.ticket[:], t)
	case fwdWatch:
	default:
		return req, errFwdOp
	}
	return req, nil
}

// decodeRequest decodes a whole header held in b; extra bytes are an
// error. It is readRequest for the fuzz target and tests.
func decodeRequest(b []byte) (fwdRequest, error) {
	r := &sliceReader{b: b}
	req, err := readRequest(r, core.FrameLimits{})
	if err != nil {
		return req, err
	}
	if len(r.b) != 0 {
		return req, errors.New("fwd: trailing bytes after the header")
	}
	return req, nil
}

// sliceReader reads b without the EOF-with-data of bytes.Reader variants.
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// Reply wire forms: two bytes (reason, detail); a listen that succeeded
// adds the bound port (2 bytes) and the listener's id (4 bytes).
const (
	fwdReplyLen       = 2
	fwdListenReplyLen = fwdReplyLen + 2 + 4
)

// readReply reads a reply; for an accepted listen also the port and id.
func readReply(r io.Reader, listen bool) (fwdReply, uint16, uint32, error) {
	var b [fwdListenReplyLen]byte
	if _, err := io.ReadFull(r, b[:fwdReplyLen]); err != nil {
		return fwdReply{}, 0, 0, err
	}
	rep := fwdReply{reason: xssh.RejectionReason(b[0]), detail: b[1]}
	if rep != replyOK || !listen {
		return rep, 0, 0, nil
	}
	if _, err := io.ReadFull(r, b[fwdReplyLen:]); err != nil {
		return fwdReply{}, 0, 0, err
	}
	return rep, binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), nil
}

// Notices on a listen's control stream over TCP+TLS: a ticket, the
// originator's address (length-prefixed text) and port.
func appendNotice(b []byte, ticket [fwdTicketLen]byte, orig string, port uint16) []byte {
	if len(orig) > fwdMaxHost {
		orig = orig[:fwdMaxHost]
	}
	b = append(b, ticket[:]...)
	b = append(b, byte(len(orig)))
	b = append(b, orig...)
	return binary.BigEndian.AppendUint16(b, port)
}

// readNotice reads one notice.
func readNotice(r io.Reader) (ticket [fwdTicketLen]byte, orig string, port uint16, err error) {
	var head [fwdTicketLen + 1]byte
	if _, err = io.ReadFull(r, head[:]); err != nil {
		return ticket, "", 0, err
	}
	copy(ticket[:], head[:fwdTicketLen])
	rest := make([]byte, int(head[fwdTicketLen])+2)
	if _, err = io.ReadFull(r, rest); err != nil {
		return ticket, "", 0, fmt.Errorf("fwd: notice: %w", noEOF(err))
	}
	return ticket, string(rest[:len(rest)-2]), binary.BigEndian.Uint16(rest[len(rest)-2:]), nil
}

// noEOF turns an EOF inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
