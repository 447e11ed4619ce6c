package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/arbiter-nba/arbiter/server"
)

// serveHealth serves a real Arbiter gRPC server (the health service the
// server registers, with every service's status) on a loopback port.
func serveHealth(t *testing.T, opts ...grpc.ServerOption) (*server.Server, string) {
	t.Helper()
	s, err := server.New(knownHCPs(1), nil, nil, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPCServer(opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return s, lis.Addr().String()
}

func TestHealthCommand(t *testing.T) {
	s, addr := serveHealth(t)
	const readiness = "nba.v1.DecisionService"
	check := func(t *testing.T, wantCode int, wantOut, wantErr string, args ...string) {
		t.Helper()
		code, stdout, stderr := runCmd(t, "", append([]string{"health", "-addr", addr}, args...)...)
		if code != wantCode || !strings.Contains(stdout, wantOut) || !strings.Contains(stderr, wantErr) {
			t.Errorf("health %v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				args, code, stdout, stderr, wantCode, wantOut, wantErr)
		}
	}
	check(t, 0, "server: SERVING", "")
	check(t, 0, readiness+": SERVING", "", "-service", readiness)

	// A Redis blip: readiness turns NOT_SERVING, liveness stays SERVING.
	s.Health().SetServingStatus(readiness, healthpb.HealthCheckResponse_NOT_SERVING)
	check(t, 1, "", readiness+": NOT_SERVING", "-service", readiness)
	check(t, 0, "server: SERVING", "")

	// Draining: every status NOT_SERVING, the server's own too.
	s.Health().Shutdown()
	check(t, 1, "", "server: NOT_SERVING")

	check(t, 1, "", "NotFound", "-service", "no.such.Service")
	check(t, 2, "", "unexpected argument", "extra")

	code, _, stderr := runCmd(t, "", "health", "-addr", "127.0.0.1:1", "-timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "Unavailable") {
		t.Errorf("health with no server: exit %d, stderr %q; want 1, Unavailable", code, stderr)
	}
}

func TestHealthCommandTLS(t *testing.T) {
	dir := t.TempDir()
	cert := selfSigned(t, dir, "arbiter")
	_, addr := serveHealth(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	ca := filepath.Join(dir, "ca.crt")

	// The probe dials 127.0.0.1 and checks the certificate's name.
	if code, stdout, stderr := runCmd(t, "", "health", "-addr", addr, "-tls-ca", ca, "-tls-server-name", "arbiter"); code != 0 || !strings.Contains(stdout, "SERVING") {
		t.Errorf("health over TLS: exit %d, stdout %q, stderr %q; want 0, SERVING", code, stdout, stderr)
	}
	// Another name, or plaintext against a TLS listener, fails.
	if code, _, stderr := runCmd(t, "", "health", "-addr", addr, "-tls-ca", ca, "-tls-server-name", "other"); code != 1 {
		t.Errorf("health with the wrong server name: exit %d (stderr %q), want 1", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "health", "-addr", addr, "-timeout", "2s"); code != 1 {
		t.Errorf("plaintext health against TLS: exit %d (stderr %q), want 1", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "health", "-addr", addr, "-tls-ca", filepath.Join(dir, "missing.crt")); code != 1 || !strings.Contains(stderr, "missing.crt") {
		t.Errorf("health with a missing CA file: exit %d, stderr %q; want 1 naming the file", code, stderr)
	}
}

// selfSigned writes a self-signed certificate for name to dir/ca.crt and
// returns it with its key.
func selfSigned(t *testing.T, dir, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
