// Package decision is the next-best-action core: for one HCP and a set of
// candidate actions it loads the HCP's state (one storage round trip),
// drops what may not be sent (MLR approval, audience, channel restriction),
// drops what the HCP has not consented to, applies the contact policy,
// scores what is left and returns the top choices with their reasons and
// the list of what was suppressed and why.
//
// Rules it must never break:
//   - no recommendation without a consent verdict of Allowed; a consent
//     state that could not be read or is incomplete denies every channel;
//   - no recommendation of content whose MLR approval is not valid for the
//     HCP's market at the decision time;
//   - a storage error fails the whole decision (arbiter.ErrUnavailable):
//     no partial answer is made from defaults.
//
// It is part of the pure core: it takes and returns Go values, reads the
// recipient's state through the Loader interface it declares (implemented
// by redisstore.Store and hcpcache.Cache), and imports no storage client,
// gRPC or protobuf (core_deps_test.go). A new piece of per-recipient state
// that a decision needs is a field of recipient.State and one entry in the
// storage adapter's read plan (redisstore/plan.go); the engine never asks
// for a second round trip.
package decision
