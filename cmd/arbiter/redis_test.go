package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Cluster mode is what the configuration says, never guessed from the
// addresses.
func TestRedisModeIsExplicit(t *testing.T) {
	// Loopback addresses only: a single-node client dials its idle
	// connections as soon as it is made.
	const seeds = "127.0.0.1:1,127.0.0.1:2"
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantErr     string // in the error; "" for none
		wantCluster bool
	}{
		{"one address", []string{"-redis-addr", "127.0.0.1:1"}, nil, "", false},
		{"seeds without cluster mode", []string{"-redis-addr", seeds}, nil, "-redis-cluster", false},
		{"seeds with the flag", []string{"-redis-addr", seeds, "-redis-cluster"}, nil, "", true},
		{"one seed with the flag", []string{"-redis-addr", "127.0.0.1:1", "-redis-cluster"}, nil, "", true},
		{"seeds with the environment", nil, map[string]string{"ARBITER_REDIS_ADDR": seeds, "ARBITER_REDIS_CLUSTER": "true"}, "", true},
		{"flag over the environment", []string{"-redis-cluster=false"},
			map[string]string{"ARBITER_REDIS_ADDR": "127.0.0.1:1", "ARBITER_REDIS_CLUSTER": "true"}, "", false},
		{"cluster variable not a boolean", nil, map[string]string{"ARBITER_REDIS_CLUSTER": "yes"}, "ARBITER_REDIS_CLUSTER", false},
		{"address without a port", []string{"-redis-addr", "127.0.0.1"}, nil, "host:port", false},
		{"empty seed", []string{"-redis-addr", "127.0.0.1:1,", "-redis-cluster"}, nil, "address 2", false},
		{"prefix with a brace", []string{"-redis-prefix", "a{b"}, nil, "redis-prefix", false},
		{"empty prefix", nil, map[string]string{"ARBITER_REDIS_PREFIX": ""}, "", false},
		{"empty prefix flag", []string{"-redis-prefix", ""}, nil, "redis-prefix", false},
		{"HCP cache on a single Redis", []string{"-redis-addr", "127.0.0.1:1", "-hcp-cache", "100"}, nil, "", false},
		{"HCP cache on a cluster", []string{"-redis-addr", seeds, "-redis-cluster", "-hcp-cache", "100"}, nil, "single Redis", false},
		{"HCP cache size not a number", []string{"-redis-addr", "127.0.0.1:1", "-hcp-cache", "many"}, nil, "hcp-cache", false},
		{"no stream workers", []string{"-stream-workers", "0"}, nil, "", false},
		{"stream workers negative", []string{"-stream-workers", "-1"}, nil, "stream-workers", false},
		{"stream workers not a number", nil, map[string]string{"ARBITER_STREAM_WORKERS": "all"}, "stream-workers", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// seed: the subcommand that needs a Redis and nothing else.
			args := tt.args
			if tt.env["ARBITER_REDIS_ADDR"] == "" && !slices.Contains(args, "-redis-addr") {
				args = append([]string{"-redis-addr", "127.0.0.1:1"}, args...)
			}
			cfg, err := parseConfig("seed", args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig() error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig() error = %v", err)
			}
			rdb, err := newRedis(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, got := rdb.(*redis.ClusterClient); got != tt.wantCluster {
				t.Errorf("newRedis() is a cluster client: %v, want %v", got, tt.wantCluster)
			}
		})
	}
}

// Each subcommand says what it is missing, by flag and environment
// variable; the production server never falls back to demo data.
func TestSubcommandNeeds(t *testing.T) {
	defs := []string{"-catalog", "c.json", "-model", "m.json", "-consent-policy", "p.json"}
	tests := []struct {
		name    string
		cmd     string
		args    []string
		wantErr []string // each in the error; none for no error
	}{
		{"serve with nothing", "serve", nil, []string{"-redis-addr", "ARBITER_REDIS_ADDR", "arbiter demo"}},
		// Without files the server follows the set published in Redis
		// (and refuses to start when there is none: TestNoDefinitions).
		{"serve without definitions files", "serve", []string{"-redis-addr", "127.0.0.1:1"}, nil},
		{"serve without a catalog", "serve", []string{"-redis-addr", "127.0.0.1:1", "-model", "m", "-consent-policy", "p"}, []string{"all of the definitions files or none", "-catalog (ARBITER_CATALOG)"}},
		{"serve with a catalog only", "serve", []string{"-redis-addr", "127.0.0.1:1", "-catalog", "c"}, []string{"-model (ARBITER_MODEL)", "-consent-policy"}},
		{"validate without a directory", "validate", nil, []string{"needs a definitions directory"}},
		{"validate with two", "validate", []string{"a", "b"}, []string{`unexpected argument "b"`}},
		{"validate", "validate", []string{"dir"}, nil},
		{"publish without a Redis", "publish", []string{"dir"}, []string{"publish needs a Redis"}},
		{"off loopback without TLS", "serve", []string{"-listen", "0.0.0.0:50051", "-redis-addr", "127.0.0.1:1",
			"-auth-jwks", "j", "-auth-issuer", "i", "-auth-audience", "a"}, []string{"no TLS", "-tls-cert", "-insecure-plaintext"}},
		{"off loopback without authentication", "serve", []string{"-listen", "0.0.0.0:50051", "-redis-addr", "127.0.0.1:1",
			"-tls-cert", "c", "-tls-key", "k"}, []string{"no authentication", "-auth-jwks", "-insecure-no-auth"}},
		{"off loopback, TLS and authentication", "serve", []string{"-listen", "0.0.0.0:50051", "-redis-addr", "127.0.0.1:1",
			"-tls-cert", "c", "-tls-key", "k", "-auth-jwks", "j", "-auth-issuer", "i", "-auth-audience", "a"}, nil},
		{"serve with everything", "serve", append([]string{"-redis-addr", "127.0.0.1:1"}, defs...), nil},
		{"demo with nothing", "demo", nil, nil},
		{"demo with a Redis", "demo", []string{"-redis-addr", "127.0.0.1:1"}, []string{"embedded store", "arbiter seed"}},
		{"HCP cache on the embedded store", "demo", []string{"-hcp-cache", "100"}, []string{"single Redis"}},
		{"seed without a Redis", "seed", nil, []string{"seed needs a Redis", "-redis-addr"}},
		{"migrate without a Redis", "migrate", nil, []string{"migrate needs a Redis"}},
		{"stray argument", "demo", []string{"extra"}, []string{`unexpected argument "extra"`}},
		{"stray argument after flags", "seed", []string{"-redis-addr", "127.0.0.1:1", "now"}, []string{`unexpected argument "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.cmd, tt.args, func(string) string { return "" })
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("parseConfig() error = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseConfig() succeeded, want an error mentioning %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("parseConfig() error = %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

// -h and help succeed (exit 0) and list every subcommand; an unknown
// subcommand is an error.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"demo", "-h"}, {"seed", "-help"}} {
		if err := run(args); err != nil {
			t.Errorf("run(%q) = %v, want nil", args, err)
		}
	}
	for _, sub := range []string{"serve", "demo", "seed", "migrate", "help"} {
		if !strings.Contains(usage, "arbiter "+sub) {
			t.Errorf("usage does not list arbiter %s", sub)
		}
	}
	if err := run([]string{"serv"}); err == nil || !strings.Contains(err.Error(), "unknown subcommand") {
		t.Errorf("run(serv) = %v, want an unknown subcommand error", err)
	}
}

// replyErr is an error reply from a Redis server, as go-redis returns it.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestIsConnError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"none", nil, false},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{"closed by the node", io.EOF, true},
		{"closed in mid-reply, wrapped", fmt.Errorf("pipeline: %w", io.ErrUnexpectedEOF), true},
		{"MOVED reply: go-redis reloads itself", replyErr("MOVED 3999 127.0.0.1:6381"), false},
		{"cluster down reply", replyErr("CLUSTERDOWN The cluster is down"), false},
		{"caller gave up", context.Canceled, false},
		{"caller's deadline", context.DeadlineExceeded, false},
		{"client closed", redis.ErrClosed, false},
		{"pool exhausted", redis.ErrPoolTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isConnError(tt.err); got != tt.want {
				t.Errorf("isConnError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
