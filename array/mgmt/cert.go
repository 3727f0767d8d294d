package mgmt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertFile and KeyFile are where a group keeps its API certificate.
func CertFile(dir string) string { return filepath.Join(dir, "mgmt", "cert.pem") }

// KeyFile is the certificate's private key (0600).
func KeyFile(dir string) string { return filepath.Join(dir, "mgmt", "key.pem") }

// LoadOrCreateCert loads the group's certificate, or creates a self-signed
// ECDSA P-256 one for host on first use. It returns the certificate and
// its SHA-256 fingerprint.
func LoadOrCreateCert(dir, host string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(CertFile(dir), KeyFile(dir))
	if err == nil {
		return cert, Fingerprint(cert.Certificate[0]), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, "", fmt.Errorf("management API certificate in %s: %w; remove both files to make a new one", filepath.Dir(CertFile(dir)), err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hitkit lab group " + host, Organization: []string{"hitkit"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if err := os.MkdirAll(filepath.Dir(CertFile(dir)), 0o700); err != nil {
		return tls.Certificate{}, "", err
	}
	if err := writeFile(KeyFile(dir), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		return tls.Certificate{}, "", err
	}
	if err := writeFile(CertFile(dir), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return tls.Certificate{}, "", err
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, Fingerprint(der), nil
}

// writeFile writes a 0600 file atomically.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Fingerprint is the SHA-256 of a DER certificate, as upper-case hex pairs
// joined by colons (the form `openssl x509 -fingerprint -sha256` prints).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// FingerprintFile reads the fingerprint of the certificate that a group in
// dir serves, for `hitkit lab up` and `lab status` to print.
func FingerprintFile(dir string) (string, error) {
	b, err := os.ReadFile(CertFile(dir))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s holds no PEM certificate", CertFile(dir))
	}
	return Fingerprint(blk.Bytes), nil
}
