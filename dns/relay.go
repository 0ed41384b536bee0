package dns

import (
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
)

// relayContentType is the media type pkarr relays use for payloads.
const relayContentType = "application/pkarr.org/relays#payload"

// RelayHandler returns an http.Handler for the pkarr relay API, keyed by the
// last path segment: mount it at "/pkarr/" to serve "/pkarr/<z32>".
//
//   - PUT with body signature ‖ timestamp ‖ packet stores the packet: 204;
//     400 bad key, signature or packet; 409 timestamp not newer; 412
//     If-Match failed; 413 too large; 428 If-Match required (when
//     configured); 429 rate limited (per remote IP); 507 the store is full
//     ([Config.RelayMaxPackets]) and the key is not held yet.
//   - GET returns the same body (200), honouring If-Modified-Since (304), with
//     Last-Modified, ETag (the timestamp) and Cache-Control max-age (the
//     smallest record TTL); 404 when no packet is held.
//
// The signature is the authorisation: anyone may store a packet for a key
// it signs with. CORS is open, as relays require.
func (s *Server) RelayHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, If-Match, If-None-Match, If-Modified-Since")
		key, err := core.ParseNodeID(path.Base(r.URL.Path))
		if err != nil && r.Method != http.MethodOptions {
			http.Error(w, "bad public key", http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet, http.MethodHead:
			s.relayGet(w, r, key)
		case http.MethodPut:
			s.relayPut(w, r, key)
		default:
			h.Set("Allow", "GET, PUT, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func (s *Server) relayGet(w http.ResponseWriter, r *http.Request, key core.NodeID) {
	p, ok := s.store.Get(key)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	mod := p.Time().UTC().Truncate(time.Second)
	h := w.Header()
	h.Set("Last-Modified", mod.Format(http.TimeFormat))
	h.Set("ETag", etag(p.ts))
	h.Set("Cache-Control", "public, max-age="+strconv.FormatUint(uint64(p.minTTL(DefaultSignedTTL)), 10))
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !mod.After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", relayContentType)
	_, _ = w.Write(p.RelayPayload())
}

func (s *Server) relayPut(w http.ResponseWriter, r *http.Request, key core.NodeID) {
	status, reason := s.relayStore(r, key)
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	http.Error(w, reason, status)
}

// relayStore checks and stores a PUT; it returns the status and a short
// reason.
func (s *Server) relayStore(r *http.Request, key core.NodeID) (int, string) {
	ip := remoteIP(r)
	if !s.limiter.allow(ip) {
		return Status(ErrRateLimited), ErrRateLimited.Error()
	}
	cond, err := precondition(r.Header)
	if err == nil && s.cfg.RequireIfMatch && !cond.set() {
		err = ErrCASRequired
	}
	if err != nil {
		return Status(err), err.Error()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRelayPayloadBytes+1))
	if err != nil {
		return http.StatusBadRequest, "reading the body failed"
	}
	p, err := DecodeRelayPayload(key, body)
	if err == nil {
		err = s.store.put(p, cond, s.cfg.RelayMaxPackets)
	}
	st := Status(err)
	if st == http.StatusInternalServerError {
		s.logger.Error("dns: relay store", "err", err)
		return st, "internal error"
	}
	if err != nil {
		return st, strings.TrimPrefix(err.Error(), "dns: signed packet: ")
	}
	return st, ""
}

// precondition reads If-Match (the stored packet's ETag, its timestamp) and
// If-None-Match: *.
func precondition(h http.Header) (Precondition, error) {
	var c Precondition
	if v := h.Get("If-Match"); v != "" {
		ts, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil {
			return c, ErrCASFailed
		}
		c.IfMatch = &ts
	}
	c.IfNoneMatch = strings.TrimSpace(h.Get("If-None-Match")) == "*"
	return c, nil
}

func etag(ts uint64) string { return `"` + strconv.FormatUint(ts, 10) + `"` }

// remoteIP is the request's peer address without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
