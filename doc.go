// Package arbiter holds the domain vocabulary that every part of the
// next-best-action server shares: channels, purposes, audiences, outcome
// event kinds, caller kinds and the error sentinels that the gRPC boundary
// maps to status codes.
//
// It is the root of the pure core (see the Layout section of the README):
// the vocabulary that the core packages (recipient, consent, catalog,
// scoring, decision) and the adapters around them (redisstore, hcpcache,
// server, client) all speak. Those packages' own types live with their
// concept rather than here, so that this package stays a small, stable
// vocabulary; the interfaces the adapters implement are declared where
// they are consumed (decision.Loader, server.ProfileStore).
//
// It has no dependencies on transport or storage: protobuf types stop at
// server/ and client/, and go-redis at redisstore/ and hcpcache/
// (core_deps_test.go checks the whole core). Everything here is a small
// value type that is cheap to copy and compare.
package arbiter
