// Package recipient holds what the server knows about one recipient (an
// HCP or a patient): the descriptive profile fed by the CRM, the decayed
// engagement and contact counters fed by outcome events, and State, all of
// it that a decision reads in one round trip. It also holds the outcome
// Event a data feed reports and the ImportItem of a bulk feed, with their
// validation.
//
// It is part of the pure core: it imports neither a storage client nor
// gRPC nor protobuf (core_deps_test.go in the module root checks it).
// Storage adapters (redisstore) load and store these values; the gRPC
// boundary (server) converts them from and to protobuf.
//
// # Invariants
//
//   - A recipient id is 1 to 64 characters of [A-Za-z0-9._:-] (ValidID):
//     storage uses it as a Redis Cluster hash tag, so it never contains a
//     brace.
//   - Validation lists every violation, with field paths that start at the
//     validated value ("profile.market", "event.type"); descriptions never
//     echo the value, which may be personal data.
//   - Counters hold values decayed to Counters.AsOf; DecayTo moves them
//     forward in time and never backward (decay never increases a value).
//
// # Never
//
//   - Never import storage, transport or protobuf packages.
//   - Never put personal data in an error: ids at most.
package recipient
