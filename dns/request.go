package dns

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"

	"github.com/alkdev/alknet/core"
)

// Request kinds on alknet/dns (docs/protocols/dns.md). A DNS query there has
// message ID 0, so its first two bytes are zero; these magics are not.
var (
	magicPublish  = [2]byte{'P', 'K'} // "PK" ‖ key ‖ signature ‖ timestamp ‖ packet
	magicFetch    = [2]byte{'G', 'K'} // "GK" ‖ key
	magicResponse = [2]byte{'P', 'R'} // "PR" ‖ status(2) ‖ body
)

// Request is a decoded alknet/dns request other than a DNS query.
type Request struct {
	// Publish is the packet to store, for a publish request.
	Publish *SignedPacket
	// Fetch is the key whose packet is asked for, for a fetch request.
	Fetch core.NodeID
}

// DecodeRequest decodes a publish or fetch request (the frame's payload).
// A publish request's packet is verified; its errors wrap the signed-packet
// sentinels ([ErrBadSignature], [ErrTooLarge], …).
func DecodeRequest(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, fmt.Errorf("dns: request: %w: %d bytes", ErrBadPacket, len(b))
	}
	switch [2]byte(b[:2]) {
	case magicPublish:
		p, err := DecodeSignedPacket(b[2:])
		return Request{Publish: p}, err
	case magicFetch:
		if len(b) != 2+ed25519.PublicKeySize {
			return Request{}, fmt.Errorf("dns: fetch request: %w", ErrBadKey)
		}
		id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[2:]))
		if err != nil {
			return Request{}, fmt.Errorf("dns: fetch request: %w", ErrBadKey)
		}
		return Request{Fetch: id}, nil
	}
	return Request{}, fmt.Errorf("dns: request: %w: unknown kind", ErrBadPacket)
}

// EncodePublish encodes a publish request for p.
func EncodePublish(p *SignedPacket) []byte { return append(magicPublish[:], p.Bytes()...) }

// EncodeFetch encodes a fetch request for key.
func EncodeFetch(key core.NodeID) []byte { return append(magicFetch[:], key.PublicKey()...) }

// DecodeResponse decodes the answer to a publish or fetch request: an HTTP
// status code (204 stored, 200 found, 4xx as the relay's) and its body (the
// signed packet on 200, a short reason otherwise).
func DecodeResponse(b []byte) (status int, body []byte, err error) {
	if len(b) < 4 || [2]byte(b[:2]) != magicResponse {
		return 0, nil, errors.New("dns: response: not an alknet/dns response")
	}
	return int(binary.BigEndian.Uint16(b[2:4])), b[4:], nil
}

func encodeResponse(status int, body []byte) []byte {
	b := append(magicResponse[:], 0, 0)
	binary.BigEndian.PutUint16(b[2:], uint16(status))
	return append(b, body...)
}

// serveRequest answers a publish or fetch request on alknet/dns.
func (s *Server) serveRequest(conn core.Conn, msg []byte) ([]byte, error) {
	req, err := DecodeRequest(msg)
	if err != nil {
		if errors.Is(err, ErrBadPacket) && [2]byte(msg[:2]) != magicPublish {
			return nil, err // neither DNS nor a request: a protocol error
		}
		return s.errorResponse(err), nil
	}
	if req.Publish == nil {
		p, ok := s.store.Get(req.Fetch)
		if !ok {
			return encodeResponse(http.StatusNotFound, []byte("not found")), nil
		}
		return encodeResponse(http.StatusOK, p.Bytes()), nil
	}
	peer := conn.Peer()
	if err := s.cfg.PublishAccess.Check(peer.Identity); err != nil {
		conn.Logger().Warn("dns: publish refused", "err", err)
		return s.errorResponse(ErrForbidden), nil
	}
	if !s.limiter.allow(peer.NodeID.String()) {
		return s.errorResponse(ErrRateLimited), nil
	}
	if err := s.store.Put(req.Publish, Precondition{}); err != nil {
		return s.errorResponse(err), nil
	}
	return encodeResponse(http.StatusNoContent, nil), nil
}

func (s *Server) errorResponse(err error) []byte {
	st := Status(err)
	if st == http.StatusInternalServerError {
		s.logger.Error("dns: storing a signed packet", "err", err)
		return encodeResponse(st, []byte("internal error"))
	}
	return encodeResponse(st, []byte(http.StatusText(st)))
}

// Status returns the relay HTTP status for an error of this package: 400,
// 403, 409, 412, 413, 428, 429, 507; 500 for anything else; 204 for nil.
func Status(err error) int {
	switch {
	case err == nil:
		return http.StatusNoContent
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadKey), errors.Is(err, ErrBadSignature), errors.Is(err, ErrBadPacket):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotNewer):
		return http.StatusConflict
	case errors.Is(err, ErrCASFailed):
		return http.StatusPreconditionFailed
	case errors.Is(err, ErrCASRequired):
		return http.StatusPreconditionRequired
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrStoreFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
