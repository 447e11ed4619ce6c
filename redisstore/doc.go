// Package redisstore is the storage adapter: it keeps every recipient's
// state in Redis (profile, decayed counters, event ids and history, current
// consent and its append-only ledger) and implements decision.Loader for
// the engine, and keeps the definitions sets (definitions.go). It owns
// every key (per recipient: keys.go; of definitions: definitions.go),
// every Lua script (*.lua), the one classifier of Redis errors (errors.go)
// and the read plan (plan.go).
// Nothing else in the module names a key or imports go-redis, but cmd/
// (which makes the client), hcpcache (which tracks the read plan's keys)
// and the tests.
//
// # Where a new per-recipient key goes
//
//  1. Its suffix, type and writer in the table of keys.go.
//  2. If a decision reads it: one entry in readPlan (plan.go), with the
//     command that reads it and the decoder that puts it into
//     recipient.State. The plain load, the auto-pipeliner and the HCP
//     cache all follow the plan, and it stays one round trip
//     (TestReadPlan here, TestOneRedisRoundTripPerDecide in cmd/arbiter,
//     on single Redis and Cluster).
//  3. If a script writes it: the script takes it as a KEYS entry, so that
//     on Cluster it is routed with the recipient's other keys.
//
// # Invariants
//
//   - One round trip per decision load: Store.Load sends the read plan's
//     commands in one pipeline, and nothing else.
//   - Every key of one recipient carries the recipient id as a Redis
//     Cluster hash tag, so one script or pipeline can touch them together.
//   - Writes are atomic and idempotent: one Lua script applies an event
//     (checking its id, its profile and every stored value before the
//     first write) or changes nothing; one script writes consent records,
//     the current state and the ledger together. Scripts are given every
//     number they need (times, half-life, the consent precedence) as
//     arguments; they never read the server clock, so a replica or a
//     replay computes the same result.
//   - The consent ledger is append-only and costs O(1) per change: each
//     entry is pushed with the next sequence number and the server's
//     recorded_at, and is never rewritten, trimmed or deleted. A write
//     with an idempotency key (an unsubscribe event's id) is made once.
//   - Counters decay exponentially, v(t) = v0 * 2^(-(t-t0)/halfLife), all
//     as of one time per recipient (the ct field), so decay is exact
//     whenever they are read or updated.
//   - One format per value on the hot path. Data of earlier versions
//     (per-counter stamps, the ledger as one string or as format 1 and 2
//     lines) is refused, not guessed at, until Migrate (arbiter migrate)
//     has converted it.
//   - No partial writes: a profile is replaced by one script; an import
//     writes a recipient's consent before its profile, so a recipient
//     whose import failed half-way has no profile and is not found.
//   - Consent that cannot be decoded does not fail a load: the State
//     carries a zero consent.State (not complete) and the decode error,
//     and consent evaluation denies everything.
//
// # Never
//
//   - Never log, and never put personal data in errors: errors name the
//     operation and at most a field name or an item index; ids only.
//   - Never leave a half-applied event, a half-replaced profile or a
//     consent change without its ledger entry.
//   - Never let go-redis types or raw Redis errors out: methods take and
//     return Go values of the core packages, and errors wrap
//     arbiter.ErrNotFound, arbiter.ErrUnavailable, arbiter.ErrCorrupt or
//     *arbiter.InvalidError (the Redis cause stays wrapped for the
//     server's log only).
//   - Never write the consent precedence into a script: it is
//     consent.PrecedenceOrder, passed to set_consent.lua on every call.
package redisstore
