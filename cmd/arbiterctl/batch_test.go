package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/server"
)

// knownHCPs decides for the first n demo HCPs (a stand-in for the engine:
// this tests the command, over a real gRPC server) and knows no other.
type knownHCPs int

func (n knownHCPs) Decide(_ context.Context, req decision.Request) (*decision.Result, error) {
	var i int
	if _, err := fmt.Sscanf(req.HCPID, "HCP-%d", &i); err != nil || i > int(n) {
		return nil, fmt.Errorf("load: %w", arbiter.ErrNotFound)
	}
	return &decision.Result{ID: "d-" + req.HCPID}, nil
}

func TestBatchCommand(t *testing.T) {
	s, err := server.New(knownHCPs(2400), nil, nil, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	for _, args := range [][]string{
		{"-size", "1000", "-parallel", "2"},
		{"-size", "7", "-parallel", "3"},
		{"-unary", "-parallel", "8"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			const n = 2500 // the last 100 unknown
			code, stdout, stderr := runCmd(t, "", append([]string{"batch", "-addr", lis.Addr().String(), "-demo", fmt.Sprint(n)}, args...)...)
			if code != 0 {
				t.Fatalf("exit status %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != n {
				t.Fatalf("%d lines, want one per HCP (%d)", len(lines), n)
			}
			for i, l := range lines {
				var b batchLine
				if err := json.Unmarshal([]byte(l), &b); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				known := i < 2400
				if b.HCPID != demo.HCPID(i+1) || (b.Decision != "") != known || (b.Error == "NotFound") == known {
					t.Fatalf("line %d = %+v: out of order, or wrong for a known=%v HCP", i+1, b, known)
				}
			}
			if !strings.Contains(stderr, "2500 HCPs in") || !strings.Contains(stderr, "2400 decided") || !strings.Contains(stderr, "100 not decided") {
				t.Errorf("summary: %s", stderr)
			}
		})
	}
}
