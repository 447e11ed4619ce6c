package server

import (
	"context"
	"errors"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
)

// Tracing (WithTracing): a span per call (otelgrpc's stats handler, the
// caller's W3C trace context honoured), under a Decide's span one per
// phase of the engine (load, gates, scoring: PhaseTracer), and a span per
// write of receipts: a synchronous receipt's under its call's span, an
// asynchronous batch's in a trace of its own that links the calls whose
// receipts it writes.
//
// Spans carry no personal data: no recipient id, address or token, only
// method names, counts, codes and versions (the persona code, the
// definitions and model versions). Errors are told by their kind, never
// their text.
//
// Without WithTracing nothing is installed: no stats handler, no
// observer, no span; the handlers only test a nil field.

// tracerName names the spans this package starts (the instrumentation
// scope).
const tracerName = "github.com/arbiter-nba/arbiter/server"

// Span names: the engine's phases and the decision log's writes.
const (
	SpanLoad          = "decision.load"
	SpanGates         = "decision.gates"
	SpanScoring       = "decision.scoring"
	SpanReceiptsWrite = "receipts.write"
)

// The attributes the server sets: counts, codes and versions.
const (
	attrCandidates      = attribute.Key("arbiter.candidates")
	attrSuppressed      = attribute.Key("arbiter.suppressed")
	attrRecommendations = attribute.Key("arbiter.recommendations")
	attrPersona         = attribute.Key("arbiter.persona")
	attrDefinitions     = attribute.Key("arbiter.definitions_version")
	attrModel           = attribute.Key("arbiter.model_version")
	attrReceipts        = attribute.Key("arbiter.receipts")
	attrSkipped         = attribute.Key("arbiter.receipts_skipped")
	attrOutcome         = attribute.Key("arbiter.outcome")
)

// WithTracing traces calls with tp (OpenTelemetry): see above. Off by
// default; nil: off.
func WithTracing(tp trace.TracerProvider) Option {
	return func(s *Server) {
		s.tp = tp
		if tp != nil {
			s.tracer = tp.Tracer(tracerName)
		}
	}
}

// statsHandler is the gRPC server option that gives every call but health
// checks a span, as a child of the caller's when the call carries a W3C
// traceparent (nil without tracing). otelgrpc's stats handler is the
// maintained integration (its interceptors are deprecated); its metrics
// are not recorded (the server's own Prometheus metrics are).
func (s *Server) statsHandler() grpc.ServerOption {
	if s.tp == nil {
		return nil
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(s.tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	))
}

// traceDecision sets what a decision made on its call's span.
func (s *Server) traceDecision(ctx context.Context, res *decision.Result) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrDefinitions.String(res.DefinitionsVersion), attrModel.String(res.ModelVersion),
		attrRecommendations.Int(len(res.Recommendations)), attrSuppressed.Int(len(res.Suppressed)))
	if res.Persona != "" {
		span.SetAttributes(attrPersona.String(res.Persona))
	}
}

// PhaseTracer returns the engine's observer (decision.WithObserver) that
// gives each phase of a decision a span, under the span of the call that
// asked for it; a decision made outside a traced call (a replay, a
// simulation, a call not sampled) gets none.
func PhaseTracer(tp trace.TracerProvider) decision.Observer {
	return phaseTracer{tp.Tracer(tracerName)}
}

type phaseTracer struct{ tracer trace.Tracer }

func (t phaseTracer) StartPhase(ctx context.Context, p decision.Phase) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx // EndPhase finds the same span not recording, and does nothing
	}
	name := SpanScoring
	switch p {
	case decision.PhaseLoad:
		name = SpanLoad
	case decision.PhaseGates:
		name = SpanGates
	}
	ctx, _ = t.tracer.Start(ctx, name)
	return ctx
}

func (t phaseTracer) EndPhase(ctx context.Context, p decision.Phase, end decision.PhaseEnd) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	switch p {
	case decision.PhaseLoad:
		if end.Err != nil {
			setErrorKind(span, end.Err)
		}
	case decision.PhaseGates:
		span.SetAttributes(attrCandidates.Int(end.Candidates), attrSuppressed.Int(end.Suppressed))
		if end.Persona != "" {
			span.SetAttributes(attrPersona.String(end.Persona))
		}
	case decision.PhaseScoring:
		span.SetAttributes(attrCandidates.Int(end.Candidates), attrRecommendations.Int(end.Recommendations))
	}
	span.End()
}

// setErrorKind records what kind of error ended a span: its text may name
// a recipient or a key, so only the kind is told. An unknown recipient is
// an outcome, not a fault.
func setErrorKind(span trace.Span, err error) {
	switch {
	case errors.Is(err, arbiter.ErrNotFound):
		span.SetAttributes(attrOutcome.String("not_found"))
	case errors.Is(err, context.DeadlineExceeded):
		span.SetStatus(codes.Error, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		span.SetStatus(codes.Error, "canceled")
	case errors.Is(err, arbiter.ErrUnavailable):
		span.SetStatus(codes.Error, "storage unavailable")
	default:
		span.SetStatus(codes.Error, "internal error")
	}
}

// startWrite starts the span of a write of n receipts: under ctx's span
// (a synchronous receipt), or with opts (a batch: a new trace, linked to
// its calls). Nil without tracing.
func (l *receiptLog) startWrite(ctx context.Context, n int, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if l.tracer == nil {
		return ctx, nil
	}
	ctx, span := l.tracer.Start(ctx, SpanReceiptsWrite, append(opts, trace.WithAttributes(attrReceipts.Int(n)))...)
	return ctx, span
}

// endWrite ends a write's span (nil: none).
func endWrite(span trace.Span, skipped int, err error) {
	if span == nil {
		return
	}
	if skipped > 0 {
		span.SetAttributes(attrSkipped.Int(skipped))
	}
	if err != nil {
		setErrorKind(span, err)
	}
	span.End()
}

// linkOf is the span a receipt's write links to: its call's, when that
// is sampled (nil otherwise, and without tracing).
func (l *receiptLog) linkOf(ctx context.Context) *trace.SpanContext {
	if l.tracer == nil {
		return nil
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	return &sc
}
