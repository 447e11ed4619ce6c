package server

import (
	"context"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Admission control. Past its capacity a server that queues every call
// serves them all late (a probe at 3.5x capacity saw a 7 s median and 37,000
// goroutines): past a bound of calls in flight, a call waits at most a few
// milliseconds for a slot and is otherwise refused at once with
// RESOURCE_EXHAUSTED and a retry hint, so that the admitted calls keep
// their latency and the caller can go elsewhere or back off. Health checks
// are never refused.
//
// Refusing in the interceptor still costs most of a call: its message is
// read and decoded, and a goroutine runs it. Once calls queue for a slot
// (a quarter as many as there are slots wait), TapAdmission refuses new calls
// as soon as their headers arrive, before any of that: at 3x capacity on
// one CPU the refusals would otherwise take the CPU the admitted calls
// need, and both would queue in the transport.

// WithAdmission bounds the unary calls in flight to max (0: no bound); a
// call waits at most wait for a slot.
func WithAdmission(max int, wait time.Duration) Option {
	return func(s *Server) {
		if max > 0 {
			s.admission = make(chan struct{}, max)
		}
		s.admissionWait = wait
	}
}

// TapAdmission is the transport's tap (grpc.InTapHandle): it refuses a
// call before its message is read when every slot is taken and calls
// already wait for one. It never blocks: it runs on the connection's
// reader.
func (s *Server) TapAdmission(ctx context.Context, info *tap.Info) (context.Context, error) {
	if s.admission == nil || len(s.admission) < cap(s.admission) || s.waiting.Load() < int64(max(1, cap(s.admission)/4)) ||
		strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/") {
		return ctx, nil
	}
	if s.metrics != nil {
		s.metrics.shed.Inc()
	}
	return ctx, errOverloaded
}

// retryAfter is the retry hint of a refused call.
const retryAfter = 100 * time.Millisecond

var errOverloaded = func() error {
	st := status.New(codes.ResourceExhausted, "the server is at capacity: retry shortly, or on another replica")
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}()

func (s *Server) admit(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if s.admission == nil || info.FullMethod == "/grpc.health.v1.Health/Check" {
		return handler(ctx, req)
	}
	select {
	case s.admission <- struct{}{}:
	default:
		if !s.waitForSlot(ctx) {
			if err := ctx.Err(); err != nil {
				return nil, status.FromContextError(err).Err() // the caller gave up: not shed
			}
			if s.metrics != nil {
				s.metrics.shed.Inc()
			}
			return nil, errOverloaded
		}
	}
	defer func() { <-s.admission }()
	return handler(ctx, req)
}

// waitForSlot waits at most admissionWait for a slot.
func (s *Server) waitForSlot(ctx context.Context) bool {
	if s.admissionWait <= 0 {
		return false
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.admissionWait)
	defer t.Stop()
	select {
	case s.admission <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
