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
// The package takes and returns Go types; protobuf stays in server/.
package decision
