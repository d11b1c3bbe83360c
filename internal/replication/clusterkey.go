package replication

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrKeyMismatch is what a TLS handshake with a node of another cluster
// key fails with, on the side that sees the other's certificate.
var ErrKeyMismatch = errors.New("cluster key mismatch")

// KeySize is the length of a cluster key.
const KeySize = 32

// tlsConfig returns the TLS configuration both ends of a replication
// connection use. The cluster key is the only secret: it derives an
// Ed25519 key pair (HKDF-SHA256), every node presents a certificate for
// that public key, and each side accepts only a peer that presents the
// same public key, which only a holder of the cluster key can prove. So
// connections are mutually authenticated and encrypted (TLS 1.3) with no
// certificate authority to run, and a node with another key is refused
// during the handshake, before it sends or sees a session.
func tlsConfig(key []byte) (*tls.Config, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("replication: cluster key is %d bytes, want %d", len(key), KeySize)
	}
	seed, err := hkdf.Key(sha256.New, key, nil, "shoal replication tls v1", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("replication: cluster certificate: %w", err)
	}
	verify := func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return fmt.Errorf("%w: peer sent no certificate", ErrKeyMismatch)
		}
		cert, err := x509.ParseCertificate(rawCerts[0])
		if err != nil {
			return fmt.Errorf("%w: %v", ErrKeyMismatch, err)
		}
		peer, ok := cert.PublicKey.(ed25519.PublicKey)
		if !ok || !bytes.Equal(peer, pub) {
			return ErrKeyMismatch
		}
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAnyClientCert,
		// The peer is checked by VerifyPeerCertificate (same public key),
		// not against a CA and a host name: there are none.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verify,
	}, nil
}
