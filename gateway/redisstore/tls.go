package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is how Signpost speaks TLS to Redis: TLS 1.2 at least, and the
// server's certificate checked, always, against the certificate
// authorities in the PEM file caFile ("" for the system's) and against
// serverName ("" for the host each node is reached at, which go-redis's
// cluster client dials node by node). There is deliberately no way to skip
// the check: a Redis reached without it could be anyone's, and would be
// given the password and every referral.
func TLSConfig(caFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("the CA file holds no PEM certificate")
	}
	c.RootCAs = roots
	return c, nil
}
