package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// How the server shuts down (the server program's Close):
//
//  1. health turns NOT_SERVING for every service and "", so that load
//     balancers stop sending, while the server goes on serving for the
//     drain window;
//  2. StopStreams: the streams that wait on their client (a CheckSendBatch,
//     an import) end at their next item with Unavailable, "send the rest
//     again on a new stream", once their items in flight are answered;
//  3. GracefulStop, and as soon as no call is in flight but health
//     watches (which never end by themselves), Stop: one idle watch does
//     not hold the process for the whole grace period. The grace period
//     bounds it all.

// inFlight counts the calls being handled, but health watches.
type inFlight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed while n == 0
	stop chan struct{} // closed by StopStreams
	once sync.Once
}

func newInFlight() *inFlight {
	f := &inFlight{zero: make(chan struct{}), stop: make(chan struct{})}
	close(f.zero)
	return f
}

func (f *inFlight) add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 && d > 0 {
		f.zero = make(chan struct{})
	}
	f.n += d
	if f.n == 0 {
		close(f.zero)
	}
}

func (f *inFlight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.zero
}

const healthWatch = "/grpc.health.v1.Health/Watch"

func (s *Server) countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.flight.add(1)
	defer s.flight.add(-1)
	return handler(ctx, req)
}

func (s *Server) countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod == healthWatch {
		return handler(srv, ss)
	}
	s.flight.add(1)
	defer s.flight.add(-1)
	return handler(srv, ss)
}

// StopStreams ends the streams that wait on their client at their next
// item (step 2 above).
func (s *Server) StopStreams() { s.flight.once.Do(func() { close(s.flight.stop) }) }

// Idle is closed once no call but health watches is in flight.
func (s *Server) Idle() <-chan struct{} { return s.flight.idle() }

// errShuttingDown ends a client-paced stream on shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "the server is shutting down: the items answered stand; send the rest again on a new stream")
