package redisstore

// Every per-recipient key is "<prefix>:{<id>}<suffix>": the recipient id is a
// Redis Cluster hash tag, so that all of one recipient's keys live in one
// slot, where one pipeline can read them and one script can write them.
// Recipient ids never contain a brace (recipient.ValidID), nor may the
// prefix. This file names every per-recipient key; the keys of definitions
// sets, which belong to no recipient, are named in definitions.go.
//
//	suffix            type    what                                         written by
//	:p                hash    profile and counters (store.go, codec.go)   put_profile.lua, apply_event.lua
//	:ev               zset    event ids seen, scored by ms recorded        apply_event.lua
//	:h                list    last 50 events, newest first (a decision     apply_event.lua
//	                          reads the newest 20: recent.go)
//	:consent          hash    current consent (consent_codec.go)           set_consent.lua
//	:consent-log      list    the consent ledger, append-only              set_consent.lua
//	:consent-ops      hash    idempotency keys of consent writes -> seq    set_consent.lua
//	:t                list    the touch ledger (touches.go, touches.lua)   apply_event.lua, reserve.lua, release.lua
//	:r                zset    decision receipts, scored by decision ms     receipts.go, reserve.lua
//
// A key that a decision reads is also an entry of the read plan (plan.go).
//
// Keys that belong to no one recipient: definitions sets (definitions.go),
// journeys' members (journeys.go), the operations trail (trail.go), and
// each territory's recipients, <prefix>:terr:{<territory>}
// (territories.go).
//
// :consent-ledger is the ledger of earlier versions (one string, or a list
// of format 1 and 2 entries). Nothing reads or writes it but Migrate; while
// it exists, set_consent.lua and ConsentHistory refuse to work on the
// recipient, so that no history is split between the two.
const (
	suffixProfile      = ":p"
	suffixEvents       = ":ev"
	suffixHistory      = ":h"
	suffixConsent      = ":consent"
	suffixConsentLog   = ":consent-log"
	suffixConsentOps   = ":consent-ops"
	suffixLegacyLedger = ":consent-ledger"
	suffixTouches      = ":t"
	suffixReceipts     = ":r"
)

// key returns the key of recipient id with the given suffix.
func (s *Store) key(id, suffix string) string { return s.prefix + ":{" + id + "}" + suffix }
