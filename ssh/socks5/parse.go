package socks5

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// Protocol constants (RFC 1928, RFC 1929).
const (
	version5      = 0x05
	authVersion   = 0x01 // RFC 1929 subnegotiation
	methodNoAuth  = 0x00
	methodUserPwd = 0x02
	methodNone    = 0xff

	cmdConnect      = 0x01
	cmdBind         = 0x02
	cmdUDPAssociate = 0x03

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// Reply is the REP field of a reply (RFC 1928 §6).
type Reply byte

// Replies the server sends.
const (
	Succeeded               Reply = 0x00
	GeneralFailure          Reply = 0x01
	NotAllowed              Reply = 0x02
	NetworkUnreachable      Reply = 0x03
	HostUnreachable         Reply = 0x04
	ConnectionRefused       Reply = 0x05
	TTLExpired              Reply = 0x06
	CommandNotSupported     Reply = 0x07
	AddressTypeNotSupported Reply = 0x08
)

var replyNames = [...]string{
	"succeeded", "general failure", "connection not allowed by ruleset", "network unreachable",
	"host unreachable", "connection refused", "TTL expired", "command not supported",
	"address type not supported",
}

// String returns the reply's name from RFC 1928.
func (r Reply) String() string {
	if int(r) < len(replyNames) {
		return replyNames[r]
	}
	return "reply 0x" + strconv.FormatUint(uint64(r), 16)
}

// replyError is a malformed or unsupported request that gets a reply
// before the connection closes.
type replyError struct {
	reply Reply
	msg   string
}

func (e *replyError) Error() string { return "socks5: " + e.msg }

// errVersion is a message of another protocol version: closed unanswered.
var errVersion = errors.New("socks5: not SOCKS version 5")

// request is a client's request (RFC 1928 §4). host is an IP address in
// its canonical text form or a domain name as the client sent it.
type request struct {
	cmd  byte
	host string
	port uint16
}

// addr returns host:port, IPv6 in brackets.
func (r request) addr() string { return net.JoinHostPort(r.host, strconv.Itoa(int(r.port))) }

// readGreeting reads the version identifier and method selection message
// (RFC 1928 §3) and returns the methods offered.
func readGreeting(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("socks5: greeting: %w", err)
	}
	if hdr[0] != version5 {
		return nil, errVersion
	}
	if hdr[1] == 0 {
		return nil, errors.New("socks5: greeting offers no method")
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, fmt.Errorf("socks5: greeting: %w", err)
	}
	return methods, nil
}

// readUserPass reads a username/password request (RFC 1929 §2).
func readUserPass(r io.Reader) (user, pass []byte, err error) {
	var ver [1]byte
	if _, err := io.ReadFull(r, ver[:]); err != nil {
		return nil, nil, fmt.Errorf("socks5: auth: %w", err)
	}
	if ver[0] != authVersion {
		return nil, nil, errors.New("socks5: auth: not subnegotiation version 1")
	}
	if user, err = readString(r); err != nil {
		return nil, nil, fmt.Errorf("socks5: auth: %w", err)
	}
	if pass, err = readString(r); err != nil {
		return nil, nil, fmt.Errorf("socks5: auth: %w", err)
	}
	return user, pass, nil
}

// readString reads a length byte and that many bytes.
func readString(r io.Reader) ([]byte, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, n[0])
	_, err := io.ReadFull(r, b)
	return b, err
}

// readRequest reads a request (RFC 1928 §4–5). An unknown address type or
// a domain name no resolver would take is a *replyError; the command is
// returned as sent, for the caller to refuse.
func readRequest(r io.Reader) (request, error) {
	var hdr [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return request{}, fmt.Errorf("socks5: request: %w", err)
	}
	if hdr[0] != version5 {
		return request{}, errVersion
	}
	req := request{cmd: hdr[1]}
	switch hdr[3] {
	case atypIPv4:
		var a [4]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return request{}, fmt.Errorf("socks5: request: %w", err)
		}
		req.host = netip.AddrFrom4(a).String()
	case atypIPv6:
		var a [16]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return request{}, fmt.Errorf("socks5: request: %w", err)
		}
		req.host = netip.AddrFrom16(a).Unmap().String()
	case atypDomain:
		name, err := readString(r)
		if err != nil {
			return request{}, fmt.Errorf("socks5: request: %w", err)
		}
		if a, err := netip.ParseAddr(string(name)); err == nil && a.Zone() == "" {
			req.host = a.Unmap().String() // an address sent as a name
		} else if validName(name) {
			req.host = string(name)
		} else {
			return request{}, &replyError{HostUnreachable, "request: not a host name"}
		}
	default:
		return request{}, &replyError{AddressTypeNotSupported, fmt.Sprintf("request: address type %#x", hdr[3])}
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return request{}, fmt.Errorf("socks5: request: %w", err)
	}
	req.port = binary.BigEndian.Uint16(port[:])
	return req, nil
}

// validName reports whether a domain name is made of the bytes host names
// use (letters, digits, '-', '_', '.'), so it reaches the server's resolver
// as sent and cannot be mistaken for an address. The server decides the
// rest.
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// appendReply appends a reply with bound address bnd (zero: 0.0.0.0:0).
func appendReply(b []byte, rep Reply, bnd netip.AddrPort) []byte {
	b = append(b, version5, byte(rep), 0)
	a := bnd.Addr()
	switch {
	case a.Is4() || a.Is4In6():
		a4 := a.Unmap().As4()
		b = append(append(b, atypIPv4), a4[:]...)
	case a.Is6():
		a16 := a.As16()
		b = append(append(b, atypIPv6), a16[:]...)
	default:
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, bnd.Port())
}
