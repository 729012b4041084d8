package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificate is LoadCAFile's error for a file that holds no PEM
// certificate.
var ErrNoCertificate = errors.New("no certificate found")

// LoadCAFile reads a ca_file (redis, smtp, imap): the PEM bundle of the
// authorities to trust instead of the system's. An empty path is no pool
// and no error (the system's roots). The validation checks the same way,
// so that a configuration that passes check-config loads.
func LoadCAFile(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCertificate)
	}
	return pool, nil
}
