package core

import (
	"crypto/tls"
	"errors"
	"fmt"

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

// WebCertFromFiles loads a PEM certificate chain and key. The files are read
// once, now.
func WebCertFromFiles(certFile, keyFile string) (*WebCert, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("core: web certificate %s: %w", certFile, err)
	}
	return &WebCert{getCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}, nil
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
