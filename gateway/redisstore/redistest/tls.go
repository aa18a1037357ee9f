package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test, and the one
// certificate it signs for every node (they all listen on 127.0.0.1), as
// PEM files in a temporary directory: what a private CA of a managed Redis
// gives an operator, without anything kept between test runs.
type testCA struct {
	CAFile, CertFile, KeyFile string
	// Roots trusts the CA alone, as a client given CAFile does.
	Roots *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("make the test CA's key: %v", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Signpost test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("make the test CA: %v", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("make the nodes' key: %v", err)
	}
	nodeTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// Server for clients, client for the nodes' own links to each other
		// (the cluster bus and replication present it too).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, ca, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("make the nodes' certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(nodeKey)
	if err != nil {
		t.Fatalf("encode the nodes' key: %v", err)
	}
	c := &testCA{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "node.pem"),
		KeyFile: filepath.Join(dir, "node-key.pem"), Roots: x509.NewCertPool()}
	c.Roots.AddCert(ca)
	for file, block := range map[string]*pem.Block{
		c.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
		c.CertFile: {Type: "CERTIFICATE", Bytes: nodeDER},
		c.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatalf("write %s: %v", filepath.Base(file), err)
		}
	}
	return c
}

// clientTLS is how the helpers' own clients reach a node: trusting the
// test CA only, and checking the node's name as any client would.
func (c *testCA) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: c.Roots, MinVersion: tls.VersionTLS12}
}

// serverArgs are redis-server's arguments to serve TLS only, on port, with
// the cluster bus and replication over TLS as well, and no client
// certificate asked for (managed clusters authenticate with a password).
func (c *testCA) serverArgs(port string) []string {
	return []string{"--port", "0", "--tls-port", port,
		"--tls-cert-file", c.CertFile, "--tls-key-file", c.KeyFile, "--tls-ca-cert-file", c.CAFile,
		"--tls-auth-clients", "no", "--tls-replication", "yes", "--tls-cluster", "yes"}
}
