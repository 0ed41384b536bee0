package dns

import (
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"strconv"

	mdns "github.com/miekg/dns"
)

// dohContentType is the media type of DNS messages over HTTPS (RFC 8484).
const dohContentType = "application/dns-message"

// DoHHandler returns an http.Handler for DNS over HTTPS (RFC 8484): GET
// with ?dns=<base64url message> and POST with an application/dns-message
// body. Mount it at "/dns-query". Answers carry Cache-Control max-age equal
// to their smallest TTL.
func (s *Server) DoHHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg []byte
		switch r.Method {
		case http.MethodGet:
			b, err := base64.RawURLEncoding.DecodeString(r.URL.Query().Get("dns"))
			if err != nil || len(b) == 0 {
				http.Error(w, "bad dns parameter", http.StatusBadRequest)
				return
			}
			msg = b
		case http.MethodPost:
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != dohContentType {
				http.Error(w, "want "+dohContentType, http.StatusUnsupportedMediaType)
				return
			}
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, mdns.MaxMsgSize))
			if err != nil {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			msg = b
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		req := new(mdns.Msg)
		if err := req.Unpack(msg); err != nil {
			http.Error(w, "malformed DNS message", http.StatusBadRequest)
			return
		}
		resp := s.Answer(req, 0)
		if resp == nil {
			http.Error(w, "not a query", http.StatusBadRequest)
			return
		}
		out, err := resp.Pack()
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", dohContentType)
		w.Header().Set("Cache-Control", "max-age="+strconv.FormatUint(uint64(minTTL(resp)), 10))
		_, _ = w.Write(out)
	})
}

// minTTL is the smallest TTL in an answer (RFC 8484 §5.1); 0 when it has
// no records.
func minTTL(m *mdns.Msg) uint32 {
	var ttl uint32
	first := true
	for _, sec := range [][]mdns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if first || rr.Header().Ttl < ttl {
				ttl, first = rr.Header().Ttl, false
			}
		}
	}
	return ttl
}
