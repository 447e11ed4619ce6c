package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is on when -otlp-endpoint is set: spans are exported over OTLP
// (gRPC) in batches, off the calls' path, sampled by -trace-sample
// (parent-based). Off, nothing is built or installed: no provider, no
// stats handler, no engine observer, no log wrapper.
//
// The flags win over the SDK's OTEL_* environment variables for what they
// set (the endpoint, plaintext, the sampler); the variables set the rest:
// OTEL_EXPORTER_OTLP_HEADERS (a collector's API key), _CERTIFICATE,
// _TIMEOUT, _COMPRESSION, the batch processor's OTEL_BSP_*, and
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win over the
// resource's service.name ("arbiter") and add to it (e.g.
// deployment.environment.name).

// newTracerProvider returns the tracer provider of cfg, exporting to exp
// when given (tests), else to the OTLP endpoint.
func newTracerProvider(ctx context.Context, cfg Config, exp sdktrace.SpanExporter) (*sdktrace.TracerProvider, error) {
	if exp == nil {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if strings.Contains(cfg.OTLPEndpoint, "://") {
			opts = []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint)}
		}
		if cfg.OTLPInsecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		var err error
		// The exporter dials lazily: a collector that is down loses spans
		// (counted by the SDK, logged below), never decisions.
		if exp, err = otlptracegrpc.New(ctx, opts...); err != nil {
			return nil, fmt.Errorf("otlp-endpoint: %w", err)
		}
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "arbiter"), attribute.String("service.version", buildID())),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(linkSampler{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.TraceSample))}),
	), nil
}

// linkSampler samples a new trace that links to a sampled span: the
// decision log's batch writes, each linked to the calls whose receipts it
// writes, are kept whenever one of those calls was. Anything else is left
// to the parent-based ratio sampler.
type linkSampler struct{ sdktrace.Sampler }

func (s linkSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		for _, l := range p.Links {
			if l.SpanContext.IsSampled() {
				return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
			}
		}
	}
	return s.Sampler.ShouldSample(p)
}

func (s linkSampler) Description() string {
	return "LinkedOr{" + s.Sampler.Description() + "}"
}

// traceErrors logs the SDK's errors (a collector that cannot be reached)
// at most once a minute: OpenTelemetry reports them through a handler of
// the process, which would otherwise print to stderr.
func traceErrors(logger *slog.Logger) {
	var last atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		now := time.Now().UnixNano()
		if l := last.Load(); now-l < int64(time.Minute) || !last.CompareAndSwap(l, now) {
			return
		}
		logger.Warn("tracing: spans not exported (at most one warning a minute)", "err", err)
	}))
}

// traceLogHandler adds the trace and span ids of the call a line is logged
// for (log.InfoContext(ctx, ...) with a call's context) to the line, so
// that a log line and its trace find each other. The ids are told even
// for a call that was not sampled: its trace id is the caller's, for the
// caller's own logs.
type traceLogHandler struct{ slog.Handler }

func (h traceLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceLogHandler{h.Handler.WithAttrs(as)}
}

func (h traceLogHandler) WithGroup(name string) slog.Handler {
	return traceLogHandler{h.Handler.WithGroup(name)}
}
