package core

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// WebCert is a certificate browsers and stock clients accept, presented on
// the standard ALPNs ([Config.StandardALPNs]); alknet protocols always present the
// node certificate. Build one with [WebCertFromFiles] or [WebCertACME].
type WebCert struct {
	getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	acme           bool
}

// WebCertFromFiles loads a PEM certificate chain and key. It reads them
// again when either file changes (looked at on a handshake, at most once
// every webCertRecheck), so a renewed certificate (certbot's, or the
// node's own self-signed one) is served without a restart. A change that
// does not load (a renewal half-written) keeps the last good pair, and the
// files are tried again at the next look.
func WebCertFromFiles(certFile, keyFile string) (*WebCert, error) {
	f := &fileCert{certFile: certFile, keyFile: keyFile}
	if err := f.load(); err != nil {
		return nil, err
	}
	return &WebCert{getCertificate: f.get}, nil
}

// webCertRecheck is how often a handshake may look at the files of a
// [WebCertFromFiles] for a change.
var webCertRecheck = time.Minute

// fileCert is a certificate kept in files, reloaded when they change.
type fileCert struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	stamp    [2]fileStamp // of certFile and keyFile when cert was loaded
	lookedAt time.Time
}

// fileStamp tells whether a file changed: its modification time and size.
type fileStamp struct {
	modNano, size int64
}

// stamps returns the files' stamps.
func (f *fileCert) stamps() ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return st, err
		}
		st[i] = fileStamp{fi.ModTime().UnixNano(), fi.Size()}
	}
	return st, nil
}

// load reads the pair; the caller holds mu or owns f alone.
func (f *fileCert) load() error {
	st, err := f.stamps()
	if err == nil {
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(f.certFile, f.keyFile); err == nil {
			f.cert, f.stamp = &cert, st
			return nil
		}
	}
	return fmt.Errorf("core: web certificate %s: %w", f.certFile, err)
}

func (f *fileCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.lookedAt) >= webCertRecheck {
		f.lookedAt = now
		if st, err := f.stamps(); err == nil && st != f.stamp {
			_ = f.load() // on failure the last good pair stays
		}
	}
	return f.cert, nil
}

// ACMEConfig configures certificates from an ACME CA with the TLS-ALPN-01
// challenge, which needs the endpoint reachable on port 443.
type ACMEConfig struct {
	// Domains are the names to get certificates for; required.
	Domains []string
	// CacheDir keeps account keys and certificates; required.
	CacheDir string
	// Email is the contact address given to the CA; optional.
	Email string
	// DirectoryURL is the CA's ACME directory; empty means Let's Encrypt.
	DirectoryURL string
}

// WebCertACME returns a web certificate obtained and renewed on demand
// through golang.org/x/crypto/acme/autocert.
func WebCertACME(cfg ACMEConfig) (*WebCert, error) {
	if len(cfg.Domains) == 0 || cfg.CacheDir == "" {
		return nil, errors.New("core: acme needs domains and a cache directory")
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.CacheDir),
		HostPolicy: autocert.HostWhitelist(cfg.Domains...),
		Email:      cfg.Email,
	}
	if cfg.DirectoryURL != "" {
		m.Client = &acme.Client{DirectoryURL: cfg.DirectoryURL}
	}
	return &WebCert{acme: true, getCertificate: m.GetCertificate}, nil
}
