package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
)

// certReloader serves the certificate in a pair of PEM files, re-reading
// them when either changes (a rotation by cert-manager or an operator), so
// that certificates are renewed without a restart. A pair that fails to
// load keeps the previous certificate serving.
type certReloader struct {
	certFile, keyFile string

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string // the files' modification times and sizes when loaded
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// current is the files' modification times and sizes: any change, even
// to an older time (a copy that keeps times, a restore), means a reload.
func (r *certReloader) current() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return b.String(), nil
}

func (r *certReloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.current()
	if err == nil && r.cert != nil && stamp == r.stamp {
		return r.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if lerr != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the one that worked
		}
		return nil, fmt.Errorf("tls: %w", lerr)
	}
	r.cert, r.stamp = &cert, stamp
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
