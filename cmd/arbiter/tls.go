package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a pair of PEM files, re-reading
// them when either changes (a rotation by cert-manager or an operator), so
// that certificates are renewed without a restart. A pair that fails to
// load keeps the previous certificate serving.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// latest is the later modification time of the two files.
func (r *certReloader) latest() (time.Time, error) {
	var t time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return t, err
		}
		if st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t, nil
}

func (r *certReloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	mt, err := r.latest()
	if err == nil && r.cert != nil && !mt.After(r.modTime) {
		return r.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if lerr != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the one that worked
		}
		return nil, fmt.Errorf("tls: %w", lerr)
	}
	r.cert, r.modTime = &cert, mt
	return r.cert, nil
}

// config is the server's TLS configuration: TLS 1.2 at least, the
// certificate re-read as it changes.
func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.get() },
	}
}
