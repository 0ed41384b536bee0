package core

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWebCertFromFilesReloads: a renewed pair is served from the next
// look at the files on; a half-written one keeps the last good pair.
func TestWebCertFromFilesReloads(t *testing.T) {
	recheck := webCertRecheck
	webCertRecheck = 0
	t.Cleanup(func() { webCertRecheck = recheck })
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	stamp := time.Now().Add(-time.Hour)
	write := func(cn string) {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writeStamped(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), &stamp)
		writeStamped(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), &stamp)
	}
	served := func(w *WebCert) string {
		t.Helper()
		c, err := w.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	write("first")
	w, err := WebCertFromFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cn := served(w); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	write("renewed")
	if cn := served(w); cn != "renewed" {
		t.Fatalf("after renewal served %q, want renewed", cn)
	}
	writeStamped(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nhalf"), &stamp)
	if cn := served(w); cn != "renewed" {
		t.Fatalf("with a half-written file served %q, want the last good pair", cn)
	}
	write("third")
	if cn := served(w); cn != "third" {
		t.Fatalf("after the next renewal served %q, want third", cn)
	}
}

// writeStamped writes name with a modification time one second after the
// last, so that a change shows on file systems with coarse times.
func writeStamped(t *testing.T, name string, data []byte, stamp *time.Time) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	*stamp = stamp.Add(time.Second)
	if err := os.Chtimes(name, *stamp, *stamp); err != nil {
		t.Fatal(err)
	}
}
