// Package server is Arbiter's gRPC boundary: handlers for the decision,
// event, profile and consent services, request validation, the conversion
// between protobuf messages and domain types (convert.go, the only file
// that knows both), the mapping of domain errors to gRPC status codes
// (errors.go) and the interceptor chain.
//
// Handlers are thin: validate, convert, call the core, map the error,
// convert back. Clients never see a raw storage error, a stack trace or
// codes.Unknown: unexpected errors are logged once here and answered with
// a generic codes.Internal. Bad input gets InvalidArgument with
// errdetails.BadRequest field violations. Nothing here logs personal
// data: the errors logged name the operation, never the HCP (the stores'
// errors carry no HCP id), and request payloads are never logged. With
// WithMetrics, Prometheus metrics whose labels come from fixed sets; with
// WithTracing, OpenTelemetry spans that carry counts, codes and versions,
// never a recipient id (tracing.go). Without WithTracing nothing of
// tracing is installed.
package server
