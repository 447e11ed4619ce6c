// Package server is Arbiter's gRPC boundary: handlers for the decision,
// event, profile and consent services, request validation, the conversion
// between protobuf messages and domain types (convert.go, the only file
// that knows both), the mapping of domain errors to gRPC status codes
// (errors.go) and the interceptor chain.
//
// Handlers are thin: validate, convert, call the core, map the error,
// convert back. Clients never see a raw storage error, a stack trace or
// codes.Unknown: unexpected errors are logged once here, by id only, and
// answered with a generic codes.Internal. Bad input gets InvalidArgument
// with errdetails.BadRequest field violations. Nothing here logs personal
// data: HCP ids are logged only on errors, and never request payloads.
package server
