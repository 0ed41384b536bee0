package core

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// NodeCertificate returns a self-signed X.509 certificate over the node key,
// for TLS. Peers never validate it against a CA: they check the key inside
// it (see [NodeIDFromCertificate]), and crypto/tls checks that the peer
// holds the private key. The subject and DNS name are the NodeID.
func NodeCertificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("core: node key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	id, err := NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("core: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.String()},
		DNSNames:              []string{id.String()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("core: create node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("core: parse node certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// errNotNodeCert is returned for a certificate that carries no Ed25519 key.
var errNotNodeCert = errors.New("certificate does not carry an Ed25519 node key")

// NodeIDFromCertificate returns the NodeID of the Ed25519 key in a DER
// certificate. It returns an error for any other key type or a certificate
// that does not parse.
func NodeIDFromCertificate(der []byte) (NodeID, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return NodeID{}, fmt.Errorf("core: peer certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return NodeID{}, fmt.Errorf("core: peer %w", errNotNodeCert)
	}
	return NodeIDFromPublicKey(pub)
}

// peerNodeID returns the NodeID of the leaf of a verified handshake, or the
// zero NodeID when the peer presented no Ed25519 certificate.
func peerNodeID(cs tls.ConnectionState) NodeID {
	if len(cs.PeerCertificates) == 0 {
		return NodeID{}
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return NodeID{}
	}
	id, _ := NodeIDFromPublicKey(pub)
	return id
}

// acmeALPN is the TLS-ALPN-01 challenge protocol (RFC 8737). The challenge
// completes inside the handshake; the connection is then closed.
const acmeALPN = "acme-tls/1"

// serverTLSConfig returns the endpoint's TLS configuration: TLS 1.3 only,
// exactly the served ALPNs, the node certificate for alknet protocols and
// the web certificate (if any) for the standard ones. On alknet protocols a
// client certificate is requested but not required; it is not checked
// against any CA: its key is the client's identity, and crypto/tls verifies
// the client's handshake signature with it. Standard protocols request none,
// so browsers show no certificate picker. A client offering no ALPN is
// treated as offering noALPN. verify, if set, gives the alknet protocols'
// VerifyConnection for a client at a remote address: it refuses keys in
// the handshake. counts counts the alknet protocols' handshakes.
func serverTLSConfig(node tls.Certificate, web *WebCert, alpns, standardALPNs []string, noALPN string, verify func(remote net.Addr) func(tls.ConnectionState) error, counts *handshakeCounts) *tls.Config {
	protos := append([]string(nil), alpns...)
	if web != nil && web.acme {
		protos = append(protos, acmeALPN)
	}
	nodeCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   protos,
		ClientAuth:   tls.RequestClientCert,
		Certificates: []tls.Certificate{node},
	}
	standard := nodeCfg.Clone()
	standard.ClientAuth = tls.NoClientCert
	if web != nil {
		standard.Certificates = nil
		standard.GetCertificate = web.getCertificate
	}
	// Each returned config carries the current session ticket keys
	// explicitly, from rings that bound a ticket's life (crypto/tls's own
	// keys accept a ticket for 7 days). The two sides get separate keys,
	// so a ticket issued under the web certificate never resumes an
	// alknet protocol and the other way round.
	nodeKeys, webKeys := newTicketKeyRing(time.Now), newTicketKeyRing(time.Now)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: protos,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			offered := hello.SupportedProtos
			if len(offered) == 0 && noALPN != "" {
				offered = []string{noALPN}
			}
			if p := negotiate(protos, offered); p == acmeALPN || slices.Contains(standardALPNs, p) {
				c := standard.Clone()
				c.SetSessionTicketKeys(webKeys.keys())
				return c, nil
			}
			c := nodeCfg.Clone()
			c.SetSessionTicketKeys(nodeKeys.keys())
			// The closure below lives as long as the connection: it keeps
			// the remote address, not the ClientHello (~1.7 KiB parsed).
			var remote net.Addr
			if hello.Conn != nil {
				remote = hello.Conn.RemoteAddr()
			}
			var check func(tls.ConnectionState) error
			if verify != nil && remote != nil {
				check = verify(remote)
			}
			// VerifyConnection runs on resumed handshakes too, with the
			// certificate from the ticket: a key disabled after its
			// ticket was issued is refused all the same.
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				counts.add(cs.DidResume)
				if cs.DidResume && counts.logger != nil && remote != nil {
					p := Peer{RemoteAddr: remote, NodeID: peerNodeID(cs)}
					counts.logger.Debug("tls session resumed", "alpn", cs.NegotiatedProtocol, "remote_ip", p.RemoteIP(), "node", p.NodeID.ShortString())
				}
				if check != nil {
					return check(cs)
				}
				return nil
			}
			return c, nil
		},
	}
}

// handshakeCounts counts the TLS handshakes of alknet protocols that
// reached the client check, full and resumed, and logs resumptions at
// debug to logger, if set.
type handshakeCounts struct {
	full, resumed atomic.Uint64
	logger        *slog.Logger
}

func (h *handshakeCounts) add(resumed bool) {
	if resumed {
		h.resumed.Add(1)
	} else {
		h.full.Add(1)
	}
}

// Session tickets. A client that resumes a TLS 1.3 session presents no
// certificate: its identity is the certificate stored in the ticket, which
// the node encrypted with a key only this process holds. Ticket keys are
// random per process (a restart forgets every ticket) and rotate every
// ticketKeyPeriod; a ticket is accepted under the key that issued it and
// the one after, so at most [MaxTicketAge] after it was issued.
const (
	ticketKeyPeriod = 12 * time.Hour
	// MaxTicketAge bounds how long a node accepts a session ticket, and
	// how long a client's [SessionCache] keeps one.
	MaxTicketAge = 2 * ticketKeyPeriod
)

// ticketKeyRing holds the current session ticket key and the one before.
type ticketKeyRing struct {
	now func() time.Time

	mu        sync.Mutex
	cur, prev [32]byte
	curAt     time.Time // zero: no current key yet
	prevAt    time.Time // zero: no previous key
}

func newTicketKeyRing(now func() time.Time) *ticketKeyRing {
	return &ticketKeyRing{now: now}
}

// keys returns the keys for a handshake, the first encrypting new tickets,
// all decrypting. A key issues tickets for ticketKeyPeriod after it was
// made and decrypts them until MaxTicketAge after it was made, so no
// ticket is accepted longer than MaxTicketAge.
func (r *ticketKeyRing) keys() [][32]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.curAt.IsZero() || now.Sub(r.curAt) >= ticketKeyPeriod {
		r.prev, r.prevAt = r.cur, r.curAt
		if _, err := rand.Read(r.cur[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		r.curAt = now
	}
	if !r.prevAt.IsZero() && now.Sub(r.prevAt) < MaxTicketAge {
		return [][32]byte{r.cur, r.prev}
	}
	return [][32]byte{r.cur}
}

// negotiate mirrors crypto/tls's choice: the first server protocol the client
// offers.
func negotiate(server, client []string) string {
	for _, s := range server {
		for _, c := range client {
			if s == c {
				return s
			}
		}
	}
	return ""
}

// errKeyDisabled ends the handshake of a client whose key config disables.
var errKeyDisabled = errors.New("core: client key is disabled")

// tlsAlertBadCertificate is the TLS alert a node sends a client whose key
// it refuses (RFC 8446: bad_certificate).
const tlsAlertBadCertificate = 42

// tlsAlertNoApplicationProtocol is the alert a node sends a client that
// offers no ALPN it serves (RFC 7301).
const tlsAlertNoApplicationProtocol = 120

// IsALPNRefused reports whether err, from dialing a node, says that the
// node serves none of the protocols offered (the no_application_protocol
// alert, on either transport): a client with an older protocol to fall
// back to tries that.
func IsALPNRefused(err error) bool {
	var te *quic.TransportError
	if errors.As(err, &te) {
		return te.Remote && te.ErrorCode == quic.TransportErrorCode(0x100+tlsAlertNoApplicationProtocol)
	}
	return err != nil && strings.Contains(err.Error(), "no application protocol")
}

// IsKeyRefused reports whether err, from dialing a node or from a
// connection to it, says that the node refused the client's key in the
// TLS handshake (a bad_certificate alert: the key is disabled in its
// config). A client that redials on network errors gives up on this one.
func IsKeyRefused(err error) bool {
	var te *quic.TransportError
	if errors.As(err, &te) {
		return te.Remote && te.ErrorCode == quic.TransportErrorCode(0x100+tlsAlertBadCertificate)
	}
	// crypto/tls reports an alert received on TCP as this *net.OpError;
	// its alert type is not exported.
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		strings.HasSuffix(oe.Err.Error(), "bad certificate")
}
