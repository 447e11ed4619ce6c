package server

import (
	"context"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/arbiter-nba/arbiter/access"
)

// Per-principal rate limits. Admission control (admission.go) protects
// the server from the sum of its callers; a rate limit protects callers
// from each other: one marketing platform's runaway loop must not take
// the capacity the rep tools need. Each principal (the authenticated
// subject; without authentication, the peer's address) has a token
// bucket of rate calls a second and burst calls at once; a call (or a
// stream, when it starts) past it is refused with RESOURCE_EXHAUSTED and
// the time until a token is free as its retry hint. Health checks are
// never limited.

// WithRateLimit limits each principal to perSecond calls a second, with
// bursts of burst (perSecond <= 0: no limit).
func WithRateLimit(perSecond float64, burst int) Option {
	return func(s *Server) {
		if perSecond > 0 {
			s.limiter = &principalLimiter{rate: rate.Limit(perSecond), burst: max(burst, 1), buckets: map[string]*bucket{}}
		}
	}
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

type principalLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

// idleBucket is how long an unused principal's bucket is kept.
const idleBucket = 10 * time.Minute

// allow takes a token of key's bucket, or says how long until one is free.
func (l *principalLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > idleBucket {
		for k, b := range l.buckets {
			if now.Sub(b.used) > idleBucket {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitKey is whom a call counts against.
func limitKey(ctx context.Context) string {
	if p, ok := access.FromContext(ctx); ok {
		return "sub:" + p.Subject
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err == nil {
			return "addr:" + host
		}
		return "addr:" + p.Addr.String()
	}
	return ""
}

func rateLimited(wait time.Duration) error {
	st := status.New(codes.ResourceExhausted, "this caller's rate limit is reached: retry after the delay given")
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}

func (s *Server) limitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if s.limiter != nil && info.FullMethod != "/grpc.health.v1.Health/Check" {
		if ok, wait := s.limiter.allow(limitKey(ctx), time.Now()); !ok {
			if s.metrics != nil {
				s.metrics.limited.Inc()
			}
			return nil, rateLimited(wait)
		}
	}
	return handler(ctx, req)
}

func (s *Server) limitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.limiter != nil && info.FullMethod != "/grpc.health.v1.Health/Watch" {
		if ok, wait := s.limiter.allow(limitKey(ss.Context()), time.Now()); !ok {
			if s.metrics != nil {
				s.metrics.limited.Inc()
			}
			return rateLimited(wait)
		}
	}
	return handler(srv, ss)
}
