package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// How the server shuts down (the server program's Close):
//
//  1. health turns NOT_SERVING for every service and "", so that load
//     balancers stop sending, while the server goes on serving for the
//     drain window (not counted in the grace period);
//  2. StopStreams: the calls that wait on their client end. A
//     CheckSendBatch stream answers the checks already running and ends
//     with UNAVAILABLE ("send the rest again on a new stream"); an import
//     writes what it received and ends the same way; a health watch ends;
//  3. GracefulStop finishes the calls in flight; the grace period bounds
//     it, and then Stop.

// stopper ends the client-paced calls on shutdown.
type stopper struct {
	stop chan struct{} // closed by StopStreams
	once sync.Once
}

func newStopper() *stopper { return &stopper{stop: make(chan struct{})} }

// StopStreams ends the calls that wait on their client (step 2 above).
func (s *Server) StopStreams() { s.stopper.once.Do(func() { close(s.stopper.stop) }) }

// errShuttingDown ends a client-paced stream on shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "the server is shutting down: the items answered stand; send the rest again on a new stream")

// stoppableHealth is the health service, with watches that end on
// StopStreams: one idle watch would otherwise hold GracefulStop for the
// whole grace period.
type stoppableHealth struct {
	*health.Server
	stop <-chan struct{}
}

func (h stoppableHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, watchStream{stream, ctx})
}

type watchStream struct {
	grpc.ServerStreamingServer[healthpb.HealthCheckResponse]
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
