// Package consent owns recipients' consent: the records (who agreed or
// refused to be contacted, on which channel, for which purpose, topic and
// address, captured when and by which system), the rules that decide whether
// one contact is allowed, the per-market defaults those rules fall back on,
// and the ledger that proves every change.
//
// It is part of the pure core: no I/O, no storage client, no transport.
// Policy.Evaluate takes a State and a Query and returns a Verdict, with no
// allocation, so that it can run for every candidate of every decision.
// Storage lives in the adapter (redisstore keeps each recipient's current
// consent in one Redis hash and every change in an append-only list,
// written together by one Lua script that is handed PrecedenceOrder, so
// that the tie-break order is written once, here).
//
// # Invariants
//
//   - Unknown means deny. Consent that could not be read, could not be
//     decoded, or is not proven complete by the per-recipient marker allows
//     nothing, not even where the market's default is opt-out. So does a query
//     without a valid channel, purpose or send time.
//   - Fail closed. Every path of the rules ends in "no" when in doubt; a
//     storage adapter returns its errors (arbiter.ErrUnavailable,
//     arbiter.ErrCorrupt) rather than an empty State that a caller could
//     mistake for "no records".
//   - The ledger is append-only. Every acknowledged change becomes a
//     LedgerEntry with the next sequence number, including changes that did
//     not take effect because a more recent record for the same scope was
//     already current. No storage adapter may rewrite, trim or delete one.
//   - The most recent capture wins, whatever the arrival order: a late,
//     older record never replaces a newer one. At equal capture times the
//     more restrictive status wins (opt-out over pending over opt-in).
//
// # Never
//
//   - Never allow a contact on a guess: no record, no marker, an unknown
//     status or an unparseable value is a denial, not a default.
//   - Never put personal data (addresses, names) in errors, logs or
//     explanations; recipient ids, channels, purposes and dates only.
//     Record.Address is an opaque reference compared for equality.
//   - Never import storage or transport packages (go-redis, grpc,
//     protobuf); adapters convert (core_deps_test.go checks it).
package consent
