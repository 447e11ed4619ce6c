// Package hcpcache keeps recently loaded recipients' state (profile,
// counters as stored, consent) in the server's memory, so that a decision
// for a recipient loaded recently costs no Redis read. Cache wraps a Loader
// (the storage adapter, redisstore.Store) and is one itself: the decision
// engine cannot tell the two apart, except that a hit is cheaper.
//
// It stays exact with Redis's key tracking. One dedicated RESP3 connection
// (dialled with Options.Dial, named "arbiter-hcp-cache" in CLIENT LIST)
// turns on CLIENT TRACKING in broadcast mode for the store's key prefix;
// every write to a key of the read plan (Options.KeyPrefix and Suffixes,
// from redisstore.Store.ReadKeys), by any client, makes Redis push an
// invalidation on that connection before it answers the writer. A hit
// waits for a barrier, a PING sent on the tracking connection after the
// decision started, shared by every decision that arrived meanwhile; a miss
// reserves its slot before its read, so that an invalidation racing the
// read keeps the result out of the cache. Counters are kept as stored and
// decayed to each decision's time (Options.HalfLife, the store's).
//
// It needs a single Redis 6+ (RESP3 and tracking): not a Redis Cluster,
// where writes on other masters would go unheard, nor a Sentinel-managed
// Redis, whose failover the tracking connection would not follow.
// cmd/arbiter builds it (newCache) only in front of a single Redis client.
//
// # Invariants
//
//   - Never staler than an acknowledged write: a load returns no state
//     older than a change any server had acknowledged before the load
//     started. A hit is served only after the barrier has passed, so after
//     every invalidation Redis queued before it has been applied.
//   - One round trip per load, as without the cache: a hit waits for the
//     barrier's PING (shared with the other hits in flight), a miss for its
//     read, never both.
//   - A hit gives what the Loader's own Load at the same decision time
//     would: the same profile and consent, and counters decayed from the
//     same stored values with the same factor (recipient.DecayFactor, at
//     millisecond precision) to the same AsOf.
//   - Unheard means unknown: when the tracking connection fails or a
//     barrier PING goes unanswered for Options.PingTimeout, the whole cache
//     is dropped, loads read through the Loader until a new connection has
//     tracking on, and the cache is dropped again before it is used. A fill
//     reserved under an earlier connection is discarded.
//   - Failed loads (unknown recipient, corrupt data, Redis errors) are
//     returned as the Loader returned them and leave nothing cached, not
//     even a slot.
//   - Bounded memory: at most max(1, MaxHCPs/64) recipients in each of 64
//     shards; an entry, once in place, is never modified, so hits share it
//     without copying its maps.
//
// # Never
//
//   - Never serve a cached entry without a barrier that passed on the
//     current tracking connection, and never wait on a barrier past the
//     caller's deadline, nor much past PingTimeout (checked every quarter
//     of it).
//   - Never cache the result of a read that an invalidation, a dropped
//     cache or a lost connection may have overtaken.
//   - Never modify a state handed out or held: a hit returns a copy whose
//     counters are decayed afresh.
//   - Never log or put personal data in errors; OnLoss and OnConnect let
//     the caller log, with no recipient data.
//   - Never close the Loader: the caller owns it.
package hcpcache
