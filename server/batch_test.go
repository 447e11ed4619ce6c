package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// scripted is a Decider (the pure core's place) that fails or panics for
// chosen HCPs and decides nothing for the others.
type scripted map[string]func() error

func (d scripted) Decide(_ context.Context, req decision.Request) (*decision.Result, error) {
	if f := d[req.HCPID]; f != nil {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return &decision.Result{ID: "d-" + req.HCPID}, nil
}

// serveBatch serves d over real gRPC on a loopback port and returns a client.
func serveBatch(t *testing.T, d Decider) nbapb.DecisionServiceClient {
	t.Helper()
	s, err := New(d, nil, nil, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return nbapb.NewDecisionServiceClient(serveLoopback(t, s))
}

// serveLoopback serves s over real gRPC on a loopback port until the test
// ends, and returns a connection to it.
func serveLoopback(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	g := s.NewGRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// recvAll reads a DecideBatch stream to its end: the items, and the
// status it ended with (nil for OK).
func recvAll(t *testing.T, c nbapb.DecisionServiceClient, ids []string) ([]*nbapb.DecideBatchResponse, error) {
	t.Helper()
	stream, err := c.DecideBatch(context.Background(), &nbapb.DecideBatchRequest{HcpIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	var items []*nbapb.DecideBatchResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		if err != nil {
			return items, err
		}
		items = append(items, m)
	}
}

func TestDecideBatchStream(t *testing.T) {
	var ids []string
	for i := range 200 { // more than batchAhead: the window must move
		ids = append(ids, fmt.Sprintf("HCP-%d", i))
	}
	notFound := func() error { return fmt.Errorf("load: %w", arbiter.ErrNotFound) }
	unavailable := func() error { return fmt.Errorf("load: %w", arbiter.ErrUnavailable) }
	boom := func() error { panic("boom") }

	t.Run("in order, unknown HCPs as items", func(t *testing.T) {
		c := serveBatch(t, scripted{"HCP-7": notFound, "HCP-150": notFound})
		items, err := recvAll(t, c, ids)
		if err != nil || len(items) != len(ids) {
			t.Fatalf("%d items, end %v; want %d and OK", len(items), err, len(ids))
		}
		for i, it := range items {
			if int(it.GetIndex()) != i || it.GetHcpId() != ids[i] {
				t.Fatalf("item %d is index %d for %s", i, it.GetIndex(), it.GetHcpId())
			}
			unknown := ids[i] == "HCP-7" || ids[i] == "HCP-150"
			if got := it.GetError().GetCode() == int32(codes.NotFound); got != unknown || (it.GetDecision() == nil) != unknown {
				t.Errorf("%s: error %v, decision %v", ids[i], it.GetError(), it.GetDecision())
			}
		}
	})
	for _, tc := range []struct {
		name string
		fail func() error
		code codes.Code
	}{
		{"storage unavailable ends the stream", unavailable, codes.Unavailable},
		{"a panic ends the stream, not the server", boom, codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serveBatch(t, scripted{"HCP-120": tc.fail})
			items, err := recvAll(t, c, ids)
			if status.Code(err) != tc.code || len(items) != 120 {
				t.Fatalf("%d items, end %v; want the 120 before HCP-120, then %v", len(items), err, tc.code)
			}
			// The server is still up and answers the next call.
			if items, err := recvAll(t, c, ids[:3]); err != nil || len(items) != 3 {
				t.Fatalf("next call: %d items, %v", len(items), err)
			}
		})
	}
}
