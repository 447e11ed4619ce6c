package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// Redis with an ACL user and no default user: the server connects as the
// user, with the password from a file (never a flag), and a wrong password
// stops it at start with an error that does not carry the password.
func TestRedisACLUserAndPasswordFile(t *testing.T) {
	redistest.Require(t)
	srv, err := redistest.Start("user default off", "user arbiter on >s3cret-pw ~* &* +@all")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("wrong-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	config := func(file string) Config {
		cfg, err := parseConfig("serve", []string{"-listen", "127.0.0.1:0", "-redis-addr", srv.Addr, "-redis-user", "arbiter",
			"-redis-password-file", file, "-demo-size", "5", "-catalog", demoCatalogFile, "-model", demoModelFile,
			"-consent-policy", demoPolicyFile}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := config(good)
	if cfg.RedisPassword != "s3cret-pw" {
		t.Fatalf("password read as %q, want the file's first line", cfg.RedisPassword)
	}
	if err := Seed(context.Background(), cfg, logger); err != nil {
		t.Fatalf("seed as the ACL user: %v", err)
	}
	m := NewMain(cfg, logger)
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run as the ACL user: %v", err)
	}
	defer m.Close()
	c, err := client.Dial(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Decide(context.Background(), "HCP-000001", client.DecideOptions{}); err != nil {
		t.Errorf("decide: %v", err)
	}

	wrong := NewMain(config(bad), logger)
	err = wrong.Run(context.Background())
	wrong.Close()
	if err == nil || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("run with a wrong password: %v; want an error without the password", err)
	}
	if _, err := parseConfig("serve", []string{"-redis-password", "x"}, func(string) string { return "" }); err == nil {
		t.Error("-redis-password is accepted as a flag")
	}
}

// Redis over TLS: the server verifies Redis's certificate against
// -redis-ca and decides through the TLS connection (the HCP cache's
// tracking connection too); without the CA it does not connect.
func TestRedisOverTLS(t *testing.T) {
	redistest.Require(t)
	p := newTestPKI(t) // a certificate for 127.0.0.1, in cert.pem and key.pem
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	srv, err := redistest.Start("tls-port "+strconv.Itoa(tlsPort), "tls-cert-file "+filepath.Join(p.dir, "cert.pem"),
		"tls-key-file "+filepath.Join(p.dir, "key.pem"), "tls-auth-clients no")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := os.WriteFile(filepath.Join(p.dir, "ca.pem"), mustRead(t, filepath.Join(p.dir, "cert.pem")), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsAddr := "127.0.0.1:" + strconv.Itoa(tlsPort)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	args := func(extra ...string) []string {
		return append([]string{"-listen", "127.0.0.1:0", "-redis-addr", tlsAddr, "-demo-size", "5",
			"-catalog", demoCatalogFile, "-model", demoModelFile, "-consent-policy", demoPolicyFile}, extra...)
	}
	cfg, err := parseConfig("serve", args("-redis-tls", "-redis-ca", filepath.Join(p.dir, "ca.pem"), "-hcp-cache", "100"),
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := Seed(context.Background(), cfg, logger); err != nil {
		t.Fatalf("seed over TLS: %v", err)
	}
	m := NewMain(cfg, logger)
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run over TLS: %v", err)
	}
	defer m.Close()
	c, err := client.Dial(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ { // a miss, then a hit of the HCP cache
		if _, err := c.Decide(context.Background(), "HCP-000001", client.DecideOptions{}); err != nil {
			t.Errorf("decide over TLS: %v", err)
		}
	}
	// The system's roots do not know the test certificate.
	noCA, err := parseConfig("serve", args("-redis-tls"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	bad := NewMain(noCA, logger)
	err = bad.Run(context.Background())
	bad.Close()
	if err == nil {
		t.Error("a Redis certificate no root vouches for was accepted")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
