// Package catalog holds the actions Arbiter can recommend (a channel plus,
// optionally, a piece of content) and the eligibility rules that apply to an
// action before consent and scoring: MLR approval of its content for the
// recipient's market at the decision time, audience, specialty and market.
//
// Invariants: content whose MLR approval is missing, pending, withdrawn,
// expired, not yet valid or not for the recipient's market is never
// eligible. Actions without content (a rep visit, an MSL meeting) need no
// approval. The catalog is immutable once parsed; it is safe for concurrent
// use. It does no I/O beyond parsing the bytes it is given.
package catalog
