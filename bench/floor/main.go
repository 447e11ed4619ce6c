// Command floor is the I/O floor of the end-to-end benchmark (scenario B2):
// a gRPC server whose nba.v1.DecisionService/Decide does exactly the Redis
// access a real decision does, redisstore.Store.Load for the request's hcp_id
// (one pipelined round trip: HGETALL of the profile and of the consent hash,
// then decoding), and returns an empty DecideResponse. No validation beyond
// Load's, no interceptors, no scoring, no consent evaluation.
//
// It also serves grpc.health.v1.Health (always SERVING) and reflection, so
// that the load generator can be pointed at it exactly as at the real server.
//
//	floor -listen 127.0.0.1:50061 -redis-addr 127.0.0.1:6379 [-redis-prefix arbiter]
//	      [-pipeline-workers 4] [-cpuprofile floor.prof]
//
// The Redis client and the redisstore.Store are made as cmd/arbiter makes
// them, auto-pipelining included (batches of up to 128 loads, 3s timeout),
// so that B2 pays exactly the real server's cost of a load.
//
// It is a measuring instrument for bench/run.sh, not a product binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/redisstore"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:50061", "gRPC listen address")
	redisAddr := fs.String("redis-addr", "127.0.0.1:6379", "Redis address host:port")
	prefix := fs.String("redis-prefix", "arbiter", "key prefix, as the real server's -redis-prefix")
	workers := fs.Int("pipeline-workers", 4, "auto-pipelining workers for the loads, as the real server's -pipeline-workers; 0 disables")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// The same client and store the real server makes (cmd/arbiter).
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	opts := []redisstore.Option{redisstore.WithPrefix(*prefix)}
	if *workers > 0 {
		opts = append(opts, redisstore.WithAutoPipeline(*workers, 128, 3*time.Second))
	}
	store, err := redisstore.New(rdb, opts...)
	if err != nil {
		return err
	}
	defer store.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = store.Ping(pingCtx)
	cancel()
	if err != nil {
		return err
	}

	g := grpc.NewServer()
	nbapb.RegisterDecisionServiceServer(g, &decider{store: store})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()
	fmt.Fprintln(os.Stderr, "floor: serving on", lis.Addr())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	hs.Shutdown()
	g.GracefulStop()
	return nil
}

// decider is the floor's DecisionService: the Redis load and nothing else.
type decider struct {
	nbapb.UnimplementedDecisionServiceServer
	store *redisstore.Store
}

func (d *decider) Decide(ctx context.Context, req *nbapb.DecideRequest) (*nbapb.DecideResponse, error) {
	if _, err := d.store.Load(ctx, req.GetHcpId(), time.Now()); err != nil {
		var inv *arbiter.InvalidError
		switch {
		case errors.As(err, &inv):
			return nil, status.Error(codes.InvalidArgument, "invalid hcp_id")
		case errors.Is(err, arbiter.ErrNotFound):
			return nil, status.Error(codes.NotFound, "not found")
		case errors.Is(err, arbiter.ErrUnavailable):
			return nil, status.Error(codes.Unavailable, "storage unavailable")
		}
		return nil, status.Error(codes.Internal, "internal error")
	}
	return &nbapb.DecideResponse{}, nil
}
