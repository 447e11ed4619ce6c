package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
