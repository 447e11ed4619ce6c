// Package features owns the per-HCP state that a decision loads: the
// profile fed by the CRM, the decayed engagement and contact counters fed by
// outcome events, the event ids remembered for idempotency and a short
// contact history. All of it lives in Redis; this package holds the key
// layout, the Lua scripts that update it, and the code that loads it.
//
// # Key layout
//
// Every key of one HCP carries the HCP id as a Redis Cluster hash tag, so
// that all of them (and the HCP's consent keys, see consent.Key) live in one
// slot and one script or pipeline can touch them together:
//
//	<prefix>:{<hcpID>}:p        hash    profile and counters (fields in store.go)
//	<prefix>:{<hcpID>}:ev       zset    event ids seen (score: ms recorded)
//	<prefix>:{<hcpID>}:h        list    last 50 events, newest pushed first
//	<prefix>:{<hcpID>}:consent  hash    current consent (owned by package consent)
//
// HCP ids are 1 to 64 characters of [A-Za-z0-9._:-] (ValidHCPID), so they
// never contain a brace; the prefix may not contain one either.
//
// # Invariants
//
//   - One round trip per decision load: Store.Load pipelines HGETALL of the
//     profile hash and of the consent hash, and nothing else.
//   - Event application is atomic and idempotent: one Lua script checks the
//     event id, checks the profile exists, updates the counters, pushes the
//     history and records the id, or changes nothing at all. The script is
//     given every number it needs (times, half-life, weights) as arguments;
//     it never reads the server clock, so a replica or a replay computes the
//     same result.
//   - Counters decay exponentially, v(t) = v0 * 2^(-(t-t0)/halfLife), and
//     each counter is stored with its own timestamp, so decay is exact
//     whenever the counter is read or updated.
//   - No partial writes: a profile is replaced by one script; an import
//     writes an HCP's consent before its profile, so an HCP whose import
//     failed half-way has no profile and is not found (see Store.Import).
//   - Consent that cannot be decoded does not fail a load: the snapshot
//     carries a zero consent.State (not complete) and the decode error, and
//     consent evaluation denies everything.
//
// # Never
//
//   - Never log, and never put personal data in errors: errors name the
//     operation and at most a field name or an item index; ids only.
//   - Never leave a half-applied event or a half-replaced profile behind.
//   - Never let go-redis types or raw Redis errors define the API: only
//     NewStore takes a client (made in cmd/); every method takes and returns
//     Go types, and errors wrap arbiter.ErrNotFound, arbiter.ErrUnavailable,
//     arbiter.ErrCorrupt or *arbiter.InvalidError (the Redis cause stays
//     wrapped for the server's log only).
package features
