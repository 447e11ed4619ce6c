package server

import (
	"bytes"
	"context"
	"github.com/arbiter-nba/arbiter/decision"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// chain applies unary interceptors outermost first, as grpc does.
func chain(ics []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(ics) - 1; i >= 0; i-- {
		ic, next := ics[i], h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	return h
}

var decideInfo = &grpc.UnaryServerInfo{FullMethod: "/nba.v1.DecisionService/Decide"}

func peerCtx() context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}})
}

// nopDecider decides nothing; for tests of the chain around the handlers.
type nopDecider struct{}

func (nopDecider) Decide(context.Context, decision.Request) (*decision.Result, error) {
	return &decision.Result{}, nil
}

// newServer returns a Server that only decides, with nopDecider.
func newServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := New(nopDecider{}, nil, nil, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    Decider
		opts []Option
	}{
		{"nil decider", nil, nil},
		{"nil logger", nopDecider{}, []Option{WithLogger(nil)}},
		{"zero limit", nopDecider{}, []Option{WithLimits(Limits{MaxLimit: 1, MaxCandidates: 1, MaxHistory: 1})}},
		{"zero deadline", nopDecider{}, []Option{WithMaxDeadline(0)}},
	} {
		if _, err := New(tt.d, nil, nil, tt.opts...); err == nil {
			t.Errorf("%s: New returned no error", tt.name)
		}
	}
}

// TestCallerInterceptorsRunInsideTheChain: interceptors given with
// WithUnaryInterceptors run after the server's own, in order.
func TestCallerInterceptorsRunInsideTheChain(t *testing.T) {
	var order []string
	mark := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("%s: no deadline: it ran outside the server's deadline interceptor", name)
			}
			order = append(order, name)
			return h(ctx, req)
		}
	}
	s := newServer(t, WithUnaryInterceptors(mark("first"), mark("second")))
	unary, _ := s.interceptors()
	h := chain(unary, decideInfo, func(ctx context.Context, req any) (any, error) {
		order = append(order, "handler")
		return nil, nil
	})
	if _, err := h(peerCtx(), "req"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, ","), "first,second,handler"; got != want {
		t.Errorf("ran %s, want %s", got, want)
	}
}

// WithStreamInterceptors puts the caller's stream interceptor last, inside
// the server's own.
func TestCallerStreamInterceptorsRunLast(t *testing.T) {
	ran := false
	mine := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ran = true
		return h(srv, ss)
	}
	_, without := newServer(t).interceptors()
	_, with := newServer(t, WithStreamInterceptors(mine)).interceptors()
	if len(with) != len(without)+1 {
		t.Fatalf("stream chain has %d interceptors with one added, %d without", len(with), len(without))
	}
	if err := with[len(with)-1](nil, nil, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error { return nil }); err != nil || !ran {
		t.Errorf("the last stream interceptor is not the caller's (ran %v, err %v)", ran, err)
	}
}

func TestRecoveryAnswersGenericInternal(t *testing.T) {
	var logs bytes.Buffer
	s := newServer(t, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	unary, _ := s.interceptors()
	h := chain(unary, decideInfo, func(ctx context.Context, req any) (any, error) {
		panic("secret HCP-000042 data")
	})
	_, err := h(peerCtx(), "req")
	st := status.Convert(err)
	if st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("panic answered %v %q, want Internal \"internal error\"", st.Code(), st.Message())
	}
	if strings.Contains(logs.String(), "HCP-000042") {
		t.Errorf("the log repeats the panic value: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic in handler") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
}

func TestDeadlineInterceptorCapsDeadline(t *testing.T) {
	s := newServer(t, WithMaxDeadline(time.Second))
	var got time.Duration
	h := func(ctx context.Context, req any) (any, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			t.Fatal("no deadline set")
		}
		got = time.Until(dl)
		return nil, nil
	}
	for _, parent := range []time.Duration{0, time.Hour} {
		ctx := context.Background()
		if parent > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, parent)
			defer cancel()
		}
		s.deadlineInterceptor(ctx, nil, decideInfo, h)
		if got > time.Second {
			t.Errorf("parent deadline %v: handler got %v left, want at most 1s", parent, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	s.deadlineInterceptor(ctx, nil, decideInfo, h)
	if got > 10*time.Millisecond {
		t.Errorf("a shorter client deadline was extended to %v", got)
	}
}

// BenchmarkInterceptors measures what the unary chain costs one call, on
// and off, with a handler that does nothing.
func BenchmarkInterceptors(b *testing.B) {
	s := newServer(b, WithAccessLog(true), WithMetrics(prometheus.NewRegistry()),
		WithLogger(slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	unary, _ := s.interceptors()
	noop := func(ctx context.Context, req any) (any, error) { return req, nil }
	for _, tc := range []struct {
		name string
		ics  []grpc.UnaryServerInterceptor
	}{
		{"none", nil},
		{"logging", unary[:1]},
		{"metrics", unary[1:2]},
		{"recovery", unary[2:3]},
		{"deadline", unary[3:4]},
		{"all", unary},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := chain(tc.ics, decideInfo, noop)
			ctx := peerCtx()
			b.ReportAllocs()
			for b.Loop() {
				h(ctx, "req")
			}
		})
	}
}

func TestIDProblem(t *testing.T) {
	tests := []struct {
		id, want string
	}{
		{"email-congress-invite", ""},
		{"", "required"},
		{strings.Repeat("x", 129), "must be at most 128 bytes, got 129"},
		{"a\x00b", "must not contain control characters"},
		{"a\x7fb", "must not contain control characters"},
		{"caf\u00e9", ""},
		{"a\u0085b", "must not contain control characters"}, // C1 control, non-ASCII
		{"a\xffb", "must be valid UTF-8"},
		{"a\ufffdb", "must be valid UTF-8"},
	}
	for _, tt := range tests {
		if got := idProblem(tt.id, true); got != tt.want {
			t.Errorf("idProblem(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}
