package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Decider makes decisions (decision.Engine).
type Decider interface {
	Decide(ctx context.Context, req decision.Request) (*decision.Result, error)
}

// ProfileStore keeps HCP profiles and applies outcome events (redisstore.Store).
type ProfileStore interface {
	UpsertProfile(ctx context.Context, p recipient.Profile) error
	GetProfile(ctx context.Context, hcpID string) (recipient.Profile, recipient.Counters, error)
	ApplyEvent(ctx context.Context, e recipient.Event) (duplicate bool, err error)
	// ApplyEvents applies each event as ApplyEvent does, together (one
	// pipeline), and returns what became of each, in order; its error,
	// when Redis failed, means any of them may or may not have been
	// applied.
	ApplyEvents(ctx context.Context, es []recipient.Event) ([]recipient.EventOutcome, error)
	Import(ctx context.Context, items []recipient.ImportItem) error
}

// ConsentStore keeps consent records and their ledger (redisstore.Store).
type ConsentStore interface {
	SetConsent(ctx context.Context, hcpID string, r consent.Record, markComplete bool) (consent.LedgerEntry, error)
	GetConsent(ctx context.Context, hcpID string) (consent.State, error)
	ConsentHistory(ctx context.Context, hcpID string, offset, limit int) ([]consent.LedgerEntry, int64, error)
}

// Server holds the handlers of every Arbiter service.
type Server struct {
	nbapb.UnimplementedDecisionServiceServer
	nbapb.UnimplementedEventServiceServer
	nbapb.UnimplementedProfileServiceServer
	nbapb.UnimplementedConsentServiceServer
	nbapb.UnimplementedDefinitionsServiceServer
	nbapb.UnimplementedSendServiceServer
	nbapb.UnimplementedJourneyServiceServer
	nbapb.UnimplementedDecisionLogServiceServer
	nbapb.UnimplementedAuditServiceServer
	nbapb.UnimplementedSuggestionServiceServer

	decider     Decider
	profiles    ProfileStore
	consents    ConsentStore
	log         *slog.Logger
	limits      Limits
	maxDeadline time.Duration
	importBatch int
	accessLog   bool
	health      *health.Server
	metrics     *metrics         // nil: no metrics
	defs        DefinitionsStore // nil: DefinitionsService not served
	sender      Sender           // nil: SendService not served
	// journeyer and journeyStore serve the JourneyService (nil: not
	// served).
	journeyer    Journeyer
	journeyStore JourneyStore
	explainer    Explainer   // nil: WhyNot is Unimplemented
	dlog         *receiptLog // nil: no receipts, DecisionLogService not served
	registry     prometheus.Registerer
	clock        func() time.Time // WithClock
	trail        AuditTrail       // nil: AuditService not served
	trailKey     []byte
	limiter      *principalLimiter // WithRateLimit; nil: none
	// stopper ends the client-paced calls on shutdown (drain.go).
	stopper *stopper
	// admission holds a token per unary call in flight (admission.go;
	// nil: no bound), and admissionWait is how long a call waits for one.
	admission     chan struct{}
	admissionWait time.Duration
	waiting       atomic.Int64 // calls waiting for an admission slot
	// sendIdle and sendMaxItems bound a CheckSendBatch stream.
	sendIdle     time.Duration
	sendMaxItems int64
	// authn, when set, authenticates every call but health checks, and
	// allowed says which roles may call which method (authz.go).
	authn          Authenticator
	certPrincipals bool // WithClientCertPrincipals
	allowed        map[string][]access.Role
	// unaryExtra and streamExtra are the caller's interceptors, run inside
	// the server's own (after recovery and the deadline).
	unaryExtra  []grpc.UnaryServerInterceptor
	streamExtra []grpc.StreamServerInterceptor
	// tp and tracer trace calls (WithTracing, tracing.go; nil: off, and
	// nothing is installed).
	tp     trace.TracerProvider
	tracer trace.Tracer
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithLimits sets request limits (default DefaultLimits()). Every limit
// must be positive.
func WithLimits(l Limits) Option { return func(s *Server) { s.limits = l } }

// WithUnaryInterceptors adds interceptors to the unary chain, inside the
// server's own: they run after panic recovery and the maximum deadline,
// in the order given, and see every call the handlers see (authentication
// and authorization go here).
func WithUnaryInterceptors(i ...grpc.UnaryServerInterceptor) Option {
	return func(s *Server) { s.unaryExtra = append(s.unaryExtra, i...) }
}

// WithStreamInterceptors adds interceptors to the streaming chain, as
// WithUnaryInterceptors does to the unary one.
func WithStreamInterceptors(i ...grpc.StreamServerInterceptor) Option {
	return func(s *Server) { s.streamExtra = append(s.streamExtra, i...) }
}

// WithMaxDeadline caps how long any call may run (default 5s): a call
// without a deadline, or with a longer one, gets this one. Streaming
// imports are exempt.
func WithMaxDeadline(d time.Duration) Option { return func(s *Server) { s.maxDeadline = d } }

// WithAccessLog logs every call (method, code, duration; never payloads)
// through go-grpc-middleware's logging interceptor. It costs about 8 us and
// 47 allocations per call (BenchmarkInterceptors), a sizeable part of a
// decision, so it is off by default: errors are logged either way, by the
// error mapping and the recovery handler.
func WithAccessLog(on bool) Option { return func(s *Server) { s.accessLog = on } }

// WithMetrics registers the server's Prometheus metrics with reg and
// records them: every call by method and code, with its handling time
// (go-grpc-middleware's grpc_server_* metrics), and per decision its
// server time, caller kind, recommended channels and suppression reasons
// (arbiter_*). Labels never carry personal data. Off by default.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Server) { s.metrics, s.registry = newMetrics(reg), reg }
}

// New returns a Server. The options are applied over the defaults; an
// invalid one (a nil logger, a limit or deadline that is not positive) is
// an error. The decider is required. A nil store is allowed for a server
// that only decides: the services it backs are then not registered, and
// their calls fail with Unimplemented.
func New(d Decider, profiles ProfileStore, consents ConsentStore, opts ...Option) (*Server, error) {
	s := &Server{
		decider: d, profiles: profiles, consents: consents,
		log: slog.Default(), limits: DefaultLimits(), maxDeadline: 5 * time.Second,
		importBatch: 500, health: health.NewServer(), sendIdle: 30 * time.Second, sendMaxItems: 10_000_000,
		stopper: newStopper(), clock: time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	l := s.limits
	switch {
	case d == nil:
		return nil, errors.New("server: nil decider")
	case s.log == nil:
		return nil, errors.New("server: nil logger")
	case l.MaxLimit < 1 || l.MaxCandidates < 1 || l.MaxHistory < 1 || l.MaxBatch < 1:
		return nil, errors.New("server: every limit must be positive")
	case s.maxDeadline <= 0:
		return nil, errors.New("server: the maximum deadline must be positive")
	case s.sendIdle <= 0 || s.sendMaxItems <= 0:
		return nil, errors.New("server: the send stream limits must be positive")
	case s.dlog != nil && (s.dlog.store == nil || s.dlog.rep == nil):
		return nil, errors.New("server: the decision log needs a store and a replayer")
	}
	if s.dlog != nil {
		s.dlog.tracer = s.tracer
		s.dlog.start(s.log, s.registry)
	}
	return s, nil
}

// Health returns the health service, so the owner can mark it NOT_SERVING
// on shutdown.
func (s *Server) Health() *health.Server { return s.health }

// MaxRecvMsgSize bounds one request message.
const MaxRecvMsgSize = 1 << 20

// NewGRPCServer returns a gRPC server with every Arbiter service, health
// and reflection registered, behind the interceptor chain (interceptors),
// and with WithTracing, otelgrpc's stats handler.
func (s *Server) NewGRPCServer(extra ...grpc.ServerOption) *grpc.Server {
	unary, stream := s.interceptors()
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		// Headers: a bearer token is at most a few kilobytes; the default
		// limit (16 MB) would let an unauthenticated caller make the
		// server hold megabytes per call.
		grpc.MaxHeaderListSize(64 << 10),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	if h := s.statsHandler(); h != nil {
		opts = append(opts, h)
	}
	g := grpc.NewServer(append(opts, extra...)...)
	defer func() {
		if s.metrics != nil {
			s.metrics.grpc.InitializeMetrics(g) // every method at zero, before its first call
		}
	}()
	nbapb.RegisterDecisionServiceServer(g, s)
	if s.profiles != nil {
		nbapb.RegisterEventServiceServer(g, s)
		nbapb.RegisterProfileServiceServer(g, s)
	}
	if s.consents != nil {
		nbapb.RegisterConsentServiceServer(g, s)
	}
	if s.defs != nil {
		nbapb.RegisterDefinitionsServiceServer(g, s)
	}
	if s.sender != nil {
		nbapb.RegisterSendServiceServer(g, s)
	}
	if s.journeyer != nil && s.journeyStore != nil {
		nbapb.RegisterJourneyServiceServer(g, s)
	}
	if s.dlog != nil {
		nbapb.RegisterDecisionLogServiceServer(g, s)
	}
	if _, ok := s.profiles.(TerritoryIndex); ok {
		nbapb.RegisterSuggestionServiceServer(g, s)
	}
	if s.trail != nil && s.trailKey != nil {
		nbapb.RegisterAuditServiceServer(g, s)
	}
	healthpb.RegisterHealthServer(g, stoppableHealth{s.health, s.stopper.stop})
	reflection.Register(g)
	s.allowed = allowedRoles(g)
	for name := range g.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return g
}

// interceptors returns the chains, outermost first: the access log when
// enabled (no payloads; OK calls at debug level), the metrics when enabled
// (outside recovery, so that a panic counts as the Internal it becomes),
// panic recovery into a generic Internal, (unary only) the server-side
// maximum deadline, the rejection of requests the codec could not decode,
// then the caller's own.
func (s *Server) interceptors() ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.NotFound, codes.InvalidArgument, codes.Canceled:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			}
			return logging.LevelWarn
		}),
	}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		// The panic value may hold request data: log its type and the stack only.
		s.log.ErrorContext(ctx, "panic in handler", "panic_type", typeName(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if s.accessLog {
		unary = append(unary, logging.UnaryServerInterceptor(slogAdapter(s.log), logOpts...))
		stream = append(stream, logging.StreamServerInterceptor(slogAdapter(s.log), logOpts...))
	}
	if s.metrics != nil {
		unary = append(unary, s.metrics.grpc.UnaryServerInterceptor())
		stream = append(stream, s.metrics.grpc.StreamServerInterceptor())
	}
	unary = append(unary, s.admit, recovery.UnaryServerInterceptor(recoveryOpt))
	stream = append(stream, recovery.StreamServerInterceptor(recoveryOpt))
	if s.authn != nil || s.certPrincipals {
		unary = append(unary, s.authUnary)
		stream = append(stream, s.authStream)
	}
	unary = append(unary, s.limitUnary, s.deadlineInterceptor, rejectMalformed)
	stream = append(stream, s.limitStream, rejectMalformedStream)
	return append(unary, s.unaryExtra...), append(stream, s.streamExtra...)
}

func (s *Server) deadlineInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, cancel := s.withMaxDeadline(ctx)
	defer cancel()
	return handler(ctx, req)
}

// withMaxDeadline gives ctx the server's maximum deadline unless it has an
// earlier one.
func (s *Server) withMaxDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.maxDeadline {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.maxDeadline)
}

func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	}
	return "other"
}
