// Package arbiter holds the domain vocabulary that every part of the
// next-best-action server shares: channels, purposes, audiences, outcome
// event kinds, caller kinds and the error sentinels that the gRPC boundary
// maps to status codes.
//
// It has no dependencies on transport or storage: protobuf types stop at
// server/ and client/, and go-redis stops at features/ and consent/.
// Everything here is a small value type that is cheap to copy and compare.
package arbiter
