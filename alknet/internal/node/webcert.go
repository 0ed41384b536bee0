package node

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
)

// The self-signed web certificate: browsers refuse Ed25519 certificates,
// so when [tls] names neither a certificate nor ACME the node presents an
// ECDSA P-256 one on the standard ALPNs. Its key is kept, so its pin
// stays the same; the certificate is made again when it nears its end or
// its names change.
const (
	// WebKeyFile is the self-signed certificate's key in the data dir.
	WebKeyFile = "web-key.pem"
	// WebCertFile is the self-signed certificate in the data dir.
	WebCertFile = "web-cert.pem"
	// webCertLife is how long a self-signed certificate is valid.
	webCertLife = 365 * 24 * time.Hour
	// webCertRenew is how long before its end a certificate is replaced,
	// at start or by a running node's look every webCertCheck.
	webCertRenew = 30 * 24 * time.Hour
	// webCertCheck is how often a running node looks whether its
	// self-signed certificate is due for renewal.
	webCertCheck = 12 * time.Hour
)

// SPKIPin returns the pin of a public key in the form curl's
// --pinnedpubkey takes: "sha256//" and the base64 SHA-256 of its DER
// SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list
// takes the part after "//").
func SPKIPin(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

// WebPin returns the pin ([SPKIPin]) of the web certificate a node with
// data dir dir and section t presents on the standard ALPNs: of its
// cert_file, or of the self-signed certificate's key, made now if the
// node has not made it yet. With ACME there is no fixed key: "".
func WebPin(dir string, t config.TLS) (string, error) {
	switch {
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return "", fmt.Errorf("web certificate %s: %w", t.CertFile, err)
		}
		return SPKIPin(cert.Leaf.PublicKey)
	case len(t.ACMEDomains) > 0:
		return "", nil
	}
	key, err := webKey(dir)
	if err != nil {
		return "", err
	}
	return SPKIPin(key.Public())
}

// webKey loads the self-signed certificate's key from dir, or makes and
// keeps one. Two processes making it at once agree on the first one
// written.
func webKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, WebKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := newWebKey(dir, path); err != nil {
			return nil, fmt.Errorf("web certificate key: %w", err)
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("web certificate key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("web certificate key %s: no PEM private key (remove the file to make a new one)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("web certificate key %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("web certificate key %s: not an ECDSA P-256 key (remove the file to make a new one)", path)
	}
	return ek, nil
}

// newWebKey makes a key and writes it to path, unless path exists by now.
func newWebKey(dir, path string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	err = writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

// writeNew writes data to a new file at path, whole or not at all; it
// fails with [os.ErrExist] when path exists.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// webNames returns the names the self-signed certificate covers: the
// configured ones, localhost, the host name and the listen address, or
// every interface address when it listens on all of them.
func webNames(configured []string, listen string) (dnsNames []string, ips []net.IP) {
	names := append([]string{"localhost"}, configured...)
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	ipSet := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					ipSet = append(ipSet, n.IP)
				}
			}
		}
	} else {
		names = append(names, host)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ipSet = append(ipSet, ip)
		} else {
			dnsNames = append(dnsNames, strings.ToLower(n))
		}
	}
	for _, ip := range ipSet {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	slices.Sort(dnsNames)
	slices.SortFunc(ips, func(a, b net.IP) int { return bytes.Compare(a, b) })
	return slices.Compact(dnsNames), ips
}

// selfSignedWebCert returns the self-signed web certificate of the node
// with data dir dir: the kept one if it is valid for more than
// webCertRenew after now, for this key and exactly these names; else a
// new one, written over it. changed tells which.
func selfSignedWebCert(dir string, dnsNames []string, ips []net.IP, now time.Time) (cert tls.Certificate, changed bool, err error) {
	key, err := webKey(dir)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	path := filepath.Join(dir, WebCertFile)
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil && block.Type == "CERTIFICATE" {
			if c, err := x509.ParseCertificate(block.Bytes); err == nil && keptCertFits(c, key, dnsNames, ips, now) {
				return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}, false, nil
			}
		}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "alknet node", Organization: []string{"alknet self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(webCertLife),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("web certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("web certificate: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("web certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, true, nil
}

// keptCertFits tells whether a kept certificate may be served again.
func keptCertFits(c *x509.Certificate, key *ecdsa.PrivateKey, dnsNames []string, ips []net.IP, now time.Time) bool {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) || now.Before(c.NotBefore) || now.Add(webCertRenew).After(c.NotAfter) {
		return false
	}
	return slices.Equal(c.DNSNames, dnsNames) && slices.EqualFunc(c.IPAddresses, ips, net.IP.Equal)
}
